"""triage.pod_target on a served lab: the pod to delete is chosen by the kubelet's cAdvisor
figures, fetched through the API server's node proxy by the real KubeletClient."""

from __future__ import annotations

import asyncio
import time

import pytest

from probes.kube import Kube
from probes.kubelet import KubeletClient
from tests.conftest import start_lab, stop_lab
from triage.pod_target import NoTarget, _cadvisor, choose_pod

NODES = {"pid-exhaustion": "node-0001", "pleg-slow-io": "node-0002", "kubelet-oom": "node-0003"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("podtarget") / "served"
    served = start_lab(directory, "--nodes", "4", "--seed", "11",
                       *(f"--scenario={name}@{node}" for name, node in NODES.items()))
    yield served
    stop_lab(served)


async def _choose(lab, node: str, figure: str, deadline: float = 40.0):
    """choose_pod until the choice rests on FIGURE (a kubelet that is being OOM-killed answers
    between restarts)."""
    kube = Kube(str(lab.kubeconfig))
    end = time.monotonic() + deadline
    async with KubeletClient(kube, read_timeout=10, connect_timeout=3) as kubelet:
        while True:
            choice = await choose_pod(kube, None, kubelet, node, None)
            if figure in choice.why or time.monotonic() > end:
                return choice
            await asyncio.sleep(0.5)


async def test_pid_exhaustion_picks_the_forking_pod_by_process_count(lab):
    choice = await _choose(lab, NODES["pid-exhaustion"], "container_processes")
    assert choice.ref.startswith("batch/report-gen-")
    assert "cAdvisor container_processes" in choice.why
    assert choice.evidence[0].startswith("processes by pod (cAdvisor container_processes): "
                                         "batch/report-gen-")


async def test_pleg_slow_io_picks_the_heaviest_writer(lab):
    choice = await _choose(lab, NODES["pleg-slow-io"], "container_fs_writes_bytes_total")
    assert choice.ref.startswith("batch/etl-compactor-")
    assert "MiB/s to disk" in choice.why and "container_fs_writes_bytes_total" in choice.why
    assert "last workload pod started" not in choice.why


async def test_kubelet_oom_picks_the_pod_holding_the_memory(lab):
    choice = await _choose(lab, NODES["kubelet-oom"], "container_memory_working_set_bytes")
    assert choice.ref.startswith("logging/fluentd-aggregator-")
    assert "cAdvisor container_memory_working_set_bytes" in choice.why
    assert "of the node's memory" in choice.why


async def test_kubelet_oom_over_ssh_measures_rss_under_each_shim(lab):
    """Between the kubelet's restarts cAdvisor may not answer; ps on the node always does."""
    from probes.ssh import SshClient

    kube = Kube(str(lab.kubeconfig))
    ssh = SshClient(ssh_config=str(lab.ssh_config))
    try:
        choice = await choose_pod(kube, ssh, None, NODES["kubelet-oom"], None)
    finally:
        await ssh.close()
    assert choice.ref.startswith("logging/fluentd-aggregator-")
    assert "ps RSS under its shim" in choice.why


async def test_without_cadvisor_the_start_time_fallback_remains(lab):
    kube = Kube(str(lab.kubeconfig))
    choice = await choose_pod(kube, None, None, NODES["pid-exhaustion"], None)
    assert choice.ref.startswith("batch/report-gen-")
    assert "last workload pod started before the trouble began" in choice.why


async def test_figures_that_single_out_no_pod_give_no_choice(lab):
    """A healthy node: cAdvisor answers, but no pod stands out by memory, processes or
    writes."""
    kube = Kube(str(lab.kubeconfig))
    async with KubeletClient(kube, read_timeout=10, connect_timeout=3) as kubelet:
        with pytest.raises(NoTarget, match="cAdvisor figures .* single out no workload pod"):
            await choose_pod(kube, None, kubelet, "node-0004", None)


def test_cadvisor_sums_containers_and_skips_pod_and_sandbox_cgroups():
    text = (
        'container_processes{container="",id="/kubepods/burstable/podu",image="",name="",'
        'namespace="a",pod="p"} 99 1700000000000\n'
        'container_processes{container="POD",id="/x",image="pause",name="s",namespace="a",'
        'pod="p"} 1\n'
        'container_processes{container="app",id="/y",image="i",name="c1",namespace="a",'
        'pod="p"} 4 1700000000000\n'
        'container_processes{container="side",id="/z",image="i",name="c2",namespace="a",'
        'pod="p"} 2 1700000000500\n'
        'container_start_time_seconds{container="app",id="/y",image="i",name="c1",'
        'namespace="a",pod="p"} 1.69999e+09\n'
        'container_start_time_seconds{container="side",id="/z",image="i",name="c2",'
        'namespace="a",pod="p"} 1.6999e+09\n')
    got = _cadvisor(text)[("a", "p")]
    assert got["container_processes"] == 6
    assert got["container_start_time_seconds"] == 1.6999e9
    assert got["at"] == 1700000000.5
