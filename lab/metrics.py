"""The kubelet's /metrics exposition, moving with the machine.

`KubeletMetrics` accumulates real cumulative histograms and counters while lab time passes in a
constant machine state (`advance(machine, t0, t1)`, called by `Machine._advance`) and renders the
Prometheus text format a v1.2x kubelet prints (`render(machine, now)`). Families that never move
are rendered once per kubelet process and reused.

What moves, and why:
- PLEG: one relist every RELIST_PERIOD after the previous one returns. Its duration spreads around
  `machine.relist_seconds()`. A hung runtime makes every relist wait for the CRI deadline (2 min)
  and fail, a dead runtime makes it fail at once; neither updates the last successful relist, so
  `kubelet_pleg_last_seen_seconds` stops and the relist interval histogram climbs.
- CRI operations: the relist's own list calls plus the periodic callers (runtime status, version,
  image GC, stats, exec probes), slow with the same slowness, timing out and counted as errors
  when the runtime hangs.
- The API client: lease renewals, node status, events; timeouts and 5xx while partitioned.
- The process: CPU seconds, goroutines (piling up on the CRI while it hangs), RSS.
A kubelet restart (a new pid or start time for the kubelet unit) starts every counter again.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from hashlib import sha1

INF = float("inf")
RELIST_PERIOD = 1.0
CRI_TIMEOUT = 120.0  # runtimeRequestTimeout: 2m0s
SAMPLE_LIMIT = 48  # above this many events in one step, histograms are filled from the CDF

DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUNTIME_BUCKETS = tuple(0.005 * 2.5 ** i for i in range(14))  # ExponentialBuckets(.005, 2.5, 14)
REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
STORAGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 25.0, 50.0, 120.0, 300.0, 600.0)
CERT_ROTATION_BUCKETS = (60.0, 3600.0, 14400.0, 86400.0, 604800.0, 2592000.0, 7776000.0,
                         15552000.0, 31104000.0, 124416000.0)
CLIENT_CERT_BUCKETS = (0.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0, 172800.0,
                       345600.0, 604800.0, 2592000.0, 7776000.0, 15552000.0, 31104000.0)
WORKQUEUE_BUCKETS = (1e-08, 1e-07, 1e-06, 9.999999999999999e-06, 9.999999999999999e-05, 0.001,
                     0.01, 0.1, 1.0, 10.0)
PER_POD_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0)


# -- number formatting as Go's strconv.FormatFloat(f, 'g', -1, 64) ---------------------------------
def gofloat(v: float) -> str:
    if v != v:
        return "NaN"
    if v == INF:
        return "+Inf"
    if v == -INF:
        return "-Inf"
    if v == 0:
        return "0"
    if v == int(v) and -1e6 < v < 1e6:
        return str(int(v))
    neg = v < 0
    r = repr(abs(float(v)))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    raw = ip + fp
    stripped = raw.lstrip("0")
    lead = len(raw) - len(stripped)
    dp = len(ip) + e - lead  # position of the decimal point relative to the first digit
    digits = stripped.rstrip("0") or "0"
    x = dp - 1
    sign = "-" if neg else ""
    if x < -4 or x >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
    nd = len(digits)
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return f"{sign}{digits}{'0' * (dp - nd)}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    """Label names sorted, as the Go client prints them; without braces."""
    return ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(pairs))


def _head(name: str, help_text: str, kind: str, alpha: bool = True) -> str:
    prefix = "[ALPHA] " if alpha else ""
    return f"# HELP {name} {prefix}{help_text}\n# TYPE {name} {kind}\n"


# -- distributions ---------------------------------------------------------------------------------
_SPREADS: dict[tuple, tuple[list[float], float, float]] = {}


class Dist:
    """A latency distribution: log-normal around `median`, clipped at `cap` (a deadline).

    Values at or above the cap are calls that hit their deadline: observed at the cap, and errors.
    """

    __slots__ = ("median", "sigma", "cap", "floor", "_cdf_cache")

    def __init__(self, median: float, sigma: float, cap: float = INF, floor: float = 0.0) -> None:
        self.median = max(median, 1e-6)
        self.sigma = sigma
        self.cap = cap
        self.floor = floor
        self._cdf_cache: dict[tuple, tuple[list[float], float, float]] = {}

    def sample(self, rng: random.Random) -> tuple[float, bool]:
        v = self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0)) if self.sigma else self.median
        v = max(v, self.floor)
        if v >= self.cap:
            return self.cap + rng.uniform(0.0, 0.004), True
        return v, False

    def cdf(self, x: float) -> float:
        if x >= self.cap:
            return 1.0
        if x <= 0:
            return 0.0
        if not self.sigma:
            return 1.0 if x >= self.median else 0.0
        return 0.5 * (1.0 + math.erf(math.log(x / self.median) / (self.sigma * math.sqrt(2.0))))

    def mean(self) -> float:
        m = self.median * math.exp(self.sigma ** 2 / 2)
        return min(m, self.cap)

    def spread(self, bounds: tuple[float, ...], shift: float = 0.0):
        """(probability per bucket incl. +Inf, mean value, probability of hitting the cap)."""
        key = (bounds, shift)
        hit = self._cdf_cache.get(key)
        if hit is None:
            # shared by equal distributions: thousands of healthy kubelets fill their history
            # from the same few at start-up
            shared = (self.median, self.sigma, self.cap, self.floor, bounds, shift)
            hit = _SPREADS.get(shared)
            if hit is None:
                cum = [self.cdf(b - shift) for b in bounds] + [1.0]
                probs = [cum[0]] + [cum[i] - cum[i - 1] for i in range(1, len(cum))]
                over = 1.0 - self.cdf(self.cap - 1e-12) if self.cap != INF else 0.0
                hit = (probs, self.mean() + shift, over)
                if len(_SPREADS) > 4096:
                    _SPREADS.clear()
                _SPREADS[shared] = hit
            self._cdf_cache[key] = hit
        return hit


class Hist:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def observe_many(self, n: int, dist: Dist, rng: random.Random, shift: float = 0.0) -> int:
        """Observe n draws of `dist` (+shift); returns how many hit the deadline."""
        if n <= 0:
            return 0
        if n <= SAMPLE_LIMIT:
            errors = 0
            for _ in range(n):
                v, err = dist.sample(rng)
                self.observe(v + shift)
                errors += err
            return errors
        probs, mean, over = dist.spread(self.bounds, shift)
        # largest remainder, so the total is exactly n (near-ties broken at random)
        raw = [p * n for p in probs]
        base = [int(x) for x in raw]
        left = n - sum(base)
        if left:
            jitter = rng.random() * 1e-3
            rest = [(x - b) + jitter * ((i * 0.6180339) % 1.0) if x > b else -1.0
                    for i, (x, b) in enumerate(zip(raw, base, strict=False))]
            for i in heapq.nlargest(left, range(len(rest)), key=rest.__getitem__):
                base[i] += 1
        counts = self.counts
        for i, c in enumerate(base):
            if c:
                counts[i] += c
        self.sum += n * mean * rng.uniform(0.985, 1.015)
        self.count += n
        return int(round(n * over))

    def observe_linear(self, n: int, first: float, step: float) -> None:
        """Observe first, first+step, ..., n values (the relist interval while relists fail)."""
        if n <= 0:
            return
        if n <= SAMPLE_LIMIT or step <= 0:
            for k in range(n):
                self.observe(first + k * step)
            return
        prev = 0
        for i, b in enumerate(self.bounds):
            upto = 0 if b < first else min(n, int((b - first) / step) + 1)
            self.counts[i] += upto - prev
            prev = upto
        self.counts[-1] += n - prev
        self.sum += n * first + step * n * (n - 1) / 2
        self.count += n

    def quantile(self, q: float) -> float:
        """histogram_quantile over the buckets (for tests and quick looks)."""
        if not self.count:
            return float("nan")
        rank = q * self.count
        cum = 0
        for i, c in enumerate(self.counts):
            if cum + c >= rank and c:
                if i == len(self.bounds):
                    return self.bounds[-1]
                lo = self.bounds[i - 1] if i else 0.0
                return lo + (self.bounds[i] - lo) * (rank - cum) / c
            cum += c
        return self.bounds[-1]

    def lines(self, name: str, labels: str, les: list[str]) -> list[str]:
        pre = f"{name}_bucket{{{labels + ',' if labels else ''}le=\""
        out = []
        cum = 0
        for le, c in zip(les, self.counts, strict=False):
            cum += c
            out.append(f'{pre}{le}"}} {gofloat(cum)}')
        lab = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{lab} {gofloat(self.sum)}")
        out.append(f"{name}_count{lab} {gofloat(self.count)}")
        return out


def _les(bounds: tuple[float, ...]) -> list[str]:
    return [gofloat(b) for b in bounds] + ["+Inf"]


_LES: dict[tuple[float, ...], list[str]] = {}


def les(bounds: tuple[float, ...]) -> list[str]:
    got = _LES.get(bounds)
    if got is None:
        got = _LES[bounds] = _les(bounds)
    return got


# -- what the kubelet calls and how often ------------------------------------------------------
# name: (period of one caller in seconds, healthy median, sigma, kind)
# kind "list": scales with the relist; "status": slows by the same factor; "exec": probe execs.
PERIODIC_OPS: dict[str, tuple[float, float, float, str]] = {
    "list_podsandbox": (3.0, 0.008, 0.35, "list"),  # stats, eviction manager, GC (besides PLEG)
    "list_containers": (3.0, 0.007, 0.35, "list"),
    "status": (5.0, 0.006, 0.4, "status"),
    "version": (10.0, 0.005, 0.4, "status"),
    "list_images": (5.4, 0.002, 0.5, "list"),
    "image_fs_info": (15.0, 0.003, 0.5, "status"),
    "image_status": (240.0, 0.0012, 0.5, "status"),
    "container_status": (180.0, 0.004, 0.5, "status"),
    "podsandbox_status": (400.0, 0.01, 0.5, "status"),
    "exec_sync": (10.0, 0.06, 0.6, "exec"),
}
START_OPS = ("run_podsandbox", "pull_image", "create_container", "start_container")
ALL_OPS = tuple(sorted(set(PERIODIC_OPS) | set(START_OPS) | {"list_podsandbox", "list_containers"}))

# (verb, request period, healthy median, deadline when the API server is out of reach)
REST_CALLS: tuple[tuple[str, float, float, float], ...] = (
    ("PUT", 10.0, 0.007, 10.0),  # node lease renewal
    ("GET", 10.0, 0.005, 10.0),  # node status: get the node
    ("PATCH", 60.0, 0.012, 10.0),  # node status report
    ("POST", 90.0, 0.009, 30.0),  # events, token and access reviews
    ("GET", 45.0, 0.004, 30.0),  # configmaps, csidrivers, runtimeclasses, reflector relists
)
_REST_OK = [Dist(base, 0.5, cap=60.0) for _verb, _period, base, _deadline in REST_CALLS]
_REST_SKEW = Dist(0.003, 0.3)
OK_CODE = {"GET": "200", "PUT": "200", "PATCH": "200", "POST": "201", "DELETE": "200"}

HTTP_PATHS = ("configz", "debug", "healthz", "logs", "metrics", "metrics/cadvisor", "other",
              "pods", "stats")


def _containers(machine) -> int:
    return sum(1 for p in machine.pods if p.phase == "Running") * 2


def _healthy_relist(machine) -> float:
    return 0.004 + _containers(machine) * 0.0004


def _api_host(machine) -> str:
    text = machine.files.get("/etc/kubernetes/kubelet.conf", "")
    m = re.search(r"server:\s*https?://([^/\s]+)", text)
    return m.group(1) if m else "127.0.0.1:6443"


def _minor(version: str) -> int:
    m = re.match(r"v?1\.(\d+)", version or "")
    return int(m.group(1)) if m else 29


GO_VERSIONS = {21: "go1.16.15", 22: "go1.16.15", 23: "go1.17.13", 24: "go1.19.4", 25: "go1.19.8",
               26: "go1.20.10", 27: "go1.20.13", 28: "go1.21.9", 29: "go1.21.11", 30: "go1.22.6",
               31: "go1.22.8", 32: "go1.23.6", 33: "go1.24.2", 34: "go1.24.6"}


def build_info(version: str) -> dict[str, str]:
    v = version if version.startswith("v") else "v" + version
    minor = _minor(v)
    commit = sha1(("kubernetes " + v).encode()).hexdigest()
    day = 1 + int(commit[:2], 16) % 27
    month = 1 + int(commit[2:4], 16) % 12
    year = 2021 + max(0, (minor - 21) * 4 // 12)
    return {
        "build_date": f"{year}-{month:02d}-{day:02d}T{int(commit[4:6], 16) % 24:02d}:"
                      f"{int(commit[6:8], 16) % 60:02d}:{int(commit[8:10], 16) % 60:02d}Z",
        "compiler": "gc",
        "git_commit": commit,
        "git_tree_state": "clean",
        "git_version": v,
        "go_version": GO_VERSIONS.get(minor, "go1.22.6"),
        "major": "1",
        "minor": str(minor),
        "platform": "linux/amd64",
    }


FEATURE_GATES = (
    ("APIListChunking", "", 1), ("APIPriorityAndFairness", "", 1),
    ("APIResponseCompression", "BETA", 1), ("APIServerIdentity", "BETA", 1),
    ("APIServerTracing", "BETA", 1), ("AllAlpha", "ALPHA", 0), ("AllBeta", "BETA", 0),
    ("AnyVolumeDataSource", "BETA", 1), ("AppArmor", "BETA", 1),
    ("CPUManagerPolicyAlphaOptions", "ALPHA", 0), ("CPUManagerPolicyBetaOptions", "BETA", 1),
    ("CPUManagerPolicyOptions", "BETA", 1), ("CloudDualStackNodeIPs", "BETA", 1),
    ("ComponentSLIs", "BETA", 1), ("ConsistentListFromCache", "ALPHA", 0),
    ("ContainerCheckpoint", "ALPHA", 0), ("CustomCPUCFSQuotaPeriod", "ALPHA", 0),
    ("DevicePluginCDIDevices", "BETA", 1), ("DisableCloudProviders", "BETA", 1),
    ("DisableKubeletCloudCredentialProviders", "BETA", 1),
    ("DynamicResourceAllocation", "ALPHA", 0),
    ("EventedPLEG", "ALPHA", 0), ("GracefulNodeShutdown", "BETA", 1),
    ("GracefulNodeShutdownBasedOnPodPriority", "BETA", 1), ("HPAContainerMetrics", "BETA", 1),
    ("InPlacePodVerticalScaling", "ALPHA", 0), ("KubeletCgroupDriverFromCRI", "ALPHA", 0),
    ("KubeletInUserNamespace", "ALPHA", 0), ("KubeletPodResourcesDynamicResources", "ALPHA", 0),
    ("KubeletPodResourcesGet", "ALPHA", 0), ("KubeletTracing", "BETA", 1),
    ("LegacyServiceAccountTokenCleanUp", "BETA", 1),
    ("LocalStorageCapacityIsolationFSQuotaMonitoring", "ALPHA", 0),
    ("LogarithmicScaleDown", "BETA", 1), ("LoggingAlphaOptions", "ALPHA", 0),
    ("LoggingBetaOptions", "BETA", 1), ("MemoryManager", "BETA", 1), ("MemoryQoS", "ALPHA", 0),
    ("NodeLogQuery", "ALPHA", 1), ("NodeSwap", "BETA", 0),
    ("PodAndContainerStatsFromCRI", "ALPHA", 0), ("PodDisruptionConditions", "BETA", 1),
    ("PodHostIPs", "BETA", 1), ("PodLifecycleSleepAction", "ALPHA", 0),
    ("PodReadyToStartContainersCondition", "BETA", 1), ("PodSchedulingReadiness", "BETA", 1),
    ("ProcMountType", "ALPHA", 0), ("RotateKubeletServerCertificate", "BETA", 1),
    ("SeparateTaintEvictionController", "BETA", 1), ("SidecarContainers", "BETA", 1),
    ("SizeMemoryBackedVolumes", "BETA", 1), ("TopologyManagerPolicyAlphaOptions", "ALPHA", 0),
    ("TopologyManagerPolicyBetaOptions", "BETA", 1), ("TopologyManagerPolicyOptions", "BETA", 1),
    ("UnknownVersionInteroperabilityProxy", "ALPHA", 0), ("UserNamespacesSupport", "ALPHA", 0),
    ("WatchList", "ALPHA", 0), ("WinDSR", "ALPHA", 0), ("WinOverlay", "BETA", 1),
    ("WindowsHostNetwork", "ALPHA", 1),
)


class _Op:
    __slots__ = ("hist", "total", "errors", "pending")

    def __init__(self) -> None:
        self.hist = Hist(RUNTIME_BUCKETS)
        self.total = 0
        self.errors = 0
        self.pending = 0.0


class KubeletMetrics:
    """One kubelet's metric registry, fed by the machine's state over lab time."""

    def __init__(self, machine=None, *, reset: bool = True) -> None:
        self.rng = random.Random(machine.index if machine is not None else 0)
        self._seeded = machine is not None
        self._key: tuple | None = None
        self._static: dict[str, str] = {}
        self._static_key: tuple | None = None
        self._serving_pem: bytes | None = None
        self._serving_not_after = INF
        self.configz_snapshot: dict | None = None
        self.http_inflight: dict[tuple[str, str, bool], int] = {}
        self._pending: tuple | None = None  # (machine, t0, t1): history not filled in yet
        if machine is not None:
            machine.metrics = self
        if reset:  # otherwise the caller starts it at once (`_restart`) and sets it all then
            self._reset_state(0.0)

    # -- lifecycle --------------------------------------------------------------------------
    def _reset_state(self, since: float) -> None:
        self.started = since
        self.relist_duration = Hist(DEF_BUCKETS)
        self.relist_interval = Hist(DEF_BUCKETS)
        self.discard_events = 0
        self._discard_pending = 0.0
        self._cur_start: float | None = None  # the relist in progress started here
        self._cur_done = 0.0  # and returns here
        self._cur_mode = ""
        self._cur_ok = True
        self._last_ok: float | None = None  # start of the last successful relist (lab time)
        self.ops: dict[str, _Op] = {name: _Op() for name in ALL_OPS}
        self.rest_hist: dict[str, Hist] = {}
        self.rest_total: dict[tuple[str, str], int] = {}
        self._rest_pending = [0.0] * len(REST_CALLS)
        self.cpu_seconds = 0.0
        self.renew_errors = 0
        self._renew_pending = 0.0
        self.hung_since: float | None = None
        self.started_pods = 0
        self.started_containers = 0
        self.http_hist: dict[tuple[str, str, bool], Hist] = {}
        self.http_total: dict[tuple[str, str, bool], int] = {}
        self.upto = since
        self._ops_key: tuple | None = None
        self._ops_dists: dict[str, Dist] = {}

    def _restart(self, machine) -> None:
        if not self._seeded:
            self.rng = random.Random(machine.index)
            self._seeded = True
        since = machine.kubelet.since
        self._key = (machine.kubelet.pid, since)
        self._reset_state(since)
        self._static_key = None
        self.configz_snapshot = kubelet_configuration(machine)
        rng = self.rng
        self.cpu_seconds = rng.uniform(1.2, 3.5)  # start-up work
        fresh_boot = since - machine.boot_time < 300
        running = [p for p in machine.pods if p.phase == "Running"]
        if fresh_boot:
            # pods (re)started after the boot: sandboxes, pulls, containers
            n = len(running)
            for name, dist in (("run_podsandbox", Dist(0.35, 0.6)), ("pull_image", Dist(2.5, 0.9)),
                               ("create_container", Dist(0.06, 0.5)),
                               ("start_container", Dist(0.09, 0.5))):
                op = self.ops[name]
                k = n if name != "create_container" and name != "start_container" else n * 2
                if name == "pull_image":
                    k = max(0, n - rng.randint(0, max(0, n // 3)))
                op.hist.observe_many(k, dist, rng)
                op.total += k
            self.started_pods = n
            self.started_containers = n * 2

    def _settle(self) -> None:
        """Fill the history `attach` left for later, before anything moves or reads it."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            self.backfill(*pending)

    # -- time passing --------------------------------------------------------------------------
    def advance(self, machine, t0: float, t1: float) -> None:
        self._settle()
        k = machine.kubelet
        if not k.running:
            self.hung_since = None
            return
        if self._key != (k.pid, k.since):
            self._restart(machine)
        t0 = max(t0, k.since, self.upto)
        if t1 <= t0:
            return
        self.upto = t1
        dt = t1 - t0
        rng = self.rng
        responsive = machine.runtime_responsive()
        hung = (not responsive and machine.containerd.running
                and "socket_missing" not in machine.faults)
        if hung:
            if self.hung_since is None:
                self.hung_since = t0
        else:
            self.hung_since = None

        self._advance_pleg(machine, t0, t1, responsive, hung)
        self._advance_ops(machine, dt, responsive, hung)
        self._advance_rest(machine, t1, dt)

        # process: CPU time (more while relists and the API client are busy failing)
        load = machine.kubelet_cpu / 100.0
        if responsive:
            slow = min(machine.relist_seconds(), 1e6) / max(_healthy_relist(machine), 1e-3)
            load *= 1.0 + min(2.0, math.log10(max(slow, 1.0)) / 2)
        self.cpu_seconds += dt * load * rng.uniform(0.95, 1.05)

        # client certificate rotation failing once past the rotation deadline
        nb, na = machine.client_cert_not_before, machine.client_cert_not_after
        if na and (machine.pending_csr or machine.cert_rotation_error):
            deadline = nb + (na - nb) * 0.8 if nb else na - 86400
            span = t1 - max(t0, deadline)
            if span > 0:
                period = 900.0 if machine.pending_csr and not machine.cert_rotation_error else 120.0
                self._renew_pending += span / period
                whole = int(self._renew_pending)
                if whole == 0 and self.renew_errors == 0:
                    whole = 1
                    self._renew_pending = 0.0
                self.renew_errors += whole
                self._renew_pending -= min(whole, self._renew_pending)

    def backfill(self, machine, t0: float, t1: float) -> None:
        """Accumulate [t0, t1] after the fact (see `attach`)."""
        faults = machine.faults
        first = min((f.since for f in faults.values()), default=t0)
        first = min(max(first, t0), t1)
        if faults and first > t0:
            saved, saved_io = dict(faults), machine.io_await_ms
            faults.clear()
            if "slow_io" in saved or machine.io_await_ms > 50:
                machine.io_await_ms = 1.0
            try:
                self.advance(machine, t0, first)
            finally:
                faults.update(saved)
                machine.io_await_ms = saved_io
        self.advance(machine, first, t1)

    def _pleg_mode(self, machine, responsive: bool, hung: bool) -> tuple[str, Dist, bool]:
        if responsive:
            d = machine.relist_seconds()
            if d == INF:  # the runtime answers, but every relist errors out
                return "fail", Dist(0.002, 0.4), False
            return f"ok:{d:.6g}", Dist(d, 0.25 if d < 1 else 0.18, cap=INF, floor=0.0015), True
        if hung:
            return "hung", Dist(CRI_TIMEOUT, 0.0, cap=CRI_TIMEOUT), False
        return "down", Dist(0.0009, 0.35), False

    def _advance_pleg(self, machine, t0: float, t1: float, responsive: bool, hung: bool) -> None:
        rng = self.rng
        mode, dist, ok = self._pleg_mode(machine, responsive, hung)
        if self._cur_start is None:
            self._cur_start = max(t0, machine.kubelet.since + rng.uniform(0.2, 0.8))
            self._cur_mode, self._cur_ok = mode, ok
            self._cur_done = self._cur_start + dist.sample(rng)[0]
        elif mode != self._cur_mode:
            if self._cur_start <= t0 < self._cur_done:
                # the call in flight returns now, with the outcome of the state it began in
                self._relist_done(machine, self._cur_start, t0, self._cur_ok)
                self._cur_start = t0 + RELIST_PERIOD
            self._cur_mode, self._cur_ok = mode, ok
            self._cur_done = self._cur_start + dist.sample(rng)[0]
        containers = _containers(machine)
        while self._cur_done <= t1:
            period = RELIST_PERIOD + dist.mean()
            remaining = int((t1 - self._cur_done) / period)
            if remaining > SAMPLE_LIMIT:
                self._relist_bulk(machine, remaining, dist, period, ok, containers)
                continue
            self._relist_done(machine, self._cur_start, self._cur_done, ok)
            self._cur_start = self._cur_done + RELIST_PERIOD
            self._cur_done = self._cur_start + dist.sample(rng)[0]

    def _relist_done(self, machine, start: float, end: float, ok: bool) -> None:
        rng = self.rng
        dur = max(end - start, 0.0)
        self.relist_duration.observe(dur)
        if self._last_ok is not None:
            self.relist_interval.observe(start - self._last_ok)
        lp = self.ops["list_podsandbox"]
        lp.total += 1
        if ok:
            self._last_ok = start
            part = dur * rng.uniform(0.4, 0.5)
            lp.hist.observe(part)
            lc = self.ops["list_containers"]
            lc.total += 1
            lc.hist.observe(max(dur - part, 0.0) * rng.uniform(0.85, 0.98))
            if dur > 1.0:
                self._discard_pending += _containers(machine) * min(1.0, (dur - 1.0) / 10.0)
                whole = int(self._discard_pending)
                self.discard_events += whole
                self._discard_pending -= whole
        else:
            lp.hist.observe(dur)
            lp.errors += 1

    def _relist_bulk(self, machine, n: int, dist: Dist, period: float, ok: bool,
                     containers: int) -> None:
        """n relists in a row without sampling each (a long quiet stretch of lab time)."""
        rng = self.rng
        first_start = self._cur_start
        self.relist_duration.observe_many(n, dist, rng)
        lp = self.ops["list_podsandbox"]
        lp.total += n
        if ok:
            if self._last_ok is not None:
                self.relist_interval.observe(first_start - self._last_ok)
                self.relist_interval.observe_many(n - 1, dist, rng, shift=RELIST_PERIOD)
            else:
                self.relist_interval.observe_many(n - 1, dist, rng, shift=RELIST_PERIOD)
            lp.hist.observe_many(n, Dist(dist.median * 0.45, dist.sigma), rng)
            lc = self.ops["list_containers"]
            lc.total += n
            lc.hist.observe_many(n, Dist(dist.median * 0.42, dist.sigma), rng)
            mean = dist.mean()
            if mean > 1.0:
                self._discard_pending += n * containers * min(1.0, (mean - 1.0) / 10.0)
                whole = int(self._discard_pending)
                self.discard_events += whole
                self._discard_pending -= whole
            self._last_ok = first_start + (n - 1) * period
        else:
            if self._last_ok is not None:
                self.relist_interval.observe_linear(n, first_start - self._last_ok, period)
            lp.hist.observe_many(n, dist, rng)
            lp.errors += n
        end = first_start + n * period - RELIST_PERIOD
        self._cur_start = end + RELIST_PERIOD
        self._cur_done = self._cur_start + dist.sample(rng)[0]

    def _advance_ops(self, machine, dt: float, responsive: bool, hung: bool) -> None:
        rng = self.rng
        running = sum(1 for p in machine.pods if p.phase == "Running")
        relist, factor = 0.0, 1.0
        if responsive:
            relist = machine.relist_seconds()
            if relist == INF:
                relist = 0.0
            factor = max(1.0, relist / max(_healthy_relist(machine), 1e-3))
        key = (responsive, hung, relist, factor)
        if key != self._ops_key:
            self._ops_key = key
            self._ops_dists = {}
            for name, (_period, base, sigma, kind) in PERIODIC_OPS.items():
                if hung:
                    dist = Dist(CRI_TIMEOUT, 0.0, cap=CRI_TIMEOUT)
                elif not responsive:
                    dist = Dist(0.0004, 0.4)
                elif kind == "list":
                    dist = Dist(max(base, base * factor ** 0.9, relist * 0.45), sigma,
                                cap=CRI_TIMEOUT)
                else:
                    dist = Dist(base * factor ** 0.85, sigma, cap=CRI_TIMEOUT)
                self._ops_dists[name] = dist
        for name, (period, _base, _sigma, kind) in PERIODIC_OPS.items():
            callers = 1.0
            if kind == "exec":
                callers = max(0.0, running * 0.2)
                if callers == 0:
                    continue
            dist = self._ops_dists[name]
            op = self.ops[name]
            op.pending += dt * callers / (period + dist.mean())
            n = int(op.pending)
            if not n:
                continue
            op.pending -= n
            timeouts = op.hist.observe_many(n, dist, rng)
            op.total += n
            op.errors += n if not responsive else timeouts

    def _advance_rest(self, machine, t1: float, dt: float) -> None:
        rng = self.rng
        cert_bad = bool(machine.client_cert_not_after) and t1 > machine.client_cert_not_after
        skew = "clock_skew" in machine.faults
        for i, (verb, period, base, deadline) in enumerate(REST_CALLS):
            if not machine.api_reachable:
                mean = deadline * 0.8 + 0.1
            else:
                mean = base
            self._rest_pending[i] += dt / (period + mean)
            n = int(self._rest_pending[i])
            if not n:
                continue
            self._rest_pending[i] -= n
            hist = self.rest_hist.get(verb)
            if hist is None:
                hist = self.rest_hist[verb] = Hist(REST_BUCKETS)
            if not machine.api_reachable:
                lb = int(round(n * 0.2))  # the load balancer answers with no backend: 503
                hist.observe_many(lb, Dist(0.04, 0.8, cap=deadline), rng)
                hist.observe_many(n - lb, Dist(deadline, 0.01, cap=deadline * 1.2), rng)
                self._count_rest("503", verb, lb)
                self._count_rest("<error>", verb, n - lb)
            elif skew:
                hist.observe_many(n, _REST_SKEW, rng)
                self._count_rest("<error>", verb, n)
            elif cert_bad:
                hist.observe_many(n, _REST_OK[i], rng)
                self._count_rest("401", verb, n)
            else:
                hist.observe_many(n, _REST_OK[i], rng)
                self._count_rest(OK_CODE[verb], verb, n)

    def _count_rest(self, code: str, verb: str, n: int) -> None:
        if n:
            key = (code, verb)
            self.rest_total[key] = self.rest_total.get(key, 0) + n

    # -- requests the kubelet serves (counted by lab.kubelet) -------------------------------
    def http_request(self, path: str, method: str, seconds: float,
                     long_running: bool = False) -> None:
        self._settle()
        key = (path if path in HTTP_PATHS else "other", method, long_running)
        hist = self.http_hist.get(key)
        if hist is None:
            hist = self.http_hist[key] = Hist(DEF_BUCKETS)
        hist.observe(seconds)
        self.http_total[key] = self.http_total.get(key, 0) + 1

    # -- derived gauges ------------------------------------------------------------------------
    def goroutines(self, machine, now: float) -> int:
        self._settle()
        n = machine.goroutines_base + 2 * sum(1 for p in machine.pods if p.phase == "Running")
        if self.hung_since is not None:
            n += self.hung_extra(now)
        if not machine.api_reachable:
            n += 24
        return n

    def hung_extra(self, now: float) -> int:
        self._settle()
        if self.hung_since is None:
            return 0
        return min(4800, int((now - self.hung_since) * 0.9))

    def last_seen(self, machine) -> float:
        """kubelet_pleg_last_seen_seconds: the node's clock at the last good relist, whole
        seconds."""
        self._settle()
        base = self._last_ok
        floor = max(machine.pleg_last_relist, machine.kubelet.since)
        if base is None:
            base = floor
        if not machine.runtime_responsive():
            base = min(base, floor)
        return float(int(machine.node_now(base)))

    def relist_quantile(self, q: float) -> float:
        self._settle()
        return self.relist_duration.quantile(q)

    # -- rendering ---------------------------------------------------------------------------------
    def render(self, machine, now: float) -> bytes:
        self._settle()
        if self._key != (machine.kubelet.pid, machine.kubelet.since):
            self._restart(machine)
        static = self._static_parts(machine)
        out: list[str] = []
        for name, part in _ORDER:
            if part is None:
                text = static.get(name)
                if text:
                    out.append(text)
            else:
                out.append(part(self, machine, now))
        return "".join(out).encode()

    def _static_parts(self, machine) -> dict[str, str]:
        key = (self._key, machine.name, machine.kubelet_version)
        if self._static_key != key:
            self._static = _render_static(self, machine)
            self._static_key = key
        return self._static

    def serving_ttl(self, machine, now: float) -> float:
        pem = machine.serving_cert_pem
        if not pem:
            return INF
        if pem is not self._serving_pem:
            try:
                from cryptography import x509

                cert = x509.load_pem_x509_certificate(pem)
                self._serving_not_after = cert.not_valid_after_utc.timestamp()
            except Exception:
                self._serving_not_after = INF
            self._serving_pem = pem
        return self._serving_not_after - machine.node_now(now)


def attach(machine) -> KubeletMetrics:
    """Give `machine` its metrics registry (idempotent).

    Attached to a machine whose time has already run (its journal caught up past the kubelet's
    start), the registry is filled for that stretch too: healthy until the first of the machine's
    faults began, in the machine's current state after that. The filling waits until the registry
    is first moved or read, so a large lab starts without doing it for every node.
    """
    if isinstance(machine.metrics, KubeletMetrics):
        return machine.metrics
    k = machine.kubelet
    upto = machine.journal_upto
    history = k.running and upto > k.since
    metrics = KubeletMetrics(machine, reset=not history)
    if history:
        metrics._pending = (machine, k.since, upto)
    return metrics


# -- dynamic families ----------------------------------------------------------------------------
def _fam_pleg(self: KubeletMetrics, m, now: float) -> str:
    out = [_head("kubelet_pleg_discard_events", "The number of discard events in PLEG.", "counter"),
           f"kubelet_pleg_discard_events {gofloat(self.discard_events)}\n",
           _head("kubelet_pleg_last_seen_seconds",
                 "Timestamp in seconds when PLEG was last seen active.", "gauge"),
           f"kubelet_pleg_last_seen_seconds {gofloat(self.last_seen(m))}\n",
           _head("kubelet_pleg_relist_duration_seconds",
                 "Duration in seconds for relisting pods in PLEG.", "histogram")]
    out.append("\n".join(self.relist_duration.lines(
        "kubelet_pleg_relist_duration_seconds", "", les(DEF_BUCKETS))) + "\n")
    out.append(_head("kubelet_pleg_relist_interval_seconds",
                     "Interval in seconds between relisting in PLEG.", "histogram"))
    out.append("\n".join(self.relist_interval.lines(
        "kubelet_pleg_relist_interval_seconds", "", les(DEF_BUCKETS))) + "\n")
    return "".join(out)


def _fam_runtime(self: KubeletMetrics, m, now: float) -> str:
    lines = [_head("kubelet_runtime_operations_duration_seconds",
                   "Duration in seconds of runtime operations. Broken down by operation type.",
                   "histogram").rstrip("\n")]
    bounds = les(RUNTIME_BUCKETS)
    for name in ALL_OPS:
        op = self.ops[name]
        if op.total or op.hist.count:
            lines.extend(op.hist.lines("kubelet_runtime_operations_duration_seconds",
                                       f'operation_type="{name}"', bounds))
    errs = [(n, op.errors) for n, op in sorted(self.ops.items()) if op.errors]
    if errs:
        lines.append(_head("kubelet_runtime_operations_errors_total",
                           "Cumulative number of runtime operation errors by operation type.",
                           "counter").rstrip("\n"))
    lines.extend(f'kubelet_runtime_operations_errors_total{{operation_type="{n}"}} {gofloat(e)}'
                 for n, e in errs)
    lines.append(_head("kubelet_runtime_operations_total",
                       "Cumulative number of runtime operations by operation type.",
                       "counter").rstrip("\n"))
    lines.extend(f'kubelet_runtime_operations_total{{operation_type="{n}"}} {gofloat(op.total)}'
                 for n, op in sorted(self.ops.items()) if op.total)
    return "\n".join(lines) + "\n"


def _fam_certs(self: KubeletMetrics, m, now: float) -> str:
    na = m.client_cert_not_after
    ttl = (na - m.node_now(now)) if na else INF
    return "".join([
        _head("kubelet_certificate_manager_client_expiration_renew_errors",
              "Counter of certificate renewal errors.", "counter"),
        f"kubelet_certificate_manager_client_expiration_renew_errors "
          f"{gofloat(self.renew_errors)}\n",
        _head("kubelet_certificate_manager_client_ttl_seconds",
              "Gauge of the TTL (time-to-live) of the Kubelet's client certificate. The value is "
              "in seconds until certificate expiry (negative if already expired). If client "
              "certificate is invalid or unused, the value will be +INF.", "gauge"),
        f"kubelet_certificate_manager_client_ttl_seconds "
          f"{gofloat(float(int(ttl)) if ttl != INF else ttl)}\n",
    ])


def _fam_server_ttl(self: KubeletMetrics, m, now: float) -> str:
    ttl = self.serving_ttl(m, now)
    return (_head("kubelet_certificate_manager_server_ttl_seconds",
                  "Gauge of the shortest TTL (time-to-live) of the Kubelet's serving certificate. "
                  "The value is in seconds until certificate expiry (negative if already "
                  "expired). If serving certificate is invalid or unused, the value will be +INF.",
                  "gauge")
            + f"kubelet_certificate_manager_server_ttl_seconds "
              f"{gofloat(float(int(ttl)) if ttl != INF else ttl)}\n")


def _fam_http(self: KubeletMetrics, m, now: float) -> str:
    out = [_head("kubelet_http_inflight_requests", "Number of the inflight http requests", "gauge")]
    keys = sorted(set(self.http_total) | set(self.http_inflight))
    for path, method, lr in keys:
        lab = _labels((("long_running", str(lr).lower()), ("method", method), ("path", path),
                       ("server_type", "readwrite")))
        out.append(f"kubelet_http_inflight_requests{{{lab}}} "
                   f"{self.http_inflight.get((path, method, lr), 0)}\n")
    out.append(_head("kubelet_http_requests_duration_seconds",
                     "Duration in seconds to serve http requests", "histogram"))
    for key in sorted(self.http_hist):
        path, method, lr = key
        lab = _labels((("long_running", str(lr).lower()), ("method", method), ("path", path),
                       ("server_type", "readwrite")))
        out.append("\n".join(self.http_hist[key].lines(
            "kubelet_http_requests_duration_seconds", lab, les(DEF_BUCKETS))) + "\n")
    out.append(_head("kubelet_http_requests_total",
                     "Number of the http requests received since the server started", "counter"))
    for key in sorted(self.http_total):
        path, method, lr = key
        lab = _labels((("long_running", str(lr).lower()), ("method", method), ("path", path),
                       ("server_type", "readwrite")))
        out.append(f"kubelet_http_requests_total{{{lab}}} {gofloat(self.http_total[key])}\n")
    return "".join(out)


def _fam_pods(self: KubeletMetrics, m, now: float) -> str:
    running = [p for p in m.pods if p.phase == "Running"]
    created = sum(1 for p in m.pods if p.phase == "Pending")
    exited = sum(min(p.restarts, 3) for p in m.pods) + sum(
        1 for p in m.pods if p.phase in ("Succeeded", "Failed"))
    return "".join([
        _head("kubelet_running_containers", "Number of containers currently running", "gauge"),
        f'kubelet_running_containers{{container_state="created"}} {created}\n',
        f'kubelet_running_containers{{container_state="exited"}} {exited}\n',
        f'kubelet_running_containers{{container_state="running"}} {len(running) * 2}\n',
        _head("kubelet_running_pods", "Number of pods currently running", "gauge"),
        f"kubelet_running_pods {len(running)}\n",
    ])


def _fam_active_pods(self: KubeletMetrics, m, now: float) -> str:
    n = sum(1 for p in m.pods if p.phase in ("Running", "Pending"))
    return "".join([
        _head("kubelet_active_pods",
              "The number of pods the kubelet considers active and which are being considered "
              "when admitting new pods. static is true if the pod is not from the apiserver.",
              "gauge"),
        f'kubelet_active_pods{{static=""}} {n}\n',
        'kubelet_active_pods{static="true"} 0\n',
    ])


def _fam_desired_pods(self: KubeletMetrics, m, now: float) -> str:
    return "".join([
        _head("kubelet_desired_pods",
              "The number of pods the kubelet is being instructed to run. static is true if the "
              "pod is not from the apiserver.", "gauge"),
        f'kubelet_desired_pods{{static=""}} {len(m.pods)}\n',
        'kubelet_desired_pods{static="true"} 0\n',
    ])


def _fam_started(self: KubeletMetrics, m, now: float) -> str:
    return "".join([
        _head("kubelet_started_containers_total", "Cumulative number of containers started",
              "counter"),
        f'kubelet_started_containers_total{{container_type="container"}} '
        f'{gofloat(self.started_containers)}\n',
        _head("kubelet_started_pods_errors_total", "Cumulative number of errors when starting pods",
              "counter"),
        "kubelet_started_pods_errors_total 0\n",
        _head("kubelet_started_pods_total", "Cumulative number of pods started", "counter"),
        f"kubelet_started_pods_total {gofloat(self.started_pods)}\n",
    ])


def _fam_go(self: KubeletMetrics, m, now: float) -> str:
    g = self.goroutines(m, now)
    return (_head("go_goroutines", "Number of goroutines that currently exist.", "gauge", False)
            + f"go_goroutines {g}\n")


def _fam_memstats(self: KubeletMetrics, m, now: float) -> str:
    rss = _rss(self, m, now)
    rng = random.Random(int(now) // 15 * 7919 + m.index)  # GC cycles: steady within a scrape period
    heap_alloc = int(rss * rng.uniform(0.30, 0.42))
    heap_sys = int(rss * 0.78)
    heap_inuse = int(heap_alloc * 1.22)
    heap_idle = heap_sys - heap_inuse
    released = int(heap_idle * 0.86)
    stack = 8192 * self.goroutines(m, now) // 2 * 2
    up = max(1.0, now - self.started)
    alloc_total = int(up * 2.3e6 * (1 + m.index % 7 / 10))
    mallocs = int(alloc_total / 130)
    frees = mallocs - int(heap_alloc / 190)
    sys_bytes = heap_sys + stack + 16_000_000
    vals = [
        ("go_memstats_alloc_bytes", "Number of bytes allocated and still in use.", "gauge",
         heap_alloc),
        ("go_memstats_alloc_bytes_total", "Total number of bytes allocated, even if freed.",
         "counter", alloc_total),
        ("go_memstats_buck_hash_sys_bytes",
         "Number of bytes used by the profiling bucket hash table.", "gauge", 1_942_315),
        ("go_memstats_frees_total", "Total number of frees.", "counter", frees),
        ("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata.",
         "gauge", int(heap_sys * 0.055)),
        ("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.",
         "gauge", heap_alloc),
        ("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", "gauge",
         heap_idle),
        ("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", "gauge",
         heap_inuse),
        ("go_memstats_heap_objects", "Number of allocated objects.", "gauge", heap_alloc // 190),
        ("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", "gauge",
         released),
        ("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system.", "gauge",
         heap_sys),
        ("go_memstats_last_gc_time_seconds",
         "Number of seconds since 1970 of last garbage collection.", "gauge",
         m.node_now(now) - rng.uniform(0.5, 40.0)),
        ("go_memstats_lookups_total", "Total number of pointer lookups.", "counter", 0),
        ("go_memstats_mallocs_total", "Total number of mallocs.", "counter", mallocs),
        ("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", "gauge",
         9600),
        ("go_memstats_mcache_sys_bytes",
         "Number of bytes used for mcache structures obtained from system.", "gauge", 15600),
        ("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", "gauge",
         int(heap_inuse * 0.012)),
        ("go_memstats_mspan_sys_bytes",
         "Number of bytes used for mspan structures obtained from system.", "gauge",
         int(heap_inuse * 0.016)),
        ("go_memstats_next_gc_bytes",
         "Number of heap bytes when next garbage collection will take place.", "gauge",
         int(heap_alloc * 1.9)),
        ("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations.",
         "gauge", 1_204_981),
        ("go_memstats_stack_inuse_bytes", "Number of bytes in use by the stack allocator.", "gauge",
         stack),
        ("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.",
         "gauge", stack),
        ("go_memstats_sys_bytes", "Number of bytes obtained from system.", "gauge", sys_bytes),
    ]
    out = []
    for name, help_text, kind, v in vals:
        out.append(_head(name, help_text, kind, False))
        out.append(f"{name} {gofloat(v)}\n")
    out.append(_head("go_threads", "Number of OS threads created.", "gauge", False))
    out.append(f"go_threads {18 + m.cpus + min(40, self.hung_extra(now) // 60)}\n")
    return "".join(out)


def _rss(self: KubeletMetrics, m, now: float) -> int:
    return int(m.kubelet_rss + self.hung_extra(now) * 8192)


def _fam_process(self: KubeletMetrics, m, now: float) -> str:
    fds = 40 + len(m.pods) // 2 + min(400, self.hung_extra(now) // 12)
    return "".join([
        _head("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
              "counter", False),
        f"process_cpu_seconds_total {gofloat(round(self.cpu_seconds, 2))}\n",
        _head("process_max_fds", "Maximum number of open file descriptors.", "gauge", False),
        "process_max_fds 1e+06\n",
        _head("process_open_fds", "Number of open file descriptors.", "gauge", False),
        f"process_open_fds {fds}\n",
        _head("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", False),
        f"process_resident_memory_bytes {gofloat(_rss(self, m, now))}\n",
        _head("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.", "gauge", False),
        f"process_start_time_seconds {gofloat(round(m.node_now(m.kubelet.since), 2))}\n",
        _head("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", False),
        f"process_virtual_memory_bytes "
          f"{gofloat(2_148_327_424 + _rss(self, m, now) // 2 // 4096 * 4096)}\n",
        _head("process_virtual_memory_max_bytes",
              "Maximum amount of virtual memory available in bytes.", "gauge", False),
        "process_virtual_memory_max_bytes 1.8446744073709552e+19\n",
    ])


def _fam_rest(self: KubeletMetrics, m, now: float) -> str:
    host = _api_host(m)
    out = [_head("rest_client_request_duration_seconds",
                 "Request latency in seconds. Broken down by verb, and host.", "histogram")]
    for verb in sorted(self.rest_hist):
        out.append("\n".join(self.rest_hist[verb].lines(
            "rest_client_request_duration_seconds", _labels((("host", host), ("verb", verb))),
            les(REST_BUCKETS))) + "\n")
    out.append(_head("rest_client_requests_total",
                     "Number of HTTP requests, partitioned by status code, method, and host.",
                     "counter"))
    for (code, verb) in sorted(self.rest_total):
        labels = _labels((('code', code), ('host', host), ('method', verb)))
        out.append(f"rest_client_requests_total{{{labels}}}"
                   f" {gofloat(self.rest_total[(code, verb)])}\n")
    return "".join(out)


def _fam_node_name(self: KubeletMetrics, m, now: float) -> str:
    return (_head("kubelet_node_name", "The node's name. The count is always 1.", "gauge")
            + f'kubelet_node_name{{node="{_esc(m.name)}"}} 1\n')


def _fam_build(self: KubeletMetrics, m, now: float) -> str:
    info = build_info(m.kubelet_version)
    return (_head("kubernetes_build_info",
                  "A metric with a constant '1' value labeled by major, minor, git version, git "
                  "commit, git tree state, build date, Go version, and compiler from which "
                  "Kubernetes was built, and platform on which it is running.", "gauge")
            + f"kubernetes_build_info{{{_labels(info.items())}}} 1\n")


# -- families rendered once per kubelet process ----------------------------------------------------
def _zero_hist(name: str, bounds: tuple[float, ...], labels: str = "") -> list[str]:
    return Hist(bounds).lines(name, labels, les(bounds))


def _render_static(self: KubeletMetrics, m) -> dict[str, str]:
    rng = random.Random((m.index, self._key).__hash__() & 0xFFFFFFFF)
    minor = _minor(m.kubelet_version)
    out: dict[str, str] = {}
    pods = [p for p in m.pods if p.phase == "Running"]
    npods = len(pods)

    def put(name: str, help_text: str, kind: str, lines: Iterable[str], alpha: bool = True) -> None:
        body = "\n".join(lines)
        out[name] = _head(name, help_text, kind, alpha) + (body + "\n" if body else "")

    put("apiserver_audit_event_total",
        "Counter of audit events generated and sent to the audit backend.", "counter",
        ["apiserver_audit_event_total 0"])
    put("apiserver_audit_requests_rejected_total",
        "Counter of apiserver requests rejected due to an error in audit logging backend.",
        "counter", ["apiserver_audit_requests_rejected_total 0"])
    h = Hist(CLIENT_CERT_BUCKETS)
    for _ in range(rng.randint(2, 5)):
        h.observe(rng.uniform(2.0e7, 3.1e7))
    put("apiserver_client_certificate_expiration_seconds",
        "Distribution of the remaining lifetime on the certificate used to authenticate a request.",
        "histogram", h.lines("apiserver_client_certificate_expiration_seconds", "",
                             les(CLIENT_CERT_BUCKETS)))
    deleg = (0.25, 0.5, 0.7, 1.0, 1.5, 3.0, 5.0, 10.0)
    for kind in ("authn", "authz"):
        h = Hist(deleg)
        n = rng.randint(40, 400)
        h.observe_many(n, Dist(0.004, 0.6), rng)
        put(f"apiserver_delegated_{kind}_request_duration_seconds",
            "Request latency in seconds. Broken down by status code.", "histogram",
            h.lines(f"apiserver_delegated_{kind}_request_duration_seconds", 'code="201"',
                    les(deleg)))
        put(f"apiserver_delegated_{kind}_request_total",
            "Number of HTTP requests partitioned by status code.", "counter",
            [f'apiserver_delegated_{kind}_request_total{{code="201"}} {n}'])
    put("apiserver_envelope_encryption_dek_cache_fill_percent",
        "Percent of the cache slots currently occupied by cached DEKs.", "gauge",
        ["apiserver_envelope_encryption_dek_cache_fill_percent 0"])
    put("apiserver_storage_data_key_generation_duration_seconds",
        "Latencies in seconds of data encryption key(DEK) generation operations.", "histogram",
        _zero_hist("apiserver_storage_data_key_generation_duration_seconds",
                   tuple(5e-06 * 2 ** i for i in range(14))))
    put("apiserver_storage_data_key_generation_failures_total",
        "Total number of failed data encryption key(DEK) generation operations.", "counter",
        ["apiserver_storage_data_key_generation_failures_total 0"])
    put("apiserver_storage_envelope_transformation_cache_misses_total",
        "Total number of cache misses while accessing key decryption key(KEK).", "counter",
        ["apiserver_storage_envelope_transformation_cache_misses_total 0"])
    put("apiserver_webhooks_x509_insecure_sha1_total",
        "Counts the number of requests to servers with insecure SHA1 signatures in their serving "
        "certificate OR the number of connection failures due to the insecure SHA1 signatures "
        "(either/or, based on the runtime environment)", "counter",
        ["apiserver_webhooks_x509_insecure_sha1_total 0"])
    put("apiserver_webhooks_x509_missing_san_total",
        "Counts the number of requests to servers missing SAN extension in their serving "
        "certificate OR the number of connection failures due to the lack of x509 certificate SAN "
        "extension missing (either/or, based on the runtime environment)", "counter",
        ["apiserver_webhooks_x509_missing_san_total 0"])
    put("authentication_token_cache_active_fetch_count", "", "gauge",
        ['authentication_token_cache_active_fetch_count{status="blocked"} 0',
         'authentication_token_cache_active_fetch_count{status="in_flight"} 0'])
    fetches = rng.randint(20, 200)
    put("authentication_token_cache_fetch_total", "", "counter",
        [f'authentication_token_cache_fetch_total{{status="ok"}} {fetches}'])
    hits = fetches * rng.randint(20, 70)
    lines = []
    for status, n, dist in (("hit", hits, Dist(0.00002, 0.4)), ("miss", fetches, Dist(0.009, 0.6))):
        hh = Hist(DEF_BUCKETS)
        hh.observe_many(n, dist, rng)
        lines += hh.lines("authentication_token_cache_request_duration_seconds",
                          f'status="{status}"', les(DEF_BUCKETS))
    put("authentication_token_cache_request_duration_seconds", "", "histogram", lines)
    put("authentication_token_cache_request_total", "", "counter",
        [f'authentication_token_cache_request_total{{status="hit"}} {hits}',
         f'authentication_token_cache_request_total{{status="miss"}} {fetches}'])
    if minor >= 26:
        put("cardinality_enforcement_unexpected_categorizations_total",
            "The count of unexpected categorizations during cardinality enforcement.", "counter",
            ["cardinality_enforcement_unexpected_categorizations_total 0"])
    put("get_token_count", "Counter of total Token() requests to the alternate token source",
        "counter", ["get_token_count 0"])
    put("get_token_fail_count", "Counter of failed Token() requests to the alternate token source",
        "counter", ["get_token_fail_count 0"])
    q = sorted(rng.uniform(2e-5, 9e-5) for _ in range(3))
    put("go_gc_duration_seconds", "A summary of the pause duration of garbage collection cycles.",
        "summary", [f'go_gc_duration_seconds{{quantile="0"}} {gofloat(round(q[0] * 0.5, 9))}',
                    f'go_gc_duration_seconds{{quantile="0.25"}} {gofloat(round(q[0], 9))}',
                    f'go_gc_duration_seconds{{quantile="0.5"}} {gofloat(round(q[1], 9))}',
                    f'go_gc_duration_seconds{{quantile="0.75"}} {gofloat(round(q[2], 9))}',
                    f'go_gc_duration_seconds{{quantile="1"}} '
                    f'{gofloat(round(rng.uniform(0.002, 0.03), 9))}',
                    f"go_gc_duration_seconds_sum {gofloat(round(rng.uniform(0.1, 2.0), 9))}",
                    f"go_gc_duration_seconds_count {rng.randint(300, 3000)}"], alpha=False)
    put("go_info", "Information about the Go environment.", "gauge",
        [f'go_info{{version="{build_info(m.kubelet_version)["go_version"]}"}} 1'], alpha=False)
    put("kubelet_certificate_manager_server_rotation_seconds",
        "Histogram of the number of seconds the previous certificate lived before being rotated.",
        "histogram", _zero_hist("kubelet_certificate_manager_server_rotation_seconds",
                                CERT_ROTATION_BUCKETS))
    lines = []
    for op, n, dist in (("create", npods + 3, Dist(0.012, 0.5)), ("destroy", rng.randint(0, 2),
                                                                    Dist(0.001, 0.5)),
                        ("update", npods * 3 + 20, Dist(0.001, 0.6))):
        hh = Hist(DEF_BUCKETS)
        hh.observe_many(n, dist, rng)
        lines += hh.lines("kubelet_cgroup_manager_duration_seconds", f'operation_type="{op}"',
                          les(DEF_BUCKETS))
    put("kubelet_cgroup_manager_duration_seconds",
        "Duration in seconds for cgroup manager operations. Broken down by method.", "histogram",
        lines)
    lines = []
    for p in sorted(pods, key=lambda p: (p.name, p.namespace))[:60]:
        uid = sha1(f"{p.namespace}/{p.name}".encode()).hexdigest()
        uid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
        labels = _labels((("container", p.app), ("namespace", p.namespace), ("pod", p.name),
                          ("uid", uid)))
        lines.append(f'kubelet_container_log_filesystem_used_bytes{{'
                     f'{labels}'
                     f'}} {gofloat(rng.randint(3, 2000) * 4096)}')
    put("kubelet_container_log_filesystem_used_bytes",
        "Bytes used by the container's logs on the filesystem.", "gauge", lines)
    hh = Hist(PER_POD_BUCKETS)
    for p in m.pods:
        hh.observe(1.0 if p.daemon else float(rng.choice((1, 1, 1, 2, 2, 3))))
    put("kubelet_containers_per_pod_count", "The number of containers per pod.", "histogram",
        hh.lines("kubelet_containers_per_pod_count", "", les(PER_POD_BUCKETS)))
    put("kubelet_cpu_manager_pinning_errors_total",
        "The number of cpu core allocations which required pinning failed.", "counter",
        ["kubelet_cpu_manager_pinning_errors_total 0"])
    put("kubelet_cpu_manager_pinning_requests_total",
        "The number of cpu core allocations which required pinning.", "counter",
        ["kubelet_cpu_manager_pinning_requests_total 0"])
    put("kubelet_graceful_shutdown_end_time_seconds",
        "Last graceful shutdown end time since unix epoch in seconds", "gauge",
        ["kubelet_graceful_shutdown_end_time_seconds 0"])
    put("kubelet_graceful_shutdown_start_time_seconds",
        "Last graceful shutdown start time since unix epoch in seconds", "gauge",
        ["kubelet_graceful_shutdown_start_time_seconds 0"])
    put("kubelet_lifecycle_handler_http_fallbacks_total",
        "The number of times lifecycle handlers successfully fell back to http from https.",
        "counter", ["kubelet_lifecycle_handler_http_fallbacks_total 0"])
    put("kubelet_managed_ephemeral_containers",
        "Current number of ephemeral containers in pods managed by this kubelet.", "gauge",
        ["kubelet_managed_ephemeral_containers 0"])
    put("kubelet_mirror_pods", "The number of mirror pods the kubelet will try to create (one per "
        "admitted static pod)", "gauge", ["kubelet_mirror_pods 0"])
    put("kubelet_node_config_error",
        "This metric is true (1) if the node is experiencing a configuration-related error, false "
        "(0) otherwise.", "gauge", ["kubelet_node_config_error 0"])
    if minor >= 27:
        startup = rng.uniform(8.0, 40.0)
        put("kubelet_node_startup_duration_seconds",
            "Duration in seconds of node startup in total.", "gauge",
            [f"kubelet_node_startup_duration_seconds {gofloat(round(startup, 9))}"])
        put("kubelet_node_startup_post_registration_duration_seconds",
            "Duration in seconds of node startup after registration.", "gauge",
            [f"kubelet_node_startup_post_registration_duration_seconds "
             f"{gofloat(round(startup * 0.4, 9))}"])
        put("kubelet_node_startup_pre_kubelet_duration_seconds",
            "Duration in seconds of node startup before kubelet starts.", "gauge",
            [f"kubelet_node_startup_pre_kubelet_duration_seconds "
             f"{gofloat(round(rng.uniform(10, 30), 9))}"])
        put("kubelet_node_startup_pre_registration_duration_seconds",
            "Duration in seconds of node startup before registration.", "gauge",
            [f"kubelet_node_startup_pre_registration_duration_seconds "
             f"{gofloat(round(rng.uniform(0.2, 3), 9))}"])
        put("kubelet_node_startup_registration_duration_seconds",
            "Duration in seconds of node startup during registration.", "gauge",
            [f"kubelet_node_startup_registration_duration_seconds "
             f"{gofloat(round(rng.uniform(0.05, 1.0), 9))}"])
    put("kubelet_orphan_pod_cleaned_volumes",
        "The total number of orphaned Pods whose volumes were cleaned in the last periodic sweep.",
        "gauge", ["kubelet_orphan_pod_cleaned_volumes 0"])
    put("kubelet_orphan_pod_cleaned_volumes_errors",
        "The number of orphaned Pods whose volumes failed to be cleaned in the last periodic "
        "sweep.",
        "gauge", ["kubelet_orphan_pod_cleaned_volumes_errors 0"])
    hh = Hist(DEF_BUCKETS)
    hh.observe_many(self.started_pods, Dist(3.2, 0.7), rng)
    put("kubelet_pod_start_duration_seconds",
        "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to "
        "run", "histogram", hh.lines("kubelet_pod_start_duration_seconds", "", les(DEF_BUCKETS)))
    lines = []
    for op, n, dist in (("create", self.started_pods, Dist(0.9, 0.6)),
                        ("sync", npods * 4 + 10, Dist(0.03, 0.8)),
                        ("update", rng.randint(0, npods + 1), Dist(0.02, 0.8))):
        hh = Hist(DEF_BUCKETS)
        hh.observe_many(n, dist, rng)
        lines += hh.lines("kubelet_pod_worker_duration_seconds", f'operation_type="{op}"',
                          les(DEF_BUCKETS))
    put("kubelet_pod_worker_duration_seconds",
        "Duration in seconds to sync a single pod. Broken down by operation type: create, update, "
        "or sync", "histogram", lines)
    hh = Hist(DEF_BUCKETS)
    hh.observe_many(len(m.pods), Dist(0.00004, 0.6), rng)
    put("kubelet_pod_worker_start_duration_seconds",
        "Duration in seconds from kubelet seeing a pod to starting a worker.", "histogram",
        hh.lines("kubelet_pod_worker_start_duration_seconds", "", les(DEF_BUCKETS)))
    put("kubelet_restarted_pods_total",
        "Number of pods that have been restarted because they were deleted and recreated with the "
        "same UID while the kubelet was watching them (common for static pods, extremely uncommon "
        "for API pods)", "counter", ['kubelet_restarted_pods_total{static=""} 0'])
    hh = Hist(DEF_BUCKETS)
    hh.observe_many(self.started_pods, Dist(0.35, 0.6), rng)
    put("kubelet_run_podsandbox_duration_seconds",
        "Duration in seconds of the run_podsandbox operations. Broken down by "
        "RuntimeClass.Handler.",
        "histogram", hh.lines("kubelet_run_podsandbox_duration_seconds", 'runtime_handler=""',
                              les(DEF_BUCKETS)))
    put("kubelet_server_expiration_renew_errors", "Counter of certificate renewal errors.",
        "counter", ["kubelet_server_expiration_renew_errors 0"])
    if minor >= 26:
        put("kubernetes_feature_enabled",
            "This metric records the data about the stage and enablement of a k8s feature.",
            "gauge", [f'kubernetes_feature_enabled{{name="{n}",stage="{s}"}} {v}'
                      for n, s, v in FEATURE_GATES])
        put("registered_metrics_total",
            "The count of registered metrics broken by stability level and deprecation version.",
            "counter",
            ['registered_metrics_total{deprecated_version="",stability_level="ALPHA"} 141',
             'registered_metrics_total{deprecated_version="",stability_level="BETA"} 4',
             'registered_metrics_total{deprecated_version="",stability_level="STABLE"} 11'],
            alpha=False)
    put("rest_client_exec_plugin_certificate_rotation_age",
        "Histogram of the number of seconds the last auth exec plugin client certificate lived "
        "before being rotated. If auth exec plugin client certificates are unused, histogram will "
        "contain no data.", "histogram",
        _zero_hist("rest_client_exec_plugin_certificate_rotation_age",
                   (600.0, 1800.0, 3600.0, 14400.0, 86400.0, 604800.0, 2592000.0, 7776000.0,
                    15552000.0, 31104000.0, 124416000.0)))
    put("rest_client_exec_plugin_ttl_seconds",
        "Gauge of the shortest TTL (time-to-live) of the client certificate(s) managed by the auth "
        "exec plugin. The value is in seconds until certificate expiry (negative if already "
        "expired). If auth exec plugins are unused or manage no TLS certificates, the value will "
        "be +INF.", "gauge", ["rest_client_exec_plugin_ttl_seconds +Inf"])
    put("rest_client_transport_cache_entries",
        "Number of transport entries in the internal cache.", "gauge",
        ["rest_client_transport_cache_entries 3"])
    put("rest_client_transport_create_calls_total",
        "Number of calls to get a new transport, partitioned by the result of the operation hit: "
        "obtained from the cache, miss: created and added to the cache, uncacheable: created and "
        "not cached", "counter", ['rest_client_transport_create_calls_total{result="hit"} 7',
                                  'rest_client_transport_create_calls_total{result="miss"} 3'])
    plugins = (("kubernetes.io/configmap", 1), ("kubernetes.io/empty-dir", 0),
               ("kubernetes.io/host-path", 2), ("kubernetes.io/projected", 1))
    lines = []
    status_lines = []
    for opname in ("verify_controller_attached_volume", "volume_mount"):
        for plugin, per in plugins:
            n = max(1, npods * per // 2 + (per and 1))
            if opname == "volume_mount" and plugin in ("kubernetes.io/configmap",
                                                       "kubernetes.io/projected"):
                n *= 5  # remounted on every resync
            hh = Hist(STORAGE_BUCKETS)
            hh.observe_many(n, Dist(0.004 if opname.startswith("verify") else 0.012, 0.5), rng)
            labs = _labels((("migrated", "false"), ("operation_name", opname),
                            ("status", "success"), ("volume_plugin", plugin)))
            lines += hh.lines("storage_operation_duration_seconds", labs, les(STORAGE_BUCKETS))
    put("storage_operation_duration_seconds", "Storage operation duration", "histogram", lines)
    del status_lines
    lines = []
    for plugin, per in plugins:
        n = max(1, npods * per // 2 + (per and 1))
        for state in ("actual_state_of_world", "desired_state_of_world"):
            lines.append(f'volume_manager_total_volumes{{plugin_name="{plugin}",'
                         f'state="{state}"}} {n}')
    put("volume_manager_total_volumes", "Number of volumes in Volume Manager", "gauge", lines)
    queues = ("DynamicCABundle-client-ca-bundle", "DynamicServingCertificateController")
    adds = {q: rng.randint(2, 60) for q in queues}
    put("workqueue_adds_total", "Total number of adds handled by workqueue", "counter",
        [f'workqueue_adds_total{{name="{q}"}} {adds[q]}' for q in queues])
    put("workqueue_depth", "Current depth of workqueue", "gauge",
        [f'workqueue_depth{{name="{q}"}} 0' for q in queues])
    put("workqueue_longest_running_processor_seconds",
        "How many seconds has the longest running processor for workqueue been running.", "gauge",
        [f'workqueue_longest_running_processor_seconds{{name="{q}"}} 0' for q in queues])
    lines = []
    for q in queues:
        hh = Hist(WORKQUEUE_BUCKETS)
        hh.observe_many(adds[q], Dist(1.2e-5, 0.8), rng)
        lines += hh.lines("workqueue_queue_duration_seconds", f'name="{q}"', les(WORKQUEUE_BUCKETS))
    put("workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested.", "histogram",
        lines)
    put("workqueue_retries_total", "Total number of retries handled by workqueue", "counter",
        [f'workqueue_retries_total{{name="{q}"}} 0' for q in queues])
    put("workqueue_unfinished_work_seconds",
        "How many seconds of work has done that is in progress and hasn't been observed by "
        "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
        "threads by observing the rate at which this increases.", "gauge",
        [f'workqueue_unfinished_work_seconds{{name="{q}"}} 0' for q in queues])
    lines = []
    for q in queues:
        hh = Hist(WORKQUEUE_BUCKETS)
        hh.observe_many(adds[q], Dist(8e-5, 0.8), rng)
        lines += hh.lines("workqueue_work_duration_seconds", f'name="{q}"', les(WORKQUEUE_BUCKETS))
    put("workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes.", "histogram", lines)
    return out


_DYNAMIC: dict[str, Callable[[KubeletMetrics, object, float], str]] = {
    "go_goroutines": _fam_go,
    "go_memstats": _fam_memstats,  # go_memstats_* and go_threads, in order after go_info
    "kubelet_active_pods": _fam_active_pods,
    "kubelet_certificate_manager_client": _fam_certs,
    "kubelet_certificate_manager_server_ttl_seconds": _fam_server_ttl,
    "kubelet_desired_pods": _fam_desired_pods,
    "kubelet_http": _fam_http,
    "kubelet_node_name": _fam_node_name,
    "kubelet_pleg": _fam_pleg,
    "kubelet_running": _fam_pods,
    "kubelet_runtime_operations": _fam_runtime,
    "kubelet_started": _fam_started,
    "kubernetes_build_info": _fam_build,
    "process": _fam_process,
    "rest_client_request": _fam_rest,
}

_STATIC_NAMES = (
    "apiserver_audit_event_total", "apiserver_audit_requests_rejected_total",
    "apiserver_client_certificate_expiration_seconds",
    "apiserver_delegated_authn_request_duration_seconds", "apiserver_delegated_authn_request_total",
    "apiserver_delegated_authz_request_duration_seconds", "apiserver_delegated_authz_request_total",
    "apiserver_envelope_encryption_dek_cache_fill_percent",
    "apiserver_storage_data_key_generation_duration_seconds",
    "apiserver_storage_data_key_generation_failures_total",
    "apiserver_storage_envelope_transformation_cache_misses_total",
    "apiserver_webhooks_x509_insecure_sha1_total", "apiserver_webhooks_x509_missing_san_total",
    "authentication_token_cache_active_fetch_count", "authentication_token_cache_fetch_total",
    "authentication_token_cache_request_duration_seconds",
    "authentication_token_cache_request_total",
    "cardinality_enforcement_unexpected_categorizations_total",
    "get_token_count", "get_token_fail_count", "go_gc_duration_seconds", "go_info",
    "kubelet_certificate_manager_server_rotation_seconds",
    "kubelet_cgroup_manager_duration_seconds", "kubelet_container_log_filesystem_used_bytes",
    "kubelet_containers_per_pod_count", "kubelet_cpu_manager_pinning_errors_total",
    "kubelet_cpu_manager_pinning_requests_total", "kubelet_graceful_shutdown_end_time_seconds",
    "kubelet_graceful_shutdown_start_time_seconds",
    "kubelet_lifecycle_handler_http_fallbacks_total",
    "kubelet_managed_ephemeral_containers", "kubelet_mirror_pods", "kubelet_node_config_error",
    "kubelet_node_startup_duration_seconds",
    "kubelet_node_startup_post_registration_duration_seconds",
    "kubelet_node_startup_pre_kubelet_duration_seconds",
    "kubelet_node_startup_pre_registration_duration_seconds",
    "kubelet_node_startup_registration_duration_seconds", "kubelet_orphan_pod_cleaned_volumes",
    "kubelet_orphan_pod_cleaned_volumes_errors", "kubelet_pod_start_duration_seconds",
    "kubelet_pod_worker_duration_seconds", "kubelet_pod_worker_start_duration_seconds",
    "kubelet_restarted_pods_total", "kubelet_run_podsandbox_duration_seconds",
    "kubelet_server_expiration_renew_errors", "kubernetes_feature_enabled",
    "registered_metrics_total", "rest_client_exec_plugin_certificate_rotation_age",
    "rest_client_exec_plugin_ttl_seconds", "rest_client_transport_cache_entries",
    "rest_client_transport_create_calls_total", "storage_operation_duration_seconds",
    "volume_manager_total_volumes", "workqueue_adds_total", "workqueue_depth",
    "workqueue_longest_running_processor_seconds", "workqueue_queue_duration_seconds",
    "workqueue_retries_total", "workqueue_unfinished_work_seconds",
    "workqueue_work_duration_seconds",
)

# Sort keys place each dynamic block where its first family falls alphabetically.
_SORT_KEY = {
    "go_memstats": "go_memstats_alloc_bytes",
    "kubelet_certificate_manager_client":
        "kubelet_certificate_manager_client_expiration_renew_errors",
    "kubelet_http": "kubelet_http_inflight_requests",
    "kubelet_pleg": "kubelet_pleg_discard_events",
    "kubelet_running": "kubelet_running_containers",
    "kubelet_runtime_operations": "kubelet_runtime_operations_duration_seconds",
    "kubelet_started": "kubelet_started_containers_total",
    "process": "process_cpu_seconds_total",
    "rest_client_request": "rest_client_request_duration_seconds",
}

_ORDER: list[tuple[str, Callable | None]] = sorted(
    [(n, None) for n in _STATIC_NAMES] + [(n, f) for n, f in _DYNAMIC.items()],
    key=lambda item: _SORT_KEY.get(item[0], item[0]),
)


# -- /configz ----------------------------------------------------------------------------------
def parse_yaml_subset(text: str) -> dict:
    """The block YAML a kubelet config file uses: nested maps, lists of scalars, scalars."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() == "---":
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    value, _ = _yaml_block(lines, 0, 0)
    return value if isinstance(value, dict) else {}


def _yaml_block(lines: list[tuple[int, str]], i: int, indent: int):
    """Parse the block starting at lines[i] whose items sit at `indent`; returns (value, next i)."""
    if i >= len(lines):
        return {}, i
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items: list = []
        while i < len(lines) and lines[i][0] == indent and (
                lines[i][1].startswith("- ") or lines[i][1] == "-"):
            items.append(_scalar(lines[i][1][2:].strip()))
            i += 1
        return items, i
    out: dict = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        i += 1
        if not sep:
            continue
        key, rest = key.strip().strip('"'), rest.strip()
        if rest:
            out[key] = _scalar(rest)
            continue
        if i < len(lines) and (lines[i][0] > indent or (
                lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key], i = _yaml_block(lines, i, lines[i][0])
        else:
            out[key] = None
    return out, i


def _scalar(value: str):
    if value.startswith(('"', "'")) and value.endswith(value[0]) and len(value) >= 2:
        return value[1:-1]
    if value in ("true", "false"):
        return value == "true"
    if value in ("{}",):
        return {}
    if value in ("[]",):
        return []
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d+", value):
        return float(value)
    return value


_PARSED_CONFIGS: dict[str, str] = {}


def _parsed_config(text: str) -> dict:
    """parse_yaml_subset(text), a fresh copy each call: every node of a lab shares one file."""
    parsed = _PARSED_CONFIGS.get(text)
    if parsed is None:
        parsed = json.dumps(parse_yaml_subset(text))
        if len(_PARSED_CONFIGS) > 256:
            _PARSED_CONFIGS.clear()
        _PARSED_CONFIGS[text] = parsed
    return json.loads(parsed)


def kubelet_configuration(machine) -> dict:
    """The kubelet's effective configuration: the file on disk over the kubelet's defaults."""
    text = machine.files.get("/var/lib/kubelet/config.yaml", "")
    fileconf = _parsed_config(text) if text else {}
    fileconf.pop("apiVersion", None)
    fileconf.pop("kind", None)
    conf = {
        "enableServer": True,
        "staticPodPath": "/etc/kubernetes/manifests",
        "podLogsDir": "/var/log/pods",
        "syncFrequency": "1m0s",
        "fileCheckFrequency": "20s",
        "httpCheckFrequency": "20s",
        "address": "0.0.0.0",
        "port": 10250,
        "tlsCertFile": "/var/lib/kubelet/pki/kubelet.crt",
        "tlsPrivateKeyFile": "/var/lib/kubelet/pki/kubelet.key",
        "rotateCertificates": True,
        "serverTLSBootstrap": False,
        "authentication": {
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "anonymous": {"enabled": False},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
        },
        "registryPullQPS": 5,
        "registryBurst": 10,
        "eventRecordQPS": 50,
        "eventBurst": 100,
        "enableDebuggingHandlers": True,
        "healthzPort": 10248,
        "healthzBindAddress": "127.0.0.1",
        "oomScoreAdj": -999,
        "clusterDomain": "cluster.local",
        "clusterDNS": ["10.96.0.10"],
        "streamingConnectionIdleTimeout": "4h0m0s",
        "nodeStatusUpdateFrequency": "10s",
        "nodeStatusReportFrequency": "5m0s",
        "nodeLeaseDurationSeconds": 40,
        "imageMinimumGCAge": "2m0s",
        "imageMaximumGCAge": "0s",
        "imageGCHighThresholdPercent": 85,
        "imageGCLowThresholdPercent": 80,
        "volumeStatsAggPeriod": "1m0s",
        "cgroupRoot": "/",
        "cgroupsPerQOS": True,
        "cgroupDriver": "cgroupfs",
        "cpuManagerPolicy": "none",
        "cpuManagerReconcilePeriod": "10s",
        "memoryManagerPolicy": "None",
        "topologyManagerPolicy": "none",
        "topologyManagerScope": "container",
        "runtimeRequestTimeout": "2m0s",
        "hairpinMode": "promiscuous-bridge",
        "maxPods": 110,
        "podPidsLimit": -1,
        "resolvConf": "/run/systemd/resolve/resolv.conf",
        "cpuCFSQuota": True,
        "cpuCFSQuotaPeriod": "100ms",
        "nodeStatusMaxImages": 50,
        "maxOpenFiles": 1000000,
        "contentType": "application/vnd.kubernetes.protobuf",
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "serializeImagePulls": True,
        "evictionHard": {
            "imagefs.available": "15%",
            "imagefs.inodesFree": "5%",
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
        },
        "evictionPressureTransitionPeriod": "5m0s",
        "enableControllerAttachDetach": True,
        "makeIPTablesUtilChains": True,
        "iptablesMasqueradeBit": 14,
        "iptablesDropBit": 15,
        "failSwapOn": True,
        "memorySwap": {},
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 5,
        "containerLogMaxWorkers": 1,
        "containerLogMonitorInterval": "10s",
        "configMapAndSecretChangeDetectionStrategy": "Watch",
        "enforceNodeAllocatable": ["pods"],
        "volumePluginDir": "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/",
        "logging": {
            "format": "text",
            "flushFrequency": "5s",
            "verbosity": 0,
            "options": {"text": {"infoBufferSize": "0"}, "json": {"infoBufferSize": "0"}},
        },
        "enableSystemLogHandler": True,
        "enableSystemLogQuery": True,
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "enableProfilingHandler": True,
        "enableDebugFlagsHandler": True,
        "seccompDefault": False,
        "memoryThrottlingFactor": 0.9,
        "registerNode": True,
        "localStorageCapacityIsolation": True,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "featureGates": {"NodeLogQuery": True},
    }
    _merge(conf, fileconf)
    # Unset eviction signals keep their defaults only when the file sets none at all.
    if isinstance(fileconf.get("evictionHard"), dict):
        conf["evictionHard"] = fileconf["evictionHard"]
    return conf


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def render_configz(machine) -> bytes:
    """GET /configz: the configuration the running kubelet loaded when it started."""
    metrics = machine.metrics if isinstance(machine.metrics, KubeletMetrics) else None
    conf = None
    if metrics is not None:
        metrics._settle()
    if metrics is not None and metrics._key == (machine.kubelet.pid, machine.kubelet.since):
        conf = metrics.configz_snapshot
    if conf is None:
        conf = kubelet_configuration(machine)
    return json.dumps({"kubeletconfig": conf}, separators=(",", ":")).encode()


# -- /debug/pprof/goroutine ----------------------------------------------------------------------
V = "k8s.io/kubernetes/vendor/"
K = "k8s.io/kubernetes/"

# Frames: (function, file, line). The function text is printed with "(...)" in debug=2.
_GRPC_WAIT = [
    ("google.golang.org/grpc/internal/transport.(*Stream).waitOnHeader",
     V + "google.golang.org/grpc/internal/transport/transport.go", 328),
    ("google.golang.org/grpc/internal/transport.(*Stream).RecvCompress",
     V + "google.golang.org/grpc/internal/transport/transport.go", 343),
    ("google.golang.org/grpc.(*csAttempt).recvMsg", V + "google.golang.org/grpc/stream.go", 1046),
    ("google.golang.org/grpc.(*clientStream).RecvMsg.func1", V + "google.golang.org/grpc/stream.go",
     900),
    ("google.golang.org/grpc.(*clientStream).withRetry",
     V + "google.golang.org/grpc/stream.go", 751),
    ("google.golang.org/grpc.(*clientStream).RecvMsg", V + "google.golang.org/grpc/stream.go", 899),
    ("google.golang.org/grpc.invoke", V + "google.golang.org/grpc/call.go", 73),
    ("k8s.io/kubernetes/vendor/go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/"
     "otelgrpc.UnaryClientInterceptor.func1",
     V + "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/"
     "interceptor.go", 100),
    ("google.golang.org/grpc.(*ClientConn).Invoke", V + "google.golang.org/grpc/call.go", 35),
]


def _cri(method: str, line: int, remote_fn: str, remote_line: int, instr_line: int) -> list:
    return [
        (f"k8s.io/cri-api/pkg/apis/runtime/v1.(*runtimeServiceClient).{method}",
         V + "k8s.io/cri-api/pkg/apis/runtime/v1/api.pb.go", line),
        (f"k8s.io/kubernetes/pkg/kubelet/cri/remote.(*remoteRuntimeService).{remote_fn}",
         K + "pkg/kubelet/cri/remote/remote_runtime.go", remote_line),
        (f"k8s.io/kubernetes/pkg/kubelet/cri/remote.(*remoteRuntimeService).{method}",
         K + "pkg/kubelet/cri/remote/remote_runtime.go", remote_line - 14),
        (f"k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*instrumentedRuntimeService).{method}",
         K + "pkg/kubelet/kuberuntime/instrumented_services.go", instr_line),
    ]


_WAIT_UNTIL = [
    ("k8s.io/apimachinery/pkg/util/wait.BackoffUntil.func1",
     V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 226),
    ("k8s.io/apimachinery/pkg/util/wait.BackoffUntil",
     V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 227),
    ("k8s.io/apimachinery/pkg/util/wait.JitterUntil",
     V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 204),
    ("k8s.io/apimachinery/pkg/util/wait.Until",
     V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 161),
]

_RELIST_HUNG = (
    "select",
    _GRPC_WAIT + _cri("ListPodSandbox", 10044, "listPodSandboxV1", 395, 218) + [
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).getKubeletSandboxes",
         K + "pkg/kubelet/kuberuntime/kuberuntime_sandbox.go", 199),
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).GetPods",
         K + "pkg/kubelet/kuberuntime/kuberuntime_manager.go", 394),
        ("k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist",
         K + "pkg/kubelet/pleg/generic.go", 238),
    ] + _WAIT_UNTIL,
    ("k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Start", K + "pkg/kubelet/pleg/generic.go",
     149),
)

_RELIST_IDLE = (
    "select",
    [("k8s.io/apimachinery/pkg/util/wait.BackoffUntil",
      V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 240),
     ("k8s.io/apimachinery/pkg/util/wait.JitterUntil",
      V + "k8s.io/apimachinery/pkg/util/wait/backoff.go", 204),
     ("k8s.io/apimachinery/pkg/util/wait.Until", V + "k8s.io/apimachinery/pkg/util/wait/backoff.go",
      161)],
    ("k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Start", K + "pkg/kubelet/pleg/generic.go",
     149),
)

_HUNG_GROUPS = [
    # (share of the pile, state, frames, created by)
    (0.34, "select", _GRPC_WAIT + _cri("ExecSync", 10260, "execSyncV1", 492, 197) + [
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).RunInContainer",
         K + "pkg/kubelet/kuberuntime/kuberuntime_container.go", 1015),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*prober).newExecInContainer.func1",
         K + "pkg/kubelet/prober/prober.go", 223),
        ("k8s.io/kubernetes/pkg/kubelet/prober.execInContainer.CombinedOutput",
         K + "pkg/kubelet/prober/prober.go", 243),
        ("k8s.io/kubernetes/pkg/probe/exec.(*execProber).Probe", K + "pkg/probe/exec/exec.go", 72),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*prober).runProbe",
         K + "pkg/kubelet/prober/prober.go", 167),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*prober).runProbeWithRetries",
         K + "pkg/kubelet/prober/prober.go", 143),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*prober).probe", K + "pkg/kubelet/prober/prober.go",
         108),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*worker).doProbe",
         K + "pkg/kubelet/prober/worker.go", 269),
        ("k8s.io/kubernetes/pkg/kubelet/prober.(*worker).run",
         K + "pkg/kubelet/prober/worker.go", 176),
    ], ("k8s.io/kubernetes/pkg/kubelet/prober.(*manager).AddPod",
        K + "pkg/kubelet/prober/prober_manager.go", 195)),
    (0.28, "select", _GRPC_WAIT + _cri("ListContainers", 10134, "listContainersV1", 611, 98) + [
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).getKubeletContainers",
         K + "pkg/kubelet/kuberuntime/kuberuntime_container.go", 531),
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).GetPods",
         K + "pkg/kubelet/kuberuntime/kuberuntime_manager.go", 1241),
        ("k8s.io/kubernetes/pkg/kubelet/stats.(*cadvisorStatsProvider).ListPodStats",
         K + "pkg/kubelet/stats/cadvisor_stats_provider.go", 94),
        ("k8s.io/kubernetes/pkg/kubelet/server/stats.(*summaryProviderImpl).Get",
         K + "pkg/kubelet/server/stats/summary.go", 89),
        ("k8s.io/kubernetes/pkg/kubelet/server/stats.(*handler).handleSummary",
         K + "pkg/kubelet/server/stats/handler.go", 164),
        ("github.com/emicklei/go-restful/v3.(*Container).dispatch",
         V + "github.com/emicklei/go-restful/v3/container.go", 299),
        ("github.com/emicklei/go-restful/v3.(*Container).Dispatch",
         V + "github.com/emicklei/go-restful/v3/container.go", 204),
        ("k8s.io/kubernetes/pkg/kubelet/server.(*Server).ServeHTTP",
         K + "pkg/kubelet/server/server.go", 1078),
        ("net/http.serverHandler.ServeHTTP", "net/http/server.go", 2938),
        ("net/http.(*conn).serve", "net/http/server.go", 2009),
    ], ("net/http.(*Server).Serve", "net/http/server.go", 3086)),
    (0.16, "select",
     _GRPC_WAIT + _cri("PodSandboxStatus", 10062, "podSandboxStatusV1", 424, 232) + [
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).GetPodStatus",
         K + "pkg/kubelet/kuberuntime/kuberuntime_manager.go", 1347),
        ("k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).updateCache",
         K + "pkg/kubelet/pleg/generic.go", 451),
        ("k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).UpdateCache",
         K + "pkg/kubelet/pleg/generic.go", 503),
        ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).SyncTerminatingPod",
         K + "pkg/kubelet/kubelet.go", 2004),
        ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).podWorkerLoop.func2",
         K + "pkg/kubelet/pod_workers.go", 1273),
        ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).podWorkerLoop",
         K + "pkg/kubelet/pod_workers.go", 1278),
        ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).UpdatePod.func1",
         K + "pkg/kubelet/pod_workers.go", 942),
    ], ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).UpdatePod",
        K + "pkg/kubelet/pod_workers.go", 937)),
    (0.12, "chan receive", [
        ("k8s.io/kubernetes/pkg/kubelet/container.(*cache).GetNewerThan",
         K + "pkg/kubelet/container/cache.go", 86),
        ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).podWorkerLoop",
         K + "pkg/kubelet/pod_workers.go", 1205),
        ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).UpdatePod.func1",
         K + "pkg/kubelet/pod_workers.go", 942),
    ], ("k8s.io/kubernetes/pkg/kubelet.(*podWorkers).UpdatePod",
        K + "pkg/kubelet/pod_workers.go", 937)),
    (0.06, "select", _GRPC_WAIT + _cri("Status", 10380, "Status", 560, 276) + [
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).Status",
         K + "pkg/kubelet/kuberuntime/kuberuntime_manager.go", 1437),
        ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).updateRuntimeUp",
         K + "pkg/kubelet/kubelet.go", 2855),
    ] + _WAIT_UNTIL, ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run",
                      K + "pkg/kubelet/kubelet.go", 1604)),
    (0.04, "select", _GRPC_WAIT + [
        ("k8s.io/cri-api/pkg/apis/runtime/v1.(*imageServiceClient).ListImages",
         V + "k8s.io/cri-api/pkg/apis/runtime/v1/api.pb.go", 10533),
        ("k8s.io/kubernetes/pkg/kubelet/cri/remote.(*remoteImageService).listImagesV1",
         K + "pkg/kubelet/cri/remote/remote_image.go", 101),
        ("k8s.io/kubernetes/pkg/kubelet/cri/remote.(*remoteImageService).ListImages",
         K + "pkg/kubelet/cri/remote/remote_image.go", 90),
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*instrumentedImageManagerService).ListImages",
         K + "pkg/kubelet/kuberuntime/instrumented_services.go", 284),
        ("k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).ListImages",
         K + "pkg/kubelet/kuberuntime/kuberuntime_image.go", 116),
        ("k8s.io/kubernetes/pkg/kubelet/images.(*realImageGCManager).detectImages",
         K + "pkg/kubelet/images/image_gc_manager.go", 267),
        ("k8s.io/kubernetes/pkg/kubelet/images.(*realImageGCManager).Start.func1",
         K + "pkg/kubelet/images/image_gc_manager.go", 210),
    ] + _WAIT_UNTIL, ("k8s.io/kubernetes/pkg/kubelet/images.(*realImageGCManager).Start",
                      K + "pkg/kubelet/images/image_gc_manager.go", 207)),
]

_BACKGROUND = [
    # (count share of the base, state, frames, created by)
    (0.22, "IO wait", [
        ("internal/poll.runtime_pollWait", "runtime/netpoll.go", 343),
        ("internal/poll.(*pollDesc).wait", "internal/poll/fd_poll_runtime.go", 84),
        ("internal/poll.(*pollDesc).waitRead", "internal/poll/fd_poll_runtime.go", 89),
        ("internal/poll.(*FD).Read", "internal/poll/fd_unix.go", 164),
        ("net.(*netFD).Read", "net/fd_posix.go", 55),
        ("net.(*conn).Read", "net/net.go", 179),
        ("crypto/tls.(*atLeastReader).Read", "crypto/tls/conn.go", 806),
        ("bytes.(*Buffer).ReadFrom", "bytes/buffer.go", 211),
        ("crypto/tls.(*Conn).readFromUntil", "crypto/tls/conn.go", 828),
        ("crypto/tls.(*Conn).readRecordOrCCS", "crypto/tls/conn.go", 626),
        ("crypto/tls.(*Conn).readRecord", "crypto/tls/conn.go", 588),
        ("crypto/tls.(*Conn).Read", "crypto/tls/conn.go", 1370),
        ("net/http.(*connReader).Read", "net/http/server.go", 789),
        ("bufio.(*Reader).fill", "bufio/bufio.go", 113),
        ("bufio.(*Reader).Peek", "bufio/bufio.go", 151),
        ("net/http.(*conn).serve", "net/http/server.go", 2044),
    ], ("net/http.(*Server).Serve", "net/http/server.go", 3086)),
    (0.3, "select", [
        ("k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive",
         V + "k8s.io/apimachinery/pkg/watch/streamwatcher.go", 119),
    ], ("k8s.io/apimachinery/pkg/watch.NewStreamWatcher",
        V + "k8s.io/apimachinery/pkg/watch/streamwatcher.go", 77)),
    (0.18, "select", [
        ("k8s.io/client-go/tools/cache.(*Reflector).watch",
         V + "k8s.io/client-go/tools/cache/reflector.go", 455),
        ("k8s.io/client-go/tools/cache.(*Reflector).ListAndWatch",
         V + "k8s.io/client-go/tools/cache/reflector.go", 366),
        ("k8s.io/client-go/tools/cache.(*Reflector).Run.func1",
         V + "k8s.io/client-go/tools/cache/reflector.go", 304),
    ] + _WAIT_UNTIL[:2], ("k8s.io/client-go/tools/cache.(*Reflector).Run",
                          V + "k8s.io/client-go/tools/cache/reflector.go", 303)),
    (0.15, "select", [
        ("google.golang.org/grpc/internal/transport.(*controlBuffer).get",
         V + "google.golang.org/grpc/internal/transport/controlbuf.go", 418),
        ("google.golang.org/grpc/internal/transport.(*loopyWriter).run",
         V + "google.golang.org/grpc/internal/transport/controlbuf.go", 552),
        ("google.golang.org/grpc/internal/transport.newHTTP2Client.func6",
         V + "google.golang.org/grpc/internal/transport/http2_client.go", 451),
    ], ("google.golang.org/grpc/internal/transport.newHTTP2Client",
        V + "google.golang.org/grpc/internal/transport/http2_client.go", 449)),
    (0.15, "sync.Cond.Wait", [
        ("sync.runtime_notifyListWait", "runtime/sema.go", 527),
        ("sync.(*Cond).Wait", "sync/cond.go", 70),
        ("k8s.io/client-go/util/workqueue.(*Type).Get",
         V + "k8s.io/client-go/util/workqueue/queue.go", 200),
    ], ("k8s.io/apiserver/pkg/server/dynamiccertificates.(*DynamicFileCAContent).Run",
        V + "k8s.io/apiserver/pkg/server/dynamiccertificates/dynamic_cafile_content.go", 190)),
]

_SYNC_LOOP = ("select", [
    ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoopIteration",
     K + "pkg/kubelet/kubelet.go", 2393),
    ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoop", K + "pkg/kubelet/kubelet.go", 2356),
    ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run", K + "pkg/kubelet/kubelet.go", 1648),
    ("k8s.io/kubernetes/cmd/kubelet/app.startKubelet.func1", K + "cmd/kubelet/app/server.go", 1241),
], ("k8s.io/kubernetes/cmd/kubelet/app.startKubelet", K + "cmd/kubelet/app/server.go", 1240))


def _pc(func: str, salt: int = 0) -> int:
    return 0x400000 + int(sha1(f"{func}{salt}".encode()).hexdigest()[:7], 16) % 0x3F00000


def render_goroutines(machine, now: float, debug: int = 1) -> bytes:
    """GET /debug/pprof/goroutine?debug=1|2."""
    metrics = machine.metrics if isinstance(machine.metrics, KubeletMetrics) else None
    total = metrics.goroutines(machine, now) if metrics else machine.goroutines_base
    extra = metrics.hung_extra(now) if metrics else 0
    hung_since = metrics.hung_since if metrics else None
    rng = random.Random(machine.index * 31 + int(now) // 30)
    groups: list[tuple[int, str, list, tuple, float]] = []  # count, state, frames, creator, minutes
    up_min = max(0.0, (now - machine.kubelet.since) / 60)
    groups.append((1, _SYNC_LOOP[0], _SYNC_LOOP[1], _SYNC_LOOP[2], up_min))
    if hung_since is not None:
        # the relist has been waiting on this call for up to the CRI deadline
        waited = (now - hung_since) % (CRI_TIMEOUT + RELIST_PERIOD)
        groups.append((1, _RELIST_HUNG[0], _RELIST_HUNG[1], _RELIST_HUNG[2], waited / 60))
    else:
        groups.append((1, _RELIST_IDLE[0], _RELIST_IDLE[1], _RELIST_IDLE[2], 0.0))
    pile = max(0, min(extra, total - 2))
    placed = 0
    for i, (share, state, frames, creator) in enumerate(_HUNG_GROUPS):
        n = pile - placed if i == len(_HUNG_GROUPS) - 1 else int(pile * share)
        placed += n
        if n > 0:
            groups.append((n, state, frames, creator, min((now - hung_since) / 60, 2.0)
                           if hung_since is not None else 0.0))
    rest = max(0, total - 2 - pile)
    placed = 0
    for i, (share, state, frames, creator) in enumerate(_BACKGROUND):
        n = rest - placed if i == len(_BACKGROUND) - 1 else int(rest * share)
        placed += n
        if n > 0:
            groups.append((n, state, frames, creator, rng.uniform(0, up_min)))
    if debug >= 2:
        return _debug2(groups, rng)
    return _debug1(groups, total)


def _debug1(groups, total: int) -> bytes:
    out = [f"goroutine profile: total {total}\n"]
    for count, _state, frames, _creator, _minutes in sorted(groups, key=lambda g: -g[0]):
        pcs = [_pc("runtime.gopark"), _pc("runtime.selectgo")] + [_pc(f[0]) for f in frames] + \
              [_pc("runtime.goexit")]
        out.append(f"{count} @ " + " ".join(f"{pc:#x}" for pc in pcs) + "\n")
        for func, path, line in frames:
            pc = _pc(func)
            off = (pc % 0x3F0) + 0x10
            out.append(f"#\t{pc - 1:#x}\t{func}+{off:#x}\t{path}:{line}\n")
        out.append("\n")
    return "".join(out).encode()


def _debug2(groups, rng: random.Random) -> bytes:
    out = []
    gid = 1
    for count, state, frames, creator, minutes in groups:
        body = []
        for func, path, line in frames:
            arg = f"0x{0xc000000000 + rng.randrange(0, 0x4000000) * 8:x}"
            body.append(f"{func}({arg}, ...)\n\t{path}:{line} +{(_pc(func) % 0x3F0) + 0x10:#x}\n")
        created = (f"created by {creator[0]} in goroutine {rng.randint(1, 400)}\n"
                   f"\t{creator[1]}:{creator[2]} +{(_pc(creator[0]) % 0x3F0) + 0x10:#x}\n")
        stack = "".join(body) + created
        for _ in range(count):
            mins = int(minutes * rng.uniform(0.6, 1.0)) if minutes >= 1 else 0
            wait = f", {mins} minutes" if mins >= 1 else ""
            out.append(f"goroutine {gid} [{state}{wait}]:\n{stack}\n")
            gid += rng.randint(1, 9)
    return "".join(out).encode()

