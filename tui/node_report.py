"""The incident report: the node's timeline, root cause, fix and evidence bundle as Markdown,
written to a file (0600) and shown."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from tui.node_journal import clean_line

__all__ = ["ReportScreen"]


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,r,q", "dismiss", "Close", id="report.close")]
    DEFAULT_CSS = """
    ReportScreen { align: center middle; }
    ReportScreen > Vertical { width: 110; max-width: 100%; height: 100%;
                              border: round $primary; background: $surface; padding: 0 1; }
    ReportScreen Markdown { height: 1fr; overflow-y: auto; }
    ReportScreen #report-path { height: auto; color: $text-muted; }
    """

    def __init__(self, markdown: str, path: str) -> None:
        super().__init__()
        self.markdown = "\n".join(clean_line(line) for line in markdown.splitlines())
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"incident report written to {self.path} · esc closes"),
                         id="report-path")
            yield Markdown(self.markdown, id="report-body")

    def on_mount(self) -> None:
        self.query_one("#report-body").focus()
