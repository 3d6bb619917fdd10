"""`nodewb analyze` on what `nodewb capture` wrote decides as `nodewb diagnose` on the live node:
every scenario of the lab (and a healthy node) captured and diagnosed over real HTTPS and SSH,
then the bundle analysed offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, SCENARIO_NODES, start_lab, stop_lab
from lab.scenarios import SCENARIOS

HEALTHY = "node-0001"
NODES = {**SCENARIO_NODES, "healthy": HEALTHY}
LAB_SIZE = 24  # every scenario node (the highest is node-0023) and some healthy ones
POOL = 4
RUN_LIMIT = 90.0  # seconds one nodewb command may take (a capture waits out a hung runtime)


@dataclass
class Outcome:
    node: str
    bundle: Path
    capture: subprocess.CompletedProcess
    live: dict | None  # diagnose --format json
    offline: dict | None  # analyze --format json
    seconds: float


def nodewb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=RUN_LIMIT, env=dict(os.environ))


def _json(r: subprocess.CompletedProcess) -> dict | None:
    return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("analyze-bundles")
    specs = [f"--scenario={name}@{node}" for name, node in SCENARIO_NODES.items()]
    lab = start_lab(base / "lab", "--nodes", str(LAB_SIZE), "--seed", "7", *specs)
    target = ["--kubeconfig", str(lab.kubeconfig), "--ssh-config", str(lab.ssh_config)]

    def one(node: str) -> Outcome:
        t0 = time.monotonic()
        out = base / f"{node}.tar.gz"
        captured = nodewb("capture", node, "--out", str(out), *target)
        live = _json(nodewb("diagnose", node, "--format", "json", *target))
        offline = _json(nodewb("analyze", str(out), "--format", "json")) \
            if captured.returncode == 0 else None
        return Outcome(node, out, captured, live, offline, time.monotonic() - t0)

    try:
        with ThreadPoolExecutor(POOL) as pool:
            done = dict(zip(NODES, pool.map(one, NODES.values()), strict=False))
    finally:
        stop_lab(lab)
    return done


@pytest.mark.parametrize("scenario", list(NODES))
def test_analyze_decides_as_diagnose(outcomes, scenario):
    o = outcomes[scenario]
    assert o.capture.returncode == 0, o.capture.stderr
    assert o.live is not None and o.offline is not None
    expected = "healthy" if scenario == "healthy" else SCENARIOS[scenario].domain
    assert o.live["verdict"] == expected
    assert o.offline["node"] == o.node
    assert o.offline["verdict"] == o.live["verdict"], (o.offline["domains"], o.offline["notes"])
    # every file the capture wrote is read: none skipped
    skipped = [n for n in o.offline.get("notes") or [] if ": skipped" in n]
    assert skipped == [], skipped


def test_the_hung_runtime_is_runtime_downs_evidence(outcomes):
    o = outcomes["containerd-deadlock"]
    assert o.offline is not None, o.capture.stderr
    down = next(d for d in o.offline["domains"] if d["id"] == "runtime_down")
    assert down["status"] == "confirmed"
    hung = [e for e in down["evidence"] if e.startswith("node.crictl.ps [hung]: ")]
    assert len(hung) == 1 and "did not finish in 10 s" in hung[0], down["evidence"]
    assert hung[0].endswith("[crictl-ps.txt]")
