"""The fleet screen: snapshots (fixed size, frozen clock, seeded data) and every key by pilot."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from probes.kube import NodeRecord, node_record
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FeedEvent as E
from tui.feed import FleetSource
from tui.fleet_model import Entry, Group
from tui.fleet_screen import FleetScreen
from tui.fleet_table import FleetTable
from tui.help_screen import HelpScreen
from tui.node_screen import NodeScreen
from tui.themes import load_themes

ROOT = Path(__file__).resolve().parent.parent
REAL_NODES = ROOT.parent / "shared" / "data" / "node-objects" / \
    "node_list_notready_kuberang_testdata.json"
FROZEN = 1_794_000_000.0  # 2026-11-06
THEMES = sorted(t.name for t in load_themes()[0])


def lab_records(nodes: int = 40, scenarios: list[str] | None = None) -> list[NodeRecord]:
    from lab.cluster import Cluster

    cluster = Cluster(nodes=nodes, seed=3, now=FROZEN, scenarios=scenarios)
    return [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]


def real_records() -> list[NodeRecord]:
    if not REAL_NODES.exists():
        pytest.skip("shared/data is not beside this checkout")
    return [node_record(item) for item in json.loads(REAL_NODES.read_text())["items"]]


class ScriptedFeed:
    """A feed that emits the batches it was given, then returns (so workers complete)."""

    def __init__(self, batches: list[list[E]], context: str = "lab-context",
                 server: str = "https://10.0.0.1:6443") -> None:
        self.batches = batches
        self.context = context
        self.server = server

    def run(self, emit, stop: threading.Event) -> None:
        for batch in batches_copy(self.batches):
            emit(batch)


def batches_copy(batches):
    return [list(b) for b in batches]


def listed(records: list[NodeRecord], *extra: E) -> ScriptedFeed:
    leases = {r.name: FROZEN - 4 - (i % 7) for i, r in enumerate(records) if r.ready != "Unknown"}
    leases.update({r.name: FROZEN - 300 for r in records if r.ready == "Unknown"})
    pods = {r.name: 5 + i % 9 for i, r in enumerate(records)}
    return ScriptedFeed([[E("reset"), E("chunk", nodes=records[:20])],
                         [E("chunk", nodes=records[20:]), E("synced")],
                         [E("leases", leases=leases), E("pods", pods=pods)], list(extra)])


def app_for(feed, tmp_path: Path | None = None, theme: str | None = None) -> NodewbApp:
    config = Config(Path(tmp_path or "/nonexistent") / "config.toml", theme=theme)
    return NodewbApp(feed, title="nodewb", clock=lambda: FROZEN, config=config)


async def settle(app: NodewbApp, pilot) -> None:
    """Let the scripted feed finish, then run one frame by hand (no waiting on the timer)."""
    await app.workers.wait_for_complete()
    app.frame()
    await pilot.pause()


def snap(app, snap_compare, size=(120, 36), press=(), before=None):
    async def run_before(pilot) -> None:
        await settle(pilot.app, pilot)
        if before is not None:
            await before(pilot)
        for key in press:
            await pilot.press(key)
        pilot.app.frame()
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


def table_of(app: NodewbApp) -> FleetTable:
    return app.fleet.table


def row_names(app: NodewbApp) -> list[str]:
    return [r.rec.name for r in table_of(app).rows if isinstance(r, Entry)]


# -- snapshots -------------------------------------------------------------------------------------

def test_snapshot_healthy_lab(snap_compare):
    records = lab_records(40, ["pleg-slow-io@node-0003"])  # one failure among healthy nodes
    assert snap(app_for(listed(records)), snap_compare)


def test_snapshot_vxlan_zone_grouped_by_zone(snap_compare):
    records = lab_records(40, ["vxlan-missing"])
    assert snap(app_for(listed(records)), snap_compare, press=["g"])


def test_snapshot_filtered_not_ready(snap_compare):
    assert snap(app_for(listed(lab_records())), snap_compare, press=["slash", *"notready", "enter"])


def test_snapshot_80x24_real_node_list(snap_compare):
    assert snap(app_for(listed(real_records())), snap_compare, size=(80, 24))


def test_snapshot_80x24_lab(snap_compare):
    assert snap(app_for(listed(lab_records())), snap_compare, size=(80, 24))


def test_snapshot_stale(snap_compare):
    feed = listed(lab_records(), E("connection", connected=False, at=FROZEN - 12,
                                   error="cannot reach the API server at https://10.0.0.1:6443: "
                                         "[Errno 111] Connection refused"))
    assert snap(app_for(feed), snap_compare, size=(100, 30))


def test_snapshot_not_connected(snap_compare):
    feed = ScriptedFeed([[E("connection", connected=False, at=FROZEN,
                            error="no kubeconfig at /root/.kube/config: pass --kubeconfig, set "
                                  "KUBECONFIG, or try `nodewb lab` for a simulated cluster")]])
    assert snap(app_for(feed), snap_compare, size=(80, 24))


def test_snapshot_help(snap_compare):
    assert snap(app_for(listed(lab_records())), snap_compare, size=(100, 36),
                press=["question_mark"])


def test_snapshot_node_screen(snap_compare):
    assert snap(app_for(listed(lab_records(40, ["vxlan-missing"]))), snap_compare,
                size=(100, 40), press=["enter"])


@pytest.mark.parametrize("theme", THEMES)
def test_snapshot_theme(theme, snap_compare):
    records = lab_records(40, ["vxlan-missing", "runtime-dead", "inode-exhaustion",
                               "api-partition"])
    assert snap(app_for(listed(records), theme=theme), snap_compare, size=(110, 24),
                press=["j"])


def test_there_are_six_themes_with_dark_light_and_high_contrast():
    assert len(THEMES) >= 6
    assert {"nodewb-dark", "nodewb-light", "nodewb-high-contrast"} <= set(THEMES)


# -- pilot: what each key does ---------------------------------------------------------------------

async def test_first_rows_not_ready_first_and_counts():
    records = lab_records()
    app = app_for(listed(records))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        bad = [r for r in records if r.ready == "False"]
        unknown = [r for r in records if r.ready == "Unknown"]
        names = row_names(app)
        assert len(names) == len(records)
        assert set(names[:len(bad)]) == {r.name for r in bad}
        assert set(names[len(bad):len(bad) + len(unknown)]) == {r.name for r in unknown}
        header = app.fleet.header.text
        assert f"{len(records)} nodes" in header and f"{len(bad)} NotReady" in header
        assert "lab-context" in header and "https://10.0.0.1:6443" in header


async def test_first_chunk_shows_before_the_rest():
    records = lab_records()
    gate = threading.Event()

    class Slow:
        context = server = ""

        def run(self, emit, stop):
            emit([E("reset"), E("chunk", nodes=records[:10])])
            gate.wait(10)
            emit([E("chunk", nodes=records[10:]), E("synced")])

    app = app_for(Slow())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.frame()
        assert len(row_names(app)) == 10
        assert "listing nodes: 10 so far" in app.fleet.header.text
        gate.set()
        await app.workers.wait_for_complete()
        app.frame()
        assert len(row_names(app)) == len(records)
        assert "listing" not in app.fleet.header.text


async def test_movement_keys():
    app = app_for(listed(lab_records()))
    async with app.run_test(size=(100, 20)) as pilot:
        await settle(app, pilot)
        table = table_of(app)
        assert table.cursor == 0
        await pilot.press("j", "down")
        assert table.cursor == 2
        await pilot.press("k")
        assert table.cursor == 1
        await pilot.press("up")
        assert table.cursor == 0
        await pilot.press("end")
        assert table.cursor == 39
        assert table.scroll_offset.y > 0
        await pilot.press("home")
        assert table.cursor == 0 and table.scroll_offset.y == 0
        await pilot.press("G")
        assert table.cursor == 39
        # a page is the node lines the table shows (its height less the header line)
        page = table.scrollable_content_region.height - 1
        assert 5 <= page < 20
        for down, up in (("pagedown", "pageup"), ("ctrl+f", "ctrl+b")):
            await pilot.press("home")
            await pilot.press(down)
            assert table.cursor == page, down
            await pilot.press(down)
            assert table.cursor == 2 * page, down
            assert table.scroll_offset.y > 0  # the cursor is kept in view
            await pilot.press(up)
            assert table.cursor == page, up
            await pilot.press("G", up)
            assert table.cursor == 39 - page, up
            await pilot.press(up, up, up)
            assert table.cursor == 0 and table.scroll_offset.y == 0, up
            await pilot.press("end", down)
            assert table.cursor == 39, down  # no further than the last node


async def test_enter_opens_the_node_and_escape_comes_back():
    records = lab_records()
    app = app_for(listed(records))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("j")
        name = table_of(app).current.rec.name
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen) and app.screen.node_name == name
        body = str(app.screen.query_one("#node-body").render())
        assert name in body and "Conditions" in body and "Taints" in body
        assert "Kubelet Version" in body
        app.frame()  # the node page follows the model while it is open
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        assert table_of(app).current.rec.name == name


async def test_filter_key_escape_and_condition_words():
    records = lab_records(40, ["vxlan-missing"])
    app = app_for(listed(records))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"net", "enter")
        want = {r.name for r in records if r.conditions.get("NetworkUnavailable") == "True"}
        assert set(row_names(app)) == want
        assert app.focused is table_of(app)
        assert "filter net" in app.fleet.header.text
        await pilot.press("escape")
        assert len(row_names(app)) == len(records)
        # escape inside the filter line clears it too; q typed there is text, not quit
        await pilot.press("slash", "q")
        assert app.is_running and app.fleet.model.filter_text == "q"
        await pilot.press("escape")
        assert app.fleet.model.filter_text == "" and len(row_names(app)) == len(records)


async def test_sort_keys_and_header_click():
    app = app_for(listed(lab_records()))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        model = app.fleet.model
        assert model.sort == "status"
        await pilot.press("s")
        assert model.sort != "status"
        await pilot.press("S")
        assert model.reverse
        table = table_of(app)
        x = next(i for i in range(120) if table.column_at(i) == "name")
        await pilot.click(FleetTable, offset=(x, 0))
        assert model.sort == "name" and not model.reverse
        assert row_names(app) == sorted(row_names(app))
        await pilot.click(FleetTable, offset=(x, 0))
        assert model.reverse
        assert row_names(app) == sorted(row_names(app), reverse=True)


async def test_group_key_cycles():
    app = app_for(listed(lab_records(40, ["vxlan-missing"])))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        seen = []
        for _ in range(6):
            await pilot.press("g")
            seen.append(app.fleet.model.group)
        assert seen == ["zone", "pool", "kernel", "os", "version", None]
        await pilot.press("g")
        rows = table_of(app).rows
        assert isinstance(rows[0], Group) and rows[0].key == "us-east-1b"
        assert isinstance(table_of(app).current, Entry)  # the cursor skips group lines


async def test_help_lists_every_binding():
    app = app_for(listed(lab_records(5)))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row.id for row in app.screen.rows}
        for binding in FleetTable.BINDINGS + FleetScreen.BINDINGS + NodewbApp.BINDINGS:
            assert binding.id in ids, binding.id
        assert any(r.keys == "^p" for r in app.screen.rows)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def run_command(app: NodewbApp, title: str) -> None:
    """Run the palette command whose title is the best match for `title` (as Enter would)."""
    from tui.commands import FleetCommands

    provider = FleetCommands(app.screen)
    hits = [hit async for hit in provider.search(title)]
    assert hits, f"no command matches {title!r}"
    best = max(hits, key=lambda h: h.score)
    assert best.text.lower() == title.lower(), [h.text for h in hits]
    best.command()


@pytest.mark.parametrize("key", ["colon", "ctrl+p"])
async def test_palette_opens_and_closes(key):
    from textual.command import CommandPalette

    app = app_for(listed(lab_records()))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press(key)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_palette_commands_sort_group_filter_quit():
    app = app_for(listed(lab_records()))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        model = app.fleet.model
        await run_command(app, "Group by zone")
        assert model.group == "zone"
        await run_command(app, "No grouping")
        assert model.group is None
        for title, column in (("Sort by LEASE", "lease"), ("Sort by KERNEL", "kernel"),
                              ("Sort by NAME", "name")):
            await run_command(app, title)
            assert model.sort == column
        await run_command(app, "Reverse sort order")
        assert model.reverse
        model.set_filter("notready")
        await run_command(app, "Clear filter")
        assert model.filter_text == ""
        await run_command(app, "Quit nodewb")
        await pilot.pause()
    assert app.return_code == 0


async def test_palette_switches_theme_and_remembers_it(tmp_path):
    app = app_for(listed(lab_records(5)), tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert app.theme == "nodewb-dark"
        await run_command(app, "Theme: nodewb-light")
        await pilot.pause()
        assert app.theme == "nodewb-light"
    assert 'theme = "nodewb-light"' in (tmp_path / "config.toml").read_text()


async def test_mouse_click_selects_and_double_click_opens():
    app = app_for(listed(lab_records()))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = table_of(app)
        await pilot.click(FleetTable, offset=(2, 4))
        assert table.cursor == 3
        name = table.current.rec.name
        await pilot.double_click(FleetTable, offset=(2, 4))
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen) and app.screen.node_name == name


async def test_wheel_scrolls():
    from textual.events import MouseScrollDown

    app = app_for(listed(lab_records()))
    async with app.run_test(size=(100, 16)) as pilot:
        await settle(app, pilot)
        table = table_of(app)
        for _ in range(3):
            table.post_message(MouseScrollDown(table, 5, 5, 0, 1, 0, False, False, False))
            await pilot.pause()
        assert table.scroll_offset.y > 0


async def test_q_quits():
    app = app_for(listed(lab_records(5)))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
    assert app.return_code == 0


async def test_live_updates_redraw_only_changed_lines():
    records = lab_records()
    app = app_for(listed(records))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.pause()
        table = table_of(app)
        before = table.repaints
        app.frame()
        await pilot.pause()
        assert table.repaints == before  # nothing changed: nothing re-rendered
        name = row_names(app)[-1]
        app.pump.emit([E("leases", leases={row_names(app)[5]: FROZEN - 1})])
        app.frame()
        await pilot.pause()
        assert table.repaints - before == 1
        assert name in row_names(app)


async def test_stale_marks_and_recovers():
    records = lab_records()
    app = app_for(listed(records))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        app.pump.emit([E("connection", connected=False, error="connection refused",
                         at=FROZEN - 12)])
        app.frame()
        text = app.fleet.header.text
        assert "stale: API unreachable for 12s — connection refused" in text
        assert len(row_names(app)) == len(records)  # the last data stays on screen
        app.pump.emit([E("connection", connected=True, at=FROZEN), E("reset"),
                       E("chunk", nodes=records[1:]), E("synced")])
        app.frame()
        assert "stale" not in app.fleet.header.text
        assert records[0].name not in row_names(app)  # no ghosts after the relist


# -- the real thing --------------------------------------------------------------------------------

@pytest.mark.kubectl
async def test_fleet_from_the_served_lab(served_lab):
    source = FleetSource(str(served_lab.kubeconfig), None)
    app = NodewbApp(source, title="test", config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while not app.model.synced and time.monotonic() < deadline:
            await pilot.pause(0.1)
        app.frame()
        names = row_names(app)
        assert len(names) == served_lab.info["nodes"]
        first = table_of(app).rows[0]
        assert first.rec.ready == "False"
        assert "node-0004" in names
        assert source.server.startswith("https://127.")
        await pilot.press("q")
