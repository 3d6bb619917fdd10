"""One lab node's machine: the facts every channel (conditions, journal, metrics, shell) reads.

State is plain data plus `since` timestamps; what the kubelet would report is derived from it, so
a fix that changes a fact (a module loaded, a file edited, a unit restarted) shows everywhere at
once. `catch_up(now)` advances the journal and metric accumulators over the time that passed in
the current state; every mutation calls it first, so history is piecewise-constant and exact.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

GiB = 1024**3
MiB = 1024**2

PLEG_THRESHOLD = 180.0
RELIST_PERIOD = 1.0
CRASHLOOP_RESTART_SEC = 10.0
KUBELET_WARMUP = 5.0
OOM_FLOOR = 48 * MiB  # what the OOM killer keeps free: used memory never reaches the total
CNI_BINARIES = ("bandwidth", "bridge", "calico", "calico-ipam", "dhcp", "firewall", "flannel",
                "host-device", "host-local", "install", "ipvlan", "loopback", "macvlan",
                "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf")
BASE_MODULES = ("overlay", "br_netfilter", "vxlan", "nf_conntrack", "ip_tables", "xt_conntrack",
                "nf_nat", "veth", "ip6_udp_tunnel", "udp_tunnel", "bridge", "stp", "llc")


@dataclass
class Unit:
    """A systemd service as `systemctl show` sees it."""

    name: str
    description: str
    pid: int
    since: float
    active: str = "active"  # active | failed | activating | deactivating | inactive
    sub: str = "running"  # running | dead | auto-restart | stop-sigterm | failed
    restarts: int = 0
    result: str = "success"
    exec_main_status: int = 0

    @property
    def running(self) -> bool:
        return self.active == "active" and self.sub == "running"


@dataclass
class Filesystem:
    device: str
    mount: str
    fstype: str
    size: int
    used: int
    inodes: int
    iused: int

    @property
    def avail(self) -> int:
        return max(0, self.size - self.used)

    @property
    def ifree(self) -> int:
        return max(0, self.inodes - self.iused)


@dataclass
class LabPod:
    namespace: str
    name: str
    app: str
    image: str
    owner_kind: str
    owner_name: str
    memory: int
    created: float
    phase: str = "Running"
    restarts: int = 0
    pod_ip: str = ""
    daemon: bool = False
    io_heavy: bool = False
    pids: int = 30
    leaking: bool = False
    deleting: bool = False


@dataclass(slots=True)
class JournalEntry:
    ts: float
    unit: str  # kubelet | containerd | kernel | systemd | calico
    ident: str  # the syslog identifier journalctl prints: kubelet, containerd, kernel, systemd
    pid: int
    message: str
    priority: int = 6  # 3 err, 4 warning, 6 info


class Journal:
    """One unit's journal: bounded, with a running sequence number for followers."""

    def __init__(self, limit: int = 20_000) -> None:
        self.entries: deque[JournalEntry] = deque(maxlen=limit)
        self.seq = 0  # number of entries ever appended

    def append(self, entry: JournalEntry) -> None:
        self.entries.append(entry)
        self.seq += 1

    def since_seq(self, seq: int) -> list[JournalEntry]:
        """Entries appended after the follower's `seq` (oldest first)."""
        new = self.seq - seq
        if new <= 0:
            return []
        new = min(new, len(self.entries))
        return list(self.entries)[-new:]

    def vacuum(self, keep: int) -> int:
        removed = max(0, len(self.entries) - keep)
        for _ in range(removed):
            self.entries.popleft()
        return removed


@dataclass
class Fault:
    """A condition the scenario put on the machine, with when it began."""

    kind: str
    since: float
    detail: dict = field(default_factory=dict)


class Machine:
    def __init__(
        self,
        *,
        name: str,
        index: int,
        ip: str,
        zone: str,
        pool: str,
        instance_type: str,
        cpus: int,
        memory: int,
        kernel: str,
        os_image: str,
        kubelet_version: str,
        containerd_version: str,
        boot_time: float,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.index = index
        self.ip = ip
        self.zone = zone
        self.pool = pool
        self.instance_type = instance_type
        self.cpus = cpus
        self.memory = memory
        self.kernel = kernel
        self.os_image = os_image
        self.kubelet_version = kubelet_version
        self.containerd_version = containerd_version
        self.boot_time = boot_time
        self.rng = rng
        self.scenario: str | None = None
        self.story: str = ""
        self.faults: dict[str, Fault] = {}

        self.kubelet = Unit("kubelet", "kubelet: The Kubernetes Node Agent",
                            pid=rng.randint(1500, 3000), since=boot_time + 25)
        self.containerd = Unit("containerd", "containerd container runtime",
                               pid=rng.randint(700, 1400), since=boot_time + 12)
        self.chronyd = Unit("chronyd", "chrony, an NTP client/server", pid=rng.randint(400, 690),
                            since=boot_time + 6)
        self.kubelet_rss = int(rng.uniform(90, 160) * MiB)
        self.kubelet_cpu = rng.uniform(1.0, 4.0)
        self.goroutines_base = rng.randint(280, 420)
        self.io_await_ms = rng.uniform(0.4, 2.5)
        self.modules: set[str] = set(BASE_MODULES)
        self.cni_bin: set[str] = set(CNI_BINARIES)
        self.vxlan_tunnel = True  # calico's vxlan.calico device exists
        self.swap_on = False
        self.clock_offset = 0.0
        self.ntp_synced = True
        self.api_reachable = True  # node -> API server (and API server -> node kubelet)
        self.pids_max = 4194304 // 16  # kernel.pid_max as the lab sizes it
        self.pids_base = rng.randint(300, 600)
        self.root = Filesystem("/dev/nvme0n1p1", "/", "ext4", 100 * GiB, 0, 6553600, 0)
        self.journal_bytes = int(rng.uniform(200, 900) * MiB)
        self.images_bytes = int(rng.uniform(6, 14) * GiB)
        self.images_unused_bytes = int(self.images_bytes * rng.uniform(0.2, 0.5))
        self.image_inodes = rng.randint(180_000, 320_000)
        self.image_inodes_unused = int(self.image_inodes * 0.4)
        self.other_used = int(rng.uniform(8, 14) * GiB)
        self.other_inodes = rng.randint(190_000, 260_000)
        self.log_bytes = int(rng.uniform(0.5, 2) * GiB)
        self.oom_kills: list[tuple[float, str, int, int]] = []
        self.kernel_messages: list[tuple[float, str]] = []
        self.pods: list[LabPod] = []
        self.client_cert_not_before = 0.0
        self.client_cert_not_after = 0.0
        self._client_cert_pem = b""
        self._client_key_pem = b""
        self.cert_issuer: Callable[[Machine], None] | None = None  # makes the PEMs on first use
        self.serving_cert_pem = b""
        self.pending_csr: str | None = None
        self.cert_rotation_error = ""
        self.files: dict[str, str] = {}
        self._config_cache: tuple[str, dict[str, str]] | None = None
        self.journals: dict[str, Journal] = {}
        self.journal_upto = boot_time
        self.timers: list[tuple[float, str, Callable[[float], None]]] = []
        self.pleg_last_relist = boot_time + 30
        self.metrics = None  # a lab.metrics.KubeletMetrics, attached by the cluster
        self.listeners: list[Callable[[Machine], None]] = []  # told when reported state changes
        self.rv = 0  # bumped on every change another part may cache on

    @property
    def machine_id(self) -> str:
        """/etc/machine-id, and the node's nodeInfo.machineID."""
        return hashlib.md5(f"machine-id:{self.name}".encode()).hexdigest()

    @property
    def system_uuid(self) -> str:
        """The firmware's UUID: nodeInfo.systemUUID and cAdvisor's system_uuid label."""
        return f"ec2{self.index:05x}-0000-4000-8000-{self.index:012x}"

    @property
    def boot_id(self) -> str:
        """/proc/sys/kernel/random/boot_id and nodeInfo.bootID: a new one on every boot."""
        h = hashlib.md5(f"boot-id:{self.name}:{self.boot_time:.6f}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"

    @property
    def client_cert_pem(self) -> bytes:
        if not self._client_cert_pem and self.cert_issuer is not None:
            self.cert_issuer(self)
        return self._client_cert_pem

    @client_cert_pem.setter
    def client_cert_pem(self, value: bytes) -> None:
        self._client_cert_pem = value

    @property
    def client_key_pem(self) -> bytes:
        if not self._client_key_pem and self.cert_issuer is not None:
            self.cert_issuer(self)
        return self._client_key_pem

    @client_key_pem.setter
    def client_key_pem(self, value: bytes) -> None:
        self._client_key_pem = value

    # -- configuration files ------------------------------------------------------------------
    @property
    def kubelet_config(self) -> dict[str, str]:
        """The scalar keys of /var/lib/kubelet/config.yaml, as the kubelet parses them at start."""
        text = self.files.get("/var/lib/kubelet/config.yaml", "")
        cached = self._config_cache
        if cached is not None and cached[0] is text:
            return cached[1]
        out: dict[str, str] = {}
        self._config_cache = (text, out)
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z]+):\s*(\S.*)?$", line)
            if m and m.group(2) is not None:
                out[m.group(1)] = m.group(2).strip().strip('"')
        return out

    @property
    def max_pods(self) -> int:
        try:
            return int(self.kubelet_config.get("maxPods", "110"))
        except ValueError:
            return 110

    @property
    def runtime_cgroup_driver(self) -> str:
        text = self.files.get("/etc/containerd/config.toml", "")
        return "systemd" if re.search(r"SystemdCgroup\s*=\s*true", text) else "cgroupfs"

    @property
    def swap_configured(self) -> bool:
        return any(
            re.match(r"^\s*[^#\s]\S*\s+\S+\s+swap\s", line)
            for line in self.files.get("/etc/fstab", "").splitlines()
        )

    @property
    def modules_persisted(self) -> set[str]:
        out: set[str] = set()
        for path, text in self.files.items():
            if path.startswith("/etc/modules-load.d/") and path.endswith(".conf"):
                out.update(w.strip() for w in text.splitlines()
                           if w.strip() and not w.strip().startswith("#"))
        return out

    # -- derived health -------------------------------------------------------------------------
    def node_now(self, now: float) -> float:
        return now + self.clock_offset

    def kubelet_exit_reason(self) -> str | None:
        """Why the kubelet exits at start (it then crash-loops under systemd), or None."""
        cfg = self.kubelet_config
        if "/var/lib/kubelet/config.yaml" not in self.files:
            return ('failed to load kubelet config file, path: /var/lib/kubelet/config.yaml, '
                    'error: failed to load Kubelet config file /var/lib/kubelet/config.yaml, '
                    'error failed to read kubelet config file "/var/lib/kubelet/config.yaml", '
                    'error: open /var/lib/kubelet/config.yaml: no such file or directory')
        driver = cfg.get("cgroupDriver", "cgroupfs")
        if self.containerd.running and driver != self.runtime_cgroup_driver:
            return (f'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "{driver}" '
                    f'is different from docker cgroup driver: "{self.runtime_cgroup_driver}"')
        if self.swap_on and cfg.get("failSwapOn", "true") != "false":
            return ("failed to run Kubelet: running with swap on is not supported, please disable "
                    "swap! or set --fail-swap-on flag to false. /proc/swaps contained: "
                    "[Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority /swap.img"
                    "                               file\t\t4194300\t\t0\t\t-2]")
        return None

    def runtime_responsive(self) -> bool:
        return (self.containerd.running and "runtime_hung" not in self.faults
                and "socket_missing" not in self.faults and self.pids_used() < self.pids_max)

    def relist_seconds(self) -> float:
        """How long one PLEG relist takes in the machine's current state."""
        if not self.runtime_responsive():
            return float("inf")
        fs = self.filesystem()
        if fs.ifree == 0 or fs.avail < fs.size * 0.005:
            return float("inf")  # containerd cannot write its metadata: every relist fails
        containers = sum(1 for p in self.pods if p.phase == "Running") * 2
        base = 0.004 + containers * 0.0004
        if self.io_await_ms > 50:
            base += self.io_await_ms / 1000 * (150 + containers * 2)
        if len(self.pods) > 110:
            base += (len(self.pods) - 110) * 1.6
        return base

    def pleg_age(self, now: float) -> float:
        if not self.kubelet.running:
            return 0.0
        relist = self.relist_seconds()
        if relist == float("inf"):
            return now - self.pleg_last_relist
        return min(now - self.kubelet.since, relist + RELIST_PERIOD)

    def pleg_healthy(self, now: float) -> bool:
        return self.pleg_age(now) < PLEG_THRESHOLD

    def network_ready(self) -> bool:
        return "calico" in self.cni_bin and self.vxlan_up() and \
            "/etc/cni/net.d/10-calico.conflist" in self.files

    def vxlan_up(self) -> bool:
        """The vxlan module is loaded and calico has created its tunnel device on it."""
        return "vxlan" in self.modules and self.vxlan_tunnel

    def memory_demand(self) -> int:
        """What the processes would use if nothing stopped them."""
        pods = sum(p.memory for p in self.pods if p.phase == "Running")
        return int(0.9 * GiB) + pods + self.kubelet_rss

    def memory_used(self) -> int:
        """What is in use: the OOM killer ends processes before the demand reaches the total."""
        return min(self.memory_demand(), self.memory - OOM_FLOOR)

    def memory_available(self) -> int:
        return max(0, self.memory - self.memory_used())

    def pids_used(self) -> int:
        return self.pids_base + sum(p.pids for p in self.pods if p.phase == "Running")

    def disk_used(self) -> int:
        return self.other_used + self.images_bytes + self.journal_bytes + self.log_bytes

    def inodes_used(self) -> int:
        return self.other_inodes + self.image_inodes + self.faults.get(
            "inode_flood", Fault("", 0, {"inodes": 0})).detail["inodes"]

    def filesystem(self) -> Filesystem:
        fs = self.root
        fs.used = min(fs.size, self.disk_used())
        fs.iused = min(fs.inodes, self.inodes_used())
        return fs

    def tls_to_apiserver_ok(self, now: float, api_cert_not_before: float) -> str | None:
        """The x509 error the kubelet's client gets talking to the API server, or None."""
        node_now = self.node_now(now)
        if node_now < api_cert_not_before:
            return (f'tls: failed to verify certificate: x509: certificate has expired or is not '
                    f'yet valid: current time {_go_time(node_now)} is before '
                    f'{_go_time(api_cert_not_before)}')
        if now >= self.client_cert_not_after:
            return "Unauthorized"
        return None

    def posts_status(self, now: float, api_cert_not_before: float) -> bool:
        """Whether this kubelet gets its status and lease to the API server now. A kubelet that
        has just started spends its first seconds initialising before its first update."""
        return (self.kubelet.running and now - self.kubelet.since >= KUBELET_WARMUP
                and self.api_reachable
                and self.tls_to_apiserver_ok(now, api_cert_not_before) is None)

    def kubelet_healthz(self, now: float) -> tuple[int, str]:
        if not self.kubelet.running:
            return 0, "connection refused"
        if not self.pleg_healthy(now):
            return 500, ("[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\n"
                         "healthz check failed\n")
        return 200, "ok"

    def conditions(self, now: float) -> dict[str, tuple[str, str, str]]:
        """type -> (status, reason, message) as this kubelet would post them."""
        out: dict[str, tuple[str, str, str]] = {}
        avail = self.memory_available()
        if avail < 100 * MiB or "memory_pressure" in self.faults:
            out["MemoryPressure"] = ("True", "KubeletHasInsufficientMemory",
                                     "kubelet has insufficient memory available")
        else:
            out["MemoryPressure"] = ("False", "KubeletHasSufficientMemory",
                                     "kubelet has sufficient memory available")
        fs = self.filesystem()
        if fs.avail < fs.size * 0.10 or fs.ifree < fs.inodes * 0.05:
            out["DiskPressure"] = ("True", "KubeletHasDiskPressure", "kubelet has disk pressure")
        else:
            out["DiskPressure"] = ("False", "KubeletHasNoDiskPressure",
                                   "kubelet has no disk pressure")
        if self.pids_used() > self.pids_max * 0.95:
            out["PIDPressure"] = ("True", "KubeletHasInsufficientPID",
                                  "kubelet has insufficient PID available")
        else:
            out["PIDPressure"] = ("False", "KubeletHasSufficientPID",
                                  "kubelet has sufficient PID available")
        problems = []
        if not self.runtime_responsive():
            problems.append("container runtime is down")
        relist = self.relist_seconds()
        if self.kubelet.running and math.isfinite(relist) and now - self.kubelet.since < relist:
            problems.append("PLEG is not healthy: pleg has yet to be successful")
        elif not self.pleg_healthy(now):
            problems.append(
                f"PLEG is not healthy: pleg was last seen active "
                f"{_go_duration(self.pleg_age(now))} ago; threshold is 3m0s")
        if not self.network_ready():
            problems.append(
                "container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: "
                "cni plugin not initialized")
        if problems:
            message = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            out["Ready"] = ("False", "KubeletNotReady", message)
        else:
            out["Ready"] = ("True", "KubeletReady", "kubelet is posting ready status")
        return out

    def network_unavailable(self) -> tuple[str, str, str]:
        if "calico" in self.cni_bin and self.vxlan_up():
            return ("False", "CalicoIsUp", "Calico is running on this node")
        return ("True", "CalicoIsDown", "Calico is shutting down on this node")

    # -- time ------------------------------------------------------------------------------------
    def at(self, when: float, label: str, fn: Callable[[float], None]) -> None:
        """Run `fn(when)` once the lab clock passes `when` (a delayed consequence)."""
        self.timers.append((when, label, fn))
        self.timers.sort(key=lambda t: t[0])

    def cancel(self, label: str) -> None:
        self.timers = [t for t in self.timers if t[1] != label]

    def catch_up(self, now: float) -> None:
        """Advance journals, metrics and due timers to `now`."""
        from lab import journal

        while self.timers and self.timers[0][0] <= now:
            when, _label, fn = self.timers.pop(0)
            self._advance(when, journal)
            fn(when)
            self.changed()
        self._advance(now, journal)

    def _advance(self, now: float, journal) -> None:
        if now <= self.journal_upto:
            return
        t0 = self.journal_upto
        if self.kubelet.running and self.relist_seconds() < PLEG_THRESHOLD:
            self.pleg_last_relist = now
        journal.emit(self, t0, now)
        if self.metrics is not None:
            self.metrics.advance(self, t0, now)
        self.journal_upto = now

    def log(self, unit: str, ts: float, message: str, *, priority: int = 6,
            ident: str | None = None, pid: int | None = None) -> None:
        owner = {"kubelet": self.kubelet, "containerd": self.containerd}.get(unit)
        self.journal(unit).append(JournalEntry(
            ts, unit, ident or unit, pid if pid is not None else (owner.pid if owner else 0),
            message, priority))

    def journal(self, unit: str) -> Journal:
        unit = unit.removesuffix(".service")
        if unit not in self.journals:
            self.journals[unit] = Journal()
        return self.journals[unit]

    def changed(self) -> None:
        self.rv += 1
        for listener in self.listeners:
            listener(self)

    # -- systemd -----------------------------------------------------------------------------------
    def unit(self, name: str) -> Unit | None:
        name = name.removesuffix(".service")
        return {"kubelet": self.kubelet, "containerd": self.containerd,
                "chronyd": self.chronyd, "chrony": self.chronyd}.get(name)


def _go_duration(seconds: float) -> str:
    from lab.timefmt import go_duration

    return go_duration(round(seconds, 6))


def _go_time(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
