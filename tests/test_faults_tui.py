"""The fleet screen against a lab of its own while the API server is down, slow, failing or
cutting watches: every key is answered, the header says the data is stale, and afterwards the
table holds exactly the server's nodes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.test_faults_lab import control, faults, inject
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FleetSource
from tui.fleet_model import Entry

KEY_LIMIT = 5.0  # s a key press may take to be handled (a blocked UI would take forever)
LAG_LIMIT = 2.0  # s the UI's event loop may go without running (generous: a loaded 2-core box)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path_factory.mktemp("tui-faults") / "lab", "--nodes", "25",
                       "--seed", "5", "--scenario", "runtime-dead@node-0004")
    yield served
    stop_lab(served)


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
        await asyncio.wait_for(pilot.press(key), KEY_LIMIT)


class LoopLag:
    """The longest the UI's event loop was kept from running (a blocked UI shows here)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _measure(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.02)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.02)

    def __enter__(self) -> "LoopLag":
        self._task = asyncio.get_running_loop().create_task(self._measure())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


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
        assert lag.worst < LAG_LIMIT, f"the UI loop was blocked for {lag.worst:.2f}s"
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
            assert lag.worst < LAG_LIMIT, f"the UI loop was blocked for {lag.worst:.2f}s"
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
