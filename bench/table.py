"""The figures of every benchmark in one table: figure | ours | peer | ratio.

Each benchmark prints its own detailed report; the readers here pick the headline figures out of
that text (so each benchmark stays runnable on its own, and its output is what a person reads).
The ratio is how many times better ours is: peer/ours for times, ours/peer for rates.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    ours: float | None
    peer: float | None
    unit: str  # "ms", "s", "/s"...
    peer_name: str = ""
    lower_is_better: bool = True
    note: str = ""

    def ratio(self) -> str:
        if self.ours is None or self.peer is None or self.ours <= 0 or self.peer <= 0:
            return "—"
        r = self.peer / self.ours if self.lower_is_better else self.ours / self.peer
        return f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    return f"{value:,.0f} {unit}".strip()


def render(rows: list[Row]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [("figure", "ours (nodewb)", "peer", "ratio")]
    for r in rows:
        peer = _num(r.peer, r.unit)
        if r.peer is not None and r.peer_name:
            peer += f" ({r.peer_name})"
        figure = r.figure + (f" [{r.note}]" if r.note else "")
        cells.append((figure, _num(r.ours, r.unit), peer, r.ratio()))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]

    def line(c: tuple[str, ...]) -> str:
        return "| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)


def _find(pattern: str, text: str, flags: int = 0) -> re.Match | None:
    return re.search(pattern, text, flags)


def _float(m: re.Match | None, group: int = 1) -> float | None:
    return float(m.group(group).replace(",", "")) if m else None


# -- readers, one per benchmark ------------------------------------------------------------------
def metrics_reduce(text: str) -> list[Row]:
    rows = []
    shapes = re.split(r"\n(?=\S[^\n]*: [\d.]+ MB, )", text)
    short = {"other families grow": "other families grow",
             "the API client's per-URL": "API client per-URL series grow",
             "worst case": "worst case, every family grows"}
    for block in shapes:
        head = _find(r"^(\S[^\n]*?): ([\d.]+) MB, ", block)
        whole = _float(_find(r"one new scrape: parse \+ reduce\s+([\d.]+) ms", block))
        prom = _float(_find(r"prometheus_client, whole payload\s+([\d.]+) ms", block))
        if head is None or whole is None:
            continue
        label = next((v for k, v in short.items() if head.group(1).startswith(k)), head.group(1))
        rows.append(Row(f"kubelet /metrics {head.group(2)} MB: one scrape parsed + reduced "
                        f"({label})", whole, prom, "ms", "prometheus_client parse alone"))
    return rows


def kubectl_get_nodes(text: str) -> list[Row]:
    rows = []
    nodes = _find(r"lab: (\d+) nodes", text)
    n = nodes.group(1) if nodes else "?"
    for label in ("get nodes", "get nodes -o wide"):
        m = _find(rf"kubectl {re.escape(label)}: (\d+) rows; runs [^;]*; median ([\d.]+) s", text)
        if m:
            rows.append(Row(f"`kubectl {label}`, {n} nodes (wall, the reference)", None,
                            float(m.group(2)), "s", "kubectl"))
    return rows


def fleet(text: str) -> list[Row]:
    rows = []
    nodes = _find(r"lab: (\d+) nodes", text)
    n = nodes.group(1) if nodes else "?"
    launches = re.findall(r"launch \d+: nodewb first rows on screen (\d+) ms after launch; all "
                          r"(\d+) rows (\d+) ms after launch; kubectl get nodes just before: "
                          r"(\d+) ms", text)
    if launches:
        first = statistics.median(float(x[0]) for x in launches)
        every = statistics.median(float(x[2]) for x in launches)
        kubectl = statistics.median(float(x[3]) for x in launches)
        note = f"median of {len(launches)} launches"
        rows.append(Row(f"fleet view, {n} nodes: first rows on screen after launch", first,
                        kubectl, "ms", "`kubectl get nodes` done", note=note))
        rows.append(Row(f"fleet view, {n} nodes: every row on screen after launch", every,
                        kubectl, "ms", "`kubectl get nodes` done", note=note))
    key = _find(r"key j/k -> cursor moved: median ([\d.]+) ms, p99 ([\d.]+) ms", text)
    watch = _find(r"watch: (\d+) events/s applied over [\d.]+ s \(lab churn of node status and "
                  r"lease updates asked for (\d+)/s\)", text)
    if key:
        rows.append(Row(f"fleet view, {n} nodes under churn: key press to cursor moved, median",
                        float(key.group(1)), None, "ms", note=f"p99 {key.group(2)} ms"))
    if watch:
        rows.append(Row(f"fleet view, {n} nodes: watch events applied per second",
                        float(watch.group(1)), float(watch.group(2)), "/s", "churn asked for",
                        lower_is_better=False))
    rss = _find(r"peak RSS (\d+) MB", text)
    if rss:
        rows.append(Row(f"fleet view, {n} nodes: peak RSS of the app", float(rss.group(1)), None,
                        "MB"))
    return rows


def ssh_fanout(text: str) -> list[Row]:
    rows = []
    cold = _find(r"nodewb SshClient, cold [^:]*: ([\d.]+) s for (\d+) nodes, (\d+) nodes/s; per "
                 r"node from the start: p50 (\d+) ms, p99 (\d+) ms", text)
    warm = _find(r"nodewb SshClient, warm [^:]*: ([\d.]+) s for (\d+) nodes", text)
    peer = _find(r"OpenSSH, sequential [^(]*\(([^)]*)\): ([\d.]+) s, ([\d.]+) nodes/s; per node "
                 r"p50 (\d+) ms, p99 (\d+) ms", text)
    conc = _find(r"concurrency (\d+)", text)
    if cold is None:
        return rows
    n = cold.group(2)
    how = peer.group(1) if peer else ""
    note = "extrapolated" if peer and "extrapolated" in how else ""
    spread = f"per node p50 {cold.group(4)} ms, p99 {cold.group(5)} ms"
    rows.append(Row(f"SSH probe of {n} nodes through one bastion, new connections "
                    f"(concurrency {conc.group(1) if conc else '?'})", float(cold.group(1)),
                    float(peer.group(2)) if peer else None, "s", "sequential OpenSSH loop",
                    note="; ".join(x for x in (note, spread) if x)))
    if warm:
        rows.append(Row(f"SSH probe of {n} nodes again, connections open", float(warm.group(1)),
                        float(peer.group(2)) if peer else None, "s", "sequential OpenSSH loop",
                        note=note))
    rows.append(Row(f"SSH probe of {n} nodes: nodes per second", float(cold.group(3)),
                    float(peer.group(3)) if peer else None, "/s", "sequential OpenSSH loop",
                    lower_is_better=False))
    return rows


READERS = {"metrics_reduce": metrics_reduce, "kubectl_get_nodes": kubectl_get_nodes,
           "fleet": fleet, "ssh_fanout": ssh_fanout}
