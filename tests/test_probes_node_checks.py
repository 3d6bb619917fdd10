"""The runbooks' quick checks (probes.node_checks) and NodeProbes against the lab over real SSH,
plus the parsers on garbage."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import pytest_asyncio

from probes import node_checks as nc
from probes.command_result import CommandResult
from probes.kube import Kube
from probes.kubelet import KubeletClient
from probes.node_probes import NodeProbes, ProbeSpec
from probes.observation import Observation, Status
from probes.ssh import SshClient
from probes.ssh_errors import Unreachable
from tests.conftest import SCENARIO_NODES

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEALTHY = "node-0001"
WAIT = 30.0  # no single check may take longer than this


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ssh(served_lab):
    client = SshClient(ssh_config=served_lab.ssh_config)
    yield client
    await asyncio.wait_for(client.close(), 15)


async def check(coro) -> Observation:
    obs = await asyncio.wait_for(coro, WAIT)
    assert isinstance(obs, Observation)
    json.dumps(obs.as_dict())  # JSON-safe
    assert obs.summary and "\n" not in obs.summary
    return obs


def node(scenario: str) -> str:
    return SCENARIO_NODES[scenario]


# -- systemd ------------------------------------------------------------------------------------
async def test_systemd_ok_on_healthy_node(ssh):
    for unit in ("kubelet", "containerd"):
        obs = await check(nc.systemd_unit(ssh, HEALTHY, unit))
        assert obs.probe == f"node.systemd.{unit}"
        assert obs.status is Status.OK, obs.summary
        assert obs.data["active_state"] == "active" and obs.data["sub_state"] == "running"
        assert obs.data["restarts"] <= 3


async def test_systemd_containerd_failed_when_runtime_dead(ssh):
    obs = await check(nc.systemd_unit(ssh, node("runtime-dead"), "containerd"))
    assert obs.status is Status.BAD
    assert obs.data["active_state"] == "failed"
    assert "failed" in obs.summary


async def test_systemd_kubelet_restarting_on_oom_node(ssh):
    obs = await check(nc.systemd_unit(ssh, node("kubelet-oom"), "kubelet"))
    assert obs.status is Status.BAD
    assert obs.data["restarts"] > 3


# -- journal ------------------------------------------------------------------------------------
async def test_journal_clean_on_healthy_node(ssh):
    for unit in ("kubelet", "containerd"):
        obs = await check(nc.journal_scan(ssh, HEALTHY, unit))
        assert obs.status is Status.OK, obs.summary
        assert obs.probe == f"node.journal.{unit}"
        assert len(obs.data["patterns"]) == len(nc.JOURNAL_PATTERNS)
        assert all(p["count"] == 0 for p in obs.data["patterns"])


async def test_journal_pleg_on_deadlocked_runtime(ssh):
    obs = await check(nc.journal_scan(ssh, node("containerd-deadlock"), "kubelet"))
    assert obs.status is Status.BAD
    pleg = next(p for p in obs.data["patterns"] if p["pattern"] == "PLEG is not healthy")
    assert pleg["count"] > 0 and "PLEG is not healthy" in pleg["last"]
    assert "PLEG is not healthy" in obs.raw


@pytest.mark.parametrize("scenario,pattern", [
    ("cgroup-driver-mismatch", "misconfiguration: kubelet cgroup driver"),
    ("swap-on", "running with swap on is not supported"),
    ("cert-expired", "Unauthorized"),
    ("api-partition", "Failed to ensure lease exists"),
    ("cni-binary-missing", "cni plugin not initialized"),
])
async def test_journal_patterns(ssh, scenario, pattern):
    obs = await check(nc.journal_scan(ssh, node(scenario), "kubelet"))
    assert obs.status is Status.BAD
    assert obs.data["matched"].get(pattern, 0) > 0, obs.data["matched"]


# -- crictl -------------------------------------------------------------------------------------
async def test_crictl_ok_on_healthy_node(ssh):
    for what in ("ps", "pods", "info"):
        obs = await check(nc.crictl(ssh, HEALTHY, what))
        assert obs.probe == f"node.crictl.{what}"
        assert obs.status is Status.OK, obs.summary
        assert obs.data["seconds"] < 5


async def test_crictl_hung_on_deadlocked_runtime(ssh):
    t0 = time.monotonic()
    obs = await asyncio.gather(*(check(nc.crictl(ssh, node("containerd-deadlock"), w))
                                 for w in ("ps", "pods", "info")))
    took = time.monotonic() - t0
    assert all(o.status is Status.HUNG for o in obs), [o.summary for o in obs]
    assert 9.5 <= took < 14, took
    assert "hung" in obs[0].summary


async def test_crictl_bad_when_runtime_dead(ssh):
    for what in ("ps", "info"):
        obs = await check(nc.crictl(ssh, node("runtime-dead"), what))
        assert obs.status is Status.BAD, obs.summary
        assert obs.data["socket_error"] is True
        assert "containerd.sock" in obs.raw


# -- df -----------------------------------------------------------------------------------------
async def test_df_ok_on_healthy_node(ssh):
    for inodes in (False, True):
        obs = await check(nc.df(ssh, HEALTHY, inodes=inodes))
        assert obs.status is Status.OK, obs.summary
        assert set(obs.data["paths"]) == set(nc.DF_PATHS)


async def test_df_inodes_bad_while_space_ok(ssh):
    n = node("inode-exhaustion")
    space = await check(nc.df(ssh, n))
    inodes = await check(nc.df(ssh, n, inodes=True))
    assert space.probe == "node.df.space" and inodes.probe == "node.df.inodes"
    assert space.status is Status.OK, space.summary
    assert inodes.status is Status.BAD
    assert "/var/lib/kubelet" in inodes.data["over"]
    assert "100%" in inodes.summary and "/" in inodes.summary


async def test_df_space_bad_on_full_disk(ssh):
    obs = await check(nc.df(ssh, node("disk-full")))
    assert obs.status is Status.BAD
    assert obs.data["paths"]["/var/lib/kubelet"]["use_pct"] > 85


# -- kernel modules and CNI ----------------------------------------------------------------------
async def test_kmod_and_cni_ok_on_healthy_node(ssh):
    kmod = await check(nc.kernel_modules(ssh, HEALTHY))
    cni = await check(nc.cni(ssh, HEALTHY))
    assert kmod.status is Status.OK and cni.status is Status.OK, (kmod.summary, cni.summary)
    assert "calico" in cni.data["plugins"]


async def test_kmod_bad_when_vxlan_missing(ssh):
    obs = await check(nc.kernel_modules(ssh, node("vxlan-missing")))
    assert obs.status is Status.BAD
    assert obs.data["missing"] == ["vxlan"]


async def test_cni_bad_when_binary_missing(ssh):
    obs = await check(nc.cni(ssh, node("cni-binary-missing")))
    assert obs.status is Status.BAD
    assert "calico" in obs.data["missing"]


# -- healthz and API server from the node ---------------------------------------------------------
async def test_healthz_and_apiserver_ok_on_healthy_node(ssh):
    hz = await check(nc.kubelet_healthz(ssh, HEALTHY))
    api = await check(nc.apiserver_reachability(ssh, HEALTHY))
    assert hz.status is Status.OK and hz.data["http_code"] == 200
    assert api.status is Status.OK and api.data["http_code"] in (200, 401, 403)


async def test_apiserver_unreachable_while_healthz_ok_in_partition(ssh):
    n = node("api-partition")
    hz, api = await asyncio.gather(check(nc.kubelet_healthz(ssh, n)),
                                   check(nc.apiserver_reachability(ssh, n)))
    assert hz.status is Status.OK, hz.summary
    assert api.status is Status.BAD
    assert api.data["http_code"] == 0
    assert "partition" in api.summary


# -- client certificate ---------------------------------------------------------------------------
async def test_client_cert_valid_on_healthy_node(ssh):
    obs = await check(nc.client_cert(ssh, HEALTHY))
    assert obs.probe == "node.cert.client"
    assert obs.status is Status.OK and obs.data["state"] == "valid"


async def test_client_cert_expired(ssh):
    obs = await check(nc.client_cert(ssh, node("cert-expired")))
    assert obs.status is Status.BAD
    assert obs.data["state"] == "expired"
    assert obs.data["judged_on"] == "the node's clock"
    assert "expired" in obs.summary


# -- OOM, kubelet process, clock, swap, pods -------------------------------------------------------
async def test_oom_and_process_ok_on_healthy_node(ssh):
    oom = await check(nc.dmesg_oom(ssh, HEALTHY))
    proc = await check(nc.kubelet_process(ssh, HEALTHY))
    assert oom.status is Status.OK and oom.data["kills"] == 0
    assert proc.status is Status.OK and 0 < proc.data["rss_mb"] < 500


async def test_dmesg_oom_kills_kubelet(ssh):
    obs = await check(nc.dmesg_oom(ssh, node("kubelet-oom")))
    assert obs.status is Status.BAD
    assert obs.data["kubelet_kills"] > 0
    assert "kubelet" in obs.summary and "Killed process" in obs.raw


async def test_kubelet_process_missing_on_oom_node(ssh):
    """The kernel kills the kubelet a few seconds after each restart; within one restart cycle
    (about 15 s) the check finds it gone."""
    import asyncio
    import time

    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        obs = await check(nc.kubelet_process(ssh, node("kubelet-oom")))
        seen.append(obs.summary)
        if obs.status is Status.BAD:
            break
        await asyncio.sleep(1.0)
    assert obs.status is Status.BAD, seen


async def test_kubelet_rss_above_limit_with_too_many_pods(ssh):
    obs = await check(nc.kubelet_process(ssh, node("too-many-pods")))
    assert obs.status is Status.BAD and obs.data["rss_mb"] > 500


async def test_ntp_ok_on_healthy_node(ssh):
    obs = await check(nc.ntp(ssh, HEALTHY))
    assert obs.status is Status.OK, obs.summary
    assert obs.data["ntp_synchronized"] is True
    assert abs(obs.data["offset_seconds"]) <= 5


async def test_ntp_bad_on_clock_skew(ssh):
    obs = await check(nc.ntp(ssh, node("clock-skew")))
    assert obs.status is Status.BAD
    assert obs.data["ntp_synchronized"] is False or abs(obs.data["offset_seconds"]) > 5


async def test_swap(ssh):
    ok = await check(nc.swap(ssh, HEALTHY))
    bad = await check(nc.swap(ssh, node("swap-on")))
    assert ok.status is Status.OK and ok.data["swap_on"] is False
    assert bad.status is Status.BAD and bad.data["swap_on"] is True
    mismatch = await check(nc.swap(ssh, node("cgroup-driver-mismatch")))
    assert mismatch.status is Status.OK  # the cgroup driver, not swap, keeps that kubelet down


async def test_pods(ssh):
    ok = await check(nc.pods(ssh, HEALTHY))
    assert ok.status is Status.OK, ok.summary
    assert ok.data["max_pods"] == 110 and ok.data["counted_by"] == "crictl"
    bad = await check(nc.pods(ssh, node("too-many-pods")))
    assert bad.status is Status.BAD, bad.summary
    assert bad.data["pods"] > 110
    full = await check(nc.pods(ssh, HEALTHY, api_pod_count=110))
    assert full.status is Status.BAD and full.data["counted_by"] == "api"


# -- robustness: garbage and empty outputs are ERROR, never an exception -------------------------
class FakeSsh:
    def __init__(self, stdout: str = "", stderr: str = "", exit_status: int | None = 0,
                 timed_out: bool = False, error: Exception | None = None) -> None:
        self.out, self.err, self.code, self.timed_out, self.error = \
            stdout, stderr, exit_status, timed_out, error

    async def run(self, node, command, timeout=10.0, **kw) -> CommandResult:
        if self.error is not None:
            raise self.error
        return CommandResult(None if self.timed_out else self.code, self.out, self.err, 0.01,
                             self.timed_out, node=node, command=command, started=time.time(),
                             timeout=timeout)


@pytest.mark.parametrize("stdout", ["", "\x00\xff garbage }{ 12 %%", "Filesystem\n", "\n\n"])
async def test_garbage_gives_error_not_exception(stdout):
    for c in nc.CHECKS:
        obs = await check(c.run(FakeSsh(stdout), "n1"))
        assert obs.probe == c.id
        assert obs.status in (Status.ERROR, Status.BAD, Status.OK), (c.id, obs.summary)
        if obs.status is Status.ERROR:
            assert obs.reason
    # the ones whose output must carry a value never pass on garbage
    for fn in (nc.systemd_unit, nc.crictl, nc.df, nc.kernel_modules, nc.client_cert, nc.ntp,
               nc.kubelet_healthz, nc.swap, nc.cni):
        obs = await check(fn(FakeSsh(stdout), "n1"))
        assert obs.status is Status.ERROR, (fn.__name__, stdout, obs.summary)


async def test_ssh_failure_and_timeout_and_no_ssh():
    down = FakeSsh(error=Unreachable("n1: cannot reach the bastion", node="n1"))
    obs = await check(nc.df(down, "n1"))
    assert obs.status is Status.ERROR and "cannot reach" in obs.reason
    hung = await check(nc.crictl(FakeSsh("partial", timed_out=True), "n1", "ps"))
    assert hung.status is Status.HUNG and hung.raw.startswith("partial")
    none = await check(nc.swap(None, "n1"))
    assert none.status is Status.SKIPPED and none.reason


async def test_parsers():
    assert nc.parse_df("Filesystem Size Used Avail Use% Mounted on\n/dev/verylongname\n"
                       "  10G 9G 1G 90% /var\n")[0]["use_pct"] == 90
    assert nc.parse_lsmod("Module Size Used by\nvxlan 1 0\n") == ["vxlan"]
    assert nc.parse_ntp("yes\n") is True
    assert nc.parse_ntp("System clock synchronized: no\n") is False
    assert nc.parse_ntp("nothing") is None
    assert nc.kubeconfig_server("  server: https://10.0.0.1:6443\n") == "https://10.0.0.1:6443"
    assert nc.cni_plugin_types('{"type":"flannel"}{"plugins":[{"type":"calico","ipam":'
                               '{"type":"calico-ipam"}}]} junk') == \
        ["flannel", "calico", "calico-ipam"]
    found, n = nc.scan_journal(["x OOMKilled", "PLEG is not healthy: pleg was last seen "
                                               "active 3m ago", "a room"])
    counts = {f["pattern"]: f["count"] for f in found}
    assert n == 3 and counts["oom"] == 1 and counts["PLEG is not healthy"] == 1


# -- NodeProbes -----------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(served_lab):
    return Kube(str(served_lab.kubeconfig))


async def test_node_probes_on_deadlocked_node(served_lab, ssh, kube):
    n = node("containerd-deadlock")
    async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
        probes = NodeProbes(kube, ssh, kubelet, n)
        plan = probes.plan()
        assert all(isinstance(p, ProbeSpec) and p.timeout > 0 for p in plan)
        ids = [p.id for p in plan]
        assert len(ids) == len(set(ids))
        started: list[str] = []
        seen: list[tuple[float, Observation]] = []
        t0 = time.monotonic()
        obs = await asyncio.wait_for(
            probes.run(on_start=started.append,
                       on_observation=lambda o: seen.append((time.monotonic() - t0, o))), 30)
        took = time.monotonic() - t0
    assert took < 15, took
    assert [o.probe for o in obs] == ids
    assert sorted(started) == sorted(ids)
    assert sorted(o.probe for _, o in seen) == sorted(ids)
    by = {o.probe: o for o in obs}
    assert by["node.crictl.ps"].status is Status.HUNG
    assert by["node.journal.kubelet"].status is Status.BAD
    assert by["kubelet.healthz"].status in (Status.BAD, Status.OK)
    assert by["api.node"].status is Status.BAD and by["api.node"].data["ready"] == "False"
    assert by["api.lease"].status in (Status.OK, Status.BAD)
    assert by["api.events"].status in (Status.OK, Status.BAD)
    assert all(o.status is not Status.SKIPPED for o in obs)
    # the quick ones were reported long before the hung ones
    early = [t for t, o in seen if o.probe == "node.df.space"][0]
    assert early < 5, early
    for o in obs:
        json.dumps(o.as_dict())


async def test_node_probes_partition_and_healthy(served_lab, ssh, kube):
    async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
        part = await asyncio.wait_for(
            NodeProbes(kube, ssh, kubelet, node("api-partition")).run(), 30)
        healthy = await asyncio.wait_for(NodeProbes(kube, ssh, kubelet, HEALTHY).run(), 30)
    by = {o.probe: o for o in part}
    assert by["node.apiserver"].status is Status.BAD
    assert by["kubelet.healthz"].status is Status.OK and by["kubelet.healthz"].via == "ssh"
    assert by["api.node"].data["set_by"] == "node-controller"
    assert by["api.lease"].status is Status.BAD
    bad = [o for o in healthy if o.status is not Status.OK]
    assert not bad, [(o.probe, o.summary) for o in bad]
    serving = {o.probe: o for o in healthy}["kubelet.cert.serving"]
    assert serving.via == "direct" and serving.data["state"] == "valid"
    assert serving.data["judged_on"] == "the node's clock"
    assert serving.data["ttl"] > 7 * 86400
    assert serving.data["cert"]["issuer"] and serving.data["cert"]["not_before"] < time.time()
    assert HEALTHY in serving.data["cert"]["dns_names"]
    assert "notAfter=" in serving.raw and "SANs=" in serving.raw and "issuer=" in serving.raw
    # across the partition the handshake still reaches the node: only the proxy is cut off
    assert by["kubelet.cert.serving"].status is Status.OK, by["kubelet.cert.serving"].summary


async def test_serving_certificate_not_yet_valid_on_a_clock_behind(served_lab, ssh, kube):
    n = node("clock-skew")
    async with KubeletClient(kube, nc.ssh_runner(ssh)) as kubelet:
        probes = NodeProbes(kube, ssh, kubelet, n)
        assert "kubelet.cert.serving" in [p.id for p in probes.plan()]
        obs = await asyncio.wait_for(probes.run(), 30)
    serving = {o.probe: o for o in obs}["kubelet.cert.serving"]
    assert serving.status is Status.BAD, serving.summary
    assert serving.data["state"] == "not_yet_valid"
    # on our clock it is fine: the clock is the finding
    assert serving.data["local_view"] == "valid"
    assert serving.data["node_clock_offset"] == pytest.approx(-2 * 86400 - 1234.5, abs=30)
    assert "not yet valid" in serving.summary and "clock running behind" in serving.summary
    # the tree reads it: a clock behind, never an expired certificate
    from triage.tree import Diagnosis

    d = Diagnosis(n).extend(obs)
    fired = {rule for rule, *_ in d.fired()}
    assert "cert.serving-not-yet-valid" in fired and "cert.serving-expired" not in fired
    assert d.verdict().verdict == "clock_skew"


async def test_serving_certificate_without_a_kubelet_client_or_an_address():
    skipped = await asyncio.wait_for(NodeProbes(None, None, None, "n1").run(), 5)
    by = {o.probe: o for o in skipped}
    assert by["kubelet.cert.serving"].status is Status.SKIPPED
    assert by["kubelet.cert.serving"].reason == "no kubelet client configured"

    # no address given and no cluster to ask: an ERROR with the reason, not an exception
    async with KubeletClient(None, None) as kubelet:
        probes = NodeProbes(None, None, kubelet, "n1")
        obs = await asyncio.wait_for(probes.run(), 10)
    serving = {o.probe: o for o in obs}["kubelet.cert.serving"]
    assert serving.status is Status.ERROR and "no address known for n1" in serving.summary


@pytest.mark.parametrize("left,state", [(3 * 86400, "expiring"), (-3600, "expired"),
                                        (90 * 86400, "valid")])
async def test_serving_certificate_ttl_against_the_runbook_threshold(left, state):
    from lab.pki import CA
    from tests.test_probes_certs import tls_server
    from triage.tree import Diagnosis

    now = time.time()
    ca = CA("serving-test-ca", now - 86400)
    issued = ca.issue("node-0003@1", not_before=now - 30 * 86400, not_after=now + left,
                      dns=("node-0003",), ips=("127.0.0.1",), server=True)

    async with tls_server(ca, issued) as port, KubeletClient(None, None, port=port) as kubelet:
        obs = await asyncio.wait_for(NodeProbes(None, None, kubelet, "node-0003",
                                                internal_ip="127.0.0.1").run(), 10)
    serving = {o.probe: o for o in obs}["kubelet.cert.serving"]
    assert serving.data["state"] == state, serving.summary
    assert serving.status is (Status.OK if state == "valid" else Status.BAD)
    assert serving.data["judged_on"] == "the local clock"  # no SSH to read the node's
    assert serving.data["cert"]["issuer"] == "CN=serving-test-ca"
    if state == "expiring":
        assert "warning below 7.0 days" in serving.summary
    # an expired serving certificate is a suspect of cert_expired, never a confirmation
    d = Diagnosis("node-0003").extend(obs)
    fired = {rule: effect for rule, _, effect, _ in d.fired()}
    assert ("cert.serving-expired" in fired) == (state == "expired")
    assert d.domains()["cert_expired"].status == ("suspected" if state == "expired"
                                                  else "untested")


async def test_serving_certificate_refused_is_an_error_judged_on_the_local_clock():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KubeletClient(None, None, port=port) as kubelet:
        obs = await asyncio.wait_for(
            NodeProbes(None, None, kubelet, "n1", internal_ip="127.0.0.1").run(), 10)
    serving = {o.probe: o for o in obs}["kubelet.cert.serving"]
    assert serving.status is Status.ERROR and "connection refused" in serving.reason
    assert serving.data["address"] == f"127.0.0.1:{port}"
    assert serving.data["node_clock_error"] == "no SSH: judged on the local clock"


async def test_node_probes_without_ssh_or_cluster():
    seen: list[Observation] = []
    obs = await asyncio.wait_for(NodeProbes(None, None, None, "n1").run(
        on_observation=seen.append), 5)
    assert obs and all(o.status is Status.SKIPPED and o.reason for o in obs)
    assert len(seen) == len(obs)


async def test_node_probes_hang_never_blocks_others():
    class Stuck:
        async def run(self, node, command, timeout=10.0, **kw):
            if "crictl" in command:
                await asyncio.sleep(3600)
            return CommandResult(0, "", "", 0.0, False, node=node, command=command)

    probes = NodeProbes(None, Stuck(), None, "n1", concurrency=4)
    import probes.node_probes as npm
    old = npm.GRACE
    npm.GRACE = -9.0  # crictl's 10 s limit becomes a 1 s guard
    try:
        t0 = time.monotonic()
        obs = await asyncio.wait_for(probes.run(), 20)
    finally:
        npm.GRACE = old
    by = {o.probe: o for o in obs}
    assert time.monotonic() - t0 < 8
    assert by["node.crictl.ps"].status is Status.HUNG
    assert by["node.df.space"].status is Status.ERROR  # empty output, with a reason

