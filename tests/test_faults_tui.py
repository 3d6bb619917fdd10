"""The fleet screen against a lab of its own while the API server is down, slow, failing or
cutting watches: every key is answered, the header says the data is stale, and afterwards the
table holds exactly the server's nodes. A node's screen while its SSH connections drop and the
bastion is down: the keys answer, the journal marks the gap and follows again afterwards."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from tests.test_faults_lab import control, faults, inject
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FleetSource
from tui.fleet_model import Entry
from tui.node_screen import PANELS, NodeScreen

KEY_LIMIT = 5.0  # s a key press may take to be handled (a blocked UI would take forever)
LAG_LIMIT = 2.0  # s the UI's event loop may go without running (generous: a loaded 2-core box)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab of the module's own; after the faults it must still stop cleanly on ctrl+c."""
    import signal

    from tests.conftest import assert_stops_cleanly, start_lab

    served = start_lab(tmp_path_factory.mktemp("tui-faults") / "lab", "--nodes", "25",
                       "--seed", "5", "--scenario", "runtime-dead@node-0004")
    yield served
    assert_stops_cleanly(served, signal.SIGINT)


def row_names(app: NodewbApp) -> list[str]:
    return [r.rec.name for r in app.fleet.table.rows if isinstance(r, Entry)]


def server_nodes(lab) -> list[str]:
    return sorted(n.removeprefix("node/")
                  for n in lab.kubectl("get", "nodes", "-o", "name").stdout.split())


async def until(pilot, check, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {why}"
        await pilot.pause(0.1)


async def press(pilot, *keys: str) -> None:
    # The pilot waits after each key until the process looks idle (up to about a second while
    # the feed's thread is busy relisting), so the limit is per key.
    for key in keys:
        try:
            await asyncio.wait_for(pilot.press(key), KEY_LIMIT)
        except TimeoutError:
            raise AssertionError(f"the key {key!r} was not answered in {KEY_LIMIT:g} s") from None


class LoopLag:
    """The longest the UI's event loop was kept from running (a blocked UI shows here), and
    where the loop's thread was while it was blocked for longer than a second."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.where = ""
        self._task: asyncio.Task | None = None
        self._beat = time.monotonic()
        self._done = threading.Event()
        self._loop_thread = threading.get_ident()

    async def _measure(self) -> None:
        while True:
            t0 = time.monotonic()
            self._beat = t0
            await asyncio.sleep(0.02)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.02)

    def _watch(self) -> None:
        while not self._done.wait(0.25):
            if time.monotonic() - self._beat > 1.0 and not self.where:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    self.where = "".join(traceback.format_stack(frame)[-8:])

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._measure())
        threading.Thread(target=self._watch, name="loop-lag", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self._done.set()

    def blocked(self) -> str:
        return f"the UI loop was blocked for {self.worst:.2f}s" + \
            (f", there:\n{self.where}" if self.where else " (no Python frame held it: the CPU)")


async def keys_answer(app: NodewbApp, pilot) -> None:
    """Movement and the filter work on what is on screen."""
    table = app.fleet.table
    await press(pilot, "home")
    assert table.cursor == 0
    await press(pilot, "j", "j")
    assert table.cursor == 2
    await press(pilot, "k")
    assert table.cursor == 1
    await press(pilot, "slash", *"node-001", "enter")
    shown = row_names(app)
    assert shown and all(n.startswith("node-001") for n in shown)
    await press(pilot, "escape")
    assert app.fleet.model.filter_text == ""
    await press(pilot, "s")  # sort cycles: the rows are re-ordered, not lost
    assert len(row_names(app)) == len(app.fleet.model.entries)


@pytest.mark.kubectl
async def test_keys_answer_and_stale_shows_while_the_api_server_is_down(lab):
    source = FleetSource(str(lab.kubeconfig), None)
    app = NodewbApp(source, title="faults", config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.model.synced and len(row_names(app)) == 25, 30,
                    "the first list")
        control(lab, "delete-node", {"node": "node-0011", "after": 1.0})
        down = inject(lab, "api-down:for=6")
        await until(pilot, lambda: "stale: API unreachable" in app.fleet.header.text, 15,
                    "the header to say stale")
        assert time.time() < down["ends"]
        with LoopLag() as lag:
            await keys_answer(app, pilot)  # while the API server is away
        assert lag.worst < LAG_LIMIT, lag.blocked()
        assert "stale" in app.fleet.header.text and len(app.model.entries) == 25
        await until(pilot, lambda: "stale" not in app.fleet.header.text,
                    down["ends"] - time.time() + 10, "live again by itself")
        await until(pilot, lambda: sorted(row_names(app)) == server_nodes(lab), 15,
                    "the table equal to the server's nodes")
        names = row_names(app)
        assert "node-0011" not in names and len(names) == len(set(names)) == 24
        await press(pilot, "q")
    control(lab, "restore-node", {"node": "node-0011"})


@pytest.mark.kubectl
@pytest.mark.parametrize("specs", [
    ("api-slow:delay=4,for=8", "watch-drop:every=0.2,for=1"),
    ("api-5xx:rate=1,for=6", "watch-drop:every=0.2,for=1"),
    ("watch-gone:for=5", "watch-drop:every=0.3,for=4"),
], ids=["slow", "5xx", "gone-and-dropped"])
async def test_keys_answer_under_each_api_fault(lab, specs):
    source = FleetSource(str(lab.kubeconfig), None)
    app = NodewbApp(source, title="faults", config=Config(Path("/nonexistent/config.toml")))
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: app.model.synced and len(row_names(app)) == 25, 30,
                        "the first list")
            ends = max(inject(lab, spec)["ends"] for spec in specs)
            with LoopLag() as lag:
                for _ in range(3):  # through the fault: every round of keys is answered
                    await keys_answer(app, pilot)
                    await pilot.pause(0.5)
            assert lag.worst < LAG_LIMIT, lag.blocked()
            await until(pilot, lambda: time.time() > ends, 20, "the faults to end")
            await until(pilot, lambda: app.model.connected and not app.model.listing
                        and sorted(row_names(app)) == server_nodes(lab), 20,
                        "live and equal to the server afterwards")
            assert "stale" not in app.fleet.header.text
            await press(pilot, "q")
    finally:
        faults(lab, "DELETE")


class HostileFeed:
    """Node objects whose outside text is hostile, through the app's own feed protocol."""

    def __init__(self, records) -> None:
        self.records = records

    def run(self, emit, stop) -> None:
        from tui.feed import FeedEvent

        emit([FeedEvent("reset"), FeedEvent("chunk", nodes=self.records), FeedEvent("synced")])


async def test_hostile_node_text_reaches_the_table_as_text():
    import json

    from lab.cluster import Cluster
    from probes.kube import node_record

    cluster = Cluster(nodes=3, seed=2, scenarios=["runtime-dead@node-0002"])
    objects = [cluster.node_object(s) for s in cluster.nodes.values()]
    ready = next(c for c in objects[1]["status"]["conditions"] if c["type"] == "Ready")
    ready["message"] = "PLEG \x1b]52;c;cm0gLXJm\x07 [bold red]boom[/] \x1b[2J \u202eevil \ud800"
    objects[1]["metadata"]["labels"]["topology.kubernetes.io/zone"] = "[link=x]z[/link]\x1b[5m"
    records = [node_record(json.loads(json.dumps(o))) for o in objects]
    app = NodewbApp(HostileFeed(records), title="hostile",
                    config=Config(Path("/nonexistent/config.toml")))
    async with app.run_test(size=(200, 20)) as pilot:
        await until(pilot, lambda: len(row_names(app)) == 3, 10, "the rows")
        app.frame()
        await pilot.pause()
        table = app.fleet.table
        lines = [table.render_line(y) for y in range(table.size.height)]
        texts = [seg.text for strip in lines for seg in strip]
        drawn = "".join(texts)
        assert "[bold red]boom[/]" in drawn  # markup shown as text
        assert not any(c in drawn for c in "\x1b\x07\u202e\ud800")
        await press(pilot, "q")


def gap_markers(screen, text: str) -> list[str]:
    return [line.text for line in screen.journal.buffer if line.gap and text in line.text]


def lines_after_last_gap(screen) -> int:
    lines = list(screen.journal.buffer)
    last = max((i for i, line in enumerate(lines) if line.gap), default=-1)
    return sum(1 for line in lines[last + 1:] if not line.gap)


async def node_keys_answer(screen, pilot) -> float:
    """Panels, journal search and pause answer on the node screen; returns the slowest key."""
    worst = 0.0

    async def timed(*keys: str) -> None:
        nonlocal worst
        for key in keys:
            t0 = time.monotonic()
            await press(pilot, key)
            worst = max(worst, time.monotonic() - t0)

    before = screen.current
    await timed("tab")
    assert screen.current == (before + 1) % len(PANELS)
    await timed("slash", *"gap", "enter")
    assert screen.journal.query_text == "gap"
    await timed("slash", "escape")
    assert screen.journal.query_text == ""
    await timed("p")
    assert screen.journal.paused
    await timed("p")
    assert not screen.journal.paused
    return worst


@pytest.mark.openssh
@pytest.mark.kubectl
async def test_a_dropped_ssh_connection_leaves_the_node_screen_responsive(lab):
    """On a node's screen the bastion goes down and the node's SSH sessions are cut: the keys
    answer, the journal marks the interruption, re-run probes end as errors in bounded time, and
    the journal follows again once the faults are over."""
    node = "node-0006"
    t_start = time.monotonic()
    source = FleetSource(str(lab.kubeconfig), None)
    app = NodewbApp(source, title="faults", config=Config(Path("/nonexistent/config.toml")),
                    ssh_config=str(lab.ssh_config))
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: app.model.synced and len(row_names(app)) >= 24, 30,
                        "the first list")
            inject(lab, f"journal-hostile:node={node},every=1,for=50")  # lines keep coming
            await press(pilot, "slash", *node, "enter", "enter")
            await until(pilot, lambda: isinstance(app.screen, NodeScreen), 10, "the node screen")
            screen = app.screen
            assert screen.node_name == node
            await until(pilot, lambda: screen.journal.received >= 6, 20, "journal lines")
            await until(pilot, lambda: "finished" in screen.probes.note, 30, "the first probes")
            node_rows = [r for r in screen.probes.rows.values() if r.id.startswith("node.")]
            assert node_rows and all(r.state in ("ok", "bad") for r in node_rows), \
                [(r.id, r.state, r.summary) for r in node_rows]
            t_opened = time.monotonic()

            drop = inject(lab, f"ssh-drop:every=0.5,node={node},for=14")
            down = inject(lab, "bastion-down:for=12")
            await until(pilot, lambda: gap_markers(screen, "stream interrupted"), 10,
                        "the journal's interruption marker")
            assert time.time() < down["ends"], "the bastion came back before the marker"
            with LoopLag() as lag:
                t0 = time.monotonic()
                await press(pilot, "ctrl+r")
                await until(pilot, lambda: screen.probe_run == 2 and
                            "finished" in screen.probes.note, 20, "the re-run probes to end")
                rerun_took = time.monotonic() - t0
                in_outage = time.time() < down["ends"]
                t0 = time.monotonic()
                worst_key = await node_keys_answer(screen, pilot)
                keys_took = time.monotonic() - t0
            assert lag.worst < LAG_LIMIT, lag.blocked()
            assert in_outage, f"the re-run took {rerun_took:.1f}s, past the bastion outage"
            node_rows = [r for r in screen.probes.rows.values() if r.id.startswith("node.")]
            assert node_rows and all(r.state == "error" for r in node_rows), \
                [(r.id, r.state, r.summary) for r in node_rows]
            assert all("refused" in r.summary.lower() for r in node_rows), \
                {r.summary for r in node_rows}

            ends = max(drop["ends"], down["ends"])
            await until(pilot, lambda: time.time() > ends, 20, "the faults to end")
            await until(pilot, lambda: gap_markers(screen, "resumed with --since")
                        and lines_after_last_gap(screen) >= 6, 20,
                        "journal lines after the last gap")
            assert gap_markers(screen, "stream interrupted for")
            print(f"\n10 keys answered in {keys_took:.2f}s (slowest {worst_key:.2f}s, worst "
                  f"loop lag {lag.worst:.3f}s); "
                  f"re-run probes ended as errors in {rerun_took:.2f}s; "
                  f"{len(gap_markers(screen, 'stream interrupted'))} gap markers; "
                  f"node screen up after {t_opened - t_start:.1f}s, "
                  f"whole test {time.monotonic() - t_start:.1f}s")
            await press(pilot, "q")
    finally:
        faults(lab, "DELETE")
