"""The lab's failure scenarios, one per cause in the runbooks, as data.

Each scenario bends a healthy machine at the moment the failure began; everything a client sees
afterwards (conditions, lease, events, CSRs, metrics, journal, shell output) follows from the
machine's facts. `action` names the fix that heals it (the id `nodewb act` takes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab import effects
from lab.machine import Fault, GiB, LabPod, Machine, MiB
from lab.machine_files import SWAP_FSTAB_LINE

NEW_IMAGE_KERNEL = "6.8.0-1019-aws"
NEW_IMAGE_OS = "Ubuntu 22.04.5 LTS"
NEW_IMAGE_AMI = "ami-0c7f4e2a9b81d3e65"


@dataclass(frozen=True)
class Scenario:
    name: str
    domain: str
    action: str
    story: str
    apply: Callable[[Machine, float], None]
    zone_wide: bool = False
    ago: float = 600.0  # how long before the lab starts the failure began

    def as_dict(self) -> dict:
        return {"name": self.name, "story": self.story, "domain": self.domain,
                "action": self.action}


def _pod(m: Machine, ns: str, name: str, app: str, image: str, memory: int, at: float,
         **kw) -> LabPod:
    pod = LabPod(ns, name, app, image, "ReplicaSet", name.rsplit("-", 1)[0], memory, at,
                 pod_ip=f"10.244.{m.index % 250}.{200 + len(m.pods) % 50}", **kw)
    m.pods.append(pod)
    return pod


def _healthy(m: Machine, at: float) -> None:
    pass


def _pleg_slow_io(m: Machine, at: float) -> None:
    _pod(m, "batch", "etl-compactor-7c9f5d8b6-q4wzr", "etl-compactor",
         "registry.example.com/data/etl-compactor:2.14.1", 900 * MiB, at, io_heavy=True)
    m.io_await_ms = 1400.0
    m.faults["slow_io"] = Fault("slow_io", at, {"device": "nvme0n1", "await_ms": 1400})


def _containerd_deadlock(m: Machine, at: float) -> None:
    m.faults["runtime_hung"] = Fault("runtime_hung", at)
    m.pleg_last_relist = at
    m.log("containerd", at - 2, f'time="{effects._logrus(at - 2)}" level=info msg="StopContainer '
          f'for \\"3f9a1c\\" with timeout 30 (s)"')
    m.log("containerd", at - 1, f'time="{effects._logrus(at - 1)}" level=warning msg="cleaning up '
          f'after shim disconnected" id=3f9a1c7be2 namespace=k8s.io')


def _runtime_dead(m: Machine, at: float) -> None:
    c = m.containerd
    m.log("containerd", at, "panic: runtime error: invalid memory address or nil pointer "
          "dereference", priority=2)
    m.log("containerd", at, "[signal SIGSEGV: segmentation violation code=0x1 addr=0x28 "
          "pc=0x55d1f0a3c2e1]", priority=2)
    m.log("containerd", at, "goroutine 4182 [running]:", priority=2)
    m.log("containerd", at, "github.com/containerd/containerd/v2/core/metadata.(*snapshotter)."
          "Remove(...)", priority=2)
    for i in range(1, 6):
        t = at + i * 0.2
        effects._systemd(m, "containerd", t, "containerd.service: Main process exited, "
                         "code=dumped, status=11/SEGV")
        effects._systemd(m, "containerd", t, "containerd.service: Failed with result 'core-dump'.")
        c.restarts += 1
    effects._systemd(m, "containerd", at + 1.2, "containerd.service: Start request repeated too "
                     "quickly.")
    effects._systemd(m, "containerd", at + 1.2, "Failed to start containerd.service - containerd "
                     "container runtime.")
    c.active, c.sub, c.result, c.exec_main_status = "failed", "failed", "core-dump", 11
    c.since = at + 1.2
    m.faults["runtime_dead"] = Fault("runtime_dead", at)
    m.faults["socket_missing"] = Fault("socket_missing", at)
    m.pleg_last_relist = at


def _cert_expired(m: Machine, at: float) -> None:
    # The certificate ran out at `at`; rotation asked for a new one days earlier and nobody
    # approved it (the CSR approver was scaled to zero).
    m.faults["cert_expired"] = Fault("cert_expired", at, {"csr_created": at - 3 * 86400})
    m.client_cert_not_before = at - 365 * 86400
    m.client_cert_not_after = at
    m.pending_csr = "needed"


def _cni_missing(m: Machine, at: float) -> None:
    m.cni_bin.discard("calico")
    m.cni_bin.discard("calico-ipam")
    m.faults["cni_missing"] = Fault("cni_missing", at, {"binaries": ["calico", "calico-ipam"]})
    _reboot(m, at - 90)


def _vxlan_missing(m: Machine, at: float) -> None:
    m.kernel = NEW_IMAGE_KERNEL
    m.os_image = NEW_IMAGE_OS
    m.faults["vxlan_unloaded"] = Fault("vxlan_unloaded", at, {"ami": NEW_IMAGE_AMI})
    m.files["/etc/modules-load.d/k8s.conf"] = "overlay\nbr_netfilter\n"
    _reboot(m, at - 60)
    m.modules.discard("vxlan")
    m.modules.discard("ip6_udp_tunnel")
    m.modules.discard("udp_tunnel")


def _reboot(m: Machine, at: float) -> None:
    m.boot_time = at
    m.kubelet.since = at + 25
    m.containerd.since = at + 12
    m.chronyd.since = at + 6
    m.kernel_messages.append((at + 0.5, f"Linux version {m.kernel} (buildd@lcy02-amd64-104) "
                                        f"(gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0) #19~22.04.1"))


def _inode_exhaustion(m: Machine, at: float) -> None:
    # A CI runner's image churn left thousands of unused layers: millions of small files.
    fs = m.root
    flood = fs.inodes - m.other_inodes - m.image_inodes
    m.faults["inode_flood"] = Fault("inode_flood", at, {"inodes": flood, "in_images": True,
                                                         "path": "/var/lib/containerd"})
    m.images_bytes = int(36 * GiB)
    m.images_unused_bytes = int(27 * GiB)


def _disk_full(m: Machine, at: float) -> None:
    # journald's size cap was dropped by a config change and log rotation stopped.
    m.journal_bytes = int(100 * GiB) - m.disk_used() + m.journal_bytes
    m.faults["log_rotation_failed"] = Fault("log_rotation_failed", at, {"path": "/var/log/journal"})


def _kubelet_oom(m: Machine, at: float) -> None:
    _pod(m, "logging", "fluentd-aggregator-5b7d9c6f4-hx8kp", "fluentd-aggregator",
         "fluent/fluentd:v1.16-1", m.memory - int(1.2 * GiB), at, leaking=True)
    m.faults["kubelet_oom"] = Fault("kubelet_oom", at, {"period": 4.0})
    m.faults["memory_pressure"] = Fault("memory_pressure", at)
    effects.start_kubelet(m, at)


def _too_many_pods(m: Machine, at: float) -> None:
    cfg = m.files["/var/lib/kubelet/config.yaml"]
    m.files["/var/lib/kubelet/config.yaml"] = cfg.replace("maxPods: 110", "maxPods: 250")
    m.kubelet_rss = int(1.45 * GiB)
    count = 236 - len(m.pods)
    # Packed until the node has about 60 MiB left: below the 100Mi eviction threshold.
    each = (m.memory_available() - 60 * MiB) // count
    for i in range(count):
        _pod(m, "ci", f"runner-job-{m.index:04d}{i:03d}-x{i % 7}", "ci-runner",
             "registry.example.com/ci/runner:4.2.0", each, at - 300 + i)
    m.goroutines_base = 2900


def _pid_exhaustion(m: Machine, at: float) -> None:
    pod = _pod(m, "batch", "report-gen-6d5f8b7c9-mz2lt", "report-gen",
               "registry.example.com/reports/report-gen:0.9.3", 600 * MiB, at)
    pod.pids = m.pids_max - (m.pids_used() - pod.pids)
    m.faults["pid_leak"] = Fault("pid_leak", at, {"pod": f"{pod.namespace}/{pod.name}"})


def _api_partition(m: Machine, at: float) -> None:
    m.api_reachable = False
    m.faults["partition"] = Fault("partition", at, {"heals_after": 1800.0})
    m.at(at + 1800.0, "partition-heals", lambda t: effects.set_partition(m, False, t))


def _clock_skew(m: Machine, at: float) -> None:
    m.clock_offset = -2 * 86400 - 1234.5
    m.ntp_synced = False
    m.faults["clock_skew"] = Fault("clock_skew", at)
    _reboot(m, at - 30)


def _cgroup_mismatch(m: Machine, at: float) -> None:
    cfg = m.files["/var/lib/kubelet/config.yaml"]
    m.files["/var/lib/kubelet/config.yaml"] = cfg.replace("cgroupDriver: systemd",
                                                          "cgroupDriver: cgroupfs")
    m.faults["config_drift"] = Fault("config_drift", at, {"key": "cgroupDriver"})
    effects.start_kubelet(m, at)


def _swap_on(m: Machine, at: float) -> None:
    m.files["/etc/fstab"] = m.files["/etc/fstab"] + SWAP_FSTAB_LINE
    m.swap_on = True
    _reboot(m, at - 20)
    effects.start_kubelet(m, at)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("healthy", "healthy", "",
             "A healthy node: Ready, lease fresh, runtime fast.", _healthy),
    Scenario("pleg-slow-io", "pleg_runtime_slow", "delete-pod",
             "A batch job floods the root disk (await 1.4 s); containerd's state reads crawl, "
             "PLEG relists take minutes and the node goes NotReady with 'PLEG is not healthy'.",
             _pleg_slow_io),
    Scenario("containerd-deadlock", "runtime_down", "restart-containerd",
             "containerd deadlocks on a stuck shim: crictl hangs, PLEG stops relisting and the "
             "kubelet reports 'PLEG is not healthy'; a restart needs systemd's SIGKILL.",
             _containerd_deadlock),
    Scenario("runtime-dead", "runtime_down", "restart-containerd",
             "containerd crashed with a nil-pointer panic and hit systemd's start limit; the "
             "socket is gone and the kubelet says 'container runtime is down'.", _runtime_dead),
    Scenario("cert-expired", "cert_expired", "approve-csr",
             "The kubelet's client certificate expired; its rotation CSR has been Pending for "
             "three days because nobody approved it. The API answers 401, Ready goes Unknown.",
             _cert_expired),
    Scenario("cni-binary-missing", "cni_network", "reapply-cni",
             "After an upgrade and reboot /opt/cni/bin/calico is missing: 'cni plugin not "
             "initialized', NetworkPluginNotReady, pods stuck in ContainerCreating.",
             _cni_missing),
    Scenario("vxlan-missing", "cni_network", "modprobe-vxlan",
             "A new node image dropped vxlan from the initramfs; after the security-patch "
             "reboot Calico cannot create its vxlan tunnel across a whole zone: "
             "NetworkUnavailable=True, 'PLEG is not healthy' in the journal as a decoy.",
             _vxlan_missing, zone_wide=True),
    Scenario("inode-exhaustion", "disk_pressure", "prune-images",
             "Unused image layers from CI churn hold millions of small files: df -i says 100% "
             "while df -h says about 50%; DiskPressure=True and the eviction manager runs.",
             _inode_exhaustion),
    Scenario("disk-full", "disk_pressure", "vacuum-journal",
             "journald's size cap was dropped and log rotation stopped: /var/log/journal holds "
             "close to 80 GB, the root disk is full, DiskPressure=True and image GC cannot help.",
             _disk_full),
    Scenario("kubelet-oom", "memory_pid_pressure", "delete-pod",
             "A log aggregator with no memory limit leaks until the kernel's OOM killer takes "
             "the kubelet, again and again: MemoryPressure, restarts, dmesg OOM kills.",
             _kubelet_oom),
    Scenario("too-many-pods", "memory_pid_pressure", "drain",
             "maxPods was raised to 250 and 236 CI pods were packed on: the kubelet's memory "
             "and PLEG relists balloon and the node goes NotReady.", _too_many_pods),
    Scenario("pid-exhaustion", "memory_pid_pressure", "delete-pod",
             "A report generator leaks processes until the PID table is full: PIDPressure=True, "
             "runc cannot fork ('resource temporarily unavailable'), PLEG stalls.",
             _pid_exhaustion),
    Scenario("api-partition", "apiserver_unreachable", "",
             "The node lost its route to the API server's load balancer: leases stop renewing, "
             "the node controller marks Ready=Unknown, pods keep running. Fix the network path; "
             "do not restart the kubelet. The lab's partition heals after 30 minutes.",
             _api_partition),
    Scenario("clock-skew", "clock_skew", "sync-clock",
             "The node booted with its clock two days behind and chrony is slewing, not "
             "stepping: the API server's certificate is 'not yet valid' to the kubelet.",
             _clock_skew),
    Scenario("cgroup-driver-mismatch", "kubelet_config", "fix-cgroup-driver",
             "A config push set the kubelet's cgroupDriver to cgroupfs while containerd uses "
             "systemd: the kubelet exits at start and systemd restarts it every 10 s.",
             _cgroup_mismatch),
    Scenario("swap-on", "kubelet_config", "disable-swap",
             "A base-image change added a swap file to /etc/fstab; after reboot swap is on and "
             "the kubelet refuses to start ('running with swap on is not supported').",
             _swap_on),
]}

# The default lab's mix: a few single-node failures plus the zone-wide vxlan story.
DEFAULT_MIX = ["containerd-deadlock", "cert-expired", "inode-exhaustion", "pleg-slow-io",
               "kubelet-oom", "clock-skew"]


def parse_spec(spec: str) -> tuple[Scenario, str | None]:
    """'name' or 'name@node-0003' -> (scenario, node or None); ValueError names the choices."""
    name, _, node = spec.partition("@")
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}")
    return SCENARIOS[name], node or None
