"""One node, described like `kubectl describe node`: conditions, taints, labels, addresses,
versions. Kept live from the same model as the fleet."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.fleet_model import PRESSURES, FleetModel, age_text, clean, labels_of

CONDITION_ORDER = ("Ready",) + tuple(c for c, _ in PRESSURES) + ("NetworkUnavailable",)
LABEL_W = 20


def _when(ts: float, now: float) -> str:
    if not ts:
        return "-"
    stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
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
    field("Ready since", _when(getattr(rec, "ready_since", 0.0) or 0.0, now))
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


class NodeScreen(Screen):
    """The node view (describe-like for now)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="node.back"),
        Binding("j,down", "scroll('down')", "Down", show=False, id="node.down"),
        Binding("k,up", "scroll('up')", "Up", show=False, id="node.up"),
    ]
    COMPONENT_CLASSES = {"node--bad", "node--warn", "node--good", "node--label", "node--section"}
    DEFAULT_CSS = """
    NodeScreen > .node--bad { color: $error; text-style: bold; }
    NodeScreen > .node--warn { color: $warning; text-style: bold; }
    NodeScreen > .node--good { color: $success; }
    NodeScreen > .node--label { color: $primary; text-style: bold; }
    NodeScreen > .node--section { color: $secondary; text-style: bold underline; }
    NodeScreen #node-title { height: 1; background: $panel; color: $primary;
                             text-style: bold; padding: 0 1; }
    NodeScreen #node-body { padding: 0 1; }
    """

    def __init__(self, model: FleetModel, name: str, now: float) -> None:
        super().__init__()
        self.model = model
        self.node_name = name
        self._key: tuple = ()
        self._now = now

    def compose(self) -> ComposeResult:
        yield Static(Text(f"node {self.node_name}"), id="node-title")
        with VerticalScroll(id="node-scroll"):
            yield Static(id="node-body")
        yield Footer()

    def on_mount(self) -> None:
        self.update_from(self._now)
        self.query_one("#node-scroll").focus()

    def update_from(self, now: float) -> None:
        entry = self.model.get(self.node_name)
        key = (entry.version if entry else None, int(now), self.model.connected,
               self.model.leases.get(self.node_name), self.model.pods.get(self.node_name))
        if key == self._key:
            return
        self._key = key
        styles = {k: self.get_component_rich_style(f"node--{k}") for k in PLAIN}
        self.query_one("#node-body", Static).update(
            describe(self.model, self.node_name, now, styles))

    def action_scroll(self, direction: str) -> None:
        scroll = self.query_one("#node-scroll", VerticalScroll)
        if direction == "down":
            scroll.scroll_down(animate=False)
        else:
            scroll.scroll_up(animate=False)
