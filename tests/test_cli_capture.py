"""`nodewb capture NODE [--out FILE]` against the served lab, then `nodewb analyze` on it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SCENARIO_NODES
from lab.scenarios import SCENARIOS


def nodewb(*args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def lab_args(lab) -> list[str]:
    return ["--kubeconfig", str(lab.kubeconfig), "--ssh-config", str(lab.ssh_config)]


def printed(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):\s+(.*)$", stdout, re.M))


@pytest.mark.parametrize("scenario", ["disk-full", "cert-expired"])
def test_capture_then_analyze_gives_the_scenarios_domain(served_lab, tmp_path, scenario):
    node = SCENARIO_NODES[scenario]
    out = tmp_path / f"{node}.tar.gz"
    r = nodewb("capture", node, "--out", str(out), *lab_args(served_lab))
    assert r.returncode == 0, r.stderr
    fields = printed(r.stdout)
    assert fields["bundle"] == str(out)
    assert fields["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert fields["node"] == node
    assert re.fullmatch(r"\d+ \(manifest\.json and \d+ captured, verified\)", fields["files"])
    assert fields["problems"] == "none"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    a = nodewb("analyze", str(out), "--format", "json")
    assert a.returncode == 0, a.stderr
    verdict = json.loads(a.stdout)
    assert verdict["node"] == node
    assert verdict["verdict"] == SCENARIOS[scenario].domain


def test_capture_a_hung_runtime_prints_the_problems(served_lab, tmp_path):
    node = SCENARIO_NODES["containerd-deadlock"]
    env = {"NODEWB_EVIDENCE_DIR": str(tmp_path / "evidence")}
    t0 = time.monotonic()
    r = nodewb("capture", node, *lab_args(served_lab), env=env)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    fields = printed(r.stdout)
    path = Path(fields["bundle"])
    assert path.parent == tmp_path / "evidence" and path.name.startswith(f"{node}-")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert re.search(r"^  - crictl-ps\.txt: hung after 10 s", r.stdout, re.M)
    assert int(fields["problems"]) >= 2
    assert took < 60
    a = nodewb("analyze", str(path), "--format", "json")
    assert json.loads(a.stdout)["verdict"] == SCENARIOS["containerd-deadlock"].domain


def test_capture_errors_are_one_line(served_lab, tmp_path):
    r = nodewb("capture", "node-9999", "--out", str(tmp_path / "x.tar.gz"),
               *lab_args(served_lab))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("nodewb capture: ") and r.stderr.count("\n") == 1
    assert "node-9999" in r.stderr
    assert not (tmp_path / "x.tar.gz").exists()

    existing = tmp_path / "earlier.tar.gz"
    existing.write_bytes(b"earlier")
    r = nodewb("capture", "node-0001", "--out", str(existing), *lab_args(served_lab))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("nodewb capture: ") and r.stderr.count("\n") == 1
    assert "already exists" in r.stderr
    assert existing.read_bytes() == b"earlier"
    assert sorted(os.listdir(tmp_path)) == ["earlier.tar.gz"]

    (tmp_path / "afile").write_text("x")
    r = nodewb("capture", "node-0001", "--out", str(tmp_path / "afile" / "b.tar.gz"),
               *lab_args(served_lab))
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "could not be written (Not a directory)" in r.stderr

    r = nodewb("capture", "node-0001", "--kubeconfig", str(tmp_path / "nope"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_capture_killed_midway_leaves_no_bundle_and_harms_none(served_lab, tmp_path):
    """SIGKILL while the hung runtime holds the capture up: no bundle (whole or partial) appears,
    and the bundle captured before still verifies byte for byte."""
    import signal

    from triage.evidence import verify_bundle

    evidence = tmp_path / "evidence"
    env = {"NODEWB_EVIDENCE_DIR": str(evidence)}
    first = nodewb("capture", SCENARIO_NODES["disk-full"], *lab_args(served_lab), env=env)
    assert first.returncode == 0, first.stderr
    (before,) = evidence.glob("*.tar.gz")
    sha = hashlib.sha256(before.read_bytes()).hexdigest()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "capture",
                             SCENARIO_NODES["containerd-deadlock"], *lab_args(served_lab)],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    time.sleep(4.0)  # crictl hangs for 10 s: the capture is still collecting
    assert proc.poll() is None, "the capture ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert sorted(p.name for p in evidence.iterdir()) == [before.name]
    assert verify_bundle(before, sha).sha256 == sha
