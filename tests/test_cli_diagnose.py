"""`nodewb diagnose NODE` against the served lab: the contract's JSON, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ROOT, SCENARIO_NODES

pytestmark = [pytest.mark.kubectl, pytest.mark.openssh]


def diagnose(lab, node: str, fmt: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", "diagnose", node, "--format", fmt,
                           "--kubeconfig", str(lab.kubeconfig), "--ssh-config",
                           str(lab.ssh_config)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


# every lab scenario's domain (DESIGN: `nodewb scenarios`), and a healthy node
EXPECTED = {
    "pleg-slow-io": "pleg_runtime_slow", "containerd-deadlock": "runtime_down",
    "runtime-dead": "runtime_down", "cert-expired": "cert_expired",
    "cni-binary-missing": "cni_network", "inode-exhaustion": "disk_pressure",
    "disk-full": "disk_pressure", "kubelet-oom": "memory_pid_pressure",
    "too-many-pods": "memory_pid_pressure", "pid-exhaustion": "memory_pid_pressure",
    "api-partition": "apiserver_unreachable", "clock-skew": "clock_skew",
    "cgroup-driver-mismatch": "kubelet_config", "swap-on": "kubelet_config",
    "vxlan-missing": "cni_network",
}
# the finer cause each scenario's story tells
LEAVES = {
    "containerd-deadlock": "hung", "runtime-dead": "dead", "cert-expired": "pending_csr",
    "cni-binary-missing": "binary_missing", "vxlan-missing": "kernel_module",
    "inode-exhaustion": "inodes", "disk-full": "space", "kubelet-oom": "kubelet_oom",
    "too-many-pods": "too_many_pods", "pid-exhaustion": "pid", "api-partition": "partition",
    "cgroup-driver-mismatch": "cgroup_driver", "swap-on": "swap", "clock-skew": "offset",
}
HEALTHY_NODE = "node-0001"


def test_every_scenario_is_diagnosed_to_its_domain(served_lab):
    from lab.scenarios import SCENARIOS

    assert set(EXPECTED) == set(SCENARIO_NODES) == set(SCENARIOS) - {"healthy"}
    for name, domain in EXPECTED.items():
        assert SCENARIOS[name].domain == domain
    cases = [(name, SCENARIO_NODES[name], domain) for name, domain in EXPECTED.items()]
    cases.append(("healthy", HEALTHY_NODE, "healthy"))

    def one(case: tuple[str, str, str]) -> tuple[str, str, str, float, subprocess.CompletedProcess]:
        name, node, domain = case
        started = time.monotonic()
        result = diagnose(served_lab, node)
        return name, node, domain, time.monotonic() - started, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, cases))
    print()
    failures = []
    for name, node, domain, elapsed, result in sorted(results, key=lambda r: -r[3]):
        got = "?"
        if result.returncode == 0:
            verdict = json.loads(result.stdout)
            got = f"{verdict['verdict']} [{verdict.get('leaf')}]"
        print(f"  {name:<24} {node}  {got:<40} {elapsed:5.1f} s")
        if result.returncode != 0:
            failures.append(f"{name}: exit {result.returncode}: {result.stderr[-400:]}")
            continue
        verdict = json.loads(result.stdout)
        if verdict["verdict"] != domain:
            failures.append(f"{name}: {verdict['verdict']} instead of {domain}")
            continue
        assert list(verdict)[:8] == ["node", "verdict", "domains", "next_probes", "fix",
                                     "verify", "dont", "actions"]
        assert verdict["node"] == node
        if domain == "healthy":
            assert verdict["leaf"] is None and not verdict["next_probes"]
            continue
        chosen = next(d for d in verdict["domains"] if d["id"] == domain)
        assert chosen["status"] == "confirmed" and chosen["evidence"], name
        assert verdict["fix"] and verdict["verify"] and verdict["dont"], name
        if name in LEAVES and verdict["leaf"] != LEAVES[name]:
            failures.append(f"{name}: leaf {verdict['leaf']} instead of {LEAVES[name]}")
    assert not failures, "\n".join(failures)


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
