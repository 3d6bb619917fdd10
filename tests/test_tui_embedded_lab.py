"""`nodewb lab` (and `make run`): a lab on a thread of the app's own process, the fleet screen
fed from it over real HTTPS, and nothing left listening once the app has quit."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tui import app as app_module
from tui import cli
from tui.app import NodewbApp
from tui.config import Config
from tui.embedded_lab import EmbeddedLab
from tui.feed import FleetSource, Pump
from tui.fleet_model import Entry

NODES = [f"node-{i:04d}" for i in range(1, 6)]
FAILING = "node-0003"


@pytest.fixture(autouse=True)
def own_settings_and_collector(tmp_path, monkeypatch):
    """No settings file of the person running the tests; the collector as it was (the lab
    freezes it for its own objects)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


def wait_until(what, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {why}"
        time.sleep(0.05)


async def rows_appear(app: NodewbApp, pilot, timeout: float = 30.0) -> list[Entry]:
    """Frames run on the app's own timer; wait until the whole list is on the table."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in app.fleet.table.rows if isinstance(r, Entry)]
        if app.model.synced and len(rows) == len(app.model.entries):
            break
        assert time.monotonic() < deadline, \
            f"the node list was not shown after {timeout}s: {[r.rec.name for r in rows]}"
        await pilot.pause(0.1)
    assert sorted(r.rec.name for r in rows) == NODES
    return rows


def check_rows(rows: list[Entry], source: FleetSource, lab_info: dict) -> None:
    by_name = {r.rec.name: r for r in rows}
    assert by_name[FAILING].rec.ready != "True"  # the scenario asked for shows on the screen
    assert by_name[FAILING].cells["status"] != "Ready"
    assert [r.rec.name for r in rows][0] == FAILING  # sorted by status: the failure first
    assert all(by_name[n].rec.ready == "True" for n in NODES if n != FAILING)
    assert source.context == "nodewb-lab" and source.server == lab_info["api"]


def new_threads(before: set[threading.Thread], *prefixes: str) -> list[threading.Thread]:
    """Threads started since `before` whose names start with one of `prefixes`."""
    return [t for t in threading.enumerate()
            if t not in before and t.name.startswith(prefixes)]


FEED = ("nodewb-fleet-feed", "fleet-")  # FleetSource's thread and FleetFeed's workers


def test_app_on_an_embedded_lab_shows_its_nodes_and_the_lab_stops_after(tmp_path):
    before = set(threading.enumerate())
    directory = tmp_path / "lab"
    lab = EmbeddedLab(directory, nodes=5, scenarios=[f"runtime-dead@{FAILING}"], seed=3)
    lab.start(timeout=60)
    try:
        info = json.loads((directory / "lab.json").read_text())
        api, bastion = info["api_port"], info["bastion"][1]
        assert listening(api) and listening(bastion)
        pump = Pump()
        source = FleetSource(str(directory / "kubeconfig"), None)
        source.start(pump)  # as `nodewb lab` does: the first page is asked for before the UI
        app = NodewbApp(source, title="nodewb lab", pump=pump,
                        ssh_config=str(directory / "ssh_config"),
                        config=Config(tmp_path / "config.toml"))

        async def drive() -> None:
            async with app.run_test(size=(120, 30)) as pilot:
                check_rows(await rows_appear(app, pilot), source, info)
                await pilot.press("q")

        asyncio.run(drive())
        assert pump.stop.is_set()
        wait_until(lambda: not new_threads(before, *FEED), 10, "the feed's threads to end")
    finally:
        lab.stop()
    assert not lab._thread.is_alive()
    assert not listening(api), "the API server still listens after the lab stopped"
    assert not listening(bastion), "the SSH bastion still listens after the lab stopped"


def test_nodewb_lab_command_runs_the_app_and_leaves_nothing_behind(monkeypatch, tmp_path):
    """`nodewb lab --nodes 5`: the command itself, with the app run headless instead of on the
    terminal."""
    seen: dict = {}
    before = set(threading.enumerate())

    def run_headless(kubeconfig, context, ssh_config, *, source, pump, title="nodewb",
                     **options) -> int:
        lab_dir = Path(kubeconfig).parent
        seen.update(dir=lab_dir, title=title, ssh_config=ssh_config,
                    info=json.loads((lab_dir / "lab.json").read_text()))
        app = NodewbApp(source, title=title, pump=pump, ssh_config=ssh_config,
                        config=Config(tmp_path / "config.toml"))

        async def drive() -> None:
            async with app.run_test(size=(120, 30)) as pilot:
                check_rows(await rows_appear(app, pilot), source, seen["info"])
                await pilot.press("q")

        asyncio.run(drive())
        seen["ran"] = True
        return 0

    monkeypatch.setattr(app_module, "run_app", run_headless)
    assert cli.main(["lab", "--nodes", "5", "--seed", "3",
                     "--scenario", f"runtime-dead@{FAILING}"]) == 0
    assert seen.get("ran") and seen["title"] == "nodewb lab"
    assert seen["ssh_config"] == str(seen["dir"] / "ssh_config")
    wait_until(lambda: not new_threads(before, *FEED), 10, "the feed's threads to end")
    assert not new_threads(before, "nodewb-lab")  # the lab's thread
    assert not listening(seen["info"]["api_port"])
    assert not listening(seen["info"]["bastion"][1])
    assert not seen["dir"].exists()  # the lab's kubeconfig and keys went with it
