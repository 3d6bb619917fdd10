"""`nodewb act` end to end against a served lab of its own: every scenario healed by its action
(diagnose, guard rails, a verified evidence bundle first, act, audit, verify), the wrong actions
refused or shown ineffective, and the guard rails that stop an action from running at all.

The heals run concurrently (one `nodewb act` process per scenario) so the file stays short; the
lab is this module's own, so healing does not disturb the shared served_lab."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import LAB_NODES, ROOT, SCENARIO_NODES, start_lab, stop_lab
from triage.evidence import verify_bundle
from triage.guards import PARTITION_WARNING

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh, pytest.mark.slow]

ACT_TIMEOUT = 240.0
INEFFECTIVE_WATCH = 25  # seconds the wrong fix is watched before "not fixed"
BUNDLE_LINE = re.compile(r"^evidence: (\S+) \(sha256 ([0-9a-f]{64}), verified\)$", re.M)

# What each scenario gets, in order: (action, expected exit code). "heal-network" stands for the
# network team restoring the node's route to the API server (the lab's control endpoint).
PLAN: dict[str, list[tuple[str, int | None]]] = {
    "pleg-slow-io": [("delete-pod", 0)],
    "containerd-deadlock": [("restart-kubelet", 3), ("restart-containerd", 0)],
    "runtime-dead": [("restart-containerd", 0)],
    "cert-expired": [("approve-csr", 0)],
    "cni-binary-missing": [("reapply-cni", 0)],
    "inode-exhaustion": [("prune-images", 0)],
    "disk-full": [("vacuum-journal", 0)],
    "kubelet-oom": [("delete-pod", 0)],
    "too-many-pods": [("drain", 0)],
    "pid-exhaustion": [("delete-pod", 0)],
    "api-partition": [("restart-kubelet", 2), ("heal-network", None), ("canary-pod", 0)],
    "clock-skew": [("sync-clock", 0)],
    "cgroup-driver-mismatch": [("fix-cgroup-driver", 0)],
    "swap-on": [("disable-swap", 0)],
    "vxlan-missing": [("modprobe-vxlan", 0)],
}


@dataclass
class Run:
    action: str
    code: int
    out: str
    err: str
    seconds: float


@dataclass
class Job:
    scenario: str
    node: str
    runs: list[Run] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def heal(self) -> Run:
        return self.runs[-1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("act") / "lab"
    specs = [f"--scenario={name}@{node}" for name, node in SCENARIO_NODES.items()]
    served = start_lab(directory, "--nodes", str(LAB_NODES), "--seed", "11", *specs)
    yield served
    stop_lab(served)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("act-data")


def act(lab, data: Path, node: str, action: str, *extra: str, env: dict | None = None,
        stdin: str | None = None, allow: bool = True, yes: bool = True,
        timeout: float = ACT_TIMEOUT) -> Run:
    cmd = [sys.executable, "-m", "tui.cli", "act", node, action, "--kubeconfig",
           str(lab.kubeconfig), "--ssh-config", str(lab.ssh_config), *extra]
    if allow:
        cmd.append("--allow-actions")
    if yes:
        cmd.append("--yes")
    environ = dict(os.environ, NODEWB_AUDIT_LOG=str(data / "audit.jsonl"),
                   NODEWB_EVIDENCE_DIR=str(data / "evidence"))
    environ.update(env or {})
    environ.pop("NODEWB_CANARY", None)
    t0 = time.monotonic()
    r = subprocess.run(cmd, input=stdin if stdin is not None else "", capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT, env=environ)
    return Run(action, r.returncode, r.stdout, r.stderr, time.monotonic() - t0)


def audit(data: Path) -> list[dict]:
    path = data / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def node_json(lab, node: str) -> dict:
    return json.loads(lab.kubectl("get", "node", node, "-o", "json").stdout)


def heal_network(lab, node: str) -> None:
    r = subprocess.run(["kubectl", "--kubeconfig", str(lab.kubeconfig), "create", "--raw",
                        "/lab/v1/partition", "-f", "-"],
                       input=json.dumps({"node": node, "on": False}), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def _job(lab, data: Path, scenario: str) -> Job:
    job = Job(scenario, SCENARIO_NODES[scenario])
    t0 = time.monotonic()
    try:
        for action, expected in PLAN[scenario]:
            if action == "heal-network":
                heal_network(lab, job.node)
                continue
            env = {"NODEWB_VERIFY_TIMEOUT": str(INEFFECTIVE_WATCH)} if expected == 3 else {}
            job.runs.append(act(lab, data, job.node, action, env=env))
    except Exception as exc:  # reported by the test that reads this job
        job.error = f"{type(exc).__name__}: {exc}"
    job.seconds = time.monotonic() - t0
    return job


@pytest.fixture(scope="module")
def heals(lab, data) -> dict[str, Job]:
    """Every scenario's plan, all at once: one `nodewb act` process per scenario."""
    with ThreadPoolExecutor(max_workers=len(PLAN)) as pool:
        futures = {name: pool.submit(_job, lab, data, name) for name in PLAN}
        return {name: f.result(timeout=3 * ACT_TIMEOUT) for name, f in futures.items()}


def _show(run: Run) -> str:
    return (f"exit {run.code} after {run.seconds:.0f} s\n--- stdout\n{run.out}\n"
            f"--- stderr\n{run.err}")


# -- guard rails that stop an action before it starts (fast; before the heals) --------------------
def test_no_action_without_allow_actions(lab, data):
    run = act(lab, data, "node-0001", "cordon", allow=False)
    assert run.code == 2, _show(run)
    assert "actions are off" in run.out and "--allow-actions" in run.err
    assert not node_json(lab, "node-0001")["spec"].get("unschedulable")
    last = audit(data)[-1]
    assert (last["node"], last["action"], last["result"]) == ("node-0001", "cordon", "refused")


def test_remove_taint_is_refused_in_the_runbooks_words(lab, data):
    run = act(lab, data, "node-0001", "remove-taint")
    assert run.code == 2, _show(run)
    assert "Never use kubectl edit node to remove the taint — that only hides the problem." \
        in run.err
    assert audit(data)[-1]["result"] == "refused"


def test_list_prints_every_action_with_its_commands(lab, data):
    run = act(lab, data, "node-0001", "list", allow=False, yes=False)
    assert run.code == 0, _show(run)
    from triage.actions import ACTIONS

    for action_id in ACTIONS:
        assert re.search(rf"^{re.escape(action_id)}\s", run.out, re.M), action_id
    assert "$ sudo -n systemctl restart containerd" in run.out
    assert "$ kubectl drain node-0001 --ignore-daemonsets" in run.out


def test_viewer_token_is_refused_by_rbac(lab, data):
    before = len(audit(data))
    run = act(lab, data, "node-0002", "cordon", "--context", "nodewb-lab-viewer")
    assert run.code == 2, _show(run)
    assert "RBAC" in run.err and "may not patch nodes" in run.err
    assert "SelfSubjectAccessReview" in run.err
    assert not node_json(lab, "node-0002")["spec"].get("unschedulable")
    records = audit(data)[before:]
    assert [r["result"] for r in records] == ["refused"]
    assert records[0]["kube_user"] == "viewer"
    assert not records[0]["bundle_path"]


def test_without_yes_it_asks_and_no_means_nothing_runs(lab, data):
    run = act(lab, data, "node-0002", "cordon", yes=False, stdin="n\n")
    assert run.code == 2, _show(run)
    assert "[y/N]" in run.err and "not confirmed" in run.err
    assert "capturing evidence" not in run.out
    assert not node_json(lab, "node-0002")["spec"].get("unschedulable")
    assert audit(data)[-1]["reason"] == "not confirmed"


def test_a_failed_capture_blocks_the_action_and_the_override_is_audited(lab, data, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {"NODEWB_EVIDENCE_DIR": str(blocker / "evidence")}  # cannot be created
    before = len(audit(data))
    run = act(lab, data, "node-0002", "cordon", env=env)
    assert run.code == 2, _show(run)
    assert "no verified evidence bundle" in run.out and "override was not typed" in run.err
    assert not node_json(lab, "node-0002")["spec"].get("unschedulable")
    refused = audit(data)[before:]
    assert [r["result"] for r in refused] == ["refused"]
    assert "capture failed" in refused[0]["reason"]

    wrong = act(lab, data, "node-0002", "cordon", env=env, stdin="yes\n")
    assert wrong.code == 2, _show(wrong)
    assert not node_json(lab, "node-0002")["spec"].get("unschedulable")

    typed = act(lab, data, "node-0002", "cordon", env=env,
                stdin="act on node-0002 without evidence\n")
    assert typed.code == 0, _show(typed)
    assert node_json(lab, "node-0002")["spec"].get("unschedulable") is True
    records = audit(data)[before:]
    assert [r["result"] for r in records] == ["refused", "refused", "ran", "verified"]
    for r in records[2:]:
        assert r["override"] is True and r["bundle_path"] is None
        assert "capture failed" in r["override_reason"]
    assert records[2]["act_id"] == records[3]["act_id"]
    back = act(lab, data, "node-0002", "uncordon")
    assert back.code == 0, _show(back)


# -- every scenario healed ------------------------------------------------------------------------
def test_each_plan_ends_with_the_scenarios_healing_action():
    from lab.scenarios import SCENARIOS

    assert set(PLAN) == set(SCENARIO_NODES)
    for name, steps in PLAN.items():
        assert steps[-1][0] == (SCENARIOS[name].action or "canary-pod"), name


@pytest.mark.parametrize("scenario", list(PLAN))
def test_nodewb_act_heals_the_scenario(scenario, heals, data):
    job = heals[scenario]
    assert not job.error, job.error
    run = job.heal
    assert run.code == 0, _show(run)
    assert f"{job.node}: verified after" in run.out, _show(run)
    found = BUNDLE_LINE.search(run.out)
    assert found, _show(run)
    path, sha = Path(found.group(1)), found.group(2)
    bundle = verify_bundle(path, sha)
    assert bundle.node == job.node
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    mine = [r for r in audit(data) if r["node"] == job.node and r["action"] == run.action
            and r["bundle_sha256"] == sha]
    assert [r["result"] for r in mine] == ["ran", "verified"], mine
    assert mine[0]["act_id"] == mine[1]["act_id"]
    assert mine[0]["time"] >= bundle.captured_at
    assert mine[0]["commands"] and mine[0]["kube_user"] == "nodewb-admin"
    assert not mine[0]["override"]


def test_restart_kubelet_is_refused_during_an_api_partition(heals, data):
    refused = heals["api-partition"].runs[0]
    assert refused.action == "restart-kubelet" and refused.code == 2, _show(refused)
    assert "verdict: apiserver_unreachable" in refused.out
    assert PARTITION_WARNING in refused.err
    assert "capturing evidence" not in refused.out and "acting:" not in refused.out
    node = SCENARIO_NODES["api-partition"]
    assert any(r["node"] == node and r["action"] == "restart-kubelet" and r["result"] == "refused"
               and PARTITION_WARNING in r["reason"] for r in audit(data))


def test_restart_kubelet_does_not_fix_a_deadlocked_runtime(heals, data):
    wrong = heals["containerd-deadlock"].runs[0]
    assert wrong.action == "restart-kubelet" and wrong.code == 3, _show(wrong)
    assert f"not fixed after {INEFFECTIVE_WATCH} s" in wrong.out
    assert "Ready=False" in wrong.out
    node = SCENARIO_NODES["containerd-deadlock"]
    results = [r["result"] for r in audit(data)
               if r["node"] == node and r["action"] == "restart-kubelet"]
    assert results == ["ran", "not fixed"]


def test_delete_pod_names_its_target_and_the_evidence(heals):
    for scenario, pod in (("pleg-slow-io", "batch/etl-compactor-"),
                          ("kubelet-oom", "logging/fluentd-aggregator-"),
                          ("pid-exhaustion", "batch/report-gen-")):
        out = heals[scenario].heal.out
        assert re.search(rf"^target: pod {re.escape(pod)}\S+: ", out, re.M), out
        assert "  evidence: " in out
    assert "of the node's memory" in heals["kubelet-oom"].heal.out
    # the figure that decided: the kubelet's cAdvisor series for PIDs and disk writes
    assert "container_processes" in heals["pid-exhaustion"].heal.out
    assert "container_fs_writes_bytes_total" in heals["pleg-slow-io"].heal.out


def test_drain_warns_on_a_not_ready_node(heals):
    out = heals["too-many-pods"].heal.out
    assert "! drain: node-0015 is NotReady" in out
    assert "Don't drain the node without understanding why it's NotReady" in out
    assert "✔ schedulable: cordoned (unschedulable)" in out


def test_audit_log_lines_are_whole_json(heals, data):
    lines = (data / "audit.jsonl").read_text().splitlines()
    assert len(lines) >= 2 * len(PLAN)
    assert all(json.loads(line)["result"] for line in lines)
    assert stat.S_IMODE(os.stat(data / "audit.jsonl").st_mode) == 0o600


def test_heal_times(heals, capsys):
    with capsys.disabled():
        print("\nheal time per scenario (nodewb act: diagnose, guard, capture, act, verify):")
        for name, job in heals.items():
            steps = ", ".join(f"{r.action} exit {r.code} {r.seconds:.0f} s" for r in job.runs)
            print(f"  {name:<24} {job.seconds:5.0f} s  ({steps})")
    assert all(job.seconds < 3 * ACT_TIMEOUT for job in heals.values())
