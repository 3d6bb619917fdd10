"""The node screen: snapshots (frozen clock, seeded lab data, the real probe plan replaying
observations recorded from the lab by tests/record_observations.py), every key by pilot, outside
text shown literally, and the real served lab."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probes.kube import node_record
from probes.metrics import parse
from probes.node_probes import NodeProbes
from probes.observation import Observation, Status
from probes.ssh import StreamGap
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FeedEvent as E
from tui.fleet_screen import FleetScreen
from tui.help_screen import HelpScreen
from tui.node_context import NodeContext
from tui.node_journal import clean_line
from tui.node_screen import NodeScreen, new_lines
from tui.node_signals import histories

FROZEN = 1_794_000_000.0
# the nodes the observations were recorded on (tests/conftest.py SCENARIO_NODES)
DEADLOCK = "node-0004"
HEALTHY = "node-0002"
DISK_FULL = "node-0012"
PARTITION = "node-0018"
DATA = Path(__file__).resolve().parent / "data" / "observations"
RECORDING = {DEADLOCK: "containerd-deadlock", HEALTHY: "healthy", DISK_FULL: "disk-full",
             PARTITION: "api-partition"}
# each node's seeded lab: (nodes, scenarios)
LABS = {DEADLOCK: (8, (f"containerd-deadlock@{DEADLOCK}",)),
        HEALTHY: (8, (f"containerd-deadlock@{DEADLOCK}",)),
        DISK_FULL: (20, (f"disk-full@{DISK_FULL}", f"api-partition@{PARTITION}")),
        PARTITION: (20, (f"disk-full@{DISK_FULL}", f"api-partition@{PARTITION}"))}


# -- seeded lab data -------------------------------------------------------------------------------
@dataclass
class Seed:
    records: list
    events: list[dict]
    pods: list[dict]
    journal: list[str]
    scrapes: list[bytes]
    times: list[float]


_SEEDS: dict[str, Seed] = {}


def _journal_text(name: str, e) -> str:
    stamp = datetime.fromtimestamp(e.ts, UTC).strftime("%b %d %H:%M:%S")
    return f"{stamp} {name} {e.ident}[{e.pid}]: {e.message}"


def seed(node: str, scrapes: int = 8) -> Seed:
    if node in _SEEDS:
        return _SEEDS[node]
    from lab.cluster import Cluster
    from lab.metrics import attach

    size, scenarios = LABS[node]
    cluster = Cluster(nodes=size, seed=3, now=FROZEN - 300, scenarios=list(scenarios))
    state = cluster.nodes[node]
    m = state.machine
    start = FROZEN - 5 * scrapes
    cluster.tick(start)
    m.catch_up(start)
    attach(m)
    payloads, times = [], []
    for i in range(scrapes):
        t = start + 5 * (i + 1)
        cluster.tick(t)
        m.catch_up(t)
        payloads.append(m.metrics.render(m, t))
        times.append(t)
    records = [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]
    pods = [cluster.pod_object(p, node, state) for p in m.pods]
    # the lab's own events of the node, as the API's field selector picks them
    events = [st.object() for st in cluster.store["events"].select(
        match=lambda st: st.fields.get("involvedObject.kind") == "Node"
        and st.fields.get("involvedObject.name") == node)]
    journal = [_journal_text(node, e) for e in list(m.journal("kubelet").entries)[-60:]]
    _SEEDS[node] = Seed(records, events, pods, journal, payloads, times)
    return _SEEDS[node]


# -- fakes -----------------------------------------------------------------------------------------
class FakeKube:
    def __init__(self, s: Seed) -> None:
        self.s = s
        self.calls: list[tuple] = []

    def get_json(self, path, params=None, **_):
        self.calls.append((path, params))
        return {"items": self.s.events if "events" in path else self.s.pods}


class FakeStream:
    def __init__(self, items, hold: asyncio.Event | None) -> None:
        self.items = list(items)
        self.hold = hold
        self.exit_status = 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for item in self.items:
            yield item
        if self.hold is not None:
            await self.hold.wait()


class FakeSsh:
    def __init__(self, items, hold: bool = True) -> None:
        self.items = items
        self.hold = asyncio.Event() if hold else None
        self.streams: list[tuple] = []

    def stream(self, node, command, **_):
        self.streams.append((node, command))
        return FakeStream(self.items, self.hold)


class FakeKubelet:
    def __init__(self, s: Seed, via: str = "apiserver-proxy") -> None:
        self.s = s
        self.via = via
        self.n = 0
        self.done = asyncio.Event()

    async def scrape(self, node, via="auto", **_):
        if self.n >= len(self.s.scrapes):
            self.done.set()
            await asyncio.Event().wait()
        i = self.n
        self.n += 1
        t = self.s.times[i]
        obs = Observation("kubelet.metrics", node, Status.OK, t, 0.05, "metrics", {}, self.via)
        return obs, parse(self.s.scrapes[i], at=t)

    async def logs(self, node, query="kubelet", **_):
        return Observation("kubelet.logs", node, Status.OK, FROZEN, 0.01, "lines",
                           {"lines": self.s.journal[-20:]}, self.via)


# -- the real probe plan, replaying recorded observations -----------------------------------------
PLAN = NodeProbes(None, None, None, DEADLOCK).plan()  # ids, titles and time limits the app shows


def recorded(node: str) -> list[Observation]:
    """What the real probes observed on the lab node of this scenario, in the order it arrived,
    on the frozen clock."""
    return recorded_scenario(RECORDING[node])


def recorded_scenario(name: str) -> list[Observation]:
    """The observations recorded on the lab node of scenario NAME (tests/record_observations.py),
    on the frozen clock."""
    out = []
    for d in json.loads((DATA / f"{name}.json").read_text()):
        d = dict(d)
        d.pop("arrived", None)
        d["status"] = Status(d["status"])
        d["started"] = FROZEN - 30 + d["started"]
        out.append(Observation(**d))
    return out


def upto(observations: list[Observation], probe: str) -> int:
    """How many observations arrived before `probe`'s."""
    return next(i for i, o in enumerate(observations) if o.probe == probe)


class ReplayProbes:
    """The real plan; every probe starts as NodeProbes reports it (by id), then the first
    `count` recorded observations arrive in their order. When some are left the run holds, those
    still running (the hung runtime's probes, midway); else it returns, as a finished run does."""

    def __init__(self, observations: list[Observation], count: int | None = None) -> None:
        self.observations = observations
        self.count = len(observations) if count is None else count
        self.hold = self.count < len(observations)
        self.reached = asyncio.Event()
        self.runs = 0

    def plan(self):
        return list(PLAN)

    async def run(self, on_start, on_observation):
        self.runs += 1
        for spec in PLAN:
            on_start(spec.id)
        out = self.observations[:self.count]
        for o in out:
            on_observation(o)
        self.reached.set()
        if self.hold:
            await asyncio.Event().wait()
        return out


def deadlock_midway() -> ReplayProbes:
    """3 s in on the deadlocked node: the quick checks are in, crictl still runs."""
    obs = recorded(DEADLOCK)
    return ReplayProbes(obs, upto(obs, "node.crictl.ps"))


class Clock:
    def __init__(self, now: float = FROZEN) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def context_for(node: str, probes: ReplayProbes | None = None, ssh_items=None,
                clock: Clock | None = None, kubelet_via: str = "apiserver-proxy") -> NodeContext:
    s = seed(node)
    kubelet = FakeKubelet(s, via=kubelet_via)
    items = ssh_items if ssh_items is not None else s.journal
    probes = probes if probes is not None else ReplayProbes(recorded(node))
    ctx = NodeContext(kube=FakeKube(s), ssh=FakeSsh(items), kubelet=lambda: kubelet,
                      probes=lambda name: probes, clock=clock or Clock(), scrape_every=0.0,
                      poll_every=0.01)
    ctx.extra.update(kubelet=kubelet, probes=probes)
    return ctx


class OneShot:
    context = "lab-context"
    server = "https://10.0.0.1:6443"

    def __init__(self, records) -> None:
        self.records = records

    def run(self, emit, stop) -> None:
        leases = {r.name: FROZEN - 4 for r in self.records}
        emit([E("reset"), E("chunk", nodes=self.records), E("synced"), E("leases",
              leases=leases), E("pods", pods={r.name: 9 for r in self.records})])


def app_with(node: str, ctx: NodeContext) -> NodewbApp:
    app = NodewbApp(OneShot(seed(node).records), clock=lambda: FROZEN,
                    config=Config(Path("/nonexistent/config.toml")))
    app.node_context = ctx  # type: ignore[attr-defined]
    return app


async def open_node(app: NodewbApp, pilot, node: str) -> NodeScreen:
    await app.workers.wait_for_complete()
    app.frame()
    await pilot.pause()
    screen = NodeScreen(app.model, node, FROZEN)
    await app.push_screen(screen)
    await pilot.pause()
    return screen


async def settled(screen: NodeScreen, pilot, ctx: NodeContext) -> None:
    """Wait for the seeded data to be in: every scrape taken, probes at their scripted point,
    the journal stream drained, events loaded; then one frame."""
    await asyncio.wait_for(ctx.extra["kubelet"].done.wait(), 10)
    await asyncio.wait_for(ctx.extra["probes"].reached.wait(), 10)
    for _ in range(50):
        await pilot.pause()
        finished = ctx.extra["probes"].hold or "finished" in screen.probes.note
        if finished and not screen.facts_state and not screen.journal.pending and \
                screen.journal.received >= len(ctx.ssh.items if ctx.ssh else []):
            break
        await asyncio.sleep(0.01)
    screen.flush()
    await pilot.pause()


def snap(node, ctx, snap_compare, size=(120, 36), press=(), clock: Clock | None = None):
    app = app_with(node, ctx)

    async def run_before(pilot) -> None:
        screen = await open_node(pilot.app, pilot, node)
        await settled(screen, pilot, ctx)
        if clock is not None:
            clock.now = FROZEN + 3.4  # running probes have been running a while
        for key in press:
            await pilot.press(key)
        screen.flush()
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshot_healthy_node(snap_compare):
    assert snap(HEALTHY, context_for(HEALTHY), snap_compare)


def test_snapshot_containerd_deadlock_midway(snap_compare):
    clock = Clock()
    ctx = context_for(DEADLOCK, deadlock_midway(), clock=clock)
    assert snap(DEADLOCK, ctx, snap_compare, clock=clock)


def test_snapshot_journal_paused_with_search(snap_compare):
    ctx = context_for(DEADLOCK)
    assert snap(DEADLOCK, ctx, snap_compare, press=["p", "slash", *"PLEG", "enter"])


def test_snapshot_80x24(snap_compare):
    ctx = context_for(DEADLOCK)
    assert snap(DEADLOCK, ctx, snap_compare, size=(80, 24))


def test_snapshot_80x24_signals_tab(snap_compare):
    ctx = context_for(DEADLOCK)
    assert snap(DEADLOCK, ctx, snap_compare, size=(80, 24), press=["tab"] * 4)


def test_snapshot_disk_full(snap_compare):
    assert snap(DISK_FULL, context_for(DISK_FULL), snap_compare)


def test_snapshot_api_partition(snap_compare):
    # the control plane cannot reach the node: the kubelet is reached over SSH
    ctx = context_for(PARTITION, kubelet_via="ssh")
    assert snap(PARTITION, ctx, snap_compare)


def test_snapshot_api_partition_kubelet_probes_via_ssh(snap_compare):
    # the probes tab, at its end: the kubelet's endpoints came over SSH after the proxy failed
    ctx = context_for(PARTITION, kubelet_via="ssh")
    assert snap(PARTITION, ctx, snap_compare, size=(80, 30), press=["tab"] * 3 + ["end"])


def test_recordings_cover_the_real_plan():
    """Each recording holds one observation of every probe the app plans (re-record with
    `python -m tests.record_observations` when the plan changes)."""
    ids = [p.id for p in PLAN]
    for node in RECORDING:
        assert sorted(o.probe for o in recorded(node)) == sorted(ids), RECORDING[node]
        assert {o.node for o in recorded(node)} == {node}


# -- pilot: every key ------------------------------------------------------------------------------
async def test_keys_pause_search_rerun_panels_help_back():
    ctx = context_for(DEADLOCK)
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        await settled(screen, pilot, ctx)
        # the facts: the node's events and its pods, from the API
        events = str(screen.query_one("#node-events").render())
        assert "Events:" in events and "Type    Reason" in events
        for ev in seed(DEADLOCK).events:
            assert ev["reason"] in events and ev["message"] in events
        assert "NodeNotReady" in events and "Node node-0004 status is now: NodeNotReady" in events
        pods = str(screen.query_one("#node-pods").render())
        assert f"Pods on the node ({len(seed(DEADLOCK).pods)}):" in pods
        assert seed(DEADLOCK).pods and "Phase" in pods and "Restarts" in pods
        for pod in seed(DEADLOCK).pods:
            meta = pod["metadata"]
            assert f"{meta['namespace']}/{meta['name']}" in pods
        journal = screen.journal
        assert journal.received == len(seed(DEADLOCK).journal)
        assert "kubelet" in ctx.ssh.streams[0][1]
        # p pauses: new lines are buffered, not drawn; p again draws them
        await pilot.press("p")
        assert journal.paused
        drawn = len(journal.log_view.lines)
        journal.add_lines(["I1106 a line that came while paused"])
        screen.flush()
        assert len(journal.log_view.lines) == drawn and journal.held == 1
        await pilot.press("p")
        assert not journal.paused and journal.held == 0
        assert "came while paused" in "".join(s.text for s in journal.log_view.lines)
        # / searches: only matching lines stay, the query is kept after enter
        await pilot.press("slash", *"while paused", "enter")
        assert journal.query_text == "while paused"
        shown = [s.text for s in journal.log_view.lines]
        assert shown and all("while" in t or "paused" in t for t in shown)
        await pilot.press("slash")
        await pilot.press("escape")  # esc in the search box clears it, stays on the screen
        assert journal.query_text == "" and isinstance(app.screen, NodeScreen)
        # tab / shift+tab move between panels
        assert screen.current == 2  # the journal, after searching
        await pilot.press("tab")
        assert screen.current == 3 and screen.panel(3).has_class("-current")
        await pilot.press("shift+tab")
        assert screen.current == 2
        # ctrl+r runs the probes again
        runs = ctx.extra["probes"].runs
        await pilot.press("ctrl+r")
        for _ in range(50):
            await pilot.pause(0.02)
            if ctx.extra["probes"].runs == runs + 1:
                break
        assert ctx.extra["probes"].runs == runs + 1 and screen.probe_run == 2
        # ? lists the node keys, with their ids
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        # esc goes back to the fleet
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


def test_binding_ids():
    ids = {b.id for b in NodeScreen.BINDINGS}
    assert {"node.back", "node.search", "node.pause", "node.rerun", "node.capture", "node.actions",
            "node.verify", "node.report", "node.next_panel",
            "node.prev_panel", "node.help"} <= ids


async def test_probes_panel_states_and_elapsed_time():
    clock = Clock()
    obs = recorded(DEADLOCK)
    ctx = context_for(DEADLOCK, ReplayProbes(obs, upto(obs, "node.crictl.pods")), clock=clock)
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        await settled(screen, pilot, ctx)
        rows = screen.probes.rows
        assert list(rows) == [p.id for p in PLAN]  # the real plan, in its order
        assert rows["node.crictl.ps"].state == "hung"
        assert rows["kubelet.healthz"].state == "bad"
        assert rows["node.df.inodes"].state == "ok"
        assert rows["kubelet.cert.serving"].state == "ok"
        assert rows["node.crictl.pods"].state == "running"
        clock.now += 7
        screen.flush()
        assert "7.0s of 10s" in screen.probes.plain
        assert "crictl ps did not return in 10 s" in screen.probes.plain
        assert "serving certificate node-0004@" in screen.probes.plain
        # the tree reads the real ids: the hung runtime is the verdict, not "all untested"
        assert screen.diagnosis.conclusion() == "runtime_down"


async def test_without_ssh_or_cluster_every_probe_says_why_it_is_skipped():
    ctx = context_for(DEADLOCK)
    real = NodeProbes(None, None, None, DEADLOCK)
    ctx.probes = lambda name: real
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        for _ in range(100):
            await pilot.pause(0.02)
            if "finished" in screen.probes.note:
                break
        screen.flush()
        rows = screen.probes.rows
        assert list(rows) == [p.id for p in PLAN]
        assert {r.state for r in rows.values()} == {"skipped"}
        assert "no SSH configured" in screen.probes.plain
        assert "no kubelet client configured" in screen.probes.plain


async def test_partition_reaches_the_kubelet_over_ssh_and_says_so():
    ctx = context_for(PARTITION, kubelet_via="ssh")
    app = app_with(PARTITION, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, PARTITION)
        await settled(screen, pilot, ctx)
        assert "via ssh" in screen.signals.via_text
        rows = screen.probes.rows
        for probe in ("kubelet.healthz", "kubelet.metrics", "kubelet.configz",
                      "kubelet.goroutines"):
            assert rows[probe].state in ("ok", "bad") and rows[probe].via == "ssh", probe
        assert rows["node.apiserver"].state == "bad" and rows["api.lease"].state == "bad"
        assert "healthz 200 via ssh (the proxy failed" in screen.probes.plain
        assert screen.diagnosis.conclusion() == "apiserver_unreachable"
        events = str(screen.query_one("#node-events").render())
        assert "NodeNotReady" in events


async def test_disk_full_names_the_disk_and_its_events():
    ctx = context_for(DISK_FULL)
    app = app_with(DISK_FULL, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DISK_FULL)
        await settled(screen, pilot, ctx)
        assert screen.probes.rows["node.df.space"].state == "bad"
        assert "space 100% used on /" in screen.probes.plain
        assert screen.diagnosis.conclusion() == "disk_pressure"
        events = str(screen.query_one("#node-events").render())
        assert "EvictionThresholdMet" in events and "ImageGCFailed" in events
        assert "Warning" in events


async def test_signals_fill_from_scrapes_and_name_the_path():
    ctx = context_for(DEADLOCK, deadlock_midway())
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        await settled(screen, pilot, ctx)
        hist = histories(screen.signals)
        assert len(hist["goroutines"]) == len(seed(DEADLOCK).scrapes)
        assert hist["goroutines"][-1] > 500  # the hung runtime piles goroutines up
        assert "via apiserver-proxy" in screen.signals.via_text
        assert screen.query_one("#signal-goroutines").has_class("-over")


# -- outside text ----------------------------------------------------------------------------------
def test_clean_line_shows_escapes_and_controls_as_text():
    assert clean_line("\x1b[31mred\x1b[0m plain") == "\\x1b[31mred\\x1b[0m plain"
    assert clean_line("bell\x07 nul\x00") == "bell\\x07 nul\\x00"
    assert clean_line("osc \x1b]0;title\x07 done") == "osc \\x1b]0;title\\x07 done"
    assert "\n" not in clean_line("two\nlines")
    assert clean_line("[bold]markup[/]") == "[bold]markup[/]"


async def test_journal_shows_escapes_and_markup_literally():
    hostile = ["E1106 \x1b[31mred\x1b[0m [bold]markup[/] \x1b]0;pwned\x07 end",
               "[link=http://x]click[/link] \x08"]
    ctx = context_for(DEADLOCK, deadlock_midway(),
                      ssh_items=hostile + [StreamGap(DEADLOCK, "connection lost", FROZEN - 3)])
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        await settled(screen, pilot, ctx)
        text = [s.text for s in screen.journal.log_view.lines]
        joined = "\n".join(text)
        assert "E1106 \\x1b[31mred\\x1b[0m [bold]markup[/] \\x1b]0;pwned\\x07 end" in joined
        assert "[link=http://x]click[/link] \\x08" in joined
        assert "\x1b" not in joined
        assert any("stream interrupted" in t for t in text)  # the gap, as a marker line


async def test_journal_batches_a_burst_per_frame():
    burst = [f"I1106 line {i}" for i in range(20_000)]
    ctx = context_for(DEADLOCK, deadlock_midway(), ssh_items=burst)
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        t = time.perf_counter()
        await settled(screen, pilot, ctx)
        took = time.perf_counter() - t
        journal = screen.journal
        assert journal.received == len(burst)
        assert journal.frames_drawn < 200  # drawn in batches, not line by line
        assert "line 19999" in journal.log_view.lines[-1].text
        print(f"\n20k lines in {took:.2f}s, {journal.frames_drawn} frames")


def test_new_lines_after_overlap():
    assert new_lines([], ["a", "b"]) == (["a", "b"], True)
    assert new_lines(["a", "b"], ["a", "b", "c"]) == (["c"], True)
    assert new_lines(["a", "b"], ["b", "c", "d"]) == (["b", "c", "d"], False)
    assert new_lines(["x", "b"], ["a", "b"]) == ([], True)


async def test_without_ssh_the_journal_polls_the_log_query():
    ctx = context_for(DEADLOCK, deadlock_midway())
    ctx.ssh = None
    app = app_with(DEADLOCK, ctx)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        for _ in range(50):
            await pilot.pause(0.02)
            if screen.journal.received:
                break
        await pilot.pause(0.1)
        screen.flush()
        assert screen.journal.received == 20  # polled again and again, no line repeated
        assert "log query" in screen.journal.source


# -- the real thing --------------------------------------------------------------------------------
@pytest.mark.kubectl
async def test_node_screen_against_the_served_lab(served_lab):
    from tests.conftest import SCENARIO_NODES
    from tui.feed import FleetSource
    from tui.node_context import live_context

    node = SCENARIO_NODES["containerd-deadlock"]
    source = FleetSource(str(served_lab.kubeconfig), None)
    app = NodewbApp(source, title="test", config=Config(Path("/nonexistent/config.toml")))
    make = live_context(source.connect, str(served_lab.ssh_config))

    def fast():
        ctx = make()
        ctx.scrape_every = 1.0
        return ctx

    app.node_context = fast  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 36)) as pilot:
        deadline = time.monotonic() + 30
        while not app.model.synced and time.monotonic() < deadline:
            await pilot.pause(0.1)
        screen = NodeScreen(app.model, node, time.time())
        await app.push_screen(screen)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and not screen.journal.buffer:
            await pilot.pause(0.1)
        journal_after = time.monotonic() - t0
        assert screen.journal.buffer, screen.journal.source
        assert any("kubelet" in line.text for line in screen.journal.buffer)
        # crictl hangs on this node for its whole 10 s timeout; the keys answer meanwhile.
        crictl = screen.probes.rows.get("node.crictl.ps")
        assert crictl is not None and crictl.state in ("pending", "running"), crictl
        before = screen.current
        await pilot.press("tab")
        assert screen.current != before
        assert screen.probes.rows["node.crictl.ps"].state in ("pending", "running")
        await pilot.press("shift+tab")
        assert screen.current == before
        while time.monotonic() - t0 < 25 and screen.probes.rows["node.crictl.ps"].state in (
                "pending", "running"):
            await pilot.pause(0.2)
        assert screen.probes.rows["node.crictl.ps"].state == "hung"
        while time.monotonic() - t0 < 20 and screen.signals.scrapes < 2:
            await pilot.pause(0.1)
        assert screen.signals.scrapes >= 2, screen.signals.via_text
        hist = histories(screen.signals)
        assert hist["goroutines"] and hist["rss"]
        print(f"\njournal lines after {journal_after:.2f}s, two scrapes after "
              f"{time.monotonic() - t0:.2f}s via {screen.signals.via_text}")
        await pilot.press("q")


async def test_cli_ssh_flags_reach_the_ssh_client(tmp_path):
    from tui.cli import build_parser
    from tui.cli_session import ssh_options
    from tui.node_context import live_context

    args = build_parser().parse_args(["--bastion", "ops@bastion.example:2222", "--ssh-target",
                                      "{name}.corp.example", "--ssh-user", "core", "--sudo",
                                      "--ssh-config", str(tmp_path / "absent")])
    make = live_context(lambda: None, args.ssh_config, ssh_options=ssh_options(args))
    ctx = make()
    try:
        assert ctx.ssh is not None
        assert ctx.ssh.bastion == "ops@bastion.example:2222"
        assert ctx.ssh.template == "{name}.corp.example"
    finally:
        await make.aclose()
    no_ssh = live_context(lambda: None, str(tmp_path / "absent"))
    assert no_ssh().ssh is None
    await no_ssh.aclose()
