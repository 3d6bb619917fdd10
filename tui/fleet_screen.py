"""The fleet screen: header, table, filter line, footer."""

from __future__ import annotations

import re
from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui.fleet_header import FleetHeader
from tui.fleet_model import COLUMN_BY_ID, GROUPS, FleetModel
from tui.fleet_table import FleetTable
from tui.help_screen import HelpScreen, key_help

# The kind of failure, told by how probes word their errors (probes.kubeconfig, .credentials,
# .kube); the first pattern that matches wins.
_FAILURES: tuple[tuple[str, str], ...] = (
    (r"^no kubeconfig at ", "no kubeconfig was found"),
    (r"^(kubeconfig|user) .* is malformed", "the kubeconfig is malformed"),
    (r"^kubeconfig .* cannot be read", "the kubeconfig cannot be read"),
    (r"^context .*: (tokenFile|certificate-authority|client-certificate|client-key)",
     "a credential or certificate the kubeconfig names cannot be loaded"),
    (r"^(the )?exec plugin ", "the credential plugin failed"),
    (r"^(no context chosen|context |cluster )", "the kubeconfig's context cannot be used"),
    (r"\(401 Unauthorized\)", "the API server refused the credentials"),
    (r"\(403 Forbidden", "listing the nodes is not allowed"),
    (r"^TLS failure", "the TLS connection to the API server failed"),
    (r"^(cannot reach|cannot resolve|the connection to the API server)|did not answer in time",
     "the API server could not be reached"),
    (r"^the API server at ", "the API server answered with an error"),
)


def why_not_connected(error: str) -> str:
    """The kind of failure behind `error` in a few words, for the empty table's line."""
    text = re.sub(r"^(nodes|leases|pods): ", "", error)  # probes.fleet names the stream
    for pattern, words in _FAILURES:
        if re.search(pattern, text):
            return words
    return "not connected"


class FilterInput(Input):
    BINDINGS = [Binding("escape", "cancel", "Clear filter", id="filter.cancel")]

    def action_cancel(self) -> None:
        self.screen.action_clear_filter()  # type: ignore[attr-defined]


class FleetScreen(Screen):
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="fleet.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="fleet.clear_filter"),
        Binding("s", "cycle_sort", "Sort", id="fleet.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="fleet.reverse"),
        Binding("g", "cycle_group", "Group", id="fleet.group"),
        Binding("question_mark", "help", "Help", id="fleet.help"),
    ]
    DEFAULT_CSS = """
    FleetScreen #filter { dock: bottom; height: 3; display: none; margin-bottom: 1; }
    FleetScreen #filter.-active { display: block; }
    """

    def __init__(self, model: FleetModel, clock: Callable[[], float], title: str) -> None:
        super().__init__()
        self.model = model
        self.clock = clock
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield FleetHeader(self.model, self.title_text, id="fleet-header")
        yield FleetTable(self.model, self.clock, id="fleet-table")
        yield FilterInput(placeholder="filter: name, label=value, notready, pressure, net … "
                                      "(esc clears)", id="filter")
        yield Footer()

    @property
    def table(self) -> FleetTable:
        return self.query_one(FleetTable)

    @property
    def header(self) -> FleetHeader:
        return self.query_one(FleetHeader)

    ready = False  # composed and mounted: the app's frames may update it

    def on_mount(self) -> None:
        self.table.focus()
        self.update_view(self.clock())
        self.ready = True

    def update_view(self, now: float) -> None:
        """Called once per frame by the app (and after every key that changes the view)."""
        model = self.model
        rows = model.view()
        table = self.table
        if rows:
            table.empty_text = ""
        elif model.filter_text and model.entries:
            table.empty_text = f"no node matches the filter {model.filter_text!r} (esc clears it)"
        elif not model.connected:
            table.empty_text = f"no nodes: {why_not_connected(model.error)} (see above)"
        elif not model.synced:
            table.empty_text = "waiting for the first page of nodes…"
        else:
            table.empty_text = "the cluster has no nodes"
        table.update_rows(rows, now)
        self.header.update_from(now)

    def _changed(self) -> None:
        self.update_view(self.clock())

    # -- actions -----------------------------------------------------------------------------------
    def sort_by(self, column: str) -> None:
        if column not in COLUMN_BY_ID:
            return
        if self.model.sort == column:
            self.model.toggle_reverse()
        else:
            self.model.set_sort(column, reverse=False)
        self._changed()

    def group_by(self, group: str | None) -> None:
        self.model.set_group(group)
        self._changed()
        self.table.move_to(self.table.cursor)

    def action_cycle_sort(self) -> None:
        self.model.cycle_sort()
        self._changed()

    def action_reverse_sort(self) -> None:
        self.model.toggle_reverse()
        self._changed()

    def action_cycle_group(self) -> None:
        self.model.cycle_group()
        self._changed()
        self.table.move_to(self.table.cursor)

    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.add_class("-active")
        box.value = self.model.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.remove_class("-active")
        if box.value:
            box.value = ""
        self.model.set_filter("")
        self.table.focus()
        self._changed()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "clear_filter" and not self.model.filter_text:
            return None  # shown dimmed: nothing to clear
        return True

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.model.set_filter(event.value)
        self._changed()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        box = self.query_one("#filter", FilterInput)
        box.remove_class("-active")
        self.table.focus()
        self.table.move_to(0)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(key_help(self)))

    @on(FleetTable.Opened)
    def open_node(self, event: FleetTable.Opened) -> None:
        from tui.node_screen import NodeScreen  # loaded on the first node opened, not at start

        self.app.push_screen(NodeScreen(self.model, event.name, self.clock()))

    @on(FleetTable.SortRequested)
    def sort_clicked(self, event: FleetTable.SortRequested) -> None:
        self.sort_by(event.column)

    @property
    def group_label(self) -> str:
        return GROUPS[self.model.group][0] if self.model.group else "none"
