"""What operators' commands do to a lab machine: the fixes that heal and the mistakes that do not.

Every function here is what a command on the node (or a call to the API) changes, with the delay a
real node takes. The shell and the cluster call these; nothing else mutates a machine's health.
"""

from __future__ import annotations

from lab.machine import Fault, GiB, Machine, MiB

CONTAINERD_STOP_TIMEOUT = 12.0  # a deadlocked containerd ignores SIGTERM until systemd kills it
RESTART_DELAY = 2.0
CALICO_VXLAN_RETRY = 24.0  # after modprobe vxlan, calico's next try; the node is Ready ~30 s on


def _systemd(m: Machine, unit: str, ts: float, message: str) -> None:
    """A line systemd (pid 1) logs about a unit: `journalctl -u UNIT` shows it with the unit's
    own."""
    m.log(unit, ts, message, ident="systemd", pid=1)


def restart_unit(m: Machine, name: str, now: float, *, delay: float = RESTART_DELAY) -> str | None:
    """`systemctl restart NAME`. Returns the error systemctl prints, or None."""
    m.catch_up(now)
    unit = m.unit(name)
    if unit is None:
        return f"Failed to restart {name}.service: Unit {name}.service not found."
    short = unit.name
    if short == "containerd":
        return _restart_containerd(m, now, delay)
    if short == "kubelet":
        if not m.api_reachable:
            m.faults["restarted_while_partitioned"] = Fault("restarted_while_partitioned", now)
        _stop_kubelet(m, now)
        m.at(now + delay, "start-kubelet", lambda t: start_kubelet(m, t))
        return None
    unit.since = now
    unit.pid += 7
    if short == "chronyd":
        m.at(now + 3, "chrony-sync", lambda t: step_clock(m, t))
    m.changed()
    return None


def stop_unit(m: Machine, name: str, now: float) -> str | None:
    m.catch_up(now)
    unit = m.unit(name)
    if unit is None:
        return f"Failed to stop {name}.service: Unit {name}.service not loaded."
    if unit.name == "kubelet":
        _stop_kubelet(m, now)
    elif unit.name == "containerd":
        _stop_containerd(m, now, then_start=False)
    else:
        unit.active, unit.sub = "inactive", "dead"
    m.changed()
    return None


def start_unit(m: Machine, name: str, now: float) -> str | None:
    m.catch_up(now)
    unit = m.unit(name)
    if unit is None:
        return f"Failed to start {name}.service: Unit {name}.service not found."
    if unit.running:
        return None
    if unit.name == "kubelet":
        m.cancel("kubelet-crashloop")
        start_kubelet(m, now)
    elif unit.name == "containerd":
        start_containerd(m, now)
    else:
        unit.active, unit.sub, unit.since = "active", "running", now
    m.changed()
    return None


def kill_unit(m: Machine, name: str, signal: str, now: float) -> str | None:
    """`kill -SIG PID` / `systemctl kill`: SIGKILL ends even a deadlocked process at once, and
    systemd (Restart=always) starts the unit again; SIGTERM is ignored by a deadlocked
    containerd."""
    m.catch_up(now)
    signal = signal.upper().removeprefix("SIG")
    number = {"KILL": 9, "TERM": 15, "HUP": 1, "INT": 2}.get(signal, 15)
    unit = m.unit(name)
    if unit is None:
        return f"Failed to kill unit {name}.service: Unit {name}.service not loaded."
    if not unit.running and unit.active != "deactivating":
        return None
    if signal == "0":
        return None
    if unit.name == "containerd":
        if signal != "KILL" and "runtime_hung" in m.faults:
            return None
        m.cancel("stop-containerd")
        _systemd(m, "containerd", now, f"containerd.service: Main process exited, code=killed, "
                 f"status={number}/{signal}")
        _systemd(m, "containerd", now, "containerd.service: Failed with result 'signal'.")
        m.faults.pop("runtime_hung", None)
        m.faults.pop("socket_missing", None)
        c = m.containerd
        c.active, c.sub, c.since = "activating", "auto-restart", now
        c.restarts += 1
        m.at(now + 5.0, "start-containerd", lambda t: start_containerd(m, t))
    elif unit.name == "kubelet":
        _systemd(m, "kubelet", now, f"kubelet.service: Main process exited, code=killed, "
                 f"status={number}/{signal}")
        _stop_kubelet(m, now)
        m.kubelet.restarts += 1
        m.at(now + 10.0, "start-kubelet", lambda t: start_kubelet(m, t))
    else:
        unit.since = now
        unit.pid += 3
    m.changed()
    return None


def _stop_kubelet(m: Machine, now: float) -> None:
    k = m.kubelet
    m.cancel("kubelet-crashloop")
    m.cancel("kubelet-oom")
    m.cancel("start-kubelet")
    if k.running:
        _systemd(m, "kubelet", now,
                 "Stopping kubelet.service - kubelet: The Kubernetes Node Agent...")
        _systemd(m, "kubelet", now + 0.2, "kubelet.service: Deactivated successfully.")
        _systemd(m, "kubelet", now + 0.2,
                 "Stopped kubelet.service - kubelet: The Kubernetes Node Agent.")
    k.active, k.sub = "inactive", "dead"
    k.since = now
    m.changed()


def start_kubelet(m: Machine, now: float) -> None:
    """The kubelet process starts: it runs, or exits with the reason its config gives."""
    k = m.kubelet
    k.pid = k.pid + m.rng.randint(40, 400)
    k.since = now
    k.active, k.sub = "active", "running"
    _systemd(m, "kubelet", now, "Started kubelet.service - kubelet: The Kubernetes Node Agent.")
    from lab import journal

    journal.kubelet_startup(m, now)
    reason = m.kubelet_exit_reason()
    if reason:
        _kubelet_exits(m, now + 0.6, reason)
    else:
        m.kubelet_rss = max(m.kubelet_rss,
                            int(m.rng.uniform(90, 140) * MiB) + len(m.pods) * 4 * MiB)
        m.pleg_last_relist = now
        if m.api_reachable and "cert_expired" not in m.faults and "clock_skew" not in m.faults:
            for pod in [p for p in m.pods if p.deleting]:
                remove_pod(m, pod.namespace, pod.name, now)
        if "kubelet_oom" in m.faults:
            schedule_kubelet_oom(m, now)
    m.changed()


def _kubelet_exits(m: Machine, when: float, reason: str) -> None:
    k = m.kubelet
    m.log("kubelet", when, f'E{_klog(when)} {k.pid:>7} run.go:74] "command failed" err="{reason}"',
          priority=3)
    _systemd(m, "kubelet", when, "kubelet.service: Main process exited, code=exited, "
          "status=1/FAILURE")
    _systemd(m, "kubelet", when, "kubelet.service: Failed with result 'exit-code'.")
    k.active, k.sub, k.result, k.exec_main_status = "activating", "auto-restart", "exit-code", 1
    k.since = when

    def again(t: float) -> None:
        k.restarts += 1
        _systemd(m, "kubelet", t, f"kubelet.service: Scheduled restart job, restart counter is at "
              f"{k.restarts}.")
        start_kubelet(m, t)

    m.at(when + 10.0, "kubelet-crashloop", again)


def schedule_kubelet_oom(m: Machine, now: float) -> None:
    """The kubelet's memory grows until the kernel's OOM killer takes it, again and again."""
    fault = m.faults["kubelet_oom"]
    period = fault.detail.get("period", 75.0)

    def killed(t: float) -> None:
        if "kubelet_oom" not in m.faults or not m.kubelet.running:
            return
        k = m.kubelet
        rss = int(m.memory_used() / 1024)
        m.oom_kills.append((t, "kubelet", k.pid, rss))
        m.kernel_messages.append((t, "kubelet invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_"
                                     "MOVABLE|__GFP_COMP), order=0, oom_score_adj=-999"))
        m.kernel_messages.append((t, f"Out of memory: Killed process {k.pid} (kubelet) total-vm:"
                                     f"{rss * 3}kB, anon-rss:{m.kubelet_rss // 1024}kB, file-rss:"
                                     f"0kB, shmem-rss:0kB, UID:0 pgtables:4212kB "
                                     f"oom_score_adj:-999"))
        _systemd(m, "kubelet", t, "kubelet.service: A process of this unit has been killed by the "
                 "OOM killer.")
        _systemd(m, "kubelet", t,
                 "kubelet.service: Main process exited, code=killed, status=9/KILL")
        _systemd(m, "kubelet", t, "kubelet.service: Failed with result 'oom-kill'.")
        k.active, k.sub, k.result = "activating", "auto-restart", "oom-kill"
        k.since = t

        def again(t2: float) -> None:
            k.restarts += 1
            _systemd(m, "kubelet", t2, "kubelet.service: Scheduled restart job, restart counter is "
                     f"at {k.restarts}.")
            start_kubelet(m, t2)

        m.at(t + 10.0, "kubelet-crashloop", again)

    m.at(now + period, "kubelet-oom", killed)


def _restart_containerd(m: Machine, now: float, delay: float) -> str | None:
    _stop_containerd(m, now, then_start=True, delay=delay)
    return None


def _stop_containerd(m: Machine, now: float, *, then_start: bool, delay: float = 2.0) -> None:
    c = m.containerd
    _systemd(m, "containerd", now, "Stopping containerd.service - containerd container runtime...")
    stop_time = now + 0.5
    hung = "runtime_hung" in m.faults
    if hung:
        stop_time = now + CONTAINERD_STOP_TIMEOUT
        c.active, c.sub = "deactivating", "stop-sigterm"

    def stopped(t: float) -> None:
        if hung:
            _systemd(m, "containerd", t, "containerd.service: State 'stop-sigterm' timed out. "
                     "Killing.")
            _systemd(m, "containerd", t, f"containerd.service: Killing process {c.pid} "
                     "(containerd) with signal SIGKILL.")
            _systemd(m, "containerd", t, "containerd.service: Main process exited, code=killed, "
                     "status=9/KILL")
        m.faults.pop("runtime_hung", None)
        m.faults.pop("socket_missing", None)
        c.active, c.sub = "inactive", "dead"
        c.since = t
        _systemd(m, "containerd", t, "Stopped containerd.service - containerd container runtime.")
        if then_start:
            m.at(t + 0.5, "start-containerd", lambda t2: start_containerd(m, t2))

    m.at(stop_time, "stop-containerd", stopped)


def start_containerd(m: Machine, now: float) -> None:
    c = m.containerd
    c.pid += m.rng.randint(50, 500)
    c.since = now
    c.active, c.sub, c.result, c.exec_main_status = "active", "running", "success", 0
    m.faults.pop("runtime_dead", None)
    m.faults.pop("socket_missing", None)
    from lab import journal

    journal.containerd_startup(m, now)
    m.pleg_last_relist = now + 1
    m.changed()


def modprobe(m: Machine, module: str, now: float) -> str | None:
    m.catch_up(now)
    known = {"vxlan", "overlay", "br_netfilter", "nf_conntrack", "ip_tables", "ipip", "wireguard",
             "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "veth", "bridge", "xt_conntrack"}
    if module not in known:
        return (f"modprobe: FATAL: Module {module} not found in directory "
                f"/lib/modules/{m.kernel}")
    if module == "vxlan" and "vxlan_absent" in m.faults:
        return f"modprobe: FATAL: Module vxlan not found in directory /lib/modules/{m.kernel}"
    if module not in m.modules:
        m.modules.add(module)
        m.kernel_messages.append((now, f"{module}: loaded"))
        if module == "vxlan":
            # calico-node notices only when its vxlan manager next retries the device
            m.vxlan_tunnel = False
            m.cancel("calico-vxlan")
            m.at(now + CALICO_VXLAN_RETRY, "calico-vxlan", lambda t: calico_vxlan_up(m, t))
    m.changed()
    return None


def calico_vxlan_up(m: Machine, now: float) -> None:
    """calico-node's retry creates vxlan.calico: the pod network comes back."""
    m.catch_up(now)
    if "vxlan" not in m.modules:
        return
    net = f"10.244.{m.index % 250}.0"
    for dt, text in (
            (0.0, "[INFO][86] felix/vxlan_mgr.go 711: VXLAN device not found, creating it "
                  'ifaceName="vxlan.calico"'),
            (0.1, "[INFO][86] felix/vxlan_mgr.go 446: VXLAN tunnel device configured MTU=8951 "
                  'device="vxlan.calico"'),
            (0.1, f"[INFO][86] felix/vxlan_mgr.go 760: Assigning address to VXLAN device "
                  f'address={net}/32 ifaceName="vxlan.calico"'),
            (0.6, "[INFO][86] felix/route_table.go 1185: Programming routes "
                  'ifaceRegex="^vxlan.calico$" ipVersion=0x4'),
            (1.2, "[INFO][86] felix/int_dataplane.go 1954: Completed first update to dataplane."),
            (1.3, "[INFO][86] felix/health.go 336: Overall health status changed: live=true "
                  "ready=true"),
    ):
        m.log("calico", now + dt, text, ident="calico-node", pid=86)
    m.vxlan_tunnel = True
    m.changed()


def write_file(m: Machine, path: str, content: str, now: float, *,
               append: bool = False) -> str | None:
    m.catch_up(now)
    if path.startswith("/proc/") or path.startswith("/sys/"):
        return f"{path}: Permission denied"
    if append:
        content = m.files.get(path, "") + content
    m.files[path] = content
    m.changed()
    return None


def remove_file(m: Machine, path: str, now: float) -> str | None:
    m.catch_up(now)
    if path not in m.files:
        return f"rm: cannot remove '{path}': No such file or directory"
    del m.files[path]
    m.changed()
    return None


def swapoff(m: Machine, now: float) -> None:
    m.catch_up(now)
    m.swap_on = False
    m.changed()


def swapon(m: Machine, now: float) -> None:
    m.catch_up(now)
    if m.swap_configured:
        m.swap_on = True
    m.changed()


def prune_images(m: Machine, now: float) -> list[str]:
    """`crictl rmi --prune`: removes unused images and frees their space and inodes."""
    m.catch_up(now)
    if not m.runtime_responsive():
        return []
    freed = m.images_unused_bytes
    m.images_bytes -= freed
    m.image_inodes -= m.image_inodes_unused
    flood = m.faults.get("inode_flood")
    if flood and flood.detail.get("in_images"):
        m.faults.pop("inode_flood")
    removed = [f"sha256:{m.rng.getrandbits(256):064x}" for _ in range(m.rng.randint(6, 14))]
    m.images_unused_bytes = 0
    m.image_inodes_unused = 0
    m.changed()
    return removed


def vacuum_journal(m: Machine, size_bytes: int, now: float) -> int:
    """`journalctl --vacuum-size=N`: archived journal files beyond N are deleted."""
    m.catch_up(now)
    freed = max(0, m.journal_bytes - size_bytes)
    m.journal_bytes -= freed
    m.changed()
    return freed


def step_clock(m: Machine, now: float) -> None:
    """chronyc makestep (or chronyd restarted with a reachable source): the clock is corrected."""
    m.catch_up(now)
    if "ntp_unreachable" in m.faults and not m.faults["ntp_unreachable"].detail.get("fixed"):
        return
    if m.clock_offset:
        m.log("chronyd", now, f"System clock wrong by {-m.clock_offset:.6f} seconds",
              ident="chronyd", pid=m.chronyd.pid)
        m.log("chronyd", now, f"System clock was stepped by {-m.clock_offset:.6f} seconds",
              ident="chronyd", pid=m.chronyd.pid)
    m.clock_offset = 0.0
    m.ntp_synced = True
    m.faults.pop("clock_skew", None)
    m.changed()


def install_cni(m: Machine, now: float) -> None:
    """The CNI DaemonSet's install-cni init container copies the plugins and config again."""
    m.catch_up(now)
    m.cni_bin.update({"calico", "calico-ipam", "bandwidth", "portmap", "host-local", "loopback",
                      "tuning", "bridge"})
    m.faults.pop("cni_missing", None)
    from lab.machine_files import CALICO_CONFLIST

    m.files.setdefault("/etc/cni/net.d/10-calico.conflist", CALICO_CONFLIST)
    m.changed()


def remove_pod(m: Machine, namespace: str, name: str, now: float) -> bool:
    """A pod's containers are stopped and its sandbox removed (delete, eviction or drain)."""
    m.catch_up(now)
    for pod in list(m.pods):
        if pod.namespace == namespace and pod.name == name:
            m.pods.remove(pod)
            if pod.io_heavy and not any(p.io_heavy for p in m.pods):
                m.io_await_ms = m.rng.uniform(0.5, 2.5)
            if pod.leaking:
                m.faults.pop("kubelet_oom", None)
                m.faults.pop("memory_pressure", None)
                m.cancel("kubelet-oom")
            m.changed()
            return True
    return False


RESYNC_STORM = 90.0


def set_partition(m: Machine, partitioned: bool, now: float) -> None:
    m.catch_up(now)
    m.api_reachable = not partitioned
    if not partitioned:
        m.faults.pop("partition", None)
        if m.faults.pop("restarted_while_partitioned", None) is not None:
            # A kubelet restarted during the outage lost its pod state and rebuilds it all at
            # once when the API comes back: a relist storm, as the runbooks warn.
            m.io_await_ms = 1400.0
            m.faults["resync_storm"] = Fault("resync_storm", now)

            def calm(t: float) -> None:
                m.faults.pop("resync_storm", None)
                m.io_await_ms = m.rng.uniform(0.5, 2.5)

            m.at(now + RESYNC_STORM, "resync-storm-ends", calm)
    m.changed()


def approve_client_certificate(m: Machine, cert_pem: bytes, not_before: float, not_after: float,
                               now: float) -> None:
    """The kubelet picks up the signed certificate from its approved CSR and rotates to it."""
    m.catch_up(now)
    m.client_cert_pem = cert_pem
    m.client_cert_not_before = not_before
    m.client_cert_not_after = not_after
    m.pending_csr = None
    m.faults.pop("cert_expired", None)
    m.log("kubelet", now, f'I{_klog(now)} {m.kubelet.pid:>7} certificate_manager.go:356] '
          f'"Rotating certificates"', ident="kubelet")
    m.log("kubelet", now + 0.3, f'I{_klog(now + 0.3)} {m.kubelet.pid:>7} '
          f'certificate_manager.go:401] "Certificate rotation is enabled"')
    m.changed()


def _klog(ts: float) -> str:
    from lab.timefmt import klog_stamp

    return klog_stamp(ts)


def _logrus(ts: float) -> str:
    from lab.timefmt import rfc3339_micro

    return rfc3339_micro(ts)[:-1] + "000Z"


__all__ = [
    "restart_unit", "stop_unit", "kill_unit", "start_unit", "start_kubelet", "start_containerd",
    "modprobe",
    "write_file", "remove_file", "swapoff", "swapon", "prune_images", "vacuum_journal",
    "step_clock", "install_cni", "calico_vxlan_up", "remove_pod", "set_partition",
    "approve_client_certificate",
    "schedule_kubelet_oom", "Fault", "GiB",
]
