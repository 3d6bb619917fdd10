"""Every lab scenario healed from the TUI, with the keys a person presses: open the node from the
fleet, wait for the verdict, `a`, Enter on the verdict's action, tab to "Capture evidence, then
run", Enter; then `v` on the node watches it back to verified. Each scenario is a test of its
own, so the suite's workers heal them side by side. A verified bundle is written
before each action and the audit log has the attempt. The API partition is not healed by an
action: restarting the kubelet there is refused, and the node verifies once the partition ends.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SCENARIO_NODES, start_lab, stop_lab
from triage.evidence import verify_bundle
from tui.app import NodewbApp
from tui.config import Config
from tui.feed import FleetSource
from tui.node_actions import ActionScreen, ActionsMenu
from tui.node_context import live_context
from tui.node_screen import NodeScreen
from tui.node_verify import VerifyScreen

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh, pytest.mark.slow,
              pytest.mark.timeout(900)]

EXPECTED = {  # scenario -> (domain, the verdict's action that heals it)
    "pleg-slow-io": ("pleg_runtime_slow", "delete-pod"),
    "containerd-deadlock": ("runtime_down", "restart-containerd"),
    "runtime-dead": ("runtime_down", "restart-containerd"),
    "cert-expired": ("cert_expired", "approve-csr"),
    "cni-binary-missing": ("cni_network", "reapply-cni"),
    "vxlan-missing": ("cni_network", "modprobe-vxlan"),
    "inode-exhaustion": ("disk_pressure", "prune-images"),
    "disk-full": ("disk_pressure", "vacuum-journal"),
    "kubelet-oom": ("memory_pid_pressure", "delete-pod"),
    "too-many-pods": ("memory_pid_pressure", "drain"),
    "pid-exhaustion": ("memory_pid_pressure", "delete-pod"),
    "clock-skew": ("clock_skew", "sync-clock"),
    "cgroup-driver-mismatch": ("kubelet_config", "fix-cgroup-driver"),
    "swap-on": ("kubelet_config", "disable-swap"),
}
PARTITION = "api-partition"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tuiheal") / "lab"
    specs = [f"--scenario={name}@{node}" for name, node in SCENARIO_NODES.items()]
    served = start_lab(directory, "--nodes", "30", "--seed", "17", *specs)
    yield served
    stop_lab(served)


async def wait(pilot, cond, within: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if cond():
            return time.monotonic() - t0
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")


async def open_from_fleet(app, pilot, node: str) -> NodeScreen:
    await pilot.press("slash", *node, "enter")
    await pilot.pause(0.2)
    await pilot.press("enter")
    await wait(pilot, lambda: isinstance(app.screen, NodeScreen), 10, f"{node}'s screen")
    screen = app.screen
    assert screen.node_name == node
    return screen


async def back_to_fleet(app, pilot) -> None:
    while not isinstance(app.screen, NodeScreen):
        await pilot.press("escape")
        await pilot.pause(0.1)
    await pilot.press("escape")
    await pilot.pause(0.1)
    await pilot.press("slash")
    app.screen.query_one("#filter").value = ""
    await pilot.press("escape")


def end_partition(lab, node: str) -> None:
    """The lab's admin control endpoint, through kubectl: the network comes back."""
    done = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig), "create", "--raw",
                           "/lab/v1/partition", "-f", "-"],
                          input=json.dumps({"node": node, "on": False}), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def heal_app(lab, tmp_path, monkeypatch) -> tuple[NodewbApp, FleetSource]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    source = FleetSource(str(lab.kubeconfig), None)
    app = NodewbApp(source, title="heal", config=Config(Path("/nonexistent/config.toml")),
                    allow_actions=True)
    make = live_context(source.connect, str(lab.ssh_config))

    def context():
        ctx = make()
        ctx.verify_quiet = 6.0
        return ctx

    app.node_context = context  # type: ignore[attr-defined]
    return app, source


async def verify_with_v(app, pilot, node: str) -> float:
    """`v` on the node: the live verification, until it says verified; its time."""
    t0 = time.monotonic()
    await open_from_fleet(app, pilot, node)
    await pilot.press("v")
    await wait(pilot, lambda: isinstance(app.screen, VerifyScreen) and
               app.screen.progress is not None and app.screen.progress.done, 240,
               f"{node} to verify")
    progress = app.screen.progress
    assert progress.outcome == "verified", (node, [c.line() for c in progress.checks])
    await back_to_fleet(app, pilot)
    return time.monotonic() - t0


@pytest.mark.parametrize("scenario", list(EXPECTED))
async def test_scenario_healed_from_the_tui(lab, tmp_path, monkeypatch, scenario):
    """The verdict, its action with evidence first, then `v` back to verified; the audit log has
    the attempt and the verification."""
    domain, action = EXPECTED[scenario]
    node = SCENARIO_NODES[scenario]
    app, _ = heal_app(lab, tmp_path, monkeypatch)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait(pilot, lambda: app.model.synced, 30, "the fleet")
        t0 = time.monotonic()
        screen = await open_from_fleet(app, pilot, node)
        await wait(pilot, lambda: screen.diagnosis.finished, 40, f"{node}'s probes")
        verdict = screen.verdict()
        assert verdict.verdict == domain, (scenario, verdict.to_text())
        assert verdict.actions and verdict.actions[0] == action, (scenario, verdict.actions)
        await pilot.press("a")
        await wait(pilot, lambda: isinstance(app.screen, ActionsMenu), 5, "the menu")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, ActionScreen) and
                   app.screen.state in ("ready", "blocked"), 30, "the plan and checks")
        modal = app.screen
        assert modal.action_id == action
        assert modal.state == "ready", (scenario, modal.attempt.report.lines())
        await pilot.press("tab", "enter")
        await wait(pilot, lambda: isinstance(app.screen, VerifyScreen) or
                   getattr(modal, "state", "") in ("failed", "override", "blocked"), 240,
                   f"{action} on {node}")
        assert isinstance(app.screen, VerifyScreen), (scenario, modal.said)
        attempt = screen.attempt
        assert attempt.bundle is not None
        assert verify_bundle(attempt.bundle.path, attempt.bundle.sha256).node == node
        acted = time.monotonic() - t0
        await back_to_fleet(app, pilot)
        verified = await verify_with_v(app, pilot, node)
        await pilot.press("q")
    records = [json.loads(line) for line in
               (tmp_path / "data" / "nodewb" / "audit.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["node"] == node and r["action"] == action]
    assert [r["result"] for r in mine][:1] == ["ran"], (scenario, mine)
    assert "verified" in [r["result"] for r in mine], (scenario, mine)
    assert all(r["bundle_sha256"] for r in mine)
    print(f"\n{scenario:<24} acted after {acted:.1f} s, verified in {verified:.1f} s")


async def test_the_partition_is_refused_a_kubelet_restart_and_verifies_once_it_ends(
        lab, tmp_path, monkeypatch):
    node = SCENARIO_NODES[PARTITION]
    app, _ = heal_app(lab, tmp_path, monkeypatch)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait(pilot, lambda: app.model.synced, 30, "the fleet")
        screen = await open_from_fleet(app, pilot, node)
        await wait(pilot, lambda: screen.diagnosis.finished, 40, f"{node}'s probes")
        assert screen.verdict().verdict == "apiserver_unreachable"
        attempt = screen._attempt()
        await attempt.prepare("restart-kubelet")
        assert not attempt.report.allowed
        assert any("Do not restart kubelet blindly" in r for r in attempt.report.refusals)
        end_partition(lab, node)
        await back_to_fleet(app, pilot)
        verified = await verify_with_v(app, pilot, node)
        await pilot.press("q")
    print(f"\n{PARTITION:<24} no action, verified in {verified:.1f} s")
