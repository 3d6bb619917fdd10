"""The lab with no --scenario flags: the runbook's zone-wide vxlan story plus a mix of others."""

from __future__ import annotations

import json

import pytest

from lab.cluster import Cluster

ZONE_LABEL = "topology.kubernetes.io/zone"


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_default_lab_has_the_zone_story_and_a_mix(seed):
    cluster = Cluster(nodes=40, seed=seed)
    nodes = {n: json.loads(cluster.store["nodes"].get("", n).raw) for n in cluster.nodes}
    zones = {n: obj["metadata"]["labels"][ZONE_LABEL] for n, obj in nodes.items()}
    assert len(set(zones.values())) == 3

    scenarios = {n: s.name for n, s in cluster.assignments.items()}
    vxlan = [n for n, s in scenarios.items() if s == "vxlan-missing"]
    assert len(vxlan) >= 3
    assert len({zones[n] for n in vxlan}) == 1
    others = {s for s in scenarios.values() if s not in ("vxlan-missing", "healthy")}
    assert len(others) >= 4, scenarios

    for n in vxlan:  # the API shows the story, not just the assignment
        conditions = {c["type"]: c for c in nodes[n]["status"]["conditions"]}
        assert conditions["NetworkUnavailable"]["status"] == "True"
        assert conditions["Ready"]["status"] == "False"
        assert "cni plugin not initialized" in conditions["Ready"]["message"]
    healthy = [n for n in nodes if n not in scenarios]
    assert healthy
    for n in healthy:
        ready = next(c for c in nodes[n]["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
