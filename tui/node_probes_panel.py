"""The probes panel: every planned probe with its state, live: pending, running (with the time it
has taken so far), then ok/bad/hung/error/skipped with its duration and summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from probes.observation import Observation, Status
from tui.node_journal import clean_line

STYLE_OF = {"pending": "dim", "running": "bold", "ok": "green", "bad": "bold red",
            "hung": "bold magenta", "error": "yellow", "skipped": "dim"}
ICON = {"pending": "·", "running": "…", "ok": "✓", "bad": "✗", "hung": "⧖", "error": "!",
        "skipped": "-"}


@dataclass
class ProbeRow:
    id: str
    title: str
    timeout: float | None
    state: str = "pending"
    started: float | None = None  # our clock, when on_start came
    duration: float | None = None
    summary: str = ""
    via: str = ""


def _secs(v: float) -> str:
    return f"{v:.1f}s" if v < 100 else f"{v:.0f}s"


class ProbesPanel(VerticalScroll):
    DEFAULT_CSS = """
    ProbesPanel { height: 1fr; }
    ProbesPanel > #probes-body { width: 1fr; }
    """

    def __init__(self, clock: Callable[[], float], *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.rows: dict[str, ProbeRow] = {}
        self.note = "no probes planned yet"
        self.run_no = 0
        self._key: tuple = ()
        self.plain = ""  # what the panel shows, as plain text

    def compose(self):
        yield Static(id="probes-body")

    def on_mount(self) -> None:
        self.redraw()

    # -- state -----------------------------------------------------------------------------------
    def set_plan(self, specs: Sequence[Any]) -> None:
        self.run_no += 1
        self.rows = {}
        for spec in specs:
            ident = str(getattr(spec, "id", spec))
            self.rows[ident] = ProbeRow(ident, str(getattr(spec, "title", "") or ident),
                                        getattr(spec, "timeout", None))
        self.note = f"run {self.run_no}: {len(self.rows)} probes planned"
        self.redraw()

    def started(self, ident: str) -> None:
        row = self.rows.get(ident)
        if row is None:
            row = self.rows[ident] = ProbeRow(ident, ident, None)
        row.state = "running"
        row.started = self.clock()
        self.redraw()

    def observed(self, obs: Observation) -> None:
        row = self.rows.get(obs.probe)
        if row is None:
            row = self.rows[obs.probe] = ProbeRow(obs.probe, obs.probe, None)
        status = obs.status.value if isinstance(obs.status, Status) else str(obs.status)
        row.state = status
        row.duration = obs.duration
        summary = " / ".join(clean_line(part) for part in (obs.summary or obs.reason).splitlines())
        reason = clean_line(obs.reason.replace("\n", " ")) if obs.reason else ""
        row.summary = summary
        if status in ("error", "skipped") and reason and reason not in row.summary:
            row.summary = f"{row.summary} ({reason})" if row.summary else reason
        row.via = obs.via
        self.redraw()

    def failed(self, message: str) -> None:
        self.note = message
        self.redraw()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out

    # -- drawing ---------------------------------------------------------------------------------
    def tick(self) -> None:
        """Called each frame: only running probes change (their elapsed time)."""
        now = self.clock()
        key = tuple(int((now - r.started) * 10) for r in self.rows.values()
                    if r.state == "running" and r.started is not None)
        if key and key != self._key:
            self._key = key
            self.redraw()

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        now = self.clock()
        width = max(self.content_size.width, 30)
        name_w = max(12, min(30, width - 24))
        lines: list[Text] = []
        for row in self.rows.values():
            style = STYLE_OF.get(row.state, "")
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{ICON.get(row.state, '?')} ", style)
            title = row.title if len(row.title) <= name_w else row.title[:name_w - 1] + "…"
            line.append(f"{title:<{name_w}} ")
            line.append(f"{row.state:<8}", style)
            detail: Text | None = None
            if row.state == "running":
                elapsed = now - row.started if row.started is not None else 0.0
                limit = f" of {row.timeout:g}s" if row.timeout else ""
                line.append(f"{_secs(max(elapsed, 0.0))}{limit}", "dim")
            elif row.state != "pending":
                line.append(_secs(row.duration or 0.0))
                detail = Text("    ", no_wrap=True, overflow="ellipsis")
                detail.append(row.summary)
                if row.via:
                    detail.append(f"  ({row.via})", "dim")
            lines.append(line)
            if detail is not None:
                lines.append(detail)
        counts = self.counts()
        head = Text(self.note, style="bold")
        if counts:
            head.append("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                        style="dim")
        from rich.console import Group

        self.plain = "\n".join(t.plain for t in (head, *lines))
        self.query_one("#probes-body", Static).update(Group(head, *lines))
