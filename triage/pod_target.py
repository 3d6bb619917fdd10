"""Which pod to delete, chosen from evidence as an engineer would, and why.

Candidates are the node's workload pods: not DaemonSet pods (they come straight back), not
static/mirror pods, not kube-system, not already terminating. Then, by the trouble the verdict
names:

- memory (OOM kills, MemoryPressure): the pod whose processes hold the most memory, measured on
  the node (`ps` RSS of the processes under each pod's shim, mapped to pods with `crictl pods`),
  or the kubelet's cAdvisor working set when the node cannot be reached;
- PIDs (PIDPressure): the kubelet's cAdvisor `container_processes` summed per pod;
- I/O (PLEG slow on iowait): cAdvisor `container_fs_writes_bytes_total` per pod, as a rate over the
  time since the container started (`container_start_time_seconds`).

Only a cluster whose kubelets give no cAdvisor figures falls back to the pod that started just
before the trouble did (what changed?), with the node-level signal (iowait, PIDPressure) quoted
beside it. The choice carries the evidence lines it rests on and names the figure that decided
it; when the figures show no pod standing out, there is no choice (NoTarget) rather than a guess.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from probes.kube import parse_time

__all__ = ["PodChoice", "choose_pod", "NoTarget", "ONSET_WINDOW"]

ONSET_WINDOW = 1800.0  # a pod started this long before the trouble may have caused it
MEMORY_SHARE = 0.25  # the biggest pod must hold at least this share of the node's memory
STANDS_OUT = 5.0  # the top pod's processes or write rate must be this many times the next pod's
MIN_PROCESSES = 100
MIN_WRITE_RATE = 10 * 1024 ** 2  # bytes/s
GiB = 1024 ** 3
MiB = 1024 ** 2


class NoTarget(Exception):
    """No pod stands out; the message says what was looked at."""


@dataclass
class PodChoice:
    namespace: str
    name: str
    why: str
    evidence: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class _Pod:
    namespace: str
    name: str
    created: float
    memory: int | None = None
    memory_via: str = ""
    processes: float | None = None
    writes: float | None = None
    write_rate: float | None = None
    up: float = 0.0  # seconds its containers have run, by cAdvisor


def _candidates(pods: list[dict]) -> list[_Pod]:
    out = []
    for p in pods:
        meta = p.get("metadata") or {}
        if meta.get("deletionTimestamp") or meta.get("namespace") == "kube-system":
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if any(r.get("kind") == "DaemonSet" for r in meta.get("ownerReferences") or []):
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        started = parse_time((p.get("status") or {}).get("startTime")) \
            or parse_time(meta.get("creationTimestamp"))
        out.append(_Pod(meta.get("namespace", ""), meta.get("name", ""), started))
    return out


def _onset(node: dict) -> tuple[float, str]:
    """When the trouble began, by the node's conditions: the earliest transition into a bad
    state (Ready not True, a pressure condition True)."""
    best, what = 0.0, ""
    for c in (node.get("status") or {}).get("conditions") or []:
        kind, status = c.get("type"), c.get("status")
        bad = (kind == "Ready" and status != "True") or \
            (kind in ("MemoryPressure", "DiskPressure", "PIDPressure") and status == "True")
        t = parse_time(c.get("lastTransitionTime"))
        if bad and t and (not best or t < best):
            best, what = t, f"{kind}={status}"
    return best, what


CADVISOR = ("container_memory_working_set_bytes", "container_processes",
            "container_fs_writes_bytes_total", "container_start_time_seconds")
_SERIES = re.compile(r'^(' + "|".join(CADVISOR) + r')\{([^}]*)\}\s+(\S+)(?:\s+(\d+))?\s*$', re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _cadvisor(text: str) -> dict[tuple[str, str], dict[str, float]]:
    """Per pod: the sum over its containers of each series (the pod's own cgroup and the sandbox,
    container "" or "POD", are left out), the earliest container start, and "at": the scrape
    time the series carry (the node's clock, like the start times)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for name, labels, value, stamp in _SERIES.findall(text):
        lab = dict(_LABEL.findall(labels))
        if not lab.get("pod") or lab.get("container") in (None, "", "POD"):
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        slot = out.setdefault((lab.get("namespace", ""), lab["pod"]), {})
        if name == "container_start_time_seconds":
            slot[name] = min(slot.get(name, v), v)
        else:
            slot[name] = slot.get(name, 0.0) + v
        if stamp:
            slot["at"] = max(slot.get("at", 0.0), int(stamp) / 1000)
    return out


def _ps_memory(ps_out: str, crictl_out: str) -> dict[tuple[str, str], int]:
    """RSS (bytes) under each pod's shim: shim `-id SANDBOX` -> `crictl pods` row -> pod."""
    pods: dict[str, tuple[str, str]] = {}
    for line in crictl_out.splitlines():
        cols = line.split()
        if len(cols) >= 5 and re.fullmatch(r"[0-9a-f]{8,64}", cols[0]):
            state_at = next((i for i, c in enumerate(cols) if c in ("Ready", "NotReady")), None)
            if state_at is not None and len(cols) > state_at + 2:
                pods[cols[0]] = (cols[state_at + 2], cols[state_at + 1])
    shims: dict[int, tuple[str, str]] = {}
    rows = []
    for line in ps_out.splitlines()[1:]:
        cols = line.split(None, 3)
        if len(cols) < 4 or not cols[0].isdigit():
            continue
        pid, ppid, rss, args = int(cols[0]), int(cols[1]), int(cols[2] or 0), cols[3]
        rows.append((pid, ppid, rss))
        m = re.search(r"containerd-shim\S*\s.*-id\s+([0-9a-f]{12,64})", args)
        if m:
            sandbox = m.group(1)
            for short, ref in pods.items():
                if sandbox.startswith(short):
                    shims[pid] = ref
    out: dict[tuple[str, str], int] = {}
    for _pid, ppid, rss in rows:
        owner = shims.get(ppid)
        if owner is not None:
            out[owner] = out.get(owner, 0) + rss * 1024
    return out


async def _node_text(ssh: Any, node: str, command: str, timeout: float = 10.0) -> str:
    if ssh is None:
        return ""
    try:
        r = await ssh.run(node, command, timeout, sudo=False)
    except Exception:
        return ""
    return r.stdout if r.exit_status == 0 and not r.timed_out else ""


async def choose_pod(kube: Any, ssh: Any, kubelet: Any, node: str, verdict: Any | None,
                     node_object: dict | None = None) -> PodChoice:
    get = kube.get_json
    pods_body, node_obj = await asyncio.gather(
        asyncio.to_thread(get, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"},
                          doing=f"list pods on {node}"),
        asyncio.to_thread(get, f"/api/v1/nodes/{node}", doing=f"get node {node}")
        if node_object is None else asyncio.sleep(0, node_object))
    candidates = _candidates(pods_body.get("items") or [])
    if not candidates:
        raise NoTarget(f"{node} runs no workload pod that could be deleted (DaemonSet, static "
                       f"and kube-system pods are left alone)")
    conds = {c.get("type"): c.get("status")
             for c in (node_obj.get("status") or {}).get("conditions") or []}
    text = " ".join(" ".join(d.get("evidence") or []) for d in (verdict.domains if verdict
                                                                 else [])
                    if d.get("status") in ("confirmed", "suspected"))
    memory_trouble = conds.get("MemoryPressure") == "True" or \
        bool(re.search(r"oom.kill|killed process|out of memory|OOM kills", text, re.I))
    pid_trouble = conds.get("PIDPressure") == "True" or \
        "resource temporarily unavailable" in text
    by_ref = {(p.namespace, p.name): p for p in candidates}

    metrics_text = ""
    if kubelet is not None:
        try:
            f, _ = await kubelet.fetch_auto(node, "/metrics/cadvisor", timeout=8.0)
            if getattr(f, "status", 0) == 200:
                metrics_text = f.text()
        except Exception:
            metrics_text = ""
    scraped = time.time()
    figures = _cadvisor(metrics_text)
    for ref, series in figures.items():
        p = by_ref.get(ref)
        if p is None:
            continue
        if "container_memory_working_set_bytes" in series:
            p.memory = int(series["container_memory_working_set_bytes"])
            p.memory_via = "cAdvisor container_memory_working_set_bytes"
        p.processes = series.get("container_processes")
        p.writes = series.get("container_fs_writes_bytes_total")
        start = series.get("container_start_time_seconds")
        if p.writes is not None and start:
            p.up = max(1.0, series.get("at", scraped) - start)
            p.write_rate = p.writes / p.up
    cadvisor_counts = any(p.processes is not None for p in candidates)
    cadvisor_io = any(p.write_rate is not None for p in candidates)
    io_trouble = bool(re.search(r"PLEG|iowait|relist|I/O", text, re.I))
    named = memory_trouble or pid_trouble or io_trouble  # else: whatever figure stands out
    evidence: list[str] = []
    if memory_trouble or not named:
        ps_out, crictl_out = await asyncio.gather(
            _node_text(ssh, node, "ps -e -o pid,ppid,rss,args"),
            _node_text(ssh, node, "sudo -n crictl pods"))
        for ref, rss in _ps_memory(ps_out, crictl_out).items():
            if ref in by_ref:
                by_ref[ref].memory, by_ref[ref].memory_via = rss, "ps RSS under its shim"
        measured = [p for p in candidates if p.memory]
        if measured:
            total = _node_memory(node_obj)
            top = max(measured, key=lambda p: p.memory or 0)
            share = (top.memory or 0) / total if total else 1.0
            evidence.append(f"memory by pod ({top.memory_via}): " + ", ".join(
                f"{p.namespace}/{p.name} {(p.memory or 0) / GiB:.1f} GiB"
                for p in sorted(measured, key=lambda p: -(p.memory or 0))[:4]))
            if share >= MEMORY_SHARE:
                return PodChoice(top.namespace, top.name,
                                 f"it holds {(top.memory or 0) / GiB:.1f} GiB, "
                                 f"{share:.0%} of the node's memory ({top.memory_via})", evidence)
            if memory_trouble and not (pid_trouble and cadvisor_counts):
                raise NoTarget(f"no workload pod on {node} holds {MEMORY_SHARE:.0%} of its "
                               f"memory (the most: {top.namespace}/{top.name}, {share:.0%}, by "
                               f"{top.memory_via}); choose the pod by hand")
    if (pid_trouble or not named) and cadvisor_counts:
        choice = _by_processes(node, candidates, evidence, must=pid_trouble)
        if choice is not None:
            return choice
    if (io_trouble or not named) and cadvisor_io:
        choice = _by_writes(node, candidates, evidence, must=io_trouble)
        if choice is not None:
            return choice
    if cadvisor_counts or cadvisor_io:
        raise NoTarget(f"the kubelet's cAdvisor figures (memory, processes, disk writes) single "
                       f"out no workload pod on {node}; choose the pod by hand")
    onset, what = _onset(node_obj)
    if not onset:
        raise NoTarget(f"no pod on {node} stands out and the node's conditions do not say when "
                       f"the trouble began; choose the pod by hand")
    before = [p for p in candidates if p.created and onset - ONSET_WINDOW <= p.created <= onset]
    if not before:
        raise NoTarget(f"no workload pod on {node} started in the {ONSET_WINDOW / 60:.0f} min "
                       f"before {what} (at {_clock(onset)}); choose the pod by hand")
    latest = max(before, key=lambda p: p.created)
    others = [p for p in before if p is not latest]
    signal = await _node_signal(ssh, node, conds, pid_trouble)
    if signal:
        evidence.append(signal)
    evidence.append(f"{what} since {_clock(onset)}; {latest.namespace}/{latest.name} started "
                    f"{onset - latest.created:.0f} s before"
                    + (f" (also started in that window: "
                       f"{', '.join(p.namespace + '/' + p.name for p in others[:3])})"
                       if others else "; no other workload pod started in the "
                       f"{ONSET_WINDOW / 60:.0f} min before"))
    return PodChoice(latest.namespace, latest.name,
                     f"it is the last workload pod started before the trouble began "
                     f"({what} at {_clock(onset)}, {onset - latest.created:.0f} s after it "
                     f"started)", evidence)


def _stands_out(ranked: list[_Pod], value) -> tuple[float, float]:
    """The top pod's figure and the next one's (0 when it is alone)."""
    return value(ranked[0]), value(ranked[1]) if len(ranked) > 1 else 0.0


def _by_processes(node: str, candidates: list[_Pod], evidence: list[str],
                  must: bool) -> PodChoice | None:
    """The pod with by far the most processes; when none stands out, NoTarget if MUST (the
    trouble is PIDs), else None."""
    ranked = sorted((p for p in candidates if p.processes is not None),
                    key=lambda p: -(p.processes or 0))
    evidence.append("processes by pod (cAdvisor container_processes): " + ", ".join(
        f"{p.namespace}/{p.name} {int(p.processes or 0)}" for p in ranked[:4]))
    top, nxt = _stands_out(ranked, lambda p: p.processes or 0)
    if top < MIN_PROCESSES or top < STANDS_OUT * nxt:
        if not must:
            return None
        raise NoTarget(f"no workload pod on {node} stands out by processes (cAdvisor "
                       f"container_processes: the most is {ranked[0].namespace}/"
                       f"{ranked[0].name} with {int(top)}); choose the pod by hand")
    best = ranked[0]
    versus = f"; the next pod runs {int(nxt)}" if len(ranked) > 1 else \
        "; the only workload pod measured"
    return PodChoice(best.namespace, best.name,
                     f"it runs {int(top)} processes (cAdvisor container_processes{versus})",
                     evidence)


def _by_writes(node: str, candidates: list[_Pod], evidence: list[str],
               must: bool) -> PodChoice | None:
    """The pod writing to disk by far the fastest; as _by_processes otherwise."""
    ranked = sorted((p for p in candidates if p.write_rate is not None),
                    key=lambda p: -(p.write_rate or 0))
    evidence.append("disk writes by pod (cAdvisor container_fs_writes_bytes_total over the time "
                    "since each container started): " + ", ".join(
                        f"{p.namespace}/{p.name} {(p.write_rate or 0) / MiB:.1f} MiB/s"
                        for p in ranked[:4]))
    top, nxt = _stands_out(ranked, lambda p: p.write_rate or 0)
    if top < MIN_WRITE_RATE or top < STANDS_OUT * nxt:
        if not must:
            return None
        raise NoTarget(f"no workload pod on {node} stands out by disk writes (cAdvisor "
                       f"container_fs_writes_bytes_total: the most is {ranked[0].namespace}/"
                       f"{ranked[0].name} at {top / MiB:.1f} MiB/s); choose the pod by hand")
    best = ranked[0]
    versus = f"; the next pod writes {nxt / MiB:.1f} MiB/s" if len(ranked) > 1 else \
        "; the only workload pod measured"
    return PodChoice(best.namespace, best.name,
                     f"it writes {top / MiB:.0f} MiB/s to disk ({(best.writes or 0) / GiB:.1f} "
                     f"GiB in {best.up / 60:.0f} min; cAdvisor container_fs_writes_bytes_total"
                     f"{versus})", evidence)


async def _node_signal(ssh: Any, node: str, conds: dict, pid_trouble: bool) -> str:
    if pid_trouble:
        return "PIDPressure=True: the node's PID table is nearly full"
    out = await _node_text(ssh, node, "vmstat 1 2")
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    if rows and len(rows[-1]) >= 16:
        blocked, wa = rows[-1][1], rows[-1][15]
        return f"vmstat: {blocked} processes blocked on I/O, {wa}% iowait"
    return ""


def _node_memory(node: dict) -> int:
    text = str(((node.get("status") or {}).get("capacity") or {}).get("memory") or "")
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    if not m:
        return 0
    return int(m.group(1)) * {"Ki": 1024, "Mi": 1024 ** 2, "Gi": GiB, None: 1}[m.group(2)]


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + "Z"
