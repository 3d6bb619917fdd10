"""The lines above the fleet table: which cluster, how many nodes are in trouble, and whether
the data is live."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui.fleet_model import COLUMN_BY_ID, GROUPS, FleetModel, age_text


def describe_state(model: FleetModel, now: float) -> tuple[str, str] | None:
    """The banner line and its kind (error, warning, info), or None when all is well."""
    if not model.connected:
        lost = age_text(model.stale_since, now) if model.stale_since else "?"
        if not model.entries:
            return f"not connected: {model.error or 'the API server cannot be reached'}", "error"
        return (f"stale: API unreachable for {lost} — {model.error or 'no answer'} "
                f"(showing the last data received)"), "error"
    if not model.synced:
        if model.entries:
            return f"listing nodes: {len(model.entries)} so far…", "info"
        return "connecting to the API server and listing nodes…", "info"
    if model.listing:
        return f"relisting nodes: {len(model.entries)} so far…", "info"
    return None


class FleetHeader(Vertical):
    """Two lines (more when something is wrong): identity, counts and view, then a banner that
    wraps so the whole error can be read."""

    DEFAULT_CSS = """
    FleetHeader {
        height: auto;
        background: $panel;
        color: $foreground;
        padding: 0 1;
        & > Static { height: auto; }
        & > #identity, & > #counts { text-wrap: nowrap; text-overflow: ellipsis; }
        & > #banner { display: none; }
        & > #banner.-error { display: block; color: $error; text-style: bold; }
        & > #banner.-info { display: block; color: $text-muted; }
        & > .header--title { text-style: bold; color: $primary; }
        & > .header--bad { color: $error; text-style: bold; }
        & > .header--warn { color: $warning; text-style: bold; }
        & > .header--good { color: $success; }
        & > .header--muted { color: $text-muted; }
        /* NO_COLOR: what needs attention is told by weight and reverse video, not by a grey */
        &:nocolor > #banner.-error { color: $foreground; text-style: bold reverse; }
        &:nocolor > .header--bad { color: $foreground; text-style: bold reverse; }
        &:nocolor > .header--warn { color: $foreground; text-style: bold reverse; }
    }
    """
    COMPONENT_CLASSES = {"header--title", "header--bad", "header--warn", "header--good",
                         "header--muted"}

    def __init__(self, model: FleetModel, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.title = title
        self.context = ""
        self.cluster = ""
        self.server = ""
        self._key: tuple = ()
        self.text = ""  # what the header says, as plain text

    def compose(self) -> ComposeResult:
        yield Static(id="identity")
        yield Static(id="counts")
        yield Static(id="banner")

    def set_source(self, context: str, server: str, cluster: str = "") -> None:
        self.context, self.server, self.cluster = context, server, cluster

    def update_from(self, now: float) -> None:
        model = self.model
        counts = model.counts
        state = describe_state(model, now)
        key = (self.title, self.context, self.cluster, self.server, counts.total, counts.not_ready,
               counts.unknown, counts.cordoned, counts.shown, model.sort, model.reverse,
               model.group, model.filter_text, state)
        if key == self._key:
            return
        self._key = key
        style = self.get_component_rich_style
        line1 = Text(no_wrap=True, overflow="ellipsis")
        line1.append(self.title, style("header--title"))
        if self.context and self.cluster == self.context:  # kind, minikube, EKS ARNs...
            line1.append("  context/cluster ", style("header--muted"))
            line1.append(self.context)
        else:
            if self.context:
                line1.append("  context ", style("header--muted"))
                line1.append(self.context)
            if self.cluster:
                line1.append("  cluster ", style("header--muted"))
                line1.append(self.cluster)
        if self.server:
            line1.append("  server ", style("header--muted"))
            line1.append(self.server)
        line2 = Text(no_wrap=True, overflow="ellipsis")
        line2.append(f"{counts.total} nodes")
        line2.append("  ")
        line2.append(f"{counts.not_ready} NotReady",
                     style("header--bad") if counts.not_ready else style("header--good"))
        line2.append("  ")
        line2.append(f"{counts.unknown} Unknown",
                     style("header--warn") if counts.unknown else style("header--good"))
        line2.append("  ")
        line2.append(f"{counts.cordoned} cordoned",
                     style("header--warn") if counts.cordoned else style("header--muted"))
        arrow = "▼" if model.reverse else "▲"
        line2.append(f"  │ sort {COLUMN_BY_ID[model.sort].title}{arrow}", style("header--muted"))
        if model.group:
            line2.append(f" │ by {GROUPS[model.group][0]}", style("header--muted"))
        if model.filter_text:
            line2.append(" │ filter ", style("header--muted"))
            line2.append(model.filter_text, style("header--warn"))
            line2.append(f" ({counts.shown} shown)", style("header--muted"))
        self.query_one("#identity", Static).update(line1)
        self.query_one("#counts", Static).update(line2)
        banner = self.query_one("#banner", Static)
        banner.set_class(state is not None and state[1] == "error", "-error")
        banner.set_class(state is not None and state[1] != "error", "-info")
        banner.update(Text(state[0]) if state else Text())
        self.text = "\n".join([line1.plain, line2.plain] + ([state[0]] if state else []))
