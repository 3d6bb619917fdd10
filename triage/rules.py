"""The decision tree as data: rules in the runbooks' diagnosis order, and the leaves they lead to.

A `Rule` reads one or more probes (by probe id), and when every one of them has an observation
its predicate is asked; when it holds, the rule's `effect` (confirm / suspect / rule_out) is put
on its `domain`, with the observation quoted as the evidence. Rules are listed in the order the
runbooks diagnose a NotReady node:

    Ready condition and who set it -> kubelet process -> healthz -> journal errors ->
    runtime (crictl hung / socket) -> PLEG metrics -> certificates -> API reachability ->
    pressure (df -h, df -i, memory, PIDs, pods vs maxPods) -> CNI -> config -> clock

`LEAVES` carries, per failure domain, the cause, the fixes, the verification steps, the
runbooks' "don't" warnings (their own wording) and the action ids that heal it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probes.observation import Observation, Status

__all__ = [
    "DOMAINS", "PRECEDENCE", "EXPLAINS", "CONFIRM", "SUSPECT", "RULE_OUT", "Rule", "Leaf", "RULES",
    "LEAVES", "LEAF_ACTIONS", "COMMON_VERIFY", "COMMON_DONT", "LEAF_CAUSES", "journal_line",
    "journal_lines",
]

DOMAINS: tuple[str, ...] = (
    "pleg_runtime_slow", "runtime_down", "cert_expired", "cni_network", "disk_pressure",
    "memory_pid_pressure", "apiserver_unreachable", "kubelet_config", "clock_skew",
)

# When several domains are confirmed, the first of these is the verdict: the cause that explains
# the others. A partition explains lease and certificate symptoms; a kubelet that cannot start
# explains everything downstream; a clock off explains x509 "not yet valid"; a dead or hung
# runtime explains PLEG; a broken CNI (vxlan) explains PLEG lines that are only a decoy; disk and
# memory starvation explain a slow relist.
PRECEDENCE: tuple[str, ...] = (
    "apiserver_unreachable", "kubelet_config", "clock_skew", "cert_expired", "runtime_down",
    "cni_network", "disk_pressure", "memory_pid_pressure", "pleg_runtime_slow",
)

# (cause, effect): when both are confirmed and one of the rules named fired, the cause explains
# the effect whatever PRECEDENCE says. PID exhaustion makes the runtime fail to fork (it looks
# dead); the fork failures in its journal tie the two.
EXPLAINS: dict[tuple[str, str], tuple[str, ...]] = {
    ("memory_pid_pressure", "runtime_down"): ("runtime-journal.fork", "journal.fork"),
}

CONFIRM, SUSPECT, RULE_OUT = "confirm", "suspect", "rule_out"
DECIDED = (Status.OK, Status.BAD, Status.HUNG)

Predicate = Callable[..., bool]
Quote = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    step: str  # the diagnosis step it belongs to (runbook order)
    domain: str
    effect: str  # CONFIRM | SUSPECT | RULE_OUT
    probes: tuple[str, ...]  # probe ids read; the predicate gets their observations in order
    when: Predicate
    says: str  # what the rule means, for a person
    quote: Quote | None = None  # the evidence text; default: "probe: summary" + raw excerpt
    statuses: tuple[Status, ...] = DECIDED  # observation statuses the rule may read
    leaf: str = ""  # the finer cause under `domain` it points at (a key of LEAF_CAUSES)

    def applies(self, observations: list[Observation]) -> bool:
        if any(o.status not in self.statuses for o in observations):
            return False
        try:
            return bool(self.when(*observations))
        except (KeyError, TypeError, ValueError, AttributeError):
            return False

    def evidence(self, observations: list[Observation]) -> str:
        if self.quote is not None:
            try:
                text = self.quote(*observations)
                if text:
                    return text
            except (KeyError, TypeError, ValueError, AttributeError):
                pass
        return "; ".join(_default_quote(o) for o in observations)


@dataclass(frozen=True, slots=True)
class Leaf:
    domain: str
    title: str
    cause: str
    fix: tuple[str, ...]
    verify: tuple[str, ...]
    dont: tuple[str, ...]
    actions: tuple[str, ...]
    finer: tuple[str, ...] = field(default_factory=tuple)  # the finer causes it covers


# -- matchers -----------------------------------------------------------------------------------
def _default_quote(o: Observation) -> str:
    text = f"{o.probe} [{o.status.value}]: {o.summary}"
    raw = (o.raw or "").strip()
    if raw and o.status is not Status.OK:
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        text += " | " + " / ".join(lines[-3:])[:400]
    return text


def _d(o: Observation, *path: str, default: Any = None) -> Any:
    cur: Any = o.data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return cur


def journal_lines(o: Observation, *labels: str, regex: str | None = None) -> list[str]:
    """Lines of a journal observation that match one of the JOURNAL_PATTERNS labels (from its
    `data`), or `regex` (from `raw`, case-insensitive)."""
    out: list[str] = []
    for p in _d(o, "patterns", default=[]) or []:
        if p.get("pattern") in labels and p.get("count") and p.get("last"):
            out.append(p["last"])
    if not out:
        matched = _d(o, "matched", default={}) or {}
        if any(matched.get(lb) for lb in labels) or regex:
            rx = re.compile(regex or "|".join(re.escape(lb) for lb in labels), re.I)
            out = [ln.strip() for ln in (o.raw or "").splitlines() if rx.search(ln)]
    return out


def _x509_refused(o: Observation) -> bool:
    """x509 errors that are not all "not yet valid: current time … is before …" (those say the
    clock is behind, not that a certificate expired), or an unsigned certificate request."""
    if journal_lines(o, "certificate request was not signed"):
        return True
    counts = {p.get("pattern"): p.get("count") or 0
              for p in _d(o, "patterns", default=[]) or [] if isinstance(p, dict)}
    x509 = "x509: certificate has expired or is not yet valid"
    if counts.get(x509):
        return counts[x509] > counts.get("certificate not yet valid", 0)
    lines = journal_lines(o, x509)
    return any(not re.search(r"not yet valid: current time \S+ is before", ln, re.I)
               for ln in lines)


def journal_line(*labels: str, regex: str | None = None) -> Predicate:
    return lambda o: bool(journal_lines(o, *labels, regex=regex))


def journal_quote(*labels: str, regex: str | None = None) -> Quote:
    def quote(o: Observation) -> str:
        lines = journal_lines(o, *labels, regex=regex)
        return f"{o.probe}: \"{lines[-1][:400]}\"" if lines else ""
    return quote


def _count(o: Observation, label: str) -> int:
    for p in _d(o, "patterns", default=[]) or []:
        if p.get("pattern") == label:
            return int(p.get("count") or 0)
    return int((_d(o, "matched", default={}) or {}).get(label) or 0)


def _cond(o: Observation, name: str) -> str | None:
    return (_d(o, "conditions", default={}) or {}).get(name)


def _fig(o: Observation, name: str) -> float | None:
    v = _d(o, "signals", name, "value")
    return float(v) if isinstance(v, (int, float)) else None


def _fig_at_most(o: Observation, name: str, limit: float) -> bool:
    """The figure is known and no more than `limit`."""
    v = _fig(o, name)
    return v is not None and v <= limit


def _mentions(o: Observation, rx: str) -> bool:
    return bool(re.search(rx, f"{o.summary}\n{o.raw}\n{o.reason}", re.I))


def _ready_msg(o: Observation) -> str:
    return f"{_d(o, 'reason', default='') or ''} {_d(o, 'message', default='') or ''}"


NODE_CONTROLLER_MESSAGE = "Kubelet stopped posting node status."
HEARTBEAT_FRESH = 40.0  # seconds: the default node lease duration


def _unknown_by_controller(o: Observation) -> bool:
    """Ready=Unknown written by the node controller: it stopped hearing from the kubelet."""
    return _d(o, "ready") == "Unknown" and (
        _d(o, "set_by") == "node-controller" or _d(o, "reason") == "NodeStatusUnknown"
        or NODE_CONTROLLER_MESSAGE.lower() in str(_d(o, "message", default="")).lower())


def _false_by_kubelet(o: Observation) -> bool:
    """Ready=False written by the kubelet itself with a fresh heartbeat: it reaches and
    authenticates to the API server, and its message is first-hand."""
    age = _d(o, "heartbeat_age")
    return _d(o, "ready") == "False" and _d(o, "set_by") == "kubelet" and (
        age is None or age < HEARTBEAT_FRESH)


def _polarity_quote(o: Observation, *_: Observation) -> str:
    who = "the node controller" if _unknown_by_controller(o) else _d(o, "set_by", default="?")
    msg = str(_d(o, "message", default="") or "")[:240]
    text = f"{o.probe}: Ready={_d(o, 'ready')} ({_d(o, 'reason') or 'no reason'}) set by {who}"
    age = _d(o, "heartbeat_age")
    if age is not None:
        text += f", heartbeat {age:.0f} s ago"
    if msg:
        text += f": \"{msg}\""
    pressures = _d(o, "pressures", default=[]) or []
    if pressures:
        text += "; " + ", ".join(f"{p}=True" for p in pressures)
    return text


def _condition_quote(*names: str) -> Quote:
    """The condition rows as the API (or describe node) wrote them: type, status, reason."""
    def quote(o: Observation) -> str:
        rows = [ln.strip() for ln in (o.raw or "").splitlines()
                if any(ln.strip().startswith(f"{n}=True") for n in names)]
        return f"{o.probe}: " + " / ".join(f"\"{r[:200]}\"" for r in rows) if rows else \
            _polarity_quote(o)
    return quote


def _crictl_down(o: Observation) -> bool:
    if o.status is Status.HUNG:
        return True
    if o.status is Status.ERROR or o.status is Status.BAD:
        return _mentions(o, r"connect|no such file|connection refused|dial|deadline|"
                            r"transport|runtime")
    return False


def _eviction(kind: str) -> Predicate:
    rx = {"disk": r"ephemeral-storage|nodefs|imagefs|inodes",
          "memory": r"memory|pid"}[kind]

    def when(o: Observation) -> bool:
        return any(re.search(rx, ln, re.I)
                   for ln in journal_lines(o, "eviction manager: attempting to reclaim",
                                           "low on resource"))
    return when


def _observed(*kinds: str) -> Predicate:
    rx = re.compile(r"\[[^\]]*(" + "|".join(kinds) + r")Pressure")
    return lambda o: any(rx.search(ln)
                         for ln in journal_lines(o, "eviction manager observed pressure"))


def _events(o: Observation) -> list[tuple[str, str, str]]:
    """(type, reason, message) of an api.events observation."""
    return [(str(e.get("type", "")), str(e.get("reason", "")), str(e.get("message", "")))
            for e in _d(o, "events", default=[]) or [] if isinstance(e, dict)]


def _event_says(reasons: tuple[str, ...], rx: str = "") -> Predicate:
    def when(o: Observation) -> bool:
        return any(r in reasons and (not rx or re.search(rx, f"{r} {m}", re.I))
                   for _, r, m in _events(o))
    return when


def _event_quote(reasons: tuple[str, ...], rx: str = "") -> Quote:
    def quote(o: Observation) -> str:
        hits = [f"{t} {r}: {m}" for t, r, m in _events(o)
                if r in reasons and (not rx or re.search(rx, f"{r} {m}", re.I))]
        return f"{o.probe}: \"{hits[-1][:300]}\"" if hits else ""
    return quote


_DISK_WORDS = r"ephemeral-storage|nodefs|imagefs|disk|inode"
_MEMORY_WORDS = r"memory|pid"

# -- the rules, in diagnosis order --------------------------------------------------------------
R = Rule
J_KUBELET, J_RUNTIME = "node.journal.kubelet", "node.journal.containerd"


def _config_invalid(o: Observation) -> bool:
    """The kubelet cannot load its config. A missing bootstrap kubeconfig after the client
    certificate expired is not counted: that is the certificate's failure (the kubelet falls
    back to bootstrapping, and the bootstrap file is gone once the node has joined)."""
    n = _count(o, "kubelet config invalid")
    if n and journal_line("bootstrap client certificate expired")(o):
        n -= _count(o, "bootstrap kubeconfig missing")
    return n > 0


def _journal_rules(probe: str, tag: str) -> list[Rule]:
    jl, jq = journal_line, journal_quote
    return [
        R(f"{tag}.runtime-deadline", "journal", "runtime_down", CONFIRM, (probe,),
          jl("runtime call deadline exceeded"),
          "CRI list/status calls run into the kubelet's runtime request timeout: the runtime "
          "takes the call and never answers (hung)",
          jq("runtime call deadline exceeded"), leaf="hung"),
        R(f"{tag}.runtime-socket-missing", "journal", "runtime_down", CONFIRM, (probe,),
          jl("runtime socket missing"), "the runtime socket file is not there",
          jq("runtime socket missing"), leaf="socket_missing"),
        R(f"{tag}.runtime-refused", "journal", "runtime_down", CONFIRM, (probe,),
          jl("runtime socket refused", "Cannot connect to the Docker daemon"),
          "nothing listens on the runtime socket: the runtime is not running",
          jq("runtime socket refused", "Cannot connect to the Docker daemon"), leaf="dead"),
        R(f"{tag}.runtime-connect", "journal", "runtime_down", CONFIRM, (probe,),
          jl("failed to connect to containerd", "transport: Error while dialing",
             "container runtime is down", "Container runtime sanity check failed"),
          "the kubelet cannot reach the runtime socket",
          jq("failed to connect to containerd", "transport: Error while dialing",
             "container runtime is down", "Container runtime sanity check failed")),
        R(f"{tag}.pleg", "journal", "pleg_runtime_slow", SUSPECT, (probe,),
          jl("PLEG is not healthy", "pleg was last seen active"),
          "PLEG unhealthy: a symptom of a slow or broken runtime (or of something beneath it)",
          jq("pleg was last seen active", "PLEG is not healthy")),
        R(f"{tag}.pleg-stale", "journal", "pleg_runtime_slow", CONFIRM, (probe,),
          jl("pleg was last seen active"),
          "the kubelet says PLEG has not relisted for longer than its 3 min threshold (the "
          "relist is stuck; a dead runtime, a broken CNI or starvation beneath it come first)",
          jq("pleg was last seen active"), leaf="relist_slow"),
        R(f"{tag}.relist-slow", "journal", "pleg_runtime_slow", SUSPECT, (probe,),
          jl("Relisting took longer than expected"), "PLEG relisting is slow",
          jq("Relisting took longer than expected"), leaf="relist_slow"),
        R(f"{tag}.cni", "journal", "cni_network", CONFIRM, (probe,),
          jl("cni plugin not initialized", "NetworkPluginNotReady", "failed to find plugin",
             "failed to create vxlan tunnel", "cni config uninitialized"),
          "the network plugin is not ready",
          jq("failed to create vxlan tunnel", "failed to find plugin",
             "cni config uninitialized", "cni plugin not initialized", "NetworkPluginNotReady")),
        R(f"{tag}.cni-binary", "journal", "cni_network", CONFIRM, (probe,),
          jl("failed to find plugin"), "a CNI plugin binary is missing from the plugin path",
          jq("failed to find plugin"), leaf="binary_missing"),
        R(f"{tag}.cni-config", "journal", "cni_network", CONFIRM, (probe,),
          jl("cni config uninitialized"), "no CNI network config in /etc/cni/net.d",
          jq("cni config uninitialized"), leaf="config_missing"),
        R(f"{tag}.cni-vxlan", "journal", "cni_network", CONFIRM, (probe,),
          jl("failed to create vxlan tunnel"), "the overlay cannot create its vxlan device",
          jq("failed to create vxlan tunnel"), leaf="kernel_module"),
        R(f"{tag}.x509", "journal", "cert_expired", CONFIRM, (probe,), _x509_refused,
          "the kubelet's certificate is refused",
          jq("x509: certificate has expired or is not yet valid",
             "certificate request was not signed")),
        R(f"{tag}.client-cert-expired", "journal", "cert_expired", CONFIRM, (probe,),
          jl("bootstrap client certificate expired"),
          "the kubelet's client certificate is expired", jq("bootstrap client certificate expired"),
          leaf="client_expired"),
        R(f"{tag}.serving-cert", "journal", "cert_expired", CONFIRM, (probe,),
          jl("no serving certificate available"),
          "the kubelet has no serving certificate (its kubelet-serving CSR is not approved)",
          jq("no serving certificate available"), leaf="serving"),
        R(f"{tag}.cert-not-yet-valid", "journal", "clock_skew", CONFIRM, (probe,),
          jl("certificate not yet valid"),
          "x509 says the current time is before a certificate's notBefore: this clock and the "
          "issuer's disagree (the clock is behind, or jumped)",
          jq("certificate not yet valid"), leaf="offset"),
        R(f"{tag}.unauthorized-calls", "journal", "cert_expired", CONFIRM, (probe,),
          jl("kubelet API calls unauthorized"),
          "the API server refuses the kubelet's own calls (node status, lease, lists) with 401: "
          "its client credential is not accepted",
          jq("kubelet API calls unauthorized"), leaf="unauthorized"),
        R(f"{tag}.unauthorized", "journal", "cert_expired", SUSPECT, (probe,),
          jl("Unauthorized"), "the API server answers 401 to the kubelet", jq("Unauthorized"),
          leaf="unauthorized"),
        R(f"{tag}.cgroup", "journal", "kubelet_config", CONFIRM, (probe,),
          jl("misconfiguration: kubelet cgroup driver"),
          "kubelet and runtime disagree on the cgroup driver",
          jq("misconfiguration: kubelet cgroup driver"), leaf="cgroup_driver"),
        R(f"{tag}.swap", "journal", "kubelet_config", CONFIRM, (probe,),
          jl("running with swap on is not supported"), "swap is on and the kubelet refuses it",
          jq("running with swap on is not supported"), leaf="swap"),
        R(f"{tag}.bad-config", "journal", "kubelet_config", CONFIRM, (probe,),
          _config_invalid, "the kubelet cannot load its config, flags or files",
          jq("kubelet config invalid"), leaf="bad_config"),
        R(f"{tag}.evict-disk", "journal", "disk_pressure", SUSPECT, (probe,), _eviction("disk"),
          "the eviction manager reclaims disk",
          jq("eviction manager: attempting to reclaim", "low on resource")),
        R(f"{tag}.evict-observed-disk", "journal", "disk_pressure", CONFIRM, (probe,),
          _observed("Disk"), "the kubelet's eviction manager observes DiskPressure",
          jq("eviction manager observed pressure")),
        R(f"{tag}.evict-observed-memory", "journal", "memory_pid_pressure", CONFIRM, (probe,),
          _observed("Memory", "PID"), "the kubelet's eviction manager observes MemoryPressure "
          "or PIDPressure", jq("eviction manager observed pressure"), leaf="memory"),
        R(f"{tag}.image-gc", "journal", "disk_pressure", SUSPECT, (probe,),
          jl("image filesystem over the threshold"),
          "image GC cannot bring the image filesystem under its threshold",
          jq("image filesystem over the threshold"), leaf="image_gc"),
        R(f"{tag}.no-space", "journal", "disk_pressure", SUSPECT, (probe,),
          jl("no space left on device"), "writes fail: no space (or no inodes) left",
          jq("no space left on device")),
        R(f"{tag}.evict-memory", "journal", "memory_pid_pressure", SUSPECT, (probe,),
          _eviction("memory"), "the eviction manager reclaims memory or PIDs",
          jq("eviction manager: attempting to reclaim", "low on resource")),
        R(f"{tag}.oom", "journal", "memory_pid_pressure", SUSPECT, (probe,),
          jl("oom", "System OOM encountered"), "OOM messages",
          jq("System OOM encountered", "oom"), leaf="memory"),
        R(f"{tag}.fork", "journal", "memory_pid_pressure", SUSPECT, (probe,),
          jl("resource temporarily unavailable"), "fork/clone fails: PID exhaustion",
          jq("resource temporarily unavailable"), leaf="pid"),
        R(f"{tag}.lease", "journal", "apiserver_unreachable", SUSPECT, (probe,),
          jl("Failed to update lease", "Failed to ensure lease exists"),
          "lease renewals fail: heartbeats are not reaching the API server",
          jq("Failed to ensure lease exists", "Failed to update lease"), leaf="lease"),
        R(f"{tag}.api-calls", "journal", "apiserver_unreachable", SUSPECT, (probe,),
          jl("node status update failed"),
          "node status and lease calls to the API server time out or are refused",
          jq("node status update failed"), leaf="partition"),
        R(f"{tag}.api-calls-repeated", "journal", "apiserver_unreachable", CONFIRM, (probe,),
          lambda o: len(journal_lines(o, "node status update failed")) >= 2
          or _count(o, "node status update failed") >= 2,
          "node status and lease calls to the API server time out or are refused again and "
          "again: the node cannot reach the API server",
          jq("node status update failed"), leaf="partition"),
    ]


RULES: tuple[Rule, ...] = (
    # 1. the Ready condition and who set it
    R("ready.unknown-by-controller", "ready", "apiserver_unreachable", SUSPECT, ("api.node",),
      _unknown_by_controller,
      "Ready=Unknown set by the node controller (\"Kubelet stopped posting node status.\"): "
      "the kubelet's heartbeats stopped arriving: a partition, a refused certificate, or a "
      "kubelet that is down", _polarity_quote),
    R("ready.unknown-cert", "ready", "cert_expired", SUSPECT, ("api.node",),
      _unknown_by_controller,
      "Ready=Unknown: a kubelet whose client certificate is refused stops posting status",
      _polarity_quote),
    R("ready.unknown-kubelet-down", "ready", "kubelet_config", SUSPECT,
      ("api.node", "node.kubelet.process"),
      lambda n, p: _unknown_by_controller(n) and _d(p, "running") is False,
      "Ready=Unknown and no kubelet process on the node: the kubelet is down, so nobody posts "
      "status", lambda n, p: f"{_polarity_quote(n)}; {p.probe}: {p.summary}"),
    R("ready.unknown-kubelet-up-api-down", "ready", "apiserver_unreachable", CONFIRM,
      ("api.node", "node.kubelet.process", "node.apiserver"),
      lambda n, p, a: _unknown_by_controller(n) and _d(p, "running") is True
      and (a.status is Status.HUNG or (a.status is Status.BAD and str(
          _d(a, "http_code")) in ("None", "0", "000"))),
      "Ready=Unknown while the kubelet runs and the API server does not answer from the node: "
      "its heartbeats are lost on the way (partition)",
      lambda n, p, a: f"{_polarity_quote(n)}; {a.probe}: {a.summary}", leaf="partition"),
    R("ready.false-by-kubelet", "ready", "apiserver_unreachable", RULE_OUT, ("api.node",),
      _false_by_kubelet,
      "the kubelet itself posted Ready=False: it reaches and authenticates to the API server"),
    R("ready.false-by-kubelet-cert", "ready", "cert_expired", RULE_OUT, ("api.node",),
      _false_by_kubelet,
      "the kubelet's status updates are accepted: its client certificate works"),
    R("ready.unknown-api-calls-fail", "ready", "apiserver_unreachable", CONFIRM,
      ("api.node", J_KUBELET),
      lambda n, j: _unknown_by_controller(n)
      and bool(journal_lines(j, "node status update failed")),
      "Ready=Unknown set by the node controller while the kubelet, still running, logs its "
      "status and lease calls timing out or refused: its heartbeats cannot reach the API server",
      lambda n, j: f"{_polarity_quote(n)}; " + journal_quote("node status update failed")(j),
      leaf="partition"),
    R("ready.runtime-down-by-kubelet", "ready", "runtime_down", CONFIRM, ("api.node",),
      lambda o: _false_by_kubelet(o) and re.search(
          r"container runtime is down|container runtime not ready|RuntimeReady=false",
          _ready_msg(o), re.I) is not None,
      "the kubelet itself, posting fresh status, reports that its container runtime is down",
      _polarity_quote),
    R("ready.network-by-kubelet", "ready", "cni_network", CONFIRM, ("api.node",),
      lambda o: _false_by_kubelet(o) and re.search(
          r"NetworkPluginNotReady|cni plugin not initiali[sz]ed|cni config uninitiali[sz]ed",
          _ready_msg(o), re.I) is not None,
      "the kubelet itself, posting fresh status, reports that its network plugin is not ready",
      _polarity_quote),
    R("ready.pleg-by-kubelet", "ready", "pleg_runtime_slow", CONFIRM, ("api.node",),
      lambda o: _false_by_kubelet(o) and re.search(r"pleg was last seen active", _ready_msg(o),
                                                   re.I) is not None,
      "the kubelet itself reports PLEG has not relisted for longer than its threshold",
      _polarity_quote, leaf="relist_slow"),
    R("ready.pleg-message", "ready", "pleg_runtime_slow", SUSPECT, ("api.node",),
      lambda o: re.search(r"PLEG is not healthy", _ready_msg(o), re.I) is not None,
      "the Ready message names PLEG"),
    R("ready.runtime-message", "ready", "runtime_down", SUSPECT, ("api.node",),
      lambda o: re.search(r"container runtime is down|runtime.*not ready|RuntimeReady=false",
                          _ready_msg(o), re.I) is not None,
      "the Ready message says the runtime is down"),
    R("ready.network-message", "ready", "cni_network", SUSPECT, ("api.node",),
      lambda o: re.search(r"NetworkPluginNotReady|cni plugin not initialized|network not ready",
                          _ready_msg(o), re.I) is not None,
      "the Ready message says the network plugin is not ready"),
    R("ready.network-unavailable", "ready", "cni_network", SUSPECT, ("api.node",),
      lambda o: _cond(o, "NetworkUnavailable") == "True", "NetworkUnavailable=True"),
    R("ready.disk-pressure", "ready", "disk_pressure", CONFIRM, ("api.node",),
      lambda o: _cond(o, "DiskPressure") == "True", "DiskPressure=True",
      _condition_quote("DiskPressure")),
    R("ready.memory-pressure", "ready", "memory_pid_pressure", CONFIRM, ("api.node",),
      lambda o: _cond(o, "MemoryPressure") == "True" or _cond(o, "PIDPressure") == "True",
      "MemoryPressure or PIDPressure=True", _condition_quote("MemoryPressure", "PIDPressure")),
    # 2. the kubelet process
    R("kubelet.not-running", "kubelet", "kubelet_config", SUSPECT, ("node.kubelet.process",),
      lambda o: _d(o, "running") is False,
      "no kubelet process: it fails to start (config, swap, cgroup driver) or was killed"),
    R("kubelet.unit-failing", "kubelet", "kubelet_config", SUSPECT, ("node.systemd.kubelet",),
      lambda o: o.status is Status.BAD,
      "the kubelet unit is not running or restarts over and over"),
    R("kubelet.rss", "kubelet", "memory_pid_pressure", SUSPECT, ("node.kubelet.process",),
      lambda o: (_d(o, "rss_mb") or 0) > (_d(o, "rss_limit_mb") or 500),
      "kubelet RSS above 500 MB"),
    R("kubelet.oom-killed", "kubelet", "memory_pid_pressure", CONFIRM, ("node.dmesg.oom",),
      lambda o: (_d(o, "kubelet_kills") or 0) > 0, "the kernel OOM-killed the kubelet",
      leaf="kubelet_oom"),
    R("kubelet.oom-kills", "kubelet", "memory_pid_pressure", SUSPECT, ("node.dmesg.oom",),
      lambda o: (_d(o, "kills") or 0) > 0, "OOM kills on the node"),
    # 3. healthz
    R("healthz.pleg", "healthz", "pleg_runtime_slow", SUSPECT, ("kubelet.healthz",),
      lambda o: any("pleg" in c.lower() for c in _d(o, "failed_checks", default=[]) or []),
      "healthz: the PLEG check fails"),
    R("healthz.node-pleg", "healthz", "pleg_runtime_slow", SUSPECT, ("node.healthz",),
      lambda o: any("pleg" in c.lower() for c in _d(o, "failed_checks", default=[]) or []),
      "healthz from the node: the PLEG check fails"),
    # 4. journal errors
    *_journal_rules(J_KUBELET, "journal"),
    *_journal_rules(J_RUNTIME, "runtime-journal"),
    # 5. the runtime
    R("runtime.crictl-ps", "runtime", "runtime_down", CONFIRM, ("node.crictl.ps",),
      _crictl_down, "crictl ps hangs or cannot reach the socket: the runtime is hung or gone",
      statuses=(Status.HUNG, Status.BAD, Status.ERROR)),
    R("runtime.crictl-hung", "runtime", "runtime_down", CONFIRM, ("node.crictl.ps",),
      lambda o: o.status is Status.HUNG, "crictl ps did not return in 10 s: the runtime is hung",
      statuses=(Status.HUNG,), leaf="hung"),
    R("runtime.crictl-no-socket", "runtime", "runtime_down", CONFIRM, ("node.crictl.ps",),
      lambda o: _mentions(o, r"no such file or directory"),
      "crictl ps: the runtime socket file is not there",
      statuses=(Status.BAD, Status.ERROR), leaf="socket_missing"),
    R("runtime.crictl-pods", "runtime", "runtime_down", CONFIRM, ("node.crictl.pods",),
      _crictl_down, "crictl pods hangs or cannot reach the socket",
      statuses=(Status.HUNG, Status.BAD, Status.ERROR)),
    R("runtime.unit-down", "runtime", "runtime_down", CONFIRM, ("node.systemd.containerd",),
      lambda o: _d(o, "active_state") not in (None, "active"),
      "containerd is not active", leaf="dead"),
    R("runtime.not-ready", "runtime", "runtime_down", CONFIRM, ("node.crictl.info",),
      lambda o: (_d(o, "conditions", "RuntimeReady", "status") is False),
      "crictl info: RuntimeReady=false"),
    R("runtime.network-not-ready", "runtime", "cni_network", SUSPECT, ("node.crictl.info",),
      lambda o: (_d(o, "conditions", "NetworkReady", "status") is False),
      "crictl info: NetworkReady=false"),
    R("runtime.answers", "runtime", "runtime_down", RULE_OUT,
      ("node.crictl.ps", "node.systemd.containerd"),
      lambda ps, unit: ps.status is Status.OK and unit.status is Status.OK,
      "containerd is running and crictl ps answers in time"),
    # 6. PLEG metrics
    R("pleg.relist-slow", "pleg", "pleg_runtime_slow", CONFIRM, ("kubelet.metrics",),
      lambda o: (_fig(o, "pleg_relist_p99") or 0) > 10 or (_fig(o, "pleg_last_relist_age") or 0)
      > 180, "PLEG relist p99 above 10 s, or no relist for 3 min",
      lambda o: "kubelet.metrics: " + "; ".join(
          b for b in _d(o, "signals", "breaches", default=[]) if "PLEG" in b),
      leaf="relist_slow"),
    R("pleg.runtime-ops-slow", "pleg", "pleg_runtime_slow", SUSPECT, ("kubelet.metrics",),
      lambda o: any("runtime list_" in b for b in _d(o, "signals", "breaches", default=[])),
      "runtime list operations p99 above 5 s", leaf="runtime_ops_slow"),
    R("pleg.relist-fast", "pleg", "pleg_runtime_slow", RULE_OUT, ("kubelet.metrics",),
      lambda o: _fig_at_most(o, "pleg_relist_p99", 10)
      and (_fig(o, "pleg_last_relist_age") or 0) <= 180,
      "PLEG relist p99 within 10 s"),
    R("pleg.goroutines", "pleg", "memory_pid_pressure", SUSPECT, ("kubelet.goroutines",),
      lambda o: o.status is Status.BAD, "goroutines above 500"),
    # 7. certificates
    R("cert.expired", "cert", "cert_expired", CONFIRM, ("node.cert.client",),
      lambda o: _d(o, "state") == "expired", "the kubelet client certificate has expired",
      leaf="client_expired"),
    R("cert.not-yet-valid", "cert", "clock_skew", SUSPECT, ("node.cert.client",),
      lambda o: _d(o, "state") == "not_yet_valid",
      "the client certificate is not yet valid on the node's clock: the clock is behind",
      leaf="offset"),
    R("cert.valid", "cert", "cert_expired", RULE_OUT, ("node.cert.client",),
      lambda o: _d(o, "state") in ("valid", "expiring"), "the client certificate is valid"),
    R("cert.metrics-ttl", "cert", "cert_expired", CONFIRM, ("kubelet.metrics",),
      lambda o: _fig_at_most(o, "cert_ttl", 0),
      "kubelet_certificate_manager_client_ttl_seconds is negative", leaf="client_expired"),
    R("cert.pending-csr", "cert", "cert_expired", SUSPECT, ("api.csr", "api.node"),
      lambda c, n: bool(_d(c, "pending")) and _d(n, "ready") != "True",
      "the node's certificate signing request waits unapproved while the node is not Ready: "
      "its certificate rotation is stuck", leaf="pending_csr"),
    R("cert.renew-errors", "cert", "cert_expired", SUSPECT, ("kubelet.metrics",),
      lambda o: (_fig(o, "cert_renew_errors") or 0) > 0, "client certificate renewal errors"),
    # an expired serving certificate breaks logs, exec and scrapes, not the heartbeats: a suspect
    R("cert.serving-expired", "cert", "cert_expired", SUSPECT, ("kubelet.cert.serving",),
      lambda o: _d(o, "state") == "expired", "the kubelet serving certificate has expired",
      leaf="serving"),
    R("cert.serving-not-yet-valid", "cert", "clock_skew", SUSPECT, ("kubelet.cert.serving",),
      lambda o: _d(o, "state") == "not_yet_valid",
      "the serving certificate is not yet valid on the node's clock: the clock is behind",
      leaf="offset"),
    # 8. API server reachability
    R("api.unreachable", "api", "apiserver_unreachable", CONFIRM, ("node.apiserver",),
      lambda o: o.status is Status.HUNG or (o.status is Status.BAD and str(
          _d(o, "http_code")) in ("None", "0", "000")),
      "the API server does not answer from the node", leaf="partition"),
    R("api.5xx", "api", "apiserver_unreachable", SUSPECT, ("node.apiserver",),
      lambda o: str(_d(o, "http_code") or "").startswith("5"),
      "the API server answers 5xx (LB or etcd)", leaf="server_error"),
    R("api.401", "api", "cert_expired", SUSPECT, ("node.apiserver",),
      lambda o: str(_d(o, "http_code")) == "401" and o.status is Status.BAD,
      "reachable but 401: certificate-based", leaf="unauthorized"),
    R("api.reachable", "api", "apiserver_unreachable", RULE_OUT, ("node.apiserver",),
      lambda o: o.status is Status.OK, "the API server answers from the node"),
    R("api.lease-stale", "api", "apiserver_unreachable", SUSPECT, ("api.lease",),
      lambda o: o.status is Status.BAD, "the node lease is not renewed", leaf="lease"),
    # 9. pressure
    R("pressure.space", "pressure", "disk_pressure", CONFIRM, ("node.df.space",),
      lambda o: o.status is Status.BAD, "disk space above the eviction threshold (df -h)",
      leaf="space"),
    R("pressure.inodes", "pressure", "disk_pressure", CONFIRM, ("node.df.inodes",),
      lambda o: o.status is Status.BAD, "inodes above the eviction threshold (df -i)",
      leaf="inodes"),
    R("pressure.disk-fine", "pressure", "disk_pressure", RULE_OUT,
      ("node.df.space", "node.df.inodes"),
      lambda sp, ino: sp.status is Status.OK and ino.status is Status.OK,
      "both df -h and df -i are below the threshold"),
    R("pressure.pods", "pressure", "memory_pid_pressure", CONFIRM, ("node.pods",),
      lambda o: o.status is Status.BAD, "pods at maxPods, or above the default 110",
      leaf="too_many_pods"),
    R("events.system-oom", "pressure", "memory_pid_pressure", CONFIRM, ("api.events",),
      _event_says(("SystemOOM",)),
      "the kubelet recorded a system OOM: the kernel's OOM killer ran out of node memory",
      _event_quote(("SystemOOM",)), leaf="memory"),
    R("events.memory-pressure", "pressure", "memory_pid_pressure", CONFIRM, ("api.events",),
      _event_says(("EvictionThresholdMet", "NodeHasInsufficientMemory",
                   "NodeHasInsufficientPID"), _MEMORY_WORDS),
      "the kubelet's eviction threshold for memory or PIDs was met",
      _event_quote(("EvictionThresholdMet", "NodeHasInsufficientMemory",
                    "NodeHasInsufficientPID"), _MEMORY_WORDS), leaf="memory"),
    R("events.disk-pressure", "pressure", "disk_pressure", CONFIRM, ("api.events",),
      _event_says(("EvictionThresholdMet", "NodeHasDiskPressure"), _DISK_WORDS),
      "the kubelet's eviction threshold for disk was met",
      _event_quote(("EvictionThresholdMet", "NodeHasDiskPressure"), _DISK_WORDS)),
    R("events.image-gc", "pressure", "disk_pressure", SUSPECT, ("api.events",),
      _event_says(("FreeDiskSpaceFailed", "ImageGCFailed")),
      "image garbage collection failed to free disk space",
      _event_quote(("FreeDiskSpaceFailed", "ImageGCFailed")), leaf="image_gc"),
    R("pressure.memory-fine", "pressure", "memory_pid_pressure", RULE_OUT,
      ("node.pods", "node.dmesg.oom", "node.kubelet.process", "api.node"),
      lambda p, oom, proc, n: p.status is Status.OK and oom.status is Status.OK
      and proc.status is Status.OK and _cond(n, "MemoryPressure") != "True"
      and _cond(n, "PIDPressure") != "True",
      "no OOM kills, kubelet RSS normal, pods under maxPods, no memory/PID pressure"),
    # 10. CNI
    R("cni.files", "cni", "cni_network", CONFIRM, ("node.cni",),
      lambda o: o.status is Status.BAD, "CNI binary or config missing"),
    R("cni.binary", "cni", "cni_network", CONFIRM, ("node.cni",),
      lambda o: o.status is Status.BAD and (bool(_d(o, "missing"))
                                            or not _d(o, "binaries", default=["?"])),
      "a CNI plugin binary the config names is missing", leaf="binary_missing"),
    R("cni.config", "cni", "cni_network", CONFIRM, ("node.cni",),
      lambda o: o.status is Status.BAD and not _d(o, "configs", default=["?"]),
      "no CNI network config in /etc/cni/net.d", leaf="config_missing"),
    R("cni.vxlan", "cni", "cni_network", CONFIRM, ("node.kmod",),
      lambda o: o.status is Status.BAD and bool(_d(o, "missing")),
      "a kernel module the overlay needs is not loaded", leaf="kernel_module"),
    R("cni.fine", "cni", "cni_network", RULE_OUT, ("node.cni", "node.kmod", "api.node"),
      lambda c, k, n: c.status is Status.OK and k.status is Status.OK
      and _cond(n, "NetworkUnavailable") != "True",
      "CNI binaries, config and kernel modules present; NetworkUnavailable is not True"),
    # 11. config
    R("config.swap", "config", "kubelet_config", CONFIRM, ("node.swap",),
      lambda o: o.status is Status.BAD, "swap is on and failSwapOn is true", leaf="swap"),
    # 12. clock
    R("clock.skew", "clock", "clock_skew", CONFIRM, ("node.ntp",),
      lambda o: abs(_d(o, "offset_seconds") or 0) > (_d(o, "max_offset") or 5),
      "the node clock is off by more than 5 s", leaf="offset"),
    R("clock.unsynced", "clock", "clock_skew", SUSPECT, ("node.ntp",),
      lambda o: _d(o, "ntp_synchronized") is False, "NTP is not synchronised",
      leaf="ntp_unsynced"),
    R("clock.fine", "clock", "clock_skew", RULE_OUT, ("node.ntp",),
      lambda o: o.status is Status.OK, "NTP synchronised and the clock within 5 s"),
)

# -- the leaves -----------------------------------------------------------------------------------
COMMON_VERIFY: tuple[str, ...] = (
    "kubectl get nodes -w → watch node transition to Ready",
    "kubectl describe node <node> | grep Ready → confirm condition is True",
    "ssh <node> 'curl -sk https://localhost:10250/healthz' → should return 200",
    "kubectl get pods -o wide | grep <node> → verify pods are running, not Pending",
    "Check kubelet journal for the absence of error messages after fix",
    "Run a canary pod on the node: kubectl run test --image=nginx --restart=Never "
    "--node-name=<node>; kubectl delete pod test",
)

COMMON_DONT: tuple[str, ...] = (
    "Don't restart kubelet without checking logs first — you lose the evidence",
    "Don't drain the node without understanding why it's NotReady — you might make the node "
    "unschedulable permanently",
    "Never use kubectl edit node to remove the taint — that only hides the problem.",
)

_D_RUNTIME = ("Don't assume it's a kubelet problem when it's actually a runtime problem "
              "(check containerd first)")
_D_INODES = "Don't ignore disk pressure because 'df shows 50%' — check inode usage with df -i"
_D_REINSTALL = ("Don't blindly reinstall kubelet; the same config will cause the same failure")
_D_PARTITION = ("Do not restart kubelet blindly during an API server outage. The kubelet keeps "
                "existing pods alive while disconnected. Restarting it only adds a "
                "reconciliation thundering herd when connectivity returns.")
_D_SHIMS = ("avoid manually killing shims, which can leave defunct containers")
_D_CERT = "Do not assume auto-rotation works. Monitor certificate TTL and pending CSRs proactively."

LEAVES: dict[str, Leaf] = {
    "pleg_runtime_slow": Leaf(
        "pleg_runtime_slow", "PLEG relist slow (runtime slow or kubelet starved)",
        "PLEG relisting that queries the container runtime is failing or too slow: the runtime "
        "socket is slow, disk I/O saturation slows runtime state reads, or the kubelet is "
        "starved (CPU, pod density, goroutine leak).",
        ("Capture a goroutine dump before any restart: curl -sk "
         "https://localhost:10250/debug/pprof/goroutine?debug=1 > /tmp/kubelet_goroutines.txt",
         "If PLEG unhealthy: check containerd socket permissions, restart containerd, then kubelet",
         "Reduce pod density or container churn if the node is overloaded. Investigate disk I/O "
         "saturation; high iowait slows runtime state reads.",
         "If crictl ps is fast but kubelet_pleg_relist_duration_seconds is high, investigate "
         "kubelet CPU starvation, excessive pod density, or a goroutine leak"),
        ("kubectl get --raw /api/v1/nodes/<node>/proxy/metrics | grep pleg → relist p99 back "
         "under 10 s", "time crictl ps → answers in well under a second"),
        (_D_RUNTIME, _D_SHIMS),
        ("delete-pod", "restart-containerd"),
        ("slow I/O", "pod density", "goroutine leak")),
    "runtime_down": Leaf(
        "runtime_down", "container runtime dead, hung or socket missing",
        "containerd or CRI-O is dead, or deadlocked holding a lock on the socket and never "
        "responding; the kubelet's PLEG fails and the node goes NotReady.",
        ("If containerd deadlocked: restart containerd (systemctl restart containerd) then kubelet",
         "Check that the runtime process is running with systemctl status containerd. Verify the "
         "socket file exists at the path configured in --container-runtime-endpoint and that the "
         "kubelet has read-write access.",
         "Review runtime logs with journalctl -u containerd for crashes, thin pool exhaustion, or "
         "snapshotter errors."),
        ("time crictl ps → answers within seconds",
         "systemctl status containerd → active (running)",
         "ls -l /run/containerd/containerd.sock → present"),
        (_D_RUNTIME, _D_SHIMS),
        ("restart-containerd",),
        ("dead", "deadlocked (crictl hangs)", "socket missing")),
    "cert_expired": Leaf(
        "cert_expired", "kubelet client certificate expired / rotation failed",
        "The kubelet's client certificate expired (rotation failed or its CSR was never "
        "approved): the API server stops accepting heartbeats and the node goes NotReady.",
        ("Check for pending CSRs with kubectl get csr and approve them manually if necessary: "
         "kubectl certificate approve <csr-name>.",
         "Ensure kube-controller-manager is running and the CSR auto-approval mechanism is "
         "functional.",
         "If kubelet certificate expired: renew with kubeadm alpha certs renew kubelet-client or "
         "regenerate node bootstrap token",
         "If the certificate expired while the API server was unreachable, restore connectivity "
         "first.",
         "Verify NTP synchronization on the node; clock skew causes certificate validation "
         "failures."),
        ("openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem -noout -dates → "
         "notAfter in the future", "kubectl get csr | grep Pending → none"),
        (_D_CERT, _D_REINSTALL),
        ("approve-csr",),
        ("client certificate expired", "pending CSR", "401 Unauthorized")),
    "cni_network": Leaf(
        "cni_network", "CNI plugin / overlay network broken",
        "The CNI plugin binary or config is missing or incompatible (after a reboot or upgrade), "
        "or a kernel module the overlay needs (vxlan) is not loaded: NetworkUnavailable=True.",
        ("If CNI plugin failed: reapply CNI manifests (kubectl apply -f <cni.yaml>) and restart "
         "kubelet",
         "Verify with: ls -la /opt/cni/bin/ and check for the expected binaries.",
         "Load module: modprobe vxlan, and add vxlan to /etc/modules-load.d/ to survive reboot.",
         "Always test CNI functionality after any node image update."),
        ("lsmod | grep vxlan → loaded", "ls -la /opt/cni/bin/ → the plugin binaries are there",
         "kubectl describe node <node> → NetworkUnavailable=False"),
        (_D_RUNTIME,),
        ("reapply-cni", "modprobe-vxlan"),
        ("plugin binary missing", "conflist missing", "vxlan module not loaded")),
    "disk_pressure": Leaf(
        "disk_pressure", "disk space or inodes exhausted",
        "Disk usage (space or inodes) on the root partition or the kubelet data directory is "
        "above the eviction threshold (default 85%): log rotation failure or images filling "
        "/var/log or /var/lib/kubelet.",
        ("If disk pressure: delete unused container images (crictl rmi --prune), clean up "
         "journal logs (journalctl --vacuum-size=500M), or expand disk",
         "Always check both df -h and df -i. If inodes are exhausted, delete old logs or adjust "
         "the eviction threshold via kubelet config"),
        ("df -h /var/lib/kubelet and df -i → below 85%",
         "kubectl describe node <node> → DiskPressure=False"),
        (_D_INODES,),
        ("prune-images", "vacuum-journal"),
        ("space", "inodes", "image GC")),
    "memory_pid_pressure": Leaf(
        "memory_pid_pressure", "kubelet OOM, memory/PID pressure, too many pods",
        "The node exceeds its allocatable memory or PIDs, or runs too many pods (>110 per node "
        "by default): the kubelet is starved or OOM-killed.",
        ("Cordon the node to prevent new scheduling, then drain or delete excess pods to relieve "
         "pressure.",
         "If too many pods: increase node maxPods in kubelet config or scale out pods across "
         "more nodes",
         "Increase --kube-reserved or --system-reserved to protect kubelet resources."),
        ("kubectl describe node <node> → MemoryPressure=False, PIDPressure=False",
         "dmesg -T | grep -i 'killed process' → no new OOM kills",
         "ps -o rss= -C kubelet → under 500 MB"),
        ("Restarting the kubelet temporarily restores responsiveness, but expect a "
         "reconciliation spike in CRI calls and API requests when it returns.",),
        ("delete-pod", "drain"),
        ("kubelet OOM", "PID exhaustion", "too many pods")),
    "apiserver_unreachable": Leaf(
        "apiserver_unreachable", "API server unreachable from the node (partition, LB, etcd)",
        "The node cannot reach the API server (network partition, load balancer or etcd "
        "trouble): lease renewals fail and the node controller marks the node Unknown.",
        ("Fix the network path or control plane issue.",
         "Focus on restoring API server health or load balancer connectivity."),
        ("curl -k -s -o /dev/null -w \"%{http_code}\" https://<apiserver-host>:6443/healthz → "
         "200 or 401", "kubectl get lease <node-name> -n kube-node-lease -o "
         "jsonpath='{.spec.renewTime}' → fresh"),
        (_D_PARTITION,),
        (),
        ("partition", "LB", "etcd", "lease renewals failing")),
    "kubelet_config": Leaf(
        "kubelet_config", "kubelet configuration (flags, cgroup driver, swap, files)",
        "The kubelet refuses to start or run: bad flags/config, a cgroup driver that differs "
        "from the runtime's, swap on, or missing files.",
        ("Check /etc/kubernetes/kubelet.conf and /var/lib/kubelet/config.yaml for "
         "misconfigurations",
         "Make cgroupDriver in /var/lib/kubelet/config.yaml match the runtime's (systemd)",
         "swapoff -a and remove swap from /etc/fstab (or set failSwapOn: false deliberately)"),
        ("systemctl status kubelet → active (running), not restarting",
         "journalctl -u kubelet → no 'misconfiguration' or swap errors"),
        (_D_REINSTALL,),
        ("fix-cgroup-driver", "disable-swap"),
        ("cgroup driver mismatch", "swap on", "bad flags", "missing files")),
    "clock_skew": Leaf(
        "clock_skew", "clock skew (NTP, time jumps)",
        "The node's clock is off: certificates look not yet valid or expired, and leases look "
        "stale.",
        ("Verify NTP synchronization on the node; clock skew causes certificate validation "
         "failures.", "Resync the clock (chronyc makestep / systemctl restart chronyd) and fix "
         "the NTP source"),
        ("timedatectl → System clock synchronized: yes", "date -u on the node matches"),
        (),
        ("sync-clock",),
        ("NTP unsynchronised", "time jump")),
}

# The finer causes under each domain, most specific first: the verdict's leaf is the first one a
# rule that held on the concluded domain points at.
LEAF_CAUSES: dict[str, tuple[tuple[str, str], ...]] = {
    "pleg_runtime_slow": (
        ("relist_slow", "PLEG relist slower than its threshold (the runtime answers, slowly)"),
        ("runtime_ops_slow", "runtime list operations slow (p99 above 5 s)"),
    ),
    "runtime_down": (
        ("dead", "the runtime is not running (crashed, stopped, or failed to start)"),
        ("hung", "the runtime runs but does not answer (deadlocked or starved): calls hang"),
        ("socket_missing", "the runtime socket file is missing"),
    ),
    "cert_expired": (
        ("pending_csr", "the certificate rotation's CSR waits unapproved"),
        ("client_expired", "the kubelet client certificate has expired"),
        ("serving", "the kubelet serving certificate is missing (its CSR is not approved) or "
                    "expired"),
        ("unauthorized", "the API server answers 401 Unauthorized to the kubelet"),
    ),
    "cni_network": (
        ("kernel_module", "a kernel module the overlay needs (vxlan) is not loaded"),
        ("binary_missing", "a CNI plugin binary is missing from /opt/cni/bin"),
        ("config_missing", "no CNI network config in /etc/cni/net.d"),
    ),
    "disk_pressure": (
        ("inodes", "inodes exhausted (df -i), whatever df -h says"),
        ("space", "disk space above the eviction threshold (df -h)"),
        ("image_gc", "image garbage collection cannot free enough space"),
    ),
    "memory_pid_pressure": (
        ("kubelet_oom", "the kernel OOM-kills the kubelet"),
        ("pid", "PIDs exhausted: fork/clone fails"),
        ("too_many_pods", "more pods than maxPods (110 by default)"),
        ("memory", "memory pressure and OOM kills"),
    ),
    "apiserver_unreachable": (
        ("partition", "the API server does not answer from the node (network partition, LB)"),
        ("server_error", "the API server answers 5xx (LB or etcd)"),
        ("lease", "node lease renewals fail"),
    ),
    "kubelet_config": (
        ("cgroup_driver", "kubelet and runtime cgroup drivers differ"),
        ("swap", "swap is on and the kubelet refuses to run with it"),
        ("bad_config", "the kubelet cannot load its config, flags or files"),
    ),
    "clock_skew": (
        ("offset", "the node clock is off (certificates not yet valid, stale leases)"),
        ("ntp_unsynced", "NTP is not synchronised"),
    ),
}

# The action that fixes each finer cause, first; the domain's other actions follow it.
LEAF_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cert_expired", "pending_csr"): ("approve-csr",),
    ("cni_network", "kernel_module"): ("modprobe-vxlan",),
    ("cni_network", "binary_missing"): ("reapply-cni",),
    ("cni_network", "config_missing"): ("reapply-cni",),
    ("disk_pressure", "inodes"): ("prune-images",),
    ("disk_pressure", "space"): ("vacuum-journal", "prune-images"),
    ("disk_pressure", "image_gc"): ("prune-images",),
    ("memory_pid_pressure", "kubelet_oom"): ("delete-pod",),
    ("memory_pid_pressure", "pid"): ("delete-pod",),
    ("memory_pid_pressure", "too_many_pods"): ("drain", "raise-max-pods"),
    ("kubelet_config", "cgroup_driver"): ("fix-cgroup-driver",),
    ("kubelet_config", "swap"): ("disable-swap",),
}
