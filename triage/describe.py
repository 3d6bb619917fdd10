"""`kubectl describe node`-like plain text from the node object, its lease, events and pods.

    text = describe_node(node_obj, events=[...], pods=[...], lease=lease_obj, now=time.time())

Plain text, no markup: it goes into evidence bundles and incident reports. Control characters
from the outside world (event messages, labels) are replaced, so the text prints safely.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from probes.kube import age, parse_time

__all__ = ["describe_node", "events_table", "pods_table"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
W = 20


def _clean(value: Any) -> str:
    return _CONTROL.sub("?", str(value if value is not None else "")).replace("\n", " ")


def _when(ts: float, now: float) -> str:
    if not ts:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({age(ts, now)} ago)"


def _field(lines: list[str], label: str, value: Any) -> None:
    lines.append(f"{label + ':':<{W}}{_clean(value) or '-'}")


def describe_node(node: dict, *, events: list[dict] | None = None,
                  pods: list[dict] | None = None, lease: dict | None = None,
                  now: float) -> str:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    lines: list[str] = []
    _field(lines, "Name", meta.get("name"))
    roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    _field(lines, "Roles", ",".join(r for r in roles if r) or "<none>")
    labels = meta.get("labels") or {}
    lines.append(f"{'Labels:':<{W}}" + (f"\n{'':<{W}}".join(
        f"{_clean(k)}={_clean(v)}" for k, v in sorted(labels.items())) or "<none>"))
    annotations = meta.get("annotations") or {}
    lines.append(f"{'Annotations:':<{W}}" + (f"\n{'':<{W}}".join(
        f"{_clean(k)}: {_clean(v)[:200]}" for k, v in sorted(annotations.items())) or "<none>"))
    _field(lines, "CreationTimestamp", _when(parse_time(meta.get("creationTimestamp")), now))
    taints = spec.get("taints") or []
    lines.append(f"{'Taints:':<{W}}" + (f"\n{'':<{W}}".join(
        _clean(f"{t.get('key')}" + (f"={t.get('value')}" if t.get("value") else "")
               + f":{t.get('effect')}") for t in taints) or "<none>"))
    _field(lines, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    if lease is not None:
        lspec = lease.get("spec") or {}
        lines.append("Lease:")
        lines.append(f"  {'HolderIdentity:':<{W - 2}}{_clean(lspec.get('holderIdentity')) or '-'}")
        lines.append(f"  {'RenewTime:':<{W - 2}}"
                     f"{_when(parse_time(lspec.get('renewTime')), now)}")
    lines.append("Conditions:")
    conds = status.get("conditions") or []
    if conds:
        lines.append(f"  {'Type':<20} {'Status':<7} {'LastHeartbeatTime':<30} "
                     f"{'LastTransitionTime':<30} {'Reason':<28} Message")
        lines.append(f"  {'----':<20} {'------':<7} {'-----------------':<30} "
                     f"{'------------------':<30} {'------':<28} -------")
        for c in conds:
            lines.append(
                f"  {_clean(c.get('type')):<20} {_clean(c.get('status')):<7} "
                f"{_clean(c.get('lastHeartbeatTime')) or '-':<30} "
                f"{_clean(c.get('lastTransitionTime')) or '-':<30} "
                f"{_clean(c.get('reason')):<28} {_clean(c.get('message'))}")
    else:
        lines.append("  <none>")
    lines.append("Addresses:")
    for a in status.get("addresses") or []:
        lines.append(f"  {_clean(a.get('type'))}:  {_clean(a.get('address'))}")
    for section, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = status.get(key) or {}
        if values:
            lines.append(f"{section}:")
            for k, v in sorted(values.items()):
                lines.append(f"  {_clean(k) + ':':<20}{_clean(v)}")
    lines.append("System Info:")
    for label, key in (("Machine ID", "machineID"), ("Boot ID", "bootID"),
                       ("Kernel Version", "kernelVersion"), ("OS Image", "osImage"),
                       ("Operating System", "operatingSystem"), ("Architecture", "architecture"),
                       ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion"),
                       ("Kube-Proxy Version", "kubeProxyVersion")):
        if info.get(key):
            lines.append(f"  {label + ':':<28}{_clean(info.get(key))}")
    if spec.get("podCIDR"):
        _field(lines, "PodCIDR", spec.get("podCIDR"))
    if spec.get("providerID"):
        _field(lines, "ProviderID", spec.get("providerID"))
    if pods is not None:
        running = [p for p in pods
                   if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        lines.append(f"Non-terminated Pods:  ({len(running)} in total)")
        lines.extend(pods_table(running))
    if events is not None:
        lines.append("Events:")
        lines.extend(events_table(events, now))
    return "\n".join(lines) + "\n"


def _event_time(e: dict) -> float:
    return parse_time(e.get("lastTimestamp") or e.get("eventTime")
                      or (e.get("metadata") or {}).get("creationTimestamp"))


def events_table(events: list[dict], now: float, limit: int = 200) -> list[str]:
    """Events oldest first, like describe: Type, Reason, Age (x count), From, Message."""
    if not events:
        return ["  <none>"]
    rows = [f"  {'Type':<8} {'Reason':<28} {'Age':<12} {'From':<24} Message",
            f"  {'----':<8} {'------':<28} {'---':<12} {'----':<24} -------"]
    shown = sorted(events, key=_event_time)[-limit:]
    for e in shown:
        source = e.get("source") or {}
        who = source.get("component") or e.get("reportingComponent") or ""
        ts = _event_time(e)
        when = age(ts, now) if ts else "-"
        count = int(e.get("count") or 1)
        if count > 1:
            when = f"{when} (x{count})"
        rows.append(f"  {_clean(e.get('type')):<8} {_clean(e.get('reason')):<28} {when:<12} "
                    f"{_clean(who)[:24]:<24} {_clean(e.get('message'))}")
    if len(events) > limit:
        rows.append(f"  ... {len(events) - limit} older events not shown")
    return rows


def pods_table(pods: list[dict]) -> list[str]:
    """Namespace, name, phase, ready containers and restarts of the pods on the node."""
    if not pods:
        return ["  <none>"]
    rows = [f"  {'Namespace':<24} {'Name':<48} {'Phase':<10} {'Ready':<6} Restarts",
            f"  {'---------':<24} {'----':<48} {'-----':<10} {'-----':<6} --------"]

    def key(p: dict) -> tuple[str, str]:
        m = p.get("metadata") or {}
        return m.get("namespace", ""), m.get("name", "")

    for pod in sorted(pods, key=key):
        meta, st = pod.get("metadata") or {}, pod.get("status") or {}
        cs = st.get("containerStatuses") or []
        total = len(cs) or len((pod.get("spec") or {}).get("containers") or [])
        ready = sum(1 for c in cs if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in cs)
        rows.append(f"  {_clean(meta.get('namespace')):<24} {_clean(meta.get('name')):<48} "
                    f"{_clean(st.get('phase') or '?'):<10} {f'{ready}/{total}':<6} {restarts}")
    return rows
