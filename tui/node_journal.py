"""The kubelet journal panel: a bounded buffer of outside lines, shown literally (escapes as text),
batched per frame, with search (filter and highlight) and pause (the view stops, the buffer keeps
filling)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog, Static

KEEP_LINES = 5000  # lines the panel remembers (searching looks through all of them)
SHOWN_PER_FRAME = 2000  # at most this many new lines drawn in one frame (the newest win)

MAX_SHOWN = 4000  # characters of one line shown; the rest is counted, not drawn

# Everything that could act on a terminal or fool the eye is shown as an escape instead: C0 and C1
# controls (ESC starts every CSI/OSC sequence, 0x9b is the one-byte CSI), DEL, the bidirectional
# overrides and isolates, and the surrogates that carry bytes which were not UTF-8.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069\udc80-\udcff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a raw byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean_line(line: str) -> str:
    """An outside line made safe to show, literally: escape sequences and other control
    characters appear as \\xNN text (`\\x1b[31m`), never act on the terminal; tabs are expanded;
    a line past MAX_SHOWN characters is cut with a note. The result is plain text (callers
    never parse it as markup, so `[bold]` stays `[bold]`)."""
    line = line.rstrip("\r\n")
    extra = len(line) - MAX_SHOWN
    if extra > 0:
        line = line[:MAX_SHOWN]
    if "\t" in line:
        line = line.expandtabs(4)
    line = _UNSAFE.sub(_escape, line)
    if extra > 0:
        line += f" … [{extra:,} more characters not shown]"
    return line


@dataclass(slots=True)
class JournalLine:
    text: str
    gap: bool = False  # a marker (stream interrupted, poll failed), not a journal line


class JournalPanel(Vertical, can_focus=False):
    """Lines arrive with `add_lines` (any number, any rate); `flush` draws what came since the last
    frame. `search` filters the view to matching lines and highlights the matches."""

    DEFAULT_CSS = """
    JournalPanel { height: 1fr; }
    JournalPanel #journal-status { height: 1; color: $text-muted; padding: 0 1; }
    JournalPanel RichLog { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
    JournalPanel #journal-search { dock: bottom; height: 3; display: none; }
    JournalPanel #journal-search.-active { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer: deque[JournalLine] = deque(maxlen=KEEP_LINES)
        self.pending: deque[JournalLine] = deque()
        self.paused = False
        self.query_text = ""
        self.source = "not started"
        self.received = 0  # lines ever received
        self.held = 0  # lines received while paused (not drawn yet)
        self.frames_drawn = 0

    def compose(self) -> ComposeResult:
        yield Static(id="journal-status")
        yield RichLog(id="journal-log", max_lines=KEEP_LINES, min_width=20, wrap=True,
                      markup=False, highlight=False, auto_scroll=True)
        yield SearchInput(placeholder="search the journal (enter keeps it, esc clears)",
                          id="journal-search")

    def on_mount(self) -> None:
        self._status()

    @property
    def log_view(self) -> RichLog:
        return self.query_one("#journal-log", RichLog)

    # -- input side ------------------------------------------------------------------------------
    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.pending.append(JournalLine(clean_line(line)))
            self.received += 1

    def add_marker(self, text: str) -> None:
        self.pending.append(JournalLine(clean_line(text), gap=True))

    def set_source(self, text: str) -> None:
        self.source = text
        self._status()

    # -- drawing ---------------------------------------------------------------------------------
    def flush(self) -> int:
        """Move what arrived into the buffer; draw it unless paused. Returns lines drawn."""
        if not self.pending:
            return 0
        new = list(self.pending)
        self.pending.clear()
        self.buffer.extend(new)
        if self.paused:
            self.held += len(new)
            self._status()
            return 0
        drawn = self._draw(new[-SHOWN_PER_FRAME:])
        self.frames_drawn += 1
        self._status()
        return drawn

    def _matches(self, line: JournalLine) -> bool:
        return not self.query_text or line.gap or self.query_text.lower() in line.text.lower()

    def _line_text(self, line: JournalLine) -> Text:
        if line.gap:
            return Text(f"── {line.text} ──", style="dim italic", no_wrap=True)
        text = Text(line.text)
        if self.query_text:
            text.highlight_words([self.query_text], style="reverse", case_sensitive=False)
        return text

    def _draw(self, lines: list[JournalLine]) -> int:
        log = self.log_view
        count = 0
        for line in lines:
            if self._matches(line):
                log.write(self._line_text(line), scroll_end=not self.paused)
                count += 1
        return count

    def redraw(self) -> None:
        """Draw the whole buffer again (after the search changed or on resume)."""
        log = self.log_view
        log.clear()
        self._draw(list(self.buffer)[-SHOWN_PER_FRAME:] if not self.query_text
                   else list(self.buffer))
        self._status()

    # -- pause and search ------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        log = self.log_view
        log.auto_scroll = not paused
        if not paused:
            self.flush()
            if self.held:
                self.held = 0
                self.redraw()
            log.scroll_end(animate=False)
        self._status()

    def search(self, text: str) -> None:
        if text == self.query_text:
            return
        self.query_text = text
        self.redraw()

    def open_search(self) -> None:
        box = self.query_one("#journal-search", SearchInput)
        box.add_class("-active")
        box.value = self.query_text
        box.focus()

    def close_search(self, clear: bool) -> None:
        box = self.query_one("#journal-search", SearchInput)
        box.remove_class("-active")
        if clear:
            box.value = ""
            self.search("")
        self.log_view.focus()

    @on(Input.Changed, "#journal-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.search(event.value)

    @on(Input.Submitted, "#journal-search")
    def _search_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_search(clear=False)

    def _status(self) -> None:
        if not self.is_mounted:
            return
        parts = []
        if self.paused:
            parts.append(f"PAUSED ({self.held} new lines held; p resumes)")
        if self.query_text:
            shown = sum(1 for line in self.buffer if self._matches(line) and not line.gap)
            parts.append(f"search {self.query_text!r}: {shown} of "
                         f"{sum(1 for x in self.buffer if not x.gap)} lines")
        parts.append(self.source)
        # one line of fixed height: no layout, so a batch of lines repaints two widgets only
        self.query_one("#journal-status", Static).update(
            Text(" · ".join(parts), no_wrap=True, overflow="ellipsis"), layout=False)


class SearchInput(Input):
    BINDINGS = [Binding("escape", "cancel", "Clear search", id="journal.search_cancel")]

    def action_cancel(self) -> None:
        panel = self.ancestors_with_self
        for node in panel:
            if isinstance(node, JournalPanel):
                node.close_search(clear=True)
                return
