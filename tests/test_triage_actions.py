"""Guard rails, the Cleared token, the audit log and the verifier's patterns (no cluster needed).
The same rails against a served lab, end to end, are in tests/test_cli_act.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time

import pytest

from triage.actions import ACTIONS, FORBIDDEN, ActionContext, NotCleared, plan_action, run_plan
from triage.audit import AuditLog, AuditRecord, default_path
from triage.evidence import write_bundle
from triage.guards import (
    BLOCKED,
    OK,
    PARTITION_WARNING,
    Cleared,
    Guard,
    GuardReport,
    Refused,
    override_phrase,
    redeem,
    refuse_early,
)
from triage.pod_target import _onset, _ps_memory
from triage.rules import LEAVES
from triage.verdict import Verdict
from triage.verify import patterns_from_verdict

RUNBOOK_TAINT = "Never use kubectl edit node to remove the taint — that only hides the problem."


def verdict(domain: str, evidence: list[str] | None = None, status: str = "confirmed") -> Verdict:
    return Verdict("node-0004", domain, [{"id": domain, "status": status,
                                          "evidence": evidence or []}], [], [], [], [], [])


def plan(action: str, node: str = "node-0004"):
    return asyncio.run(plan_action(action, ActionContext(None, None, None, node)))


def bundle_of(tmp_path, node: str = "node-0004", captured_at: float | None = None):
    return write_bundle({"kubelet.log": "E1121 kubelet.go:2412] PLEG is not healthy\n"},
                        node=node, captured_at=captured_at or time.time(),
                        out=tmp_path / f"{node}-{time.monotonic_ns()}.tar.gz")


def cleared_report(p) -> GuardReport:
    return GuardReport(p.action.id, p.node, [])


# -- actions ----------------------------------------------------------------------------------
def test_every_runbook_action_id_is_an_action():
    from lab.scenarios import SCENARIOS

    wanted = {a for leaf in LEAVES.values() for a in leaf.actions}
    wanted |= {s.action for s in SCENARIOS.values() if s.action}
    assert wanted <= set(ACTIONS)
    assert {"restart-kubelet", "cordon", "uncordon", "raise-max-pods", "canary-pod"} <= set(ACTIONS)
    assert not set(FORBIDDEN) & set(ACTIONS)


def test_plans_show_their_exact_commands():
    p = plan("restart-containerd")
    assert p.commands() == ["[node] sudo -n systemctl reset-failed containerd",
                            "[node] sudo -n systemctl restart containerd",
                            "[node] sudo -n systemctl restart kubelet"]
    assert p.sudo and p.restarts_kubelet and p.needs == []
    vx = plan("modprobe-vxlan")
    assert "[node] echo vxlan | sudo -n tee /etc/modules-load.d/vxlan.conf" in vx.commands()
    cordon = plan("cordon")
    assert cordon.commands() == ["[api] kubectl cordon node-0004  (PATCH /api/v1/nodes/node-0004)"]
    assert [n.text() for n in cordon.needs] == ["patch nodes"]


# -- early refusals -----------------------------------------------------------------------------
def test_remove_taint_is_not_an_action_and_the_refusal_quotes_the_runbook():
    report = refuse_early("remove-taint", "node-0004", enabled=True)
    assert report is not None and not report.allowed
    assert RUNBOOK_TAINT in report.refusals[0]


def test_actions_are_off_until_enabled():
    report = refuse_early("restart-containerd", "node-0004", enabled=False)
    assert report is not None and not report.allowed
    assert "--allow-actions" in report.refusals[0]
    assert refuse_early("restart-containerd", "node-0004", enabled=True) is None


def test_unknown_action_names_the_choices():
    report = refuse_early("reboot", "node-0004", enabled=True)
    assert "unknown action 'reboot'" in report.refusals[0] and "drain" in report.refusals[0]


# -- runbook rules --------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["restart-kubelet", "restart-containerd", "fix-cgroup-driver"])
def test_kubelet_restarts_are_refused_during_an_api_partition(action):
    guard = Guard(None, None, enabled=True)
    checks = guard._rules(plan(action), verdict("apiserver_unreachable"))
    blocked = [c for c in checks if c.state == BLOCKED]
    assert len(blocked) == 1 and blocked[0].name == "partition"
    assert PARTITION_WARNING in blocked[0].reason


def test_kubelet_restart_allowed_when_the_verdict_is_not_a_partition():
    checks = Guard(None, None, enabled=True)._rules(plan("restart-kubelet"),
                                                     verdict("runtime_down"))
    assert [c.state for c in checks if c.name == "partition"] == [OK]


def test_an_action_that_does_not_restart_the_kubelet_is_not_blocked_by_a_partition():
    checks = Guard(None, None, enabled=True)._rules(plan("cordon"),
                                                     verdict("apiserver_unreachable"))
    assert not [c for c in checks if c.state == BLOCKED]


# -- the Cleared token ----------------------------------------------------------------------
def test_a_token_cannot_be_made_outside_the_guard():
    p = plan("sync-clock")
    with pytest.raises(Refused):
        Cleared(object(), p, cleared_report(p), None, False)


def test_run_plan_refuses_without_a_token():
    p = plan("sync-clock")
    with pytest.raises(NotCleared, match="not cleared"):
        asyncio.run(run_plan(p, None))
    with pytest.raises(NotCleared):
        asyncio.run(run_plan(p, "cleared"))


def test_a_verified_bundle_clears_exactly_one_run_of_that_plan(tmp_path):
    p = plan("sync-clock")
    guard = Guard(None, None, enabled=True)
    token = guard.clear(p, cleared_report(p), bundle_of(tmp_path))
    assert token.bundle is not None and not token.override
    other = plan("restart-kubelet")
    assert "other commands" in redeem(token, other)
    token = guard.clear(p, cleared_report(p), bundle_of(tmp_path))
    assert redeem(token, p) == ""
    assert "already used" in redeem(token, p)


def test_a_tampered_bundle_is_refused(tmp_path):
    p = plan("sync-clock")
    b = bundle_of(tmp_path)
    data = bytearray(b.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    b.path.write_bytes(bytes(data))
    with pytest.raises(Refused, match="does not verify"):
        Guard(None, None, enabled=True).clear(p, cleared_report(p), b)


def test_a_bundle_of_another_node_or_too_old_is_refused(tmp_path):
    p = plan("sync-clock")
    guard = Guard(None, None, enabled=True)
    with pytest.raises(Refused, match="is of node-0009"):
        guard.clear(p, cleared_report(p), bundle_of(tmp_path, "node-0009"))
    with pytest.raises(Refused, match="min ago"):
        guard.clear(p, cleared_report(p), bundle_of(tmp_path, captured_at=time.time() - 3600))


def test_a_missing_bundle_is_refused(tmp_path):
    p = plan("sync-clock")
    with pytest.raises(Refused, match="does not verify"):
        Guard(None, None, enabled=True).clear(p, cleared_report(p), tmp_path / "none.tar.gz")


def test_a_blocked_report_clears_nothing(tmp_path):
    p = plan("restart-kubelet")
    guard = Guard(None, None, enabled=True)
    report = GuardReport(p.action.id, p.node, guard._rules(p, verdict("apiserver_unreachable")))
    with pytest.raises(Refused, match="thundering herd"):
        guard.clear(p, report, bundle_of(tmp_path))
    with pytest.raises(Refused, match="thundering herd"):
        guard.clear_with_override(p, report, override_phrase(p.node), "capture failed")


def test_the_override_must_be_typed_exactly():
    p = plan("sync-clock")
    guard = Guard(None, None, enabled=True)
    for typed in ("", "yes", "act on node-0009 without evidence"):
        with pytest.raises(Refused, match="override was not typed"):
            guard.clear_with_override(p, cleared_report(p), typed, "capture failed: disk full")
    token = guard.clear_with_override(p, cleared_report(p), "act on node-0004 without evidence\n",
                                      "capture failed: disk full")
    assert token.override and token.bundle is None
    assert token.override_reason == "capture failed: disk full"
    assert redeem(token, p) == ""


# -- audit log ------------------------------------------------------------------------------------
def test_audit_log_is_appended_0600_and_reads_back(tmp_path):
    log = AuditLog(tmp_path / "d" / "audit.jsonl")
    log.append(AuditRecord("node-0004", "restart-containerd", "refused",
                           reason="actions are off", kube_user="admin"))
    first = log.path.read_bytes()
    log.append(AuditRecord("node-0004", "restart-containerd", "verified",
                           commands=["[node] sudo -n systemctl restart containerd"],
                           bundle_path="/x.tar.gz", bundle_sha256="ab" * 32))
    assert log.path.read_bytes().startswith(first)
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    records = list(log.records())
    assert [r["result"] for r in records] == ["refused", "verified"]
    r = records[1]
    assert r["local_user"] and r["when"].endswith("Z") and r["bundle_sha256"] == "ab" * 32
    assert r["commands"] == ["[node] sudo -n systemctl restart containerd"]


def test_audit_log_makes_an_existing_loose_file_private(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    AuditLog(path).append(AuditRecord("n", "cordon", "ran"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_audit_records_from_many_writers_stay_whole(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    big = "x" * 3000

    def writer(i: int) -> None:
        for j in range(25):
            log.append(AuditRecord(f"node-{i}", "cordon", "ran", reason=f"{j} {big}"))
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    lines = log.path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["reason"].endswith(big) for line in lines)


def test_audit_result_must_be_known():
    with pytest.raises(ValueError, match="refused, failed, ran, verified, not fixed"):
        AuditRecord("n", "cordon", "done")


def test_audit_path_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NODEWB_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "nodewb" / "audit.jsonl"
    monkeypatch.setenv("NODEWB_AUDIT_LOG", str(tmp_path / "elsewhere.jsonl"))
    assert default_path() == tmp_path / "elsewhere.jsonl"


# -- what the verifier watches for ----------------------------------------------------------------
def test_journal_pattern_comes_from_the_verdicts_evidence():
    v = verdict("kubelet_config", ['node.journal.kubelet: "E1121 server.go:302] "failed to run '
                                   'Kubelet: misconfiguration: kubelet cgroup driver: '
                                   '\\"cgroupfs\\" is different from docker cgroup driver"'])
    assert [label for label, _ in patterns_from_verdict(v)] == \
        ["misconfiguration: kubelet cgroup driver"]


def test_journal_pattern_falls_back_to_the_domains_usual_errors():
    v = verdict("runtime_down", ["node.crictl.ps [hung]: crictl ps did not return in 10 s"])
    labels = [label for label, _ in patterns_from_verdict(v)]
    assert "container runtime is down" in labels
    assert patterns_from_verdict(verdict("healthy")) == []


# -- evidence for delete-pod ----------------------------------------------------------------
PS = """\
    PID    PPID      RSS  COMMAND
  14359   14339   286871 /usr/local/bin/cart-redis
  14339       1    11000 /usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id 07660d89914f3aa1 \
-address /run/containerd/containerd.sock
  52365       1    11000 /usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id 8ef98caeae7122bb \
-address /run/containerd/containerd.sock
  52385   52365       400 /pause
  52386   52365 32000000 /usr/local/bin/fluentd-aggregator
"""
CRICTL = """\
POD ID              CREATED             STATE               \
NAME                                    NAMESPACE           ATTEMPT             RUNTIME
8ef98caeae712       13 minutes ago      Ready               \
fluentd-aggregator-5b7d9c6f4-hx8kp      logging             0                   (default)
07660d89914f3       4 days ago          Ready               \
cart-redis-hl84c7btd-2z6j6              apps                0                   (default)
"""


def test_memory_is_summed_per_pod_through_its_shim():
    got = _ps_memory(PS, CRICTL)
    assert got[("logging", "fluentd-aggregator-5b7d9c6f4-hx8kp")] == (32000000 + 400) * 1024
    assert got[("apps", "cart-redis-hl84c7btd-2z6j6")] == 286871 * 1024


def test_onset_is_the_first_bad_transition():
    node = {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "False", "lastTransitionTime": "2026-11-01T00:00:00Z"},
        {"type": "PIDPressure", "status": "True", "lastTransitionTime": "2026-11-21T10:00:01Z"},
        {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-21T10:00:30Z"}]}}
    t, what = _onset(node)
    assert what == "PIDPressure=True"
    assert time.strftime("%H:%M:%S", time.gmtime(t)) == "10:00:01"


def test_an_audit_trail_ties_its_records_together(tmp_path):
    from triage.audit import AuditTrail, plan_fields

    p = plan("restart-kubelet")
    report = GuardReport(p.action.id, p.node, [], kube_user="system:admin")
    trail = AuditTrail(p.node, p.action.id, kube_user="admin", kube_context="prod",
                       log=AuditLog(tmp_path / "a.jsonl"))
    assert trail.check_writable() == ""
    trail.write("ran", "ok", **plan_fields(p, report, verdict("runtime_down")))
    trail.write("not fixed", "not fixed after 25 s: Ready=False")
    first, second = trail.log.records()
    assert first["act_id"] == second["act_id"]
    assert first["kube_user"] == "system:admin" and second["kube_user"] == "admin"
    assert first["commands"] == ["[node] sudo -n systemctl restart kubelet"]
    assert first["verdict"] == "runtime_down" and first["kube_context"] == "prod"


def test_an_unwritable_audit_log_is_reported(tmp_path):
    from triage.audit import AuditTrail

    blocker = tmp_path / "file"
    blocker.write_text("")
    trail = AuditTrail("n", "cordon", log=AuditLog(blocker / "audit.jsonl"))
    assert "cannot write the audit log" in trail.check_writable()
    with pytest.raises(OSError):
        trail.write("refused", "x")


async def test_an_interrupted_action_is_audited_with_how_far_it_got(tmp_path):
    import asyncio

    from triage.actions import ACTIONS, Plan, Step
    from triage.audit import AuditLog
    from triage.guards import OK, Check, GuardReport, override_phrase
    from triage.workflow import Attempt

    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return ""

    async def never() -> str:
        raise AssertionError("the second step must not start")

    action = ACTIONS["restart-containerd"]
    plan = Plan(action, "node-0004", [Step("node", "sudo -n systemctl restart containerd", hangs),
                                      Step("node", "sudo -n systemctl restart kubelet", never)],
                [], True, True)
    log = AuditLog(tmp_path / "audit.jsonl")
    attempt = Attempt(None, None, None, "node-0004", enabled=True, audit_log=log)
    attempt.plan = plan
    attempt.report = GuardReport(action.id, "node-0004", [Check("enabled", OK, "on")])
    attempt.capture_error = "capture failed: test"
    cleared = attempt.clear(override_phrase("node-0004"))
    task = asyncio.create_task(attempt.run(cleared))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    (record,) = list(log.records())
    assert record["result"] == "failed" and record["override"] is True
    assert "interrupted with 1 of 2 step(s) started" in record["reason"]


def test_no_clearance_while_the_audit_log_cannot_be_written(tmp_path):
    from triage.actions import ACTIONS, Plan, Step
    from triage.audit import AuditLog
    from triage.guards import OK, Check, GuardReport, Refused, override_phrase
    from triage.workflow import Attempt

    async def never() -> str:
        raise AssertionError("must not run")

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log's folder should be")
    action = ACTIONS["cordon"]
    attempt = Attempt(None, None, None, "node-0004", enabled=True,
                      audit_log=AuditLog(blocker / "audit.jsonl"))
    attempt.plan = Plan(action, "node-0004", [Step("api", "PATCH /api/v1/nodes/node-0004",
                                                   never)], [], False, False)
    attempt.report = GuardReport(action.id, "node-0004", [Check("enabled", OK, "on")])
    with pytest.raises(Refused, match="no action runs without its audit record"):
        attempt.clear(override_phrase("node-0004"))
