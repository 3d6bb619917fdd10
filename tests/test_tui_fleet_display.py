"""How the fleet screen reads: without colour (NO_COLOR) and with 16 colours, the cluster it names,
the sorted column always on screen, and an empty table that says what really failed."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from rich.color import ColorSystem
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip
from textual.widgets import Static

from probes.kube import Kube, KubeError, NodeRecord, node_record
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FeedEvent as E
from tui.feed import FleetSource
from tui.fleet_model import COLUMN_BY_ID, ESSENTIAL, SORT_ORDER, FleetModel, layout
from tui.fleet_screen import why_not_connected
from tui.themes import load_themes

FROZEN = 1_794_000_000.0
THEMES = sorted(t.name for t in load_themes()[0])
SCENARIOS = ["runtime-dead", "api-partition", "vxlan-missing"]  # NotReady, Unknown, NotReady


def lab_records(nodes: int = 30) -> list[NodeRecord]:
    from lab.cluster import Cluster

    cluster = Cluster(nodes=nodes, seed=3, now=FROZEN, scenarios=SCENARIOS)
    return [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]


class ListedFeed:
    """Emits one complete list: nodes, leases, pods."""

    context = "lab-context"
    server = "https://10.0.0.1:6443"

    def __init__(self, records: list[NodeRecord]) -> None:
        self.records = records

    def run(self, emit, stop: threading.Event) -> None:
        emit([E("reset"), E("chunk", nodes=list(self.records)), E("synced"),
              E("leases", leases={r.name: FROZEN - 3 for r in self.records}),
              E("pods", pods={r.name: 4 for r in self.records})])


def make_app(feed, theme: str | None = None) -> NodewbApp:
    return NodewbApp(feed, title="nodewb", clock=lambda: FROZEN,
                     config=Config(Path("/nonexistent/config.toml"), theme=theme))


async def settle(app: NodewbApp, pilot) -> None:
    await app.workers.wait_for_complete()
    app.frame()
    await pilot.pause()


async def until(pilot, check, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {why}"
        await pilot.pause(0.1)


def shown(app: NodewbApp, segments: list[Segment]) -> list[Segment]:
    """Segments as the terminal gets them: after the app's line filters (NO_COLOR's greys)."""
    strip = Strip(segments)
    for line_filter in app.get_line_filters():
        strip = strip.apply_filter(line_filter, app.screen.styles.background)
    return list(strip)


def table_cell(app: NodewbApp, word: str) -> Style:
    """The style of the STATUS cell that says `word`, on a row the cursor is not on."""
    table = app.fleet.table
    for y in range(2, table.scrollable_content_region.height):
        for seg in shown(app, list(table.render_line(y))):
            if seg.text.strip() == word:
                return seg.style
    raise AssertionError(f"no {word} cell below the cursor on screen")


def name_cell(app: NodewbApp) -> Style:
    """The style of a Ready row's NAME cell: the theme's ordinary text."""
    table = app.fleet.table
    for y in range(2, table.scrollable_content_region.height):
        segments = shown(app, list(table.render_line(y)))
        if any(s.text.strip() == "Ready" for s in segments):
            return segments[0].style
    raise AssertionError("no Ready row on screen")


def header_part(app: NodewbApp, widget_id: str, words: str) -> Style:
    static = app.fleet.header.query_one(widget_id, Static)
    for y in range(static.size.height):
        for seg in shown(app, list(static.render_line(y))):
            if words in seg.text:
                return seg.style
    raise AssertionError(f"{words!r} is not in the header's {widget_id}")


def luminance(color: Color) -> float:
    def linear(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * linear(color.r) + 0.7152 * linear(color.g) + 0.0722 * linear(color.b)


def contrast(style: Style) -> float:
    """WCAG contrast ratio of the text on its background (reverse video swaps, same ratio)."""
    fg, bg = (luminance(Color.from_rich_color(c)) for c in (style.color, style.bgcolor))
    return (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05)


def assert_stands_out(style: Style, ordinary: Style, what: str) -> None:
    assert style.bold and style.reverse, f"{what}: {style} is not bold reverse"
    if style.color is not None and style.color.is_default:
        # an ANSI theme without colour: reverse video of the terminal's own two colours
        assert style.bgcolor is None or style.bgcolor.is_default, f"{what}: {style}"
        return
    ratio = contrast(style)
    assert ratio >= 3.0, f"{what}: contrast {ratio:.2f} in {style}"
    assert ratio >= contrast(ordinary) - 0.01, \
        f"{what}: contrast {ratio:.2f} is below the ordinary text's {contrast(ordinary):.2f}"


# -- NO_COLOR -------------------------------------------------------------------------------------

@pytest.mark.parametrize("theme", THEMES)
async def test_no_color_sick_nodes_are_bold_reverse_and_legible(theme, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    records = lab_records()
    not_ready = sum(r.ready == "False" for r in records)
    unknown = sum(r.ready == "Unknown" for r in records)
    app = make_app(ListedFeed(records), theme)
    assert app.no_color and not_ready and unknown
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        assert app.theme == theme
        ordinary = name_cell(app)
        assert not ordinary.reverse
        for word in ("NotReady", "Unknown"):
            assert_stands_out(table_cell(app, word), ordinary, f"{theme} {word} cell")
        ready = table_cell(app, "Ready")
        assert not ready.reverse and not ready.bold
        plain = header_part(app, "#counts", " nodes")  # the header's ordinary text
        for count in (f"{not_ready} NotReady", f"{unknown} Unknown"):
            assert_stands_out(header_part(app, "#counts", count), plain,
                              f"{theme} header {count!r}")


@pytest.mark.parametrize("theme", ["nodewb-high-contrast", "nodewb-dark", "nodewb-terminal"])
async def test_no_color_stale_banner_and_rows_still_read(theme, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(ListedFeed(lab_records()), theme)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        live = name_cell(app)
        app.pump.emit([E("connection", connected=False, at=FROZEN - 12,
                         error="cannot reach the API server at https://10.0.0.1:6443: "
                               "Connection refused")])
        app.frame()
        await pilot.pause()
        assert "stale: API unreachable for 12s" in app.fleet.header.text
        stale = name_cell(app)
        assert stale != live  # every row is marked stale (dimmed)...
        if not live.color.is_default:
            assert contrast(stale) >= 3.0  # ...and can still be read
        plain = header_part(app, "#counts", " nodes")
        assert_stands_out(header_part(app, "#banner", "stale:"), plain, f"{theme} banner")
        assert_stands_out(table_cell(app, "NotReady"), stale, f"{theme} stale NotReady")
        cursor = shown(app, list(app.fleet.table.render_line(1)))[0].style
        if not cursor.color.is_default:
            assert contrast(cursor) >= 3.0, f"the stale cursor row is unreadable: {cursor}"


async def test_no_color_off_keeps_the_colours(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app(ListedFeed(lab_records()), "nodewb-dark")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        style = table_cell(app, "NotReady")
        red, green, blue = style.color.triplet  # the theme's error colour, #ff5f5f
        assert not style.reverse and red > 240 and green < 100 and blue < 100, style


# -- 16 colours -----------------------------------------------------------------------------------

@pytest.mark.parametrize("theme", THEMES)
async def test_16_colours_not_ready_has_a_colour_of_its_own(theme, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-16color")
    app = make_app(ListedFeed(lab_records()), theme)
    assert app.console.color_system == "standard"
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)

        def colour(word: str) -> int | None:
            color = table_cell(app, word).color
            return color.downgrade(ColorSystem.STANDARD).number

        not_ready, unknown, ready = colour("NotReady"), colour("Unknown"), colour("Ready")
        assert not_ready is not None and not_ready not in (ready, unknown), \
            f"{theme}: NotReady {not_ready}, Unknown {unknown}, Ready {ready}"


# -- the header names the cluster -----------------------------------------------------------------

@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    from tests._fake_cluster import ThreadedFake

    served = ThreadedFake(tmp_path_factory.mktemp("fake-fleet"), nodes=4)
    yield served
    served.stop()


async def test_the_header_names_the_cluster_of_the_kubeconfig(fake, tmp_path):
    # a kubeconfig whose cluster and context have names of their own
    text = fake.running.kubeconfig.read_text()
    text = text.replace("- name: lab\n  cluster:", "- name: east-prod\n  cluster:")
    text = text.replace("cluster: lab\n", "cluster: east-prod\n")
    text = text.replace("- name: lab\n  context:", "- name: ops@east\n  context:")
    text = text.replace("current-context: lab", "current-context: ops@east")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    source = FleetSource(str(kubeconfig), None)
    app = NodewbApp(source, title="nodewb", config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.synced, 30, "the node list")
        app.frame()
        identity = app.fleet.header.text.splitlines()[0]
        assert "context ops@east" in identity and "cluster east-prod" in identity
        assert f"server {fake.running.url}" in identity
        await pilot.press("q")


async def test_a_cluster_named_like_its_context_is_named_once_and_the_line_never_wraps():
    arn = "arn:aws:eks:us-east-1:123456789012:cluster/prod-east-1"
    feed = ListedFeed(lab_records(5))
    feed.context = feed.cluster = arn  # type: ignore[attr-defined]
    feed.server = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com"
    app = make_app(feed)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        identity = app.fleet.header.text.splitlines()[0]
        assert f"context/cluster {arn}  server {feed.server}" in identity
        line = app.fleet.header.query_one("#identity", Static)
        assert line.size.height == 1  # cut short with an ellipsis, not wrapped
        assert "".join(s.text for s in line.render_line(0)).rstrip().endswith("…")


# -- the sorted column stays on screen ------------------------------------------------------------

def lab_widths() -> dict[str, int]:
    model = FleetModel()
    model.apply([E("reset"), E("chunk", nodes=lab_records(40)), E("synced")])
    return model.widths


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_layout_keeps_the_sorted_column(width):
    natural = lab_widths()
    plain = {c.id for c, _ in layout(width, natural)}
    for column in SORT_ORDER:
        cols = layout(width, natural, keep=column)
        ids = [c.id for c, _ in cols]
        assert column in ids, (width, column, ids)
        assert all(c.id in ids for c in COLUMN_BY_ID.values() if c.priority <= ESSENTIAL)
        if width >= 80:
            assert sum(w for _, w in cols) + len(cols) - 1 <= width, (width, column, cols)
        if column in plain:
            assert cols == layout(width, natural)  # nothing moves for a column already shown
        else:  # the least important optional columns gave way
            kept = [COLUMN_BY_ID[c].priority for c in ids
                    if COLUMN_BY_ID[c].priority > ESSENTIAL and c != column]
            gone = [COLUMN_BY_ID[c].priority for c in plain - set(ids)]
            assert not kept or not gone or max(kept) < min(gone), (width, column, ids)


async def test_at_80_columns_every_sort_shows_its_column():
    app = make_app(ListedFeed(lab_records(40)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.fleet.table
        seen = []
        for _ in SORT_ORDER:
            await pilot.press("s")
            sort = app.model.sort
            seen.append(sort)
            span = [x for x in range(80) if table.column_at(x) == sort]
            assert span, f"{sort} is not shown at 80 columns"
            title = "".join(s.text for s in table.render_line(0))
            cell = title[span[0]:span[-1] + 1].strip()
            assert cell.endswith("▲") and COLUMN_BY_ID[sort].title.startswith(cell[:-1]), \
                (sort, title)
            assert f"sort {COLUMN_BY_ID[sort].title}▲" in app.fleet.header.text
        assert sorted(seen) == sorted(SORT_ORDER)


# -- the empty table says what failed -------------------------------------------------------------

def kube_error(kubeconfig: Path | str, context: str | None = None) -> str:
    with pytest.raises(KubeError) as err:
        Kube(str(kubeconfig), context)
    return str(err.value)


def test_why_not_connected_follows_the_real_messages(tmp_path, fake):
    good = fake.running.kubeconfig.read_text()
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed\n")
    missing_ca = tmp_path / "missing-ca"
    missing_ca.write_text(good.replace(str(fake.running.ca_file), str(tmp_path / "nope.crt")))
    no_context = tmp_path / "no-context"
    no_context.write_text(good.replace("current-context: lab\n", ""))
    cases = {
        kube_error(bad): "the kubeconfig is malformed",
        kube_error(tmp_path / "absent"): "no kubeconfig was found",
        kube_error(fake.running.kubeconfig, "nope"): "the kubeconfig's context cannot be used",
        kube_error(no_context): "the kubeconfig's context cannot be used",
        kube_error(missing_ca): "a credential or certificate the kubeconfig names cannot be "
                                "loaded",
    }
    kube = Kube(str(fake.running.kubeconfig))
    for doing, err in (("list nodes", ConnectionRefusedError(111, "Connection refused")),
                       ("list nodes", TimeoutError("read timed out"))):
        cases["nodes: " + str(kube.explain(err, doing))] = "the API server could not be reached"
    wrong_token = tmp_path / "wrong-token"
    wrong_token.write_text(re.sub(r"    client-certificate: .*\n    client-key: .*\n",
                                  "    token: not-a-token\n", good))
    with pytest.raises(KubeError) as refused:
        Kube(str(wrong_token)).get_json("/api/v1/nodes", doing="list nodes")
    assert refused.value.status == 401
    cases["nodes: " + str(refused.value)] = "the API server refused the credentials"
    # answers the fake server never gives to an authenticated list of nodes
    for status, words in ((403, "listing the nodes is not allowed"),
                          (500, "the API server answered with an error")):
        error = kube._status_error(status, "x", b'{"message": "m"}', "list nodes")
        cases["nodes: " + str(error)] = words
    cases["the fleet feed stopped: RuntimeError: boom"] = "not connected"
    for message, words in cases.items():
        assert why_not_connected(message) == words, message


async def test_a_malformed_kubeconfig_says_so_in_the_empty_table(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters: [unclosed\n")
    app = NodewbApp(FleetSource(str(path), None), title="nodewb",
                    config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.model.error, 15, "the kubeconfig error")
        app.frame()
        await pilot.pause()
        assert "is malformed" in app.fleet.header.text
        table = app.fleet.table
        assert table.empty_text == "no nodes: the kubeconfig is malformed (see above)"
        assert "the kubeconfig is malformed" in "".join(s.text for s in table.render_line(1))
        assert "could not be reached" not in table.empty_text


async def test_an_unreachable_server_says_so_in_the_empty_table(fake, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(fake.running.kubeconfig.read_text()
                    .replace(f"127.0.0.1:{fake.running.port}", f"127.0.0.1:{port}"))
    source = FleetSource(str(path), None)
    app = NodewbApp(source, title="nodewb", config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.model.error, 20, "the connection error")
        app.frame()
        assert "cannot reach the API server" in app.fleet.header.text
        assert app.fleet.table.empty_text == \
            "no nodes: the API server could not be reached (see above)"
        await pilot.press("q")
