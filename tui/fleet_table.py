"""The fleet table: a Line API widget that renders only the rows on screen.

Each frame the screen hands it the model's row list; the table works out which screen lines now
say something different from what was drawn and repaints only those.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.fleet_model import GAP, Column, Entry, FleetModel, Group, Row, layout

ELLIPSIS = "…"


def fit(text: str, width: int, align: str = "left") -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""
    return text.rjust(width) if align == "right" else text.ljust(width)


class FleetTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Every node, one line each; a header line on top that stays put."""

    BINDINGS = [
        Binding("j,down", "cursor_down", "Down", show=False, id="fleet.down"),
        Binding("k,up", "cursor_up", "Up", show=False, id="fleet.up"),
        Binding("home", "cursor_top", "Top", show=False, id="fleet.top"),
        Binding("G,end", "cursor_bottom", "Bottom", show=False, id="fleet.bottom"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="fleet.page_down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="fleet.page_up"),
        Binding("enter", "open", "Open node", id="fleet.open"),
    ]

    COMPONENT_CLASSES = {
        "fleet--header", "fleet--header-sorted", "fleet--cursor", "fleet--group",
        "fleet--notready", "fleet--unknown", "fleet--ready", "fleet--flag", "fleet--muted",
        "fleet--stale",
    }

    DEFAULT_CSS = """
    FleetTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        height: 1fr;
        & > .fleet--header { background: $panel; color: $foreground; text-style: bold; }
        & > .fleet--header-sorted {
            background: $panel; color: $accent; text-style: bold underline;
        }
        & > .fleet--cursor { background: $block-cursor-blurred-background; }
        &:focus > .fleet--cursor {
            background: $block-cursor-background; color: $block-cursor-foreground;
        }
        & > .fleet--group { background: $panel; color: $secondary; text-style: bold; }
        & > .fleet--notready { color: $error; text-style: bold; }
        & > .fleet--unknown { color: $warning; text-style: bold; }
        & > .fleet--ready { color: $success; }
        & > .fleet--flag { color: $warning; text-style: bold; }
        & > .fleet--muted { color: $text-muted; }
        & > .fleet--stale { text-style: dim; }
        /* NO_COLOR: colours become greys (a red can be darker than the text), so a node in
           trouble is told by weight and reverse video instead */
        &:nocolor > .fleet--notready { color: $foreground; text-style: bold reverse; }
        &:nocolor > .fleet--unknown { color: $foreground; text-style: bold reverse; }
        &:nocolor > .fleet--header-sorted { color: $foreground; }
        /* an ANSI theme with NO_COLOR has no colours left at all: the cursor is drawn in
           reverse video while the table has focus, underlined when it has not */
        &:nocolor:ansi > .fleet--cursor { text-style: underline; }
        &:nocolor:ansi:focus > .fleet--cursor { text-style: bold reverse; }
    }
    """

    class Opened(Message):
        """Enter, or a double click, on a node row."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class SortRequested(Message):
        """A click on a column title."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, model: FleetModel, clock: Callable[[], float], *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.clock = clock
        self.rows: list[Row] = []
        self.cursor = 0
        self.cursor_name: str | None = None
        self._layout: list[tuple[Column, int]] = []
        self._layout_key: tuple = ()
        self._layout_width = -1
        self._drawn: dict[int, tuple] = {}
        self._cache: LRUCache[tuple, Strip] = LRUCache(2048)
        self._styles: dict[str, Style] = {}
        self._now = 0.0
        self.repaints = 0  # lines re-rendered (for tests and benchmarks)
        self.empty_text = ""  # said on the first line when there are no rows

    # -- data --------------------------------------------------------------------------------------
    def update_rows(self, rows: list[Row], now: float) -> None:
        """New rows (maybe the same list), keeping the cursor on the same node."""
        self._now = now
        self.rows = rows
        self._relayout()
        self._place_cursor()
        height = len(rows) + 1
        if self.virtual_size.height != height or self.virtual_size.width != self._content_width:
            self.virtual_size = Size(self._content_width, height)
        self._refresh_changed()

    @property
    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _relayout(self) -> None:
        width = self._content_width
        if width <= 0:
            return
        natural = self.model.widths
        sort = self.model.sort
        key = (width, sort, tuple(sorted(natural.items())))
        if key != self._layout_key:
            self._layout_key = key
            self._layout = layout(width, natural, keep=sort)
            self._layout_width = width

    def _place_cursor(self) -> None:
        rows = self.rows
        if not rows:
            self.cursor = 0
            return
        name = self.cursor_name
        if name is not None:
            cur = self.cursor
            row = rows[cur] if 0 <= cur < len(rows) else None
            if isinstance(row, Entry) and row.rec.name == name:
                return
            for i, row in enumerate(rows):
                if isinstance(row, Entry) and row.rec.name == name:
                    self.cursor = i
                    return
        self.cursor = min(self.cursor, len(rows) - 1)
        self._settle(1)

    def _settle(self, step: int) -> None:
        """Move off group header rows (the cursor lands on nodes)."""
        rows = self.rows
        i = self.cursor
        while 0 <= i < len(rows) and isinstance(rows[i], Group):
            i += step
        if not 0 <= i < len(rows):
            i = self.cursor
            while 0 <= i < len(rows) and isinstance(rows[i], Group):
                i -= step
        self.cursor = max(0, min(i, len(rows) - 1))
        row = rows[self.cursor] if rows else None
        self.cursor_name = row.rec.name if isinstance(row, Entry) else None

    @property
    def current(self) -> Entry | None:
        if 0 <= self.cursor < len(self.rows):
            row = self.rows[self.cursor]
            return row if isinstance(row, Entry) else None
        return None

    # -- what each line says -----------------------------------------------------------------------
    def _signature(self, y: int) -> tuple:
        if y == 0:
            return ("header", self._layout_key, self.model.sort, self.model.reverse)
        index = int(self.scroll_offset.y) + y - 1
        stale = not self.model.connected
        if index >= len(self.rows):
            if index == 0 and self.empty_text:
                return ("empty", self._layout_key, self.empty_text)
            return ("blank", self._layout_key)
        row = self.rows[index]
        focused = self.has_focus
        is_cursor = index == self.cursor
        if isinstance(row, Group):
            return ("group", self._layout_key, row.label, row.key, row.total, row.not_ready,
                    row.unknown, row.cordoned, is_cursor and focused, stale)
        live = self.model.live_cells(row, self._now)
        return ("node", self._layout_key, row.rec.name, row.version, tuple(live.values()),
                is_cursor, focused and is_cursor, stale)

    def _refresh_changed(self) -> None:
        height = self.scrollable_content_region.height
        width = self.size.width
        for y in range(height):
            if self._drawn.get(y) != self._signature(y):
                self.refresh(Region(0, y, width, 1))

    def refresh_all(self) -> None:
        self._drawn.clear()
        self._cache.clear()
        self._styles.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._styles.clear()
        self._drawn.clear()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self.virtual_size = Size(self._content_width, len(self.rows) + 1)
        self._drawn.clear()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(name)
        return style

    def _fg(self, name: str) -> Style:
        """A component's colour and text style without its background, for one cell on top of
        whatever the row's background is (the cursor's, say)."""
        key = "fg:" + name
        style = self._styles.get(key)
        if style is None:
            full = self.get_component_rich_style(name)
            style = self._styles[key] = Style(color=full.color) + full.without_color
        return style

    def _attrs(self, name: str) -> Style:
        """A component's text style alone (bold, dim, ...), keeping the colours already there:
        the stale mark dims the cursor's own colours instead of painting the table's."""
        key = "attrs:" + name
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self.get_component_rich_style(name).without_color
        return style

    def render_line(self, y: int) -> Strip:
        signature = self._signature(y)
        self._drawn[y] = signature
        strip = self._cache.get(signature)
        if strip is None:
            strip = self._render_row(y, signature)
            self._cache[signature] = strip
            self.repaints += 1
        return strip

    def _render_row(self, y: int, signature: tuple) -> Strip:
        width = self._content_width
        base = self.rich_style
        kind = signature[0]
        if kind == "blank":
            return Strip.blank(width, base)
        if kind == "empty":
            return Strip([Segment(fit("  " + signature[2], width), base + self._style(
                "fleet--muted"))], width)
        if kind == "header":
            return self._render_header(width, base)
        row = self.rows[int(self.scroll_offset.y) + y - 1]
        stale = signature[-1]
        if isinstance(row, Group):
            style = base + self._style("fleet--group")
            if signature[-2]:
                style += self._style("fleet--cursor")
            text = (f"▾ {row.label} {row.key}: {row.total} node{'s' if row.total != 1 else ''}"
                    f", {row.not_ready} NotReady, {row.unknown} Unknown")
            if row.cordoned:
                text += f", {row.cordoned} cordoned"
            if stale:
                style += self._attrs("fleet--stale")
            return Strip([Segment(fit(text, width), style)], width)
        return self._render_node(row, signature, width, base)

    def _render_header(self, width: int, base: Style) -> Strip:
        header = base + self._style("fleet--header")
        sorted_style = base + self._style("fleet--header-sorted")
        segments: list[Segment] = []
        used = 0
        arrow = "▼" if self.model.reverse else "▲"
        for i, (col, w) in enumerate(self._layout):
            if i:
                segments.append(Segment(" " * GAP, header))
                used += GAP
            title = col.title
            if col.id == self.model.sort:
                title = (title + arrow) if len(title) < w else title[: w - 1] + arrow
                segments.append(Segment(fit(title, w, col.align), sorted_style))
            else:
                segments.append(Segment(fit(title, w, col.align), header))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), header))
        return Strip(segments, width)

    def _render_node(self, entry: Entry, signature: tuple, width: int, base: Style) -> Strip:
        is_cursor = signature[5]
        stale = signature[-1]
        row_style = base
        if is_cursor:
            row_style = base + self._style("fleet--cursor")
        if stale:
            row_style = row_style + self._attrs("fleet--stale")
        cells = entry.cells
        live = self.model.live_cells(entry, self._now)
        rank = entry.rank
        status_style = self._fg(("fleet--notready", "fleet--unknown", "fleet--ready")[rank])
        flag = self._fg("fleet--flag")
        muted = self._fg("fleet--muted")
        if is_cursor:  # the cursor's own colours; the words still say the status
            status_style = flag = muted = Style(bold=rank < 2)
        # the status's colour and weight without its reverse video (NO_COLOR): one block a row
        reason_style = Style(color=status_style.color, bold=status_style.bold)
        segments: list[Segment] = []
        used = 0
        for i, (col, w) in enumerate(self._layout):
            if i:
                segments.append(Segment(" " * GAP, row_style))
                used += GAP
            cid = col.id
            text = cells[cid] if col.kind == "static" else live[cid]
            cell = fit(text, w, col.align)
            style = row_style
            if cid == "status":
                style = row_style + status_style
            elif cid == "pressure":
                if text.strip("-"):
                    segments.extend(self._pressure_segments(cell, row_style, flag, muted))
                    used += w
                    continue
                style = row_style + muted
            elif cid == "net":
                style = row_style + (flag if text == "down" else muted)
            elif cid == "reason" and rank != 2:
                style = row_style + reason_style
            elif cid == "taints" and text == "-":
                style = row_style + muted
            elif col.kind == "live" and text == "-":
                style = row_style + muted
            segments.append(Segment(cell, style))
            used += w
        if used < width:
            segments.append(Segment(" " * (width - used), row_style))
        return Strip(segments, width)

    @staticmethod
    def _pressure_segments(cell: str, row: Style, flag: Style, muted: Style) -> list[Segment]:
        return [Segment(ch, row + (muted if ch in "- " else flag)) for ch in cell]

    # -- moving ------------------------------------------------------------------------------------
    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def move_to(self, index: int, step: int = 1) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(index, len(self.rows) - 1))
        self._settle(step)
        self.scroll_cursor_visible()
        self._refresh_changed()

    def scroll_cursor_visible(self) -> None:
        top = int(self.scroll_offset.y)
        visible = self._visible_rows()
        cursor = self.cursor
        first = cursor
        if cursor > 0 and isinstance(self.rows[cursor - 1], Group):
            first = cursor - 1  # show the group header above its first node
        if first < top:
            self.scroll_to(y=first, animate=False)
        elif cursor >= top + visible:
            self.scroll_to(y=cursor - visible + 1, animate=False)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1, 1)

    def action_cursor_up(self) -> None:
        if self.cursor > 0 and all(isinstance(r, Group) for r in self.rows[:self.cursor]):
            self.scroll_to(y=0, animate=False)
            return
        self.move_to(self.cursor - 1, -1)

    def action_cursor_top(self) -> None:
        self.move_to(0, 1)
        self.scroll_to(y=0, animate=False)

    def action_cursor_bottom(self) -> None:
        self.move_to(len(self.rows) - 1, -1)

    def action_page_down(self) -> None:
        self.move_to(self.cursor + self._visible_rows(), 1)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - self._visible_rows(), -1)

    def action_open(self) -> None:
        entry = self.current
        if entry is not None:
            self.post_message(self.Opened(entry.rec.name))

    def on_focus(self) -> None:
        self._styles.clear()
        self._refresh_changed()

    def on_blur(self) -> None:
        self._styles.clear()
        self._refresh_changed()

    # -- mouse -------------------------------------------------------------------------------------
    def column_at(self, x: int) -> str | None:
        pos = 0
        for i, (col, w) in enumerate(self._layout):
            if i:
                pos += GAP
            if pos <= x < pos + w:
                return col.id
            pos += w
        return None

    def on_click(self, event: events.Click) -> None:
        y = event.y
        if y == 0:
            column = self.column_at(event.x)
            if column:
                self.post_message(self.SortRequested(column))
            return
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self.rows) or isinstance(self.rows[index], Group):
            return
        self.move_to(index)
        if event.chain >= 2:
            self.action_open()
