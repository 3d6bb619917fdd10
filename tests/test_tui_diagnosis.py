"""The decision-tree panel: it narrows as observations arrive, says leading until nothing still
running could change the verdict, opens the verdict onto cause / fix / verify / don't, and shows
the outside world's text literally. Snapshots replay real probe observations recorded from the
lab (tests/record_observations.py) on a frozen clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text

from probes.node_checks import scan_journal
from probes.observation import Observation, Status
from tests.test_tui_node import (
    DEADLOCK,
    FROZEN,
    HEALTHY,
    FakeKube,
    FakeKubelet,
    FakeSsh,
    app_with,
    open_node,
    seed,
)
from tests.test_tui_node import recorded_scenario as recorded
from tui.node_context import NodeContext
from tui.node_diagnosis import DOMAIN_ORDER, DiagnosisPanel
from tui.node_screen import NodeScreen


@dataclass
class Spec:
    id: str
    title: str
    timeout: float


class Replay:
    """Plans the recorded probes, starts them all, hands over the first `upto` observations,
    then holds (midway) or finishes."""

    def __init__(self, observations: list[Observation], upto: int | None = None) -> None:
        self.observations = observations
        self.upto = len(observations) if upto is None else upto
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0

    def plan(self):
        return [Spec(o.probe, o.probe, 10.0) for o in self.observations]

    async def run(self, on_start, on_observation):
        self.runs += 1
        for spec in self.plan():
            on_start(spec)
        for o in self.observations[:self.upto]:
            on_observation(o)
        self.reached.set()
        if self.upto < len(self.observations):
            await self.release.wait()
            for o in self.observations[self.upto:]:
                on_observation(o)
        return self.observations


def context(node: str, replay: Replay) -> NodeContext:
    s = seed(node)
    kubelet = FakeKubelet(s)
    return NodeContext(kube=FakeKube(s), ssh=FakeSsh(s.journal), kubelet=lambda: kubelet,
                       probes=lambda name: replay, clock=lambda: FROZEN, scrape_every=0.0,
                       poll_every=0.01)


async def ready(screen: NodeScreen, pilot, replay: Replay) -> DiagnosisPanel:
    await asyncio.wait_for(replay.reached.wait(), 10)
    for _ in range(5):
        await pilot.pause()
    screen.flush()
    await pilot.pause()
    return screen.diagnosis


def tree_text(panel: DiagnosisPanel) -> str:
    lines = []

    def walk(node, depth):
        label = node.label.plain if isinstance(node.label, Text) else str(node.label)
        lines.append("  " * depth + label)
        if node.is_expanded:
            for child in node.children:
                walk(child, depth + 1)

    walk(panel.decision_tree.root, 0)
    return "\n".join(lines)


def midway_count(observations: list[Observation]) -> int:
    """Everything before the observation that settles the verdict: domains are ruled out and
    one leads, but probes still out could change it."""
    from triage.tree import Diagnosis

    d = Diagnosis(DEADLOCK)
    for i, o in enumerate(observations):
        d.add(o)
        if d.settled():
            return i
    return len(observations)


def snap(node: str, replay: Replay, snap_compare, size=(120, 36), press=()):
    app = app_with(node, context(node, replay))

    async def run_before(pilot) -> None:
        screen = await open_node(pilot.app, pilot, node)
        await ready(screen, pilot, replay)
        for key in press:
            await pilot.press(key)
        screen.flush()
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshot_tree_midway(snap_compare):
    obs = recorded("containerd-deadlock")
    assert snap(DEADLOCK, Replay(obs, midway_count(obs)), snap_compare, size=(80, 24),
                press=["tab"])


def test_snapshot_tree_at_the_verdict(snap_compare):
    assert snap(DEADLOCK, Replay(recorded("containerd-deadlock")), snap_compare, size=(80, 24),
                press=["tab"])


def test_snapshot_tree_at_the_verdict_wide(snap_compare):
    assert snap(DEADLOCK, Replay(recorded("containerd-deadlock")), snap_compare, size=(140, 44))


def test_snapshot_tree_healthy(snap_compare):
    assert snap(HEALTHY, Replay(recorded("healthy")), snap_compare, size=(80, 24), press=["tab"])


# -- pilot -----------------------------------------------------------------------------------------
async def test_the_tree_narrows_as_observations_arrive_and_settles_on_the_verdict():
    obs = recorded("containerd-deadlock")
    replay = Replay(obs, midway_count(obs))
    app = app_with(DEADLOCK, context(DEADLOCK, replay))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        panel = await ready(screen, pilot, replay)

        def still_open() -> int:
            return sum(1 for s in panel.diagnosis.domains().values() if s.status != "ruled_out")

        midway = still_open()
        assert midway < len(DOMAIN_ORDER)  # some domains are already ruled out
        head = panel.headline().plain
        assert "running" in head  # the hung probes are still out
        assert "verdict" not in head or panel.settled()
        replay.release.set()
        for _ in range(100):
            await pilot.pause(0.02)
            screen.flush()
            if panel.finished:
                break
        assert panel.finished
        assert still_open() <= midway
        assert panel.diagnosis.domains()["runtime_down"].status == "confirmed"
        assert panel.conclusion() == "runtime_down"
        text = tree_text(panel)
        assert "verdict: runtime_down" in text
        assert "crictl ps did not return in 10 s" in text
        assert "cause: containerd or CRI-O is dead" in text
        assert "restart containerd" in text  # the fix, open
        assert "Don't assume it's a kubelet problem" in text  # the runbook's don't, open


async def test_keys_move_open_close_and_show_the_line_in_full():
    replay = Replay(recorded("containerd-deadlock"))
    app = app_with(DEADLOCK, context(DEADLOCK, replay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        panel = await ready(screen, pilot, replay)
        await pilot.press("tab")
        assert screen.current == 1 and app.focused is panel.decision_tree
        node = panel._domain_nodes["runtime_down"]
        panel.decision_tree.move_cursor(node)
        await pilot.pause()
        assert node.is_expanded
        detail = str(panel.query_one("#diagnosis-detail").render())
        assert "runtime_down: containerd or CRI-O is dead" in detail
        await pilot.press("enter")
        await pilot.pause()
        assert not node.is_expanded
        await pilot.press("enter")
        await pilot.press("down")
        await pilot.pause()
        first = node.children[0].data
        assert len(first) > 60  # longer than the panel is wide
        assert str(panel.query_one("#diagnosis-detail").render()) == first  # shown whole


async def test_healthy_says_healthy_and_every_domain_is_decided_or_waiting():
    replay = Replay(recorded("healthy"))
    app = app_with(HEALTHY, context(HEALTHY, replay))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_node(app, pilot, HEALTHY)
        panel = await ready(screen, pilot, replay)
        for _ in range(50):
            await pilot.pause(0.02)
            screen.flush()
            if panel.finished:
                break
        assert panel.conclusion() == "healthy"
        assert "healthy" in panel.headline().plain
        labels = [panel._domain_nodes[d].label.plain for d in DOMAIN_ORDER]
        assert all("confirmed" not in label for label in labels)


async def test_evidence_is_shown_literally():
    hostile = ("E1121 10:13:17.360677 2159 kubelet.go:2412] \x1b[31m[bold red]\x1b]52;c;AAAA\x07"
               "PLEG is not healthy: pleg was last seen active 4m0s ago; threshold is 3m0s[/]")
    found, n = scan_journal([hostile])
    data = {"unit": "kubelet", "lines": n, "patterns": found,
            "matched": {f["pattern"]: f["count"] for f in found if f["count"]}}
    o = Observation("node.journal.kubelet", DEADLOCK, Status.BAD, FROZEN, 0.2,
                    "kubelet journal (1 lines): 'pleg' x1", data, "ssh", hostile)
    replay = Replay([o])
    app = app_with(DEADLOCK, context(DEADLOCK, replay))
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_node(app, pilot, DEADLOCK)
        panel = await ready(screen, pilot, replay)
        text = tree_text(panel)
        # markup shown as text, escapes shown as their \\x text, none reaching the terminal
        assert "\\x1b[31m[bold red]\\x1b]52;c;AAAA\\x07PLEG is not healthy" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "\x1b]52" not in app.export_screenshot()
