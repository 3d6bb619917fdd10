"""lab.kubelet: each node's kubelet over real HTTPS on loopback, and the API server's proxy to
it."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.kubelet import KubeletServers, kubelet_request, proxy_request
from lab.machine import Fault, GiB, LabPod, Machine, MiB
from lab.machine_files import KUBELET_CONFIG
from lab.metrics import KubeletMetrics
from lab.pki import CA

CONTAINERD = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n' \
             '  SystemdCgroup = true\n'


def free_block() -> int:
    """A 127.B.0.0/16 block nobody listens in (the lab's addressing: one block per lab)."""
    for _ in range(50):
        b = random.randint(120, 250)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((f"127.{b}.0.2", 10250))
            return b
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback block")


def node_ip(block: int, i: int) -> str:
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def make_machine(index: int, ip: str, now: float, pods: int = 6) -> Machine:
    m = Machine(name=f"node-{index:04d}", index=index, ip=ip, zone="us-east-1a", pool="general",
                instance_type="m5.large", cpus=2, memory=8 * GiB, kernel="6.1.0-1019-aws",
                os_image="Ubuntu 22.04.4 LTS", kubelet_version="v1.30.2",
                containerd_version="1.7.18", boot_time=now - 86400, rng=random.Random(index))
    m.files["/var/lib/kubelet/config.yaml"] = KUBELET_CONFIG
    m.files["/etc/containerd/config.toml"] = CONTAINERD
    m.files["/etc/cni/net.d/10-calico.conflist"] = "{}"
    m.files["/etc/kubernetes/kubelet.conf"] = "    server: https://127.0.0.1:36443\n"
    for i in range(pods):
        m.pods.append(LabPod(namespace="shop", name=f"checkout-7c9d-{i:05d}", app="checkout",
                             image="registry.example/checkout:2.3.1", owner_kind="ReplicaSet",
                             owner_name="checkout-7c9d", memory=256 * MiB, created=now - 7200,
                             pod_ip=f"10.244.7.{i + 2}"))
    m.client_cert_not_before = now - 100 * 86400
    m.client_cert_not_after = now + 265 * 86400
    m.journal_upto = now - 600
    KubeletMetrics(m)
    return m


class Lab:
    def __init__(self, tmp: Path, n: int = 2) -> None:
        self.now = time.time()
        self.ca = CA("lab-ca", self.now)
        self.block = free_block()
        self.machines = {}
        for i in range(1, n + 1):
            m = make_machine(i, node_ip(self.block, i), self.now)
            self.machines[m.name] = m
        self.servers = KubeletServers(self.machines, self.ca)
        (tmp / "ca.crt").write_bytes(self.ca.cert_pem)
        client = self.ca.issue("kubernetes-admin", not_before=self.now - 60,
                               not_after=self.now + 3600, orgs=("system:masters",), client=True)
        (tmp / "client.crt").write_bytes(client.cert_pem)
        (tmp / "client.key").write_bytes(client.key_pem)
        self.tmp = tmp

    def ctx(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.tmp / "ca.crt"))
        if client_cert:
            ctx.load_cert_chain(str(self.tmp / "client.crt"), str(self.tmp / "client.key"))
        return ctx

    def url(self, name: str, path: str) -> str:
        return f"https://{self.machines[name].ip}:10250{path}"


@pytest.fixture
async def lab(tmp_path):
    lab = Lab(tmp_path)
    await lab.servers.start()
    try:
        yield lab
    finally:
        await lab.servers.stop()


async def test_https_with_the_lab_ca_and_authentication(lab):
    node = "node-0001"
    m = lab.machines[node]
    async with httpx.AsyncClient(verify=lab.ctx()) as c:
        r = await c.get(lab.url(node, "/healthz"))
        assert r.status_code == 200 and r.text == "ok"
        r = await c.get(lab.url(node, "/metrics"))
        assert r.status_code == 401 and r.text == "Unauthorized"
        r = await c.get(lab.url(node, "/pods"))
        assert r.status_code == 401
        r = await c.get(lab.url(node, "/metrics"), headers={"Authorization": "Bearer abc.def"})
        assert r.status_code == 200
    async with httpx.AsyncClient(verify=lab.ctx(client_cert=True)) as c:
        r = await c.get(lab.url(node, "/metrics"))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        fams = {f.name: f for f in text_string_to_metric_families(r.text)}
        assert fams["kubelet_node_name"].samples[0].labels["node"] == node
        assert "kubelet_pleg_relist_duration_seconds" in fams
        # the served certificate is the node's own, issued by the lab CA for its name and IP
        r = await c.get(lab.url(node, "/healthz"))
        assert r.status_code == 200
    assert m.serving_cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(m.serving_cert_pem)
    assert cert.subject.rfc4514_string().startswith(f"CN={node}@")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert node in san.get_values_for_type(x509.DNSName)
    assert m.ip in [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    # a certificate from another CA does not get in
    other = CA("someone-else", lab.now).issue("mallory", not_before=lab.now - 60,
                                              not_after=lab.now + 60, client=True)
    (lab.tmp / "o.crt").write_bytes(other.cert_pem)
    (lab.tmp / "o.key").write_bytes(other.key_pem)
    ctx = lab.ctx()
    ctx.load_cert_chain(str(lab.tmp / "o.crt"), str(lab.tmp / "o.key"))
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(verify=ctx) as c:
            r = await c.get(lab.url(node, "/metrics"))
            assert r.status_code != 200


async def test_token_authenticator_is_consulted(tmp_path):
    lab = Lab(tmp_path, n=1)
    lab.servers.authenticate_token = lambda token: token == "good-token"
    await lab.servers.start()
    try:
        async with httpx.AsyncClient(verify=lab.ctx()) as c:
            bad = await c.get(lab.url("node-0001", "/configz"),
                              headers={"Authorization": "Bearer bad-token"})
            good = await c.get(lab.url("node-0001", "/configz"),
                               headers={"Authorization": "Bearer good-token"})
        assert bad.status_code == 401
        assert good.status_code == 200
        assert json.loads(good.text)["kubeletconfig"]["cgroupDriver"] == "systemd"
    finally:
        await lab.servers.stop()


async def test_healthz_follows_pleg_and_the_listener_follows_the_kubelet(lab):
    node = "node-0002"
    m = lab.machines[node]
    async with httpx.AsyncClient(verify=lab.ctx(client_cert=True)) as c:
        m.faults["runtime_hung"] = Fault("runtime_hung", time.time() - 400)
        m.pleg_last_relist = time.time() - 400
        m.changed()
        r = await c.get(lab.url(node, "/healthz"))
        assert r.status_code == 500
        assert "[-]syncloop failed: reason withheld" in r.text
        dump = await c.get(lab.url(node, "/debug/pprof/goroutine?debug=2"))
        assert dump.status_code == 200
        assert "google.golang.org/grpc.(*ClientConn).Invoke(" in dump.text
        assert "k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist(" in dump.text
        m.faults.pop("runtime_hung")
        m.changed()

    # the kubelet stops: nothing listens, the connection is refused
    m.kubelet.active, m.kubelet.sub = "inactive", "dead"
    m.changed()
    assert node not in lab.servers.listening
    s = socket.socket()
    s.settimeout(2)
    with pytest.raises(ConnectionRefusedError):
        s.connect((m.ip, 10250))
    s.close()
    r = await proxy_request(m, "GET", "/healthz", now=time.time())
    assert r.status == 500
    assert json.loads(r.body)["message"] == \
        f"error trying to reach service: dial tcp {m.ip}:10250: connect: connection refused"
    # and answers again once it runs
    m.kubelet.active, m.kubelet.sub = "active", "running"
    m.kubelet.since = time.time()
    m.kubelet.pid += 11
    m.changed()
    async with httpx.AsyncClient(verify=lab.ctx()) as c:
        r = await c.get(lab.url(node, "/healthz"))
        assert r.status_code == 200


async def test_proxy_is_trusted_and_times_out_across_a_partition(lab):
    m = lab.machines["node-0001"]
    r = await proxy_request(m, "GET", "/metrics", now=time.time())
    assert r.status == 200
    assert b"kubelet_pleg_last_seen_seconds" in r.body
    r = await lab.servers.proxy(m, "GET", "/logs/", "query=kubelet&tailLines=3", {})
    assert r.status == 200 and 1 <= r.body.count(b"\n") <= 3
    m.api_reachable = False
    t = time.perf_counter()
    r = await proxy_request(m, "GET", "/healthz", now=time.time(), timeout=0.3)
    assert time.perf_counter() - t >= 0.3
    assert r.status == 500
    status = json.loads(r.body)
    assert status["kind"] == "Status" and status["code"] == 500
    assert status["message"] == f"error trying to reach service: dial tcp {m.ip}:10250: i/o timeout"
    # the bastion still reaches the node directly
    async with httpx.AsyncClient(verify=lab.ctx(client_cert=True)) as c:
        r = await c.get(lab.url("node-0001", "/healthz"))
        assert r.status_code == 200


async def test_node_log_query(lab):
    node = "node-0001"
    m = lab.machines[node]
    now = time.time()
    m.catch_up(now)
    base = now - 120
    m.log("kubelet", base, 'E1121 07:00:00.000000 1234 generic.go:205] "PLEG is not healthy" '
          'pleg was last seen active 3m1s ago', priority=3)
    m.log("containerd", base + 1, 'level=error msg="deadline"', priority=3)
    async with httpx.AsyncClient(verify=lab.ctx(client_cert=True)) as c:
        r = await c.get(lab.url(node, "/logs/"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<a href="pods/">pods/</a>' in r.text
        r = await c.get(lab.url(node, "/logs/"), params={"query": "kubelet", "tailLines": "5"})
        assert r.status_code == 200
        lines = r.text.splitlines()
        assert 1 <= len(lines) <= 5
        line_re = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d\.\d{6} node-0001 "
                             r"[\w.-]+(\[\d+\])?: ")
        assert all(line_re.match(line) for line in lines), lines
        r = await c.get(lab.url(node, "/logs/"),
                        params={"query": "kubelet", "pattern": "pleg is not healthy"})
        assert r.status_code == 200
        assert r.text.count("\n") == 1 and "PLEG is not healthy" in r.text
        assert f" node-0001 kubelet[{m.kubelet.pid}]: E1121" in r.text
        r = await c.get(lab.url(node, "/logs/"), params=[("query", "kubelet"),
                                                         ("query", "containerd"),
                                                         ("pattern", "deadline|PLEG")])
        assert "containerd[" in r.text and "kubelet[" in r.text
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 0.5))
        r = await c.get(lab.url(node, "/logs/"), params={"query": "containerd", "sinceTime": since,
                                                         "pattern": "deadline"})
        assert r.text.count("\n") == 1
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base - 3600))
        r = await c.get(lab.url(node, "/logs/"), params={"query": "kubelet", "untilTime": until})
        assert r.text == "-- No entries --\n"
        r = await c.get(lab.url(node, "/logs/"), params={"query": "kubelet", "pattern": "("})
        assert r.status_code == 400
        r = await c.get(lab.url(node, "/logs/"), params={"query": ""})
        assert r.status_code == 400
        r = await c.get(lab.url(node, "/logs/"), params={"query": "nosuchd"})
        assert "log not found for nosuchd" in r.text
    async with httpx.AsyncClient(verify=lab.ctx()) as c:
        r = await c.get(lab.url(node, "/logs/"), params={"query": "kubelet"})
        assert r.status_code == 401


async def test_pods_configz_cadvisor_and_unknown_paths(lab):
    node = "node-0002"
    async with httpx.AsyncClient(verify=lab.ctx(client_cert=True)) as c:
        pods = (await c.get(lab.url(node, "/pods"))).json()
        assert pods["kind"] == "PodList" and len(pods["items"]) == 6
        pod = pods["items"][0]
        assert pod["spec"]["nodeName"] == node
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
        conf = (await c.get(lab.url(node, "/configz"))).json()["kubeletconfig"]
        assert conf["maxPods"] == 110 and conf["evictionHard"]["memory.available"] == "100Mi"
        cad = await c.get(lab.url(node, "/metrics/cadvisor"))
        names = {f.name for f in text_string_to_metric_families(cad.text)}
        assert "container_memory_working_set_bytes" in names
        r = await c.get(lab.url(node, "/nope"))
        assert r.status_code == 404 and r.text == "404 page not found\n"
        dump = await c.get(lab.url(node, "/debug/pprof/goroutine"), params={"debug": "1"})
        assert dump.text.startswith("goroutine profile: total ")
        metrics = await c.get(lab.url(node, "/metrics"))
        assert 'kubelet_http_requests_total{long_running="false",method="GET",path="pods",' \
               'server_type="readwrite"} 1' in metrics.text


async def test_direct_handler_without_a_listener():
    now = time.time()
    m = make_machine(9, "127.250.250.250", now)
    r = await kubelet_request(m, "GET", "/metrics", {}, {}, now)
    assert r.status == 401
    r = await kubelet_request(m, "GET", "/metrics", {}, {}, now, trusted=True)
    assert r.status == 200 and b"# TYPE kubelet_pleg_relist_duration_seconds histogram" in r.body


@pytest.mark.slow
async def test_five_thousand_listeners_start_quickly():
    now = time.time()
    ca = CA("lab-ca", now)
    block = free_block()
    machines = {}
    for i in range(1, 5001):
        m = make_machine(i, node_ip(block, i), now, pods=2)
        machines[m.name] = m
    servers = KubeletServers(machines, ca)
    t = time.perf_counter()
    await servers.start()
    took = time.perf_counter() - t
    try:
        print(f"\n5,000 kubelet listeners started in {took:.2f} s")
        assert len(servers.listening) == 5000
        ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
        sample = random.Random(1).sample(sorted(machines), 20)
        async with httpx.AsyncClient(verify=ctx) as c:
            rs = await asyncio.gather(*[c.get(f"https://{machines[n].ip}:10250/healthz")
                                        for n in sample])
        assert {r.status_code for r in rs} == {200}
    finally:
        await servers.stop()


# -- /metrics/cadvisor through the API server's node proxy -----------------------------------------
CADVISOR_FAMILIES = {"container_processes", "container_threads", "container_fs_writes_bytes",
                     "container_fs_reads_bytes", "container_memory_working_set_bytes",
                     "container_cpu_usage_seconds", "container_start_time_seconds"}


def _cadvisor_by_pod(text: str) -> dict[str, dict[str, dict]]:
    """pod -> family -> the container sample's labels and value (pod and root cgroups left out)."""
    out: dict[str, dict[str, dict]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("container"):
                out.setdefault(s.labels["pod"], {})[fam.name] = {**s.labels, "value": s.value,
                                                                 "at": s.timestamp}
    return out


@pytest.mark.openssh
def test_cadvisor_through_the_proxy_matches_kubelet_pods_and_crictl(served_lab):
    from tests.conftest import SCENARIO_NODES

    node = "node-0001"  # healthy: its runtime answers crictl
    assert node not in SCENARIO_NODES.values()
    text = served_lab.kubectl("get", "--raw",
                              f"/api/v1/nodes/{node}/proxy/metrics/cadvisor").stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert CADVISOR_FAMILIES <= set(families)
    info = json.loads(served_lab.kubectl("get", "node", node, "-o", "json").stdout)["status"][
        "nodeInfo"]
    for name in ("machine_cpu_cores", "machine_memory_bytes"):
        assert families[name].samples[0].labels == {
            "boot_id": info["bootID"], "machine_id": info["machineID"],
            "system_uuid": info["systemUUID"]}, name
    by_pod = _cadvisor_by_pod(text)
    pods = json.loads(served_lab.kubectl("get", "--raw",
                                         f"/api/v1/nodes/{node}/proxy/pods").stdout)["items"]
    running = {p["metadata"]["name"]: p for p in pods if p["status"]["phase"] == "Running"}
    assert set(by_pod) == set(running)
    crictl_ids = set(served_lab.ssh(node, "sudo crictl ps -q").stdout.split())
    stats = {row.split()[0]: row.split()
             for row in served_lab.ssh(node, "sudo crictl stats").stdout.splitlines()[1:]}
    for name, pod in running.items():
        series = by_pod[name]
        assert set(series) == CADVISOR_FAMILIES
        labels = series["container_processes"]
        cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
        assert labels["name"] == cid and cid in crictl_ids
        row = stats[cid[:13]]  # CONTAINER NAME CPU% MEM DISK INODES, MEM in decimal units
        assert row[1] == labels["container"]
        mem = series["container_memory_working_set_bytes"]["value"]
        assert row[3] == (f"{mem / 1e6:.4g}MB" if mem < 1e9 else f"{mem / 1e9:.4g}GB")
        assert labels["namespace"] == pod["metadata"]["namespace"]
        assert labels["image"] == pod["spec"]["containers"][0]["image"]
        assert labels["container"] == pod["spec"]["containers"][0]["name"]
        uid = pod["metadata"]["uid"].replace("-", "_")
        assert labels["id"] == (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                                f"{uid}.slice/cri-containerd-{cid}.scope")



def test_cadvisor_counts_the_forking_pods_processes(served_lab):
    from tests.conftest import SCENARIO_NODES

    node = SCENARIO_NODES["pid-exhaustion"]
    by_pod = _cadvisor_by_pod(served_lab.kubectl(
        "get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/cadvisor").stdout)
    forker = next(n for n in by_pod if n.startswith("report-gen-"))
    procs = {n: s["container_processes"]["value"] for n, s in by_pod.items()}
    assert procs[forker] > 100_000 and max(v for n, v in procs.items() if n != forker) < 10
    assert by_pod[forker]["container_threads"]["value"] >= procs[forker]


def test_cadvisor_counters_move_and_the_io_heavy_pod_writes_most(served_lab):
    from tests.conftest import SCENARIO_NODES

    node = SCENARIO_NODES["pleg-slow-io"]
    path = f"/api/v1/nodes/{node}/proxy/metrics/cadvisor"
    first = _cadvisor_by_pod(served_lab.kubectl("get", "--raw", path).stdout)
    deadline = time.monotonic() + 20
    while True:
        second = _cadvisor_by_pod(served_lab.kubectl("get", "--raw", path).stdout)
        etl = next(n for n in second if n.startswith("etl-compactor-"))
        grew = second[etl]["container_fs_writes_bytes"]["value"] - \
            first[etl]["container_fs_writes_bytes"]["value"]
        if grew > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert grew > 0
    rate = {n: s["container_fs_writes_bytes"]["value"] / (
        s["container_fs_writes_bytes"]["at"] - s["container_start_time_seconds"]["value"])
        for n, s in second.items()}
    assert max(rate, key=rate.get) == etl and rate[etl] > 100 * MiB
    assert sorted(rate.values())[-2] < MiB


def test_a_pods_uid_and_container_id_agree_across_the_api_and_the_kubelet(served_lab):
    import json as _json

    pods = _json.loads(served_lab.kubectl("get", "pods", "-A", "--field-selector",
                                          "spec.nodeName=node-0001", "-o", "json").stdout)
    kubelet = _json.loads(served_lab.kubectl("get", "--raw",
                                             "/api/v1/nodes/node-0001/proxy/pods").stdout)
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in kubelet["items"]}
    running = [p for p in pods["items"] if p["status"]["phase"] == "Running"]
    assert running
    for p in running:
        k = by_name[(p["metadata"]["namespace"], p["metadata"]["name"])]
        assert p["metadata"]["uid"] == k["metadata"]["uid"]
        assert p["status"]["containerStatuses"][0]["containerID"] == \
            k["status"]["containerStatuses"][0]["containerID"]
