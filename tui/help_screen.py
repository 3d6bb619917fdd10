"""The key list, made from the bindings that are active where `?` was pressed."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.fleet_model import FILTER_HELP


@dataclass(frozen=True)
class KeyHelp:
    keys: str
    description: str
    id: str
    where: str


def key_help(screen: Screen) -> list[KeyHelp]:
    """One line per binding active on `screen` (a binding's keys gathered on one line)."""
    app = screen.app
    seen: dict[tuple, list[str]] = {}
    info: dict[tuple, tuple[str, str, str]] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        ident = (binding.id or binding.action, type(active.node).__name__)
        display = app.get_key_display(Binding(key, binding.action))
        seen.setdefault(ident, [])
        if display not in seen[ident]:
            seen[ident].append(display)
        info[ident] = (binding.description or binding.action, binding.id or "",
                       type(active.node).__name__)
    rows = [KeyHelp(", ".join(seen[ident]), *info[ident]) for ident in seen]
    order = {"FleetTable": 0, "FleetScreen": 1, "NodeScreen": 1}
    return sorted(rows, key=lambda r: (order.get(r.where, 2), r.description.lower()))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 92; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-body, HelpScreen #help-filter { width: 100%; height: auto; }
    """

    def __init__(self, rows: list[KeyHelp]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False,
                      title="Keys", title_style="bold", header_style="bold")
        table.add_column("KEY", no_wrap=True)
        table.add_column("WHAT IT DOES")
        table.add_column("BINDING ID", style="dim", no_wrap=True)
        for row in self.rows:
            table.add_row(Text(row.keys), Text(row.description), Text(row.id))
        scroll = VerticalScroll()
        scroll.border_title = "help — esc closes"
        with scroll:
            yield Static(table, id="help-body")
            yield Static(Text("Filter (/): " + FILTER_HELP, style="dim"), id="help-filter")

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)
