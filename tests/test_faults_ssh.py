"""Probes and followed journals under SSH faults, against a lab of this module's own: hung
commands are reported HUNG, a bastion that is down is an ERROR with its reason, a flood of output
is cut, broken metrics are named; a dropped journal stream reconnects, marks the gap and resumes
without repeating lines."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import pytest_asyncio

from probes import node_checks as nc
from probes.kube import Kube
from probes.kubelet import KubeletClient
from probes.node_probes import NodeProbes
from probes.observation import Status
from probes.ssh import SshClient, StreamGap
from tests.test_faults_lab import faults, inject

pytestmark = pytest.mark.openssh


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path_factory.mktemp("ssh-faults") / "lab", "--nodes", "6",
                       "--seed", "9")
    yield served
    stop_lab(served)


@pytest.fixture
def clean(lab):
    yield lab
    faults(lab, "DELETE")


@pytest_asyncio.fixture
async def ssh(lab):
    client = SshClient(ssh_config=lab.ssh_config)
    yield client
    await asyncio.wait_for(client.close(), 15)


async def probe_all(lab, ssh, node: str, limit: float = 60.0) -> dict:
    kube = Kube(str(lab.kubeconfig))
    async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
        obs = await asyncio.wait_for(NodeProbes(kube, ssh, kubelet, node).run(), limit)
    return {o.probe: o for o in obs}


async def test_hung_commands_are_reported_hung_and_hold_nothing_up(clean, ssh):
    lab = clean
    inject(lab, "ssh-hang:match=crictl,node=node-0002,for=40")
    t0 = time.monotonic()
    by = await probe_all(lab, ssh, "node-0002")
    took = time.monotonic() - t0
    uses_crictl = ("node.crictl", "node.pods")  # node.pods counts with crictl too
    crictl = [o for p, o in by.items() if p.startswith(uses_crictl)]
    assert crictl and all(o.status is Status.HUNG for o in crictl), \
        [(o.probe, o.status, o.summary) for o in crictl]
    assert all(re.search(r"timed out|no result", o.reason) and "hung" in o.summary
               for o in crictl), [(o.summary, o.reason) for o in crictl]
    others = [o for p, o in by.items() if not p.startswith(uses_crictl)]
    assert all(o.status in (Status.OK, Status.BAD) for o in others), \
        [(o.probe, o.status, o.summary) for o in others if o.status not in (Status.OK,
                                                                             Status.BAD)]
    assert took < 35, took  # the hangs ran alongside the rest, each under its own limit


async def test_bastion_down_is_an_error_with_the_reason(clean, ssh):
    lab = clean
    down = inject(lab, "bastion-down:for=8")
    by = await probe_all(lab, ssh, "node-0003")
    node = [o for p, o in by.items() if p.startswith("node.")]
    assert node and all(o.status is Status.ERROR for o in node), \
        [(o.probe, o.status, o.summary) for o in node]
    assert all("refused" in (o.reason + o.summary).lower() for o in node), \
        {o.reason for o in node}
    assert by["api.node"].status in (Status.OK, Status.BAD)  # the API path is unaffected
    await asyncio.sleep(max(0.0, down["ends"] + 0.5 - time.time()))  # the fault ran out
    by = await probe_all(lab, ssh, "node-0003")
    assert by["node.systemd.kubelet"].status is Status.OK


async def test_a_flood_of_output_is_cut_and_broken_metrics_are_outlived(clean, ssh):
    lab = clean
    inject(lab, "ssh-huge:match=df,bytes=20000000,node=node-0004,for=60")
    result = await ssh.run("node-0004", "df -h", timeout=30)
    assert result.truncated and len(result.stdout) <= 4 * 1024 * 1024 + 65536
    for mode in ("garbage", "nan", "truncate"):
        inject(lab, f"metrics-garbage:node=node-0004,mode={mode},for=60")
        by = await probe_all(lab, ssh, "node-0004")
        space = by["node.df.space"]  # the flood is not a df table: an error that says so
        assert space.status is Status.ERROR and "not a df row" in space.reason, space
        metrics = by["kubelet.metrics"]  # what could be read is used, the rest is left out
        assert metrics.status in (Status.OK, Status.BAD), (mode, metrics)
        assert "via" in metrics.summary and "nan" not in metrics.summary.lower(), metrics
        if mode == "garbage":  # broken lines of the families read are said, not hidden
            assert "unreadable" in metrics.summary and metrics.data["bad_lines"] > 0, metrics
        faults(lab, "DELETE", {"kind": "metrics-garbage"})


async def test_a_dropped_journal_stream_reconnects_marks_the_gap_and_repeats_nothing(clean,
                                                                                      ssh):
    lab = clean
    node = "node-0005"
    inject(lab, f"journal-hostile:node={node},every=0.3,for=25")  # lines keep coming
    items: list = []

    async def follow() -> None:
        async with ssh.stream(node, "journalctl -u kubelet -f -n 5 -o short-precise") as s:
            async for item in s:
                items.append(item)

    task = asyncio.ensure_future(follow())
    try:
        deadline = time.monotonic() + 20
        while sum(isinstance(i, str) for i in items) < 10:
            assert time.monotonic() < deadline, "no lines"
            await asyncio.sleep(0.1)
        drop = inject(lab, f"ssh-drop:every=1,node={node},for=3")
        deadline = time.monotonic() + 30
        while True:
            closed = [i for i in items if isinstance(i, StreamGap) and not i.open]
            after = [i for i in items[items.index(closed[-1]) + 1:] if isinstance(i, str)] \
                if closed else []
            if closed and time.time() > drop["ends"] + 1 and len(after) >= 5:
                break
            assert time.monotonic() < deadline, f"no resumed stream; saw {items[-5:]}"
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [i for i in items if isinstance(i, StreamGap)]
    opened = [g for g in gaps if g.open]
    assert opened and all("connection" in g.reason for g in opened)
    assert closed and all(g.resumed.startswith("--since") for g in closed)
    assert all(g.ended >= g.started for g in closed)
    lines = [i for i in items if isinstance(i, str)]
    stamped = [line for line in lines if re.match(r"[A-Z][a-z]{2} [ \d]\d \d\d:", line)]
    assert len(stamped) == len(set(stamped)), "a line was delivered twice across a gap"
    assert any("\x1b" in line for line in lines)  # hostile lines arrive as they are, raw


async def test_a_stream_outlives_the_bastion_going_down(clean, ssh):
    lab = clean
    node = "node-0006"
    inject(lab, f"journal-hostile:node={node},every=0.5,for=30")
    items: list = []

    async def follow() -> None:
        async with ssh.stream(node, "journalctl -u kubelet -f -n 3 -o short-precise") as s:
            async for item in s:
                items.append(item)

    task = asyncio.ensure_future(follow())
    try:
        deadline = time.monotonic() + 20
        while sum(isinstance(i, str) for i in items) < 3:
            assert time.monotonic() < deadline, "no lines"
            await asyncio.sleep(0.1)
        down = inject(lab, "bastion-down:for=3")
        deadline = time.monotonic() + 40
        while not any(isinstance(i, StreamGap) and not i.open for i in items):
            assert time.monotonic() < deadline, f"the stream did not come back; {items[-3:]}"
            await asyncio.sleep(0.2)
        closed = next(i for i in items if isinstance(i, StreamGap) and not i.open)
        assert closed.ended >= down["ends"] - 0.5  # it waited the outage out
        assert closed.attempts >= 2  # and kept trying (with backoff) while refused
        index = items.index(closed)
        deadline = time.monotonic() + 20
        while not any(isinstance(i, str) for i in items[index + 1:]):
            assert time.monotonic() < deadline, "no lines after the gap"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
