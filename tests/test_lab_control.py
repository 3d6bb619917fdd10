"""The lab's control endpoint: admin only, bounded load, faults on demand."""

from __future__ import annotations

import json
import time

import pytest


def control(lab, action: str, body: dict | None = None, context: str | None = None):
    args = ["create", "--raw", f"/lab/v1/{action}", "-f", "-"] if body is not None else \
        ["get", "--raw", f"/lab/v1/{action}"]
    import subprocess

    cmd = ["kubectl", "--kubeconfig", str(lab.kubeconfig)]
    if context:
        cmd += ["--context", context]
    return subprocess.run(cmd + args, input=json.dumps(body or {}), capture_output=True,
                          text=True, timeout=30)


@pytest.mark.kubectl
def test_status_and_viewer_forbidden(served_lab):
    ok = control(served_lab, "status")
    assert ok.returncode == 0, ok.stderr
    status = json.loads(ok.stdout)
    assert status["nodes"] == served_lab.info["nodes"]
    denied = control(served_lab, "status", context="nodewb-lab-viewer")
    assert denied.returncode != 0 and "Forbidden" in denied.stderr + denied.stdout
    unknown = control(served_lab, "no-such-thing")
    assert unknown.returncode != 0


@pytest.mark.kubectl
def test_churn_produces_modified_events_and_stops(fresh_lab):
    lab = fresh_lab("--nodes", "50")
    before = json.loads(control(lab, "status").stdout)["resourceVersion"]
    started = control(lab, "churn", {"rate": 500, "seconds": 1})
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = json.loads(control(lab, "status").stdout)
        if not status["churning"]:
            break
        time.sleep(0.2)
    assert not status["churning"]
    assert 300 <= status["churned"] <= 700
    assert status["resourceVersion"] - before >= status["churned"]


@pytest.mark.kubectl
def test_partition_on_demand(fresh_lab):
    lab = fresh_lab("--nodes", "3")
    assert control(lab, "partition", {"node": "node-0002"}).returncode == 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        node = json.loads(lab.kubectl("get", "node", "node-0002", "-o", "json").stdout)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        if ready["status"] == "Unknown":
            break
        time.sleep(1)
    assert ready["status"] == "Unknown"
    assert control(lab, "partition", {"node": "node-0002", "on": False}).returncode == 0
