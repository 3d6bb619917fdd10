"""The node's facts, like `kubectl describe node`: conditions with who set Ready, taints, labels,
addresses, versions, lease age; then the node's events and the pods on it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from probes.kube import parse_time
from tui.fleet_model import PRESSURES, FleetModel, age_text, clean, labels_of

CONDITION_ORDER = ("Ready",) + tuple(c for c, _ in PRESSURES) + ("NetworkUnavailable",)
LABEL_W = 20


def _when(ts: float, now: float) -> str:
    if not ts:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{age_text(ts, now)} ago ({stamp})"


PLAIN = {"bad": "bold", "warn": "bold", "good": "", "label": "bold", "section": "bold underline"}


def describe(model: FleetModel, name: str, now: float, styles: dict | None = None) -> Text:
    st = {**PLAIN, **(styles or {})}
    entry = model.get(name)
    out = Text(no_wrap=False)
    if entry is None:
        out.append(f"{name}: ", st["label"])
        out.append("this node is no longer in the cluster (deleted, or not yet listed).")
        return out
    rec = entry.rec
    bad = {"False": st["bad"], "Unknown": st["warn"]}.get(rec.ready, st["good"])

    def field(label: str, value: str | Text, style: str = "") -> None:
        out.append(f"{label + ':':<{LABEL_W}}", st["label"])
        if isinstance(value, Text):
            out.append_text(value)
        else:
            out.append(clean(value) or "-", style)
        out.append("\n")

    def section(title: str) -> None:
        out.append(f"\n{title}:\n", st["section"])

    field("Name", rec.name)
    field("Status", Text.assemble((entry.cells["status"], bad),
                                  f"   set by {clean(rec.ready_by) or 'unknown'}"))
    if rec.ready != "True":
        field("Reason", rec.ready_reason)
        field("Message", rec.ready_message)
    state = {"True": "Ready", "False": "NotReady"}.get(rec.ready, "Unknown")
    field(f"{state} since", _when(getattr(rec, "ready_since", 0.0) or 0.0, now))
    field("Last heartbeat", _when(rec.heartbeat, now))
    lease = model.leases.get(name, 0.0)
    field("Lease renewed", _when(lease, now) if lease else "not seen yet")
    field("Roles", rec.roles)
    field("Zone", rec.zone)
    field("Pool", rec.pool)
    pods = model.pods.get(name)
    field("Pods", f"{'?' if pods is None else pods} running of {rec.pods_capacity} allowed")
    field("Unschedulable", "true (cordoned)" if rec.unschedulable else "false",
          st["warn"] if rec.unschedulable else "")
    field("Created", _when(rec.created, now))

    section("Conditions")
    out.append(f"  {'Type':<22}Status\n", st["label"])
    conditions = rec.conditions or {}
    for ctype in list(CONDITION_ORDER) + sorted(set(conditions) - set(CONDITION_ORDER)):
        if ctype not in conditions:
            continue
        status = conditions[ctype]
        healthy = (status == "True") == (ctype == "Ready")
        style = "" if healthy else (st["warn"] if status == "Unknown" else st["bad"])
        out.append(f"  {clean(ctype):<22}")
        out.append(f"{clean(status)}\n", style)

    section("Taints")
    if rec.taints:
        for taint in rec.taints:
            out.append(f"  {clean(taint)}\n")
    else:
        out.append("  <none>\n")

    section("Labels")
    labels = labels_of(rec)
    if labels:
        for key in sorted(labels):
            out.append(f"  {clean(key)}={clean(labels[key])}\n")
    else:
        out.append("  (labels are not in this record)\n")

    section("Addresses")
    addresses = getattr(rec, "addresses", None)
    if addresses:
        items = addresses.items() if isinstance(addresses, dict) else addresses
        for kind, value in items:
            out.append(f"  {clean(kind)}: {clean(value)}\n")
    else:
        out.append(f"  InternalIP: {clean(rec.internal_ip) or '-'}\n")

    section("System Info")
    for label, value in (("Kubelet Version", rec.kubelet_version),
                         ("Container Runtime", rec.runtime),
                         ("Kernel Version", rec.kernel),
                         ("OS Image", rec.os_image)):
        out.append(f"  {label + ':':<22}{clean(value) or '-'}\n")
    if not model.connected:
        out.append("\nThe API server is unreachable: this is the last state received.\n",
                   st["bad"])
    return out


def events_text(items: list[dict[str, Any]], now: float, st: dict | None = None,
                limit: int = 30) -> Text:
    """The node's events, newest first, like the Events section of describe."""
    st = {**PLAIN, **(st or {})}
    out = Text(no_wrap=False)
    if not items:
        out.append("  <none>\n")
        return out

    def when(ev: dict) -> float:
        return parse_time(ev.get("lastTimestamp") or ev.get("eventTime")
                          or (ev.get("metadata") or {}).get("creationTimestamp"))

    out.append(f"  {'Type':<8}{'Reason':<24}{'Age':<8}{'From':<18}Message\n", st["label"])
    for ev in sorted(items, key=when, reverse=True)[:limit]:
        kind = clean(str(ev.get("type") or ""))
        source = ev.get("source") or {}
        who = clean(str(source.get("component") or ev.get("reportingComponent") or ""))
        count = ev.get("count") or 1
        age = age_text(when(ev), now) if when(ev) else "-"
        if count > 1:
            age = f"{age} x{count}"
        out.append(f"  {kind:<8}", st["warn"] if kind == "Warning" else "")
        out.append(f"{clean(str(ev.get('reason') or '')):<24}{age:<8}{who[:17]:<18}")
        out.append(clean(str(ev.get("message") or "")).replace("\n", " ") + "\n")
    if len(items) > limit:
        out.append(f"  … {len(items) - limit} older events\n")
    return out


def pods_text(items: list[dict[str, Any]], st: dict | None = None) -> Text:
    """The pods bound to the node: namespace/name, phase, ready containers, restarts."""
    st = {**PLAIN, **(st or {})}
    out = Text(no_wrap=False)
    if not items:
        out.append("  <none>\n")
        return out
    out.append(f"  {'Namespace/Name':<52}{'Phase':<11}{'Ready':<7}Restarts\n", st["label"])
    for pod in sorted(items, key=lambda p: ((p.get("metadata") or {}).get("namespace", ""),
                                           (p.get("metadata") or {}).get("name", ""))):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        cs = status.get("containerStatuses") or []
        ready = sum(1 for c in cs if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in cs)
        phase = clean(str(status.get("phase") or "?"))
        name = clean(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        out.append(f"  {name:<52}")
        out.append(f"{phase:<11}", "" if phase in ("Running", "Succeeded") else st["warn"])
        out.append(f"{ready}/{len(cs) or len((pod.get('spec') or {}).get('containers') or [])}"
                   .ljust(7))
        out.append(f"{restarts}\n", st["warn"] if restarts else "")
    return out
