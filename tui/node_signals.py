"""The signals panel: sparklines of the kubelet's figures over consecutive scrapes, each with its
current value and the runbook's threshold, and a plot of the PLEG relist histogram between the
last two scrapes (drawn with plotext into text, one figure per widget)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from probes.metrics import INF, THRESHOLDS, Figure, KubeletSignals, Scrape

HISTORY = 120  # scrapes kept per sparkline (10 minutes at one scrape per 5 s)
RELIST = "kubelet_pleg_relist_duration_seconds"


@dataclass(frozen=True)
class SignalDef:
    key: str
    label: str
    limit: float
    limit_text: str
    pick: Callable[[KubeletSignals], tuple[Figure, str]]  # the figure and a note (op name)


def worst_runtime(signals: KubeletSignals) -> tuple[Figure, str]:
    """The slowest runtime operation's p99, and its name."""
    known = [(op, f) for op, f in signals.runtime_p99.items() if f.value is not None]
    if not known:
        return Figure(None, "s", "kubelet_runtime_operations_duration_seconds",
                      "no runtime operations between the scrapes"), ""
    op, fig = max(known, key=lambda item: (item[1].value, item[0]))
    return fig, op


SIGNALS: tuple[SignalDef, ...] = (
    SignalDef("relist_p99", "PLEG relist p99", THRESHOLDS["pleg_relist_p99"], "> 10 s",
              lambda s: (s.pleg_relist_p99, "")),
    SignalDef("relist_age", "since last relist", THRESHOLDS["pleg_relist_age"], "> 3 min",
              lambda s: (s.pleg_last_relist_age, "")),
    SignalDef("runtime_p99", "runtime op p99", 5.0, "> 5 s", worst_runtime),
    SignalDef("goroutines", "goroutines", THRESHOLDS["goroutines"], "> 500",
              lambda s: (s.goroutines, "")),
    SignalDef("rss", "kubelet RSS", THRESHOLDS["rss"], "> 500 MB", lambda s: (s.rss, "")),
)


def over(fig: Figure, limit: float) -> bool:
    return fig.value is not None and (fig.value > limit or (fig.bound == ">=" and
                                                            fig.value >= limit))


def relist_buckets(prev: Scrape | None, cur: Scrape) -> tuple[list[tuple[str, float]], str]:
    """Relists per duration bucket between two scrapes (not cumulative), and what the counts
    are: "between scrapes", or "since kubelet start" without a usable previous scrape."""
    now = cur.histograms(RELIST, by=()).get(())
    if now is None or not now.buckets:
        return [], "no relist histogram in the scrape"
    before = prev.histograms(RELIST, by=()).get(()) if prev is not None and prev.ok else None
    basis = "between the last two scrapes"
    cumulative = list(now.buckets)
    if before is not None:
        old = dict(before.buckets)
        delta = [(le, c - old.get(le, 0.0)) for le, c in now.buckets]
        if any(d < 0 for _, d in delta):
            basis = "since kubelet start (it restarted)"
        else:
            cumulative = delta
    else:
        basis = "since kubelet start (one scrape so far)"
    out: list[tuple[str, float]] = []
    below = 0.0
    for le, c in cumulative:
        label = "+Inf" if le == INF else _le(le)
        out.append((label, max(c - below, 0.0)))
        below = c
    return out, basis


def _le(v: float) -> str:
    """A bucket bound in seconds, short: .005, .25, 2.5, 10."""
    text = f"{v:g}"
    return text[1:] if text.startswith("0.") else text


def plot_bars(labels: list[str], values: list[float], width: int, height: int,
              title: str = "") -> Text:
    """A bar plot as text, from a figure of its own (never plotext's shared module state)."""
    from plotext._figure import _figure_class

    if width < 20 or height < 5 or not labels:
        return Text("(too small to plot)" if labels else "(no data)", style="dim")
    fig = _figure_class()
    fig.plot_size(width, height)
    fig.theme("clear")
    fig.bar(labels, values, width=0.6)
    if title:
        fig.title(title)
    fig.xticks(list(range(1, len(labels) + 1)), labels)
    return Text.from_ansi(fig.build(), no_wrap=True)


class HistogramPlot(Static):
    DEFAULT_CSS = "HistogramPlot { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bars: list[tuple[str, float]] = []
        self.title_text = ""
        self._cache: tuple | None = None

    def set_bars(self, bars: list[tuple[str, float]], title: str) -> None:
        self.bars = bars
        self.title_text = title
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        key = (width, height, tuple(self.bars), self.title_text)
        if self._cache is None or self._cache[0] != key:
            if not self.bars:
                text = Text("relist histogram: waiting for a scrape", style="dim")
            elif not any(b[1] for b in self.bars):
                text = Text(f"{self.title_text}: no relist finished (every bucket is empty)",
                            style="bold")
            else:
                text = plot_bars([b[0] for b in self.bars], [b[1] for b in self.bars],
                                 width, height, self.title_text)
            self._cache = (key, text)
        return self._cache[1]


class SignalRow(Horizontal):
    DEFAULT_CSS = """
    SignalRow { height: 1; }
    SignalRow > .signal-label { width: 46; height: 1; }
    SignalRow > Sparkline { width: 1fr; height: 1; }
    SignalRow.-over > Sparkline > .sparkline--max-color { color: $error; }
    SignalRow.-over > .signal-label { color: $error; }
    """

    def __init__(self, sig: SignalDef) -> None:
        super().__init__(id=f"signal-{sig.key}")
        self.sig = sig
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.current = Text(f"{sig.label:<18}{'n/a':<16}{sig.limit_text:>10} ", no_wrap=True,
                            overflow="ellipsis")

    def compose(self) -> ComposeResult:
        yield Static(self.current, classes="signal-label")
        yield Sparkline([], summary_function=max)

    def push(self, signals: KubeletSignals) -> None:
        fig, note = self.sig.pick(signals)
        if fig.value is not None:
            self.history.append(float(fig.value))
        shown = fig.text() + (f" {note}" if note else "")
        self.current = Text(f"{self.sig.label:<18}{shown[:15]:<16}{self.sig.limit_text:>10} ",
                            no_wrap=True, overflow="ellipsis")
        self.set_class(over(fig, self.sig.limit), "-over")
        self.query_one(".signal-label", Static).update(self.current, layout=False)
        self.query_one(Sparkline).data = list(self.history)
        self.tooltip = fig.why or fig.source


class SignalsPanel(Vertical, can_focus=True):
    DEFAULT_CSS = """
    SignalsPanel { height: 1fr; }
    SignalsPanel #signals-via { height: 1; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.scrapes = 0
        self.last: KubeletSignals | None = None
        self.via_text = "metrics: waiting for the first scrape"

    def compose(self) -> ComposeResult:
        yield Static(Text(self.via_text), id="signals-via")
        for sig in SIGNALS:
            yield SignalRow(sig)
        yield HistogramPlot(id="signals-hist")

    def rows(self) -> list[SignalRow]:
        return list(self.query(SignalRow))

    def set_via(self, text: str) -> None:
        self.via_text = text
        self.query_one("#signals-via", Static).update(
            Text(text, no_wrap=True, overflow="ellipsis"), layout=False)

    def push(self, signals: KubeletSignals, prev: Scrape | None, cur: Scrape, via: str,
             at_text: str) -> None:
        self.scrapes += 1
        self.last = signals
        for row in self.rows():
            row.push(signals)
        breaches = signals.breaches()
        self.set_via(f"via {via or '?'} · {self.scrapes} scrapes · last {at_text} · "
                     f"{signals.basis}" + (f" · {len(breaches)} over threshold" if breaches
                                            else ""))
        bars, basis = relist_buckets(prev, cur)
        self.query_one(HistogramPlot).set_bars(bars, f"PLEG relists by duration (s), {basis}")

    def failed(self, summary: str) -> None:
        self.set_via(f"metrics: {summary}")


def histories(panel: SignalsPanel) -> dict[str, list[float]]:
    return {row.sig.key: list(row.history) for row in panel.rows()}


__all__ = ["SignalsPanel", "SignalRow", "HistogramPlot", "SIGNALS", "relist_buckets",
           "plot_bars", "worst_runtime", "histories"]
