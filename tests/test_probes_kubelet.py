"""probes.kubelet against the served lab: the API server's node proxy, direct HTTPS to :10250,
and curl on the node over OpenSSH, with the automatic fallback in the partition case."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import sys
import time

import pytest

from conftest import SCENARIO_NODES
from probes import certs
from probes.kube import Kube
from probes.kubelet import (
    AUTO,
    DIRECT,
    PROXY,
    SSH,
    KubeletClient,
    parse_goroutines,
    partition_signature,
)
from probes.observation import Status

HEALTHY = "node-0001"
DEADLOCK = SCENARIO_NODES["containerd-deadlock"]
PARTITION = SCENARIO_NODES["api-partition"]
EXPIRED = SCENARIO_NODES["cert-expired"]
SKEWED = SCENARIO_NODES["clock-skew"]

pytestmark = pytest.mark.openssh


def ssh_runner(lab, jump=lambda: []):
    """A runner of the shape probes/ssh.py supplies, here over OpenSSH's ssh -F (through the
    extra ssh options `jump()` returns at each call)."""

    async def run(node: str, command: str, timeout: float):
        proc = await asyncio.create_subprocess_exec(
            "ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", *jump(), node, command,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, "", "", True
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), \
            False

    return run


@pytest.fixture
async def client(served_lab):
    kube = Kube(str(served_lab.kubeconfig))
    c = KubeletClient(kube, ssh_runner(served_lab), read_timeout=10, connect_timeout=3)
    yield c
    await c.aclose()


# -- healthz ---------------------------------------------------------------------------------------
async def test_healthz_via_proxy_on_a_healthy_node(client):
    obs = await client.healthz(HEALTHY, PROXY)
    assert obs.status == Status.OK, obs
    assert obs.via == PROXY and obs.probe == "kubelet.healthz" and obs.node == HEALTHY
    assert obs.data["status_code"] == 200 and obs.data["failed_checks"] == []
    assert obs.duration > 0 and abs(obs.started - time.time()) < 60


async def test_healthz_bad_on_the_containerd_deadlock_node(client):
    obs = await client.healthz(DEADLOCK, PROXY)
    assert obs.status == Status.BAD, obs
    assert obs.data["failed_checks"] == ["syncloop"]
    assert "syncloop failed" in obs.summary and "[-]syncloop failed" in obs.raw
    # the kubelet's own 500 through the proxy is an answer, not a partition: no fallback
    auto = await client.healthz(DEADLOCK, AUTO)
    assert auto.status == Status.BAD and auto.via == PROXY and "attempts" not in auto.data


async def test_partition_fails_via_proxy_and_answers_via_ssh(client):
    proxied = await client.healthz(PARTITION, PROXY)
    assert proxied.status in (Status.ERROR, Status.HUNG), proxied
    assert "i/o timeout" in proxied.reason or proxied.status == Status.HUNG
    over_ssh = await client.healthz(PARTITION, SSH)
    assert over_ssh.status == Status.OK and over_ssh.via == SSH
    auto = await client.healthz(PARTITION)
    assert auto.status == Status.OK and auto.via == SSH, auto
    assert auto.data["fallback_from"]["via"] == PROXY
    assert "i/o timeout" in auto.data["fallback_from"]["error"] or \
        auto.data["fallback_from"]["timed_out"]
    assert "the proxy failed" in auto.summary
    assert auto.duration >= auto.data["fallback_from"]["duration"]  # the wait is part of it


class Counting(KubeletClient):
    """The real client, noting the path of every GET it makes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gets: list[str] = []

    async def fetch(self, node, path, via, **kwargs):
        self.gets.append(via)
        return await super().fetch(node, path, via, **kwargs)


class Later:
    """A monotonic clock that can be moved forward."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def switchable_runner(lab):
    """ssh -F over the lab's bastion; with `broken[0]` set, over a jump host that refuses (the
    bastion gone), so SSH really gets no answer."""
    broken = [False]
    dead = closed_port()

    run = ssh_runner(lab, lambda: ["-J", f"root@127.0.0.1:{dead}"] if broken[0] else [])
    return run, broken


async def test_a_partitioned_proxy_is_remembered_and_tried_again_later(served_lab):
    clock = Later()
    run, broken = switchable_runner(served_lab)
    async with Counting(Kube(str(served_lab.kubeconfig)), run, read_timeout=10,
                        connect_timeout=3, proxy_retry=60, clock=clock) as c:
        t0 = time.monotonic()
        first = await c.metrics(PARTITION)
        first_took = time.monotonic() - t0
        assert first.status in (Status.OK, Status.BAD) and first.via == SSH, first.summary
        assert c.gets == [PROXY, SSH]
        failed = first.data["attempts"][0]
        assert failed["via"] == PROXY and "remembered" not in failed
        assert "i/o timeout" in failed["error"] or failed["timed_out"]
        # the next scrapes go to SSH first and quote the remembered failure as evidence
        c.gets.clear()
        t1 = time.monotonic()
        second = await c.metrics(PARTITION)
        second_took = time.monotonic() - t1
        assert second.via == SSH and c.gets == [SSH], c.gets
        quoted = second.data["attempts"][0]
        assert quoted["remembered"] is True and 0 <= quoted["age"] < 60
        assert quoted["via"] == PROXY and quoted["error"] == failed["error"]
        assert second.data["fallback_from"] == quoted
        health = await c.healthz(PARTITION)
        assert health.status == Status.OK and health.via == SSH
        assert "the proxy failed" in health.summary and "s ago" in health.summary
        assert c.gets == [SSH, SSH]
        # other nodes are not affected
        c.gets.clear()
        assert (await c.healthz(HEALTHY)).via == PROXY and c.gets == [PROXY]
        # explicit paths still go where they are told
        c.gets.clear()
        assert (await c.healthz(PARTITION, PROXY)).status in (Status.ERROR, Status.HUNG)
        assert c.gets == [PROXY]
        # after the window the proxy is tried again (and remembered again)
        clock.ahead = 61
        c.gets.clear()
        third = await c.healthz(PARTITION)
        assert third.via == SSH and c.gets == [PROXY, SSH]
        assert "remembered" not in third.data["attempts"][0]
        # SSH without an answer inside the window: the proxy is asked again at once
        broken[0] = True
        c.gets.clear()
        lost = await c.healthz(PARTITION)
        assert c.gets == [SSH, PROXY], c.gets
        assert lost.via == PROXY and lost.status in (Status.ERROR, Status.HUNG)
        assert lost.data["fallback_from"]["via"] == SSH
        print(f"\nfirst scrape (proxy, then SSH) {first_took:.2f} s; "
              f"next (SSH first) {second_took:.2f} s")


# -- metrics ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", [PROXY, DIRECT, SSH])
async def test_metrics_by_every_path(client, via):
    obs = await client.metrics(HEALTHY, via)
    assert obs.status == Status.OK, obs.summary
    assert obs.via == via
    sig = obs.data["signals"]
    assert sig["goroutines"]["value"] > 0 and sig["rss"]["value"] > 0
    assert sig["pleg_last_relist_age"]["value"] < 10
    assert sig["cert_ttl"]["value"] > 7 * 86400
    assert obs.data["size"] > 50_000 and obs.data["bad_lines"] == 0
    assert "kubelet_pleg_relist_duration_seconds_bucket" in obs.raw


async def test_metrics_between_two_scrapes_and_on_the_deadlocked_node(client):
    first = await client.metrics(HEALTHY, PROXY)
    await asyncio.sleep(2.2)
    second = await client.metrics(HEALTHY, PROXY)
    sig = second.data["signals"]
    assert sig["basis"] == "between scrapes" and 2 <= sig["interval"] < 30
    assert sig["pleg_relist_rate"]["value"] > 0
    assert sig["pleg_relist_p99"]["value"] < 1
    assert sig["cpu"]["value"] is not None
    stuck = await client.metrics(DEADLOCK, PROXY)
    assert stuck.status == Status.BAD
    assert "no PLEG relist for" in stuck.summary
    assert stuck.data["signals"]["pleg_last_relist_age"]["value"] > 180
    assert stuck.data["signals"]["goroutines"]["value"] > 500
    assert first.status == Status.OK


async def test_metrics_keep_raw_quotes_the_whole_payload(client):
    obs = await client.metrics(HEALTHY, DIRECT, keep_raw=True)
    assert obs.raw.startswith("# HELP") and "workqueue_" in obs.raw


# -- configz, goroutines, logs ---------------------------------------------------------------------
async def test_configz(client):
    obs = await client.configz(HEALTHY, PROXY)
    assert obs.status == Status.OK
    assert obs.data["config"]["cgroupDriver"] == "systemd"
    assert obs.data["config"]["maxPods"] == 110
    assert 'cgroupDriver="systemd"' in obs.summary
    mismatch = await client.configz(SCENARIO_NODES["cgroup-driver-mismatch"], DIRECT)
    if mismatch.status == Status.OK:  # between two of its restarts
        assert mismatch.data["config"]["cgroupDriver"] == "cgroupfs"
    else:
        assert mismatch.status == Status.ERROR and "refused" in mismatch.reason


async def test_goroutines(client):
    calm = await client.goroutines(HEALTHY, PROXY)
    assert calm.status == Status.OK and calm.data["total"] < 500
    assert calm.data["waiting_on_cri"] == 0
    piled = await client.goroutines(DEADLOCK, DIRECT)
    assert piled.status == Status.BAD and piled.data["total"] > 500
    assert piled.data["waiting_on_cri"] > 300 and piled.data["in_pleg_relist"] > 0
    assert sum(g["count"] for g in piled.data["groups"]) <= piled.data["total"]
    assert "goroutine profile: total" in piled.raw


async def test_log_query(client):
    obs = await client.logs(DEADLOCK, tail_lines=20, via=PROXY)
    assert obs.status == Status.OK, obs
    assert obs.data["count"] == 20 and len(obs.data["lines"]) == 20
    assert all(f" {DEADLOCK} " in line for line in obs.data["lines"])
    assert obs.data["pleg_unhealthy"] > 0
    direct = await client.logs(HEALTHY, tail_lines=5, since=time.time() - 3600, via=DIRECT)
    assert direct.status == Status.OK and direct.data["count"] == 5
    assert "sinceTime=" in direct.data["url"] and "tailLines=5" in direct.data["url"]
    future = await client.logs(HEALTHY, since=time.time() + 3600, via=PROXY)
    assert future.status == Status.OK and future.data["count"] == 0
    bad = await client.logs(HEALTHY, query="kube let;rm", via=PROXY)
    assert bad.status == Status.ERROR and "unsupported characters" in bad.reason


# -- credentials: token, exec plugin; failures: refused, hung --------------------------------------
async def test_token_and_exec_plugin_credentials(served_lab, tmp_path):
    viewer = Kube(str(served_lab.kubeconfig), context="nodewb-lab-viewer")
    async with KubeletClient(viewer, read_timeout=10) as c:
        assert (await c.healthz(HEALTHY, PROXY)).status == Status.OK
        direct = await c.metrics(HEALTHY, DIRECT)
        assert direct.status == Status.OK, direct.summary  # a bearer token to the kubelet
    plugin = tmp_path / "token-plugin"
    plugin.write_text(
        f"#!{sys.executable}\nimport json\nprint(json.dumps({{'apiVersion': "
        f"'client.authentication.k8s.io/v1', 'kind': 'ExecCredential', 'status': "
        f"{{'token': {served_lab.info['admin_token']!r}}}}}))\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    doc = json.loads(served_lab.kubeconfig.read_text())
    doc["users"] = [{"name": "exec-user", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "interactiveMode": "Never"}}}]
    doc["contexts"] = [{"name": "exec", "context": {"cluster": "nodewb-lab", "user": "exec-user"}}]
    doc["current-context"] = "exec"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    async with KubeletClient(Kube(str(path)), read_timeout=10) as c:
        assert (await c.configz(HEALTHY, PROXY)).status == Status.OK
        assert (await c.goroutines(HEALTHY, DIRECT)).status == Status.OK


async def test_connection_refused_and_a_kubelet_that_never_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KubeletClient(None, port=port, addresses={"n1": "127.0.0.1"},
                             connect_timeout=1, read_timeout=1) as c:
        refused = await c.healthz("n1", DIRECT)
        assert refused.status == Status.ERROR and "connection refused" in refused.reason
        assert (await c.healthz("n1", PROXY)).reason.startswith("no kubeconfig")
        assert "no SSH runner" in (await c.healthz("n1", SSH)).reason

    async def silent(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with KubeletClient(None, port=port, addresses={"n1": "127.0.0.1"},
                                 connect_timeout=1, read_timeout=1) as c:
            hung = await c.healthz("n1", DIRECT)
            assert hung.status == Status.HUNG and "timed out" in hung.reason
    finally:
        server.close()


async def test_ssh_curl_failures_are_read(served_lab):
    async def refused(node, command, timeout):
        return 7, "", "curl: (7) Failed to connect to localhost port 10250 after 0 ms", False

    async def slow(node, command, timeout):
        return None, "", "", True

    async with KubeletClient(None, refused) as c:
        obs = await c.healthz("n1", SSH)
        assert obs.status == Status.ERROR and "connection refused" in obs.reason
    async with KubeletClient(None, slow) as c:
        assert (await c.healthz("n1")).status == Status.HUNG  # no kubeconfig: SSH first


def test_partition_signature_only_for_the_proxy_failing():
    from probes.kubelet import Fetch

    assert partition_signature(Fetch(PROXY, "u", 500, proxy_error="error trying to reach "
                                     "service: dial tcp 10.0.0.7:10250: i/o timeout"))
    assert partition_signature(Fetch(PROXY, "u", 503))
    assert partition_signature(Fetch(PROXY, "u", timed_out=True))
    assert not partition_signature(Fetch(PROXY, "u", 500, b"[-]syncloop failed"))
    assert not partition_signature(Fetch(PROXY, "u", 200))
    assert not partition_signature(Fetch(DIRECT, "u", 503))


# -- certificates on lab nodes ---------------------------------------------------------------------
async def test_expired_client_certificate_read_over_ssh(served_lab):
    obs = await certs.read_client_certificate(ssh_runner(served_lab), EXPIRED)
    assert obs.status == Status.BAD, obs
    assert obs.data["state"] == "expired" and obs.data["ttl"] < 0
    assert obs.data["key_matches"] is True
    assert obs.data["cert"]["common_name"] == f"system:node:{EXPIRED}"
    assert "(redacted)" in obs.raw
    healthy = await certs.read_client_certificate(ssh_runner(served_lab), HEALTHY)
    assert healthy.status == Status.OK and healthy.data["ttl"] > 7 * 86400


async def test_clock_skew_node_sees_certificates_as_not_yet_valid(served_lab):
    runner = ssh_runner(served_lab)
    client_cert = await certs.read_client_certificate(runner, SKEWED)
    offset = client_cert.data["node_clock_offset"]
    assert offset == pytest.approx(-2 * 86400 - 1234.5, abs=30)
    node_now = time.time() + offset
    ip = served_lab.info["ips"][SKEWED]
    serving = await certs.serving_certificate(SKEWED, ip, 10250, node_now=node_now,
                                              expect_names=(SKEWED, ip))
    assert serving.status == Status.BAD and serving.data["state"] == "not_yet_valid"
    assert serving.data["local_view"] == "valid"
    api = await certs.serving_certificate(SKEWED, "127.0.0.1", served_lab.info["api_port"],
                                          node_now=node_now, probe="node.apiserver_cert")
    assert api.data["state"] == "not_yet_valid", api.summary
    assert "clock running behind" in api.summary
    # the same certificates on our own clock are fine: the node's clock is the finding
    ours = await certs.serving_certificate(SKEWED, ip, 10250)
    assert ours.status == Status.OK


# -- goroutine dumps -------------------------------------------------------------------------------
def test_parse_goroutines_of_a_real_shaped_dump():
    text = ("goroutine profile: total 7\n"
            "4 @ 0x43a1b6 0x40c3a5 0x4a1c2e\n"
            "#\t0x43a1b5\truntime.gopark+0x115\t/usr/local/go/src/runtime/proc.go:398\n"
            "#\t0x4a1c2d\tgoogle.golang.org/grpc.(*ClientConn).Invoke+0x2d\t"
            "/go/grpc/call.go:35\n"
            "#\t0x4a1d00\tk8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist+0x10\t"
            "pleg/generic.go:240\n\n"
            "3 @ 0x43a1b6 0x40c3a5\n"
            "#\t0x43a1b5\truntime.gopark+0x115\t/usr/local/go/src/runtime/proc.go:398\n"
            "#\t0x44aaaa\tnet/http.(*conn).serve+0x1\tnet/http/server.go:2039\n")
    d = parse_goroutines(text)
    assert d["total"] == 7 and d["group_count"] == 2
    assert d["groups"][0] == {"count": 4, "where": "google.golang.org/grpc.(*ClientConn).Invoke",
                              "frames": ["runtime.gopark",
                                         "google.golang.org/grpc.(*ClientConn).Invoke",
                                         "k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist"]}
    assert d["waiting_on_cri"] == 4 and d["in_pleg_relist"] == 4
    assert parse_goroutines("<html>nope</html>")["total"] is None
