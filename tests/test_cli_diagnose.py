"""`nodewb diagnose NODE` against the served lab: the contract's JSON, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, SCENARIO_NODES

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh]


def diagnose(lab, node: str, fmt: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", "diagnose", node, "--format", fmt,
                           "--kubeconfig", str(lab.kubeconfig), "--ssh-config",
                           str(lab.ssh_config)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("scenario,domain", [("containerd-deadlock", "runtime_down"),
                                             ("vxlan-missing", "cni_network"),
                                             ("disk-full", "disk_pressure")])
def test_diagnose_names_the_domain(served_lab, scenario, domain):
    started = time.monotonic()
    result = diagnose(served_lab, SCENARIO_NODES[scenario])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert list(verdict) == ["node", "verdict", "domains", "next_probes", "fix", "verify",
                             "dont", "actions"]
    assert verdict["node"] == SCENARIO_NODES[scenario]
    assert verdict["verdict"] == domain, result.stdout
    chosen = next(d for d in verdict["domains"] if d["id"] == domain)
    assert chosen["status"] == "confirmed" and chosen["evidence"]
    assert verdict["fix"] and verdict["verify"] and verdict["dont"]
    print(f"\n{scenario}: {domain} in {elapsed:.1f} s")


def test_diagnose_healthy_text_and_markdown(served_lab):
    text = diagnose(served_lab, "node-0001", "text")
    assert text.returncode == 0 and "healthy" in text.stdout.splitlines()[0]
    md = diagnose(served_lab, "node-0001", "markdown")
    assert md.returncode == 0 and md.stdout.lstrip().startswith("#")


def test_diagnose_unknown_node_is_a_clear_error(served_lab):
    result = diagnose(served_lab, "node-9999")
    assert result.returncode == 1
    assert 'nodes "node-9999" not found' in result.stderr
    assert "Traceback" not in result.stderr
