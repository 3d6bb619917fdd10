"""The node screen's evidence, actions, verification and report keys (c, a, v, r): snapshots of
the actions menu, the action modal (off, ready, capture failed) and the verification view, and
pilot tests that nothing runs without a deliberate confirm and a verified bundle.

The attempt here is scripted (real plans from triage.actions, real guard checks as data, real
Progress objects); tests/test_tui_heal.py drives the same keys against the lab."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.test_tui_diagnosis import Replay, context, recorded
from tests.test_tui_node import DEADLOCK, FROZEN, app_with, open_node
from triage.actions import ACTIONS, ActionContext, plan_action
from triage.evidence import Bundle, EvidenceError
from triage.guards import BLOCKED, OK, WARN, Check, GuardReport, override_phrase
from triage.verify import NOT_FIXED, VERIFIED, Progress, VCheck
from tui.node_actions import ActionScreen, ActionsMenu, ConfirmScreen, menu_order
from tui.node_report import ReportScreen
from tui.node_verify import VerifyScreen


class ScriptedAttempt:
    """What tui.node_screen uses of triage.workflow.Attempt, with scripted outcomes."""

    instances: list[ScriptedAttempt] = []

    def __init__(self, kube, ssh, kubelet, node, *, verdict=None, enabled=False, timeline=None,
                 kube_context="", internal_ip=None, capture_fails: str = "",
                 progress: list[Progress] | None = None) -> None:
        self.node, self.verdict, self.enabled, self.timeline = node, verdict, enabled, timeline
        self.plan = None
        self.report = None
        self.bundle = None
        self.capture_error = ""
        self.capture_fails = capture_fails
        self.ran: list[str] = []
        self.cleared_with: list[str | None] = []
        self.progress = progress or []
        self.captures = 0
        self.canaries: list[bool] = []
        ScriptedAttempt.instances.append(self)

    async def prepare(self, action_id, *, audit_refusal=True):
        ctx = ActionContext(None, None, None, self.node)
        self.plan = await plan_action(action_id, ctx)
        checks = [Check("enabled", OK, "actions are enabled") if self.enabled else
                  Check("enabled", BLOCKED, "actions are off (read-only mode): pass "
                                            "--allow-actions, or turn actions on in the app "
                                            "and confirm")]
        if self.enabled:
            checks += [Check("rbac", OK, "no API writes needed"),
                       Check("sudo", OK, f"sudo -n true works on {self.node}"),
                       Check("partition", OK, "verdict runtime_down: not an API server "
                                              "partition"),
                       Check("evidence", WARN, f"not yet: a bundle of {self.node} is captured "
                                               f"and verified before acting")]
        self.report = GuardReport(action_id, self.node, checks, "nodewb-admin")
        return self.plan

    async def capture(self):
        self.captures += 1
        if self.capture_fails:
            self.capture_error = self.capture_fails
            raise EvidenceError(self.capture_fails)
        self.bundle = Bundle(Path(f"/var/lib/nodewb/evidence/{self.node}-20261106T212000Z.tar.gz"),
                             "1dff0155b31e4ae368fde5f3b731f045264366aa50ef1fee8caeac4b75cb847b",
                             self.node, FROZEN, {"kubelet.log": "ab" * 32}, [])
        if self.timeline is not None:
            self.timeline.capture(self.bundle)
        return self.bundle

    def clear(self, override=None):
        from triage.guards import Refused

        if self.bundle is None and (override or "").strip() != override_phrase(self.node):
            raise Refused("no verified evidence bundle and the override was not typed")
        self.cleared_with.append(override)
        return object()

    async def run(self, cleared, on_step=None):
        from triage.actions import RunResult

        for c in self.plan.commands():
            self.ran.append(c)
            if on_step:
                on_step(c)
        return RunResult(self.plan, True, [], "", FROZEN, FROZEN + 1)

    async def verify(self, on_progress=None, timeout=None, canary=False, quiet=None):
        self.canaries.append(canary)
        for p in self.progress:
            if on_progress:
                on_progress(p)
            await asyncio.sleep(0)
        return self.progress[-1]


CHECKS_BAD = [VCheck("ready", False, "Ready=False (KubeletNotReady)"),
              VCheck("lease", True, "renewed 4 s ago"),
              VCheck("healthz", False, "healthz 500 via apiserver-proxy: [-]pleg failed"),
              VCheck("pods", True, "10 Running, 0 Pending"),
              VCheck("journal", False, "1 line(s) with 'PLEG is not healthy' in the last 6 s"),
              VCheck("canary", None, "not asked for")]
CHECKS_GOOD = [VCheck("ready", True, "Ready=True (KubeletReady)"),
               VCheck("lease", True, "renewed 3 s ago"),
               VCheck("healthz", True, "healthz 200 via apiserver-proxy"),
               VCheck("pods", True, "10 Running, 0 Pending"),
               VCheck("journal", True, "no 'PLEG is not healthy' in the last 20 s"),
               VCheck("canary", None, "not asked for")]
MIDWAY = Progress(DEADLOCK, 6.0, 3, CHECKS_BAD)
DONE = Progress(DEADLOCK, 21.0, 8, CHECKS_GOOD, True, VERIFIED,
                "verified after 21 s: Ready=True (KubeletReady), healthz 200 via apiserver-proxy")
FAILED = Progress(DEADLOCK, 180.0, 60, CHECKS_BAD, True, NOT_FIXED, "not fixed after 180 s")


def scripted(**kw):
    def make(*args, **kwargs):
        kwargs.update(kw)
        return ScriptedAttempt(*args, **kwargs)
    return make


def app_for(attempt_kw: dict, enabled: bool = False):
    ctx = context(DEADLOCK, Replay(recorded("containerd-deadlock")))
    ctx.attempt = scripted(**attempt_kw)
    app = app_with(DEADLOCK, ctx)
    app.actions_enabled = enabled
    return app, ctx


async def ready_screen(app, pilot):
    screen = await open_node(app, pilot, DEADLOCK)
    for _ in range(60):
        await pilot.pause(0.02)
        screen.flush()
        if screen.diagnosis.finished:
            break
    assert screen.diagnosis.conclusion() == "runtime_down"
    return screen


async def until(pilot, cond, what: str, tries: int = 150):
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def snap(snap_compare, keys, attempt_kw=None, enabled=False, size=(120, 36), settle=None):
    app, _ = app_for(attempt_kw or {}, enabled)

    async def run_before(pilot) -> None:
        await ready_screen(pilot.app, pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        if settle is not None:
            await until(pilot, lambda: settle(pilot.app), "the modal to settle")
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


def _modal_state(app, state):
    return isinstance(app.screen, ActionScreen) and app.screen.state == state


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshot_actions_menu(snap_compare):
    assert snap(snap_compare, ["a"])


def test_snapshot_action_modal_while_actions_are_off(snap_compare):
    assert snap(snap_compare, ["a", "enter"], settle=lambda app: _modal_state(app, "blocked"))


def test_snapshot_action_modal_ready(snap_compare):
    assert snap(snap_compare, ["a", "enter"], enabled=True,
                settle=lambda app: _modal_state(app, "ready"))


def test_snapshot_action_modal_capture_failed(snap_compare):
    kw = {"capture_fails": "cannot write /var/lib/nodewb/evidence: Permission denied"}
    assert snap(snap_compare, ["a", "enter", "tab", "enter"], kw, enabled=True,
                settle=lambda app: _modal_state(app, "override"))


def test_snapshot_verification_midway(snap_compare):
    kw = {"progress": [MIDWAY]}
    assert snap(snap_compare, ["v"], kw,
                settle=lambda app: isinstance(app.screen, VerifyScreen) and
                app.screen.progress is not None)


def test_snapshot_verification_verified(snap_compare):
    kw = {"progress": [MIDWAY, DONE]}
    assert snap(snap_compare, ["v"], kw,
                settle=lambda app: isinstance(app.screen, VerifyScreen) and
                app.screen.progress is not None and app.screen.progress.done)


# -- pilot -----------------------------------------------------------------------------------------
def test_menu_puts_the_verdicts_fix_first():
    assert menu_order(["restart-containerd"])[0] == "restart-containerd"
    assert set(menu_order([])) == set(ACTIONS)
    assert "remove-taint" not in ACTIONS


async def test_enter_alone_never_runs_an_action():
    ScriptedAttempt.instances.clear()
    app, _ = app_for({"progress": [DONE]}, enabled=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready_screen(app, pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ActionsMenu)
        await pilot.press("enter")  # picks the verdict's action
        await until(pilot, lambda: _modal_state(app, "ready"), "the plan and checks")
        await pilot.press("enter")  # Close has the focus
        await pilot.pause()
        assert not isinstance(app.screen, ActionScreen)
        attempt = ScriptedAttempt.instances[-1]
        assert attempt.ran == [] and attempt.captures == 0


async def test_capture_first_then_run_then_watch_and_the_timeline_has_it_all():
    ScriptedAttempt.instances.clear()
    app, _ = app_for({"progress": [MIDWAY, DONE]}, enabled=True)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready_screen(app, pilot)
        await pilot.press("a", "enter")
        await until(pilot, lambda: _modal_state(app, "ready"), "the plan and checks")
        await pilot.press("tab", "enter")  # to "Capture evidence, then run"
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen) and
                    app.screen.progress is not None and app.screen.progress.done,
                    "the verification to end")
        attempt = next(a for a in ScriptedAttempt.instances if a.ran)
        assert attempt.captures == 1 and attempt.cleared_with == [None]
        assert [c.split("] ", 1)[1] for c in attempt.ran] == list(
            ACTIONS["restart-containerd"].template)
        assert screen.bundle is attempt.bundle
        await pilot.press("escape")
        kinds = [e.kind for e in screen.timeline]
        assert "observation" in kinds and "verdict" in kinds and "capture" in kinds


async def test_a_failed_capture_blocks_the_action_until_the_override_is_typed():
    ScriptedAttempt.instances.clear()
    kw = {"capture_fails": "cannot write the bundle: No space left on device",
          "progress": [DONE]}
    app, _ = app_for(kw, enabled=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready_screen(app, pilot)
        await pilot.press("a", "enter")
        await until(pilot, lambda: _modal_state(app, "ready"), "the plan and checks")
        await pilot.press("tab", "enter")
        await until(pilot, lambda: _modal_state(app, "override"), "the capture to fail")
        modal = app.screen
        attempt = ScriptedAttempt.instances[-1]
        assert attempt.ran == []
        run = modal.query_one("#action-run")
        assert run.disabled
        await pilot.press(*"act on it anyway")
        await pilot.pause()
        assert run.disabled  # the wrong words do not open it
        modal.query_one("#action-override").value = ""
        await pilot.press(*override_phrase(DEADLOCK))
        await pilot.pause()
        assert not run.disabled
        await pilot.click("#action-run")
        await until(pilot, lambda: bool(attempt.ran), "the action to run")
        assert attempt.cleared_with == [override_phrase(DEADLOCK)]


async def test_enabling_actions_asks_first_and_no_is_the_default():
    app, _ = app_for({"progress": [DONE]}, enabled=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready_screen(app, pilot)
        await pilot.press("a", "enter")
        await until(pilot, lambda: _modal_state(app, "blocked"), "the refusal")
        await pilot.press("tab", "enter")  # "Enable actions…"
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # No has the focus
        await pilot.pause()
        assert app.actions_enabled is False
        assert app.screen.focused.id == "action-enable"  # back where it was
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("tab", "enter")  # Yes
        await until(pilot, lambda: _modal_state(app, "ready"), "the checks with actions on")
        assert app.actions_enabled is True


async def test_c_captures_and_r_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEWB_REPORT_DIR", str(tmp_path))
    app, _ = app_for({"progress": [DONE]})
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await ready_screen(app, pilot)
        await pilot.press("c")
        await until(pilot, lambda: screen.bundle is not None, "the capture")
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ReportScreen)
        (report,) = tmp_path.glob("node-0004-*.md")
        assert report.stat().st_mode & 0o777 == 0o600
        text = report.read_text()
        assert "runtime_down" in text and screen.bundle.sha256 in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ReportScreen)


@pytest.mark.parametrize("final", [DONE, FAILED], ids=["verified", "not-fixed"])
async def test_v_ends_with_a_clear_outcome(final):
    app, _ = app_for({"progress": [MIDWAY, final]})
    async with app.run_test(size=(120, 36)) as pilot:
        await ready_screen(app, pilot)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen) and
                    app.screen.progress is not None and app.screen.progress.done, "the end")
        text = str(app.screen.query_one("#verify-body").render())
        assert ("VERIFIED" in text) == (final is DONE)
        assert ("NOT FIXED after 180 s" in text) == (final is FAILED)


async def test_shift_v_verifies_with_a_canary_pod():
    ScriptedAttempt.instances.clear()
    app, _ = app_for({"progress": [DONE]})
    async with app.run_test(size=(120, 36)) as pilot:
        await ready_screen(app, pilot)
        await pilot.press("V")
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen) and
                    app.screen.progress is not None and app.screen.progress.done, "the end")
        assert "canary pod" in app.screen.what
        assert [a.canaries for a in ScriptedAttempt.instances if a.canaries] == [[True]]
