"""Which pod to delete, chosen from evidence as an engineer would, and why.

Candidates are the node's workload pods: not DaemonSet pods (they come straight back), not
static/mirror pods, not kube-system, not already terminating. Then, by the trouble the verdict
names:

- memory (OOM kills, MemoryPressure): the pod whose processes hold the most memory, measured on
  the node (`ps` RSS of the processes under each pod's shim, mapped to pods with `crictl pods`),
  or the kubelet's cAdvisor working set when the node cannot be reached;
- PIDs and I/O (PIDPressure, PLEG slow on iowait): the kubelet's cAdvisor per-pod process count or
  disk writes when it reports them; otherwise the pod that started just before the trouble did
  (what changed?), with the node-level signal (iowait, PIDPressure) quoted beside it.

The choice carries the evidence lines it rests on; when nothing stands out, there is no choice
(PlanError) rather than a guess.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from probes.kube import parse_time

__all__ = ["PodChoice", "choose_pod", "NoTarget", "ONSET_WINDOW"]

ONSET_WINDOW = 1800.0  # a pod started this long before the trouble may have caused it
MEMORY_SHARE = 0.25  # the biggest pod must hold at least this share of the node's memory
GiB = 1024 ** 3


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


_SERIES = re.compile(r'^(container_memory_working_set_bytes|container_processes|'
                     r'container_fs_writes_bytes_total)\{([^}]*)\}\s+(\S+)', re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _cadvisor(text: str) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for name, labels, value in _SERIES.findall(text):
        lab = dict(_LABEL.findall(labels))
        if not lab.get("pod") or lab.get("container") in ("", "POD"):
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        slot = out.setdefault((lab.get("namespace", ""), lab["pod"]), {})
        slot[name] = slot.get(name, 0.0) + v
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
    for pid, ppid, rss in rows:
        ref = shims.get(ppid)
        if ref is not None:
            out[ref] = out.get(ref, 0) + rss * 1024
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
    for ref, series in _cadvisor(metrics_text).items():
        p = by_ref.get(ref)
        if p is None:
            continue
        if "container_memory_working_set_bytes" in series:
            p.memory = int(series["container_memory_working_set_bytes"])
            p.memory_via = "kubelet cAdvisor working set"
        p.processes = series.get("container_processes")
        p.writes = series.get("container_fs_writes_bytes_total")
    evidence: list[str] = []
    if memory_trouble:
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
    if pid_trouble:
        counted = [p for p in candidates if p.processes]
        if counted:
            top = max(counted, key=lambda p: p.processes or 0)
            evidence.append(f"processes by pod (cAdvisor): {top.namespace}/{top.name} "
                            f"{int(top.processes or 0)}")
            return PodChoice(top.namespace, top.name,
                             f"it runs {int(top.processes or 0)} processes (cAdvisor)", evidence)
    elif not memory_trouble:
        written = [p for p in candidates if p.writes]
        if written:
            top = max(written, key=lambda p: p.writes or 0)
            evidence.append(f"disk writes by pod (cAdvisor): {top.namespace}/{top.name} "
                            f"{(top.writes or 0) / GiB:.1f} GiB")
            return PodChoice(top.namespace, top.name,
                             f"it wrote {(top.writes or 0) / GiB:.1f} GiB, the most on the node",
                             evidence)
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
    import time

    return time.strftime("%H:%M:%S", time.gmtime(ts)) + "Z"
