"""The nodewb Textual app: for now, the fleet's first screen."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from probes.kube import Kube, KubeError, NodeRecord, age

COLUMNS = ("NAME", "STATUS", "REASON", "HEARTBEAT", "ZONE", "POOL", "VERSION", "KERNEL")
STATUS_STYLE = {"True": "green", "False": "bold red", "Unknown": "bold yellow"}


class NodewbApp(App):
    TITLE = "nodewb"
    CSS = """
    #summary { height: 1; padding: 0 1; }
    #error { color: $error; padding: 1 2; display: none; }
    DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, source: "NodeSource", title: str = "nodewb", clock=time.time) -> None:
        super().__init__()
        self.source = source
        self.sub_title = title
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="summary")
        yield Static(id="error")
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.load_nodes()

    def action_refresh(self) -> None:
        self.load_nodes()

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()

    @work(exclusive=True, group="list-nodes", thread=True, exit_on_error=False)
    def load_nodes(self) -> None:
        try:
            records = self.source.list_nodes()
        except KubeError as err:
            self.call_from_thread(self.show_error, str(err))
            return
        self.call_from_thread(self.show_nodes, records)

    def show_error(self, message: str) -> None:
        error = self.query_one("#error", Static)
        error.update(Text(message))
        error.display = True
        self.query_one("#summary", Static).update(Text("not connected", style="bold red"))

    def show_nodes(self, records: list[NodeRecord]) -> None:
        self.query_one("#error", Static).display = False
        table = self.query_one(DataTable)
        now = self.clock()
        table.clear()
        for r in sorted(records, key=lambda r: (r.ready == "True", r.name)):
            table.add_row(
                Text(r.name),
                Text(r.status, style=STATUS_STYLE.get(r.ready, "")),
                Text(r.ready_reason if r.ready != "True" else ""),
                Text(age(r.heartbeat, now)),
                Text(r.zone), Text(r.pool), Text(r.kubelet_version), Text(r.kernel),
                key=r.name,
            )
        bad = sum(1 for r in records if r.ready != "True")
        context = self.source.context
        self.query_one("#summary", Static).update(Text.assemble(
            (f"{context}  ", "bold"), f"{len(records)} nodes  ",
            (f"{bad} not ready", "bold red" if bad else "green")))

    @on(DataTable.RowSelected)
    def node_selected(self, event: DataTable.RowSelected) -> None:
        self.notify(f"{event.row_key.value}: the node view is not built yet", timeout=3)


class NodeSource:
    """Where the fleet comes from: a cluster reached through a kubeconfig, connected lazily."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.requested_context = context
        self.kube: Kube | None = None

    @property
    def context(self) -> str:
        return self.kube.context if self.kube else (self.requested_context or "")

    def list_nodes(self) -> list[NodeRecord]:
        if self.kube is None:
            self.kube = Kube(self.kubeconfig, self.requested_context)
        return self.kube.list_nodes()


def run_app(kubeconfig: str | None, context: str | None, ssh_config: str | None,
            title: str = "nodewb") -> int:
    NodewbApp(NodeSource(kubeconfig, context), title=title).run()
    return 0
