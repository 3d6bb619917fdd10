"""Watching the node come back: the Ready condition, lease age, healthz, pods Running vs Pending,
a journal free of the error that was found, and the canary pod when asked for, redrawn each
round until the verdict: "verified" or "not fixed after N s"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from triage.verify import VERIFIED, Progress
from tui.node_journal import clean_line

__all__ = ["VerifyScreen", "progress_text"]

Watch = Callable[[Callable[[Progress], None]], Awaitable[Progress]]


def progress_text(node: str, progress: Progress | None, what: str) -> Text:
    out = Text()
    out.append(f"{what}\n", "bold")
    if progress is None:
        out.append("first round of checks…\n", "dim")
        return out
    for check in progress.checks:
        style = "green" if check.ok else ("dim" if check.ok is None else "red")
        out.append(f"  {clean_line(check.line())}\n", style)
    out.append(f"\nround {progress.round} · {progress.elapsed:.0f} s\n", "dim")
    if progress.done:
        if progress.outcome == VERIFIED:
            out.append(f"VERIFIED: {node} is back", "bold green")
        else:
            out.append(f"NOT FIXED after {progress.elapsed:.0f} s", "bold red")
        if progress.message:
            out.append(f" — {clean_line(progress.message)}")
    return out


class VerifyScreen(ModalScreen[Progress | None]):
    BINDINGS = [Binding("escape,v", "close", "Close", id="verify.close")]
    DEFAULT_CSS = """
    VerifyScreen { align: center middle; }
    VerifyScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 100%;
                              border: round $primary; background: $surface; padding: 0 1; }
    VerifyScreen #verify-body { height: auto; }
    """

    def __init__(self, node: str, watch: Watch, what: str) -> None:
        super().__init__()
        self.node, self.watcher, self.what = node, watch, what
        self.progress: Progress | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(progress_text(self.node, None, self.what), id="verify-body")
            yield Static(Text("esc: close (the watch stops)", "dim"))

    def on_mount(self) -> None:
        self.run_watch()

    @work(exclusive=True, group="verify", exit_on_error=False)
    async def run_watch(self) -> None:
        try:
            final = await self.watcher(self._update)
        except Exception as err:  # the cluster's answer: shown, never raised
            self.query_one("#verify-body", Static).update(
                Text(f"{self.what}\nverification stopped: {type(err).__name__}: {err}", "red"))
            return
        self._update(final)

    def _update(self, progress: Any) -> None:
        self.progress = progress
        self.query_one("#verify-body", Static).update(progress_text(self.node, progress,
                                                                    self.what))

    def action_close(self) -> None:
        self.dismiss(self.progress)
