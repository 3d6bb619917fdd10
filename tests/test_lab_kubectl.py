"""The lab's API server driven by the real clients: kubectl and the official Python client.

Every test runs twice: against the API server on a small fake cluster (route behaviour), and
against a served lab of its own (`nodewb lab serve`, the whole stack). The served lab is private
to this module because these tests change state (cordon, CSR approval, canary pods)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests._fake_cluster import ThreadedFake

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")]


class Target:
    def __init__(self, kind: str, kubeconfig: Path, *extra: str) -> None:
        self.kind = kind
        self.kubeconfig = kubeconfig
        self.extra = extra

    def viewer(self) -> Target:
        """The same cluster as its read-only user (named "viewer" in both)."""
        if self.kind == "fake":
            return Target("fake", self.kubeconfig.with_name("viewer.kubeconfig"))
        return Target(self.kind, self.kubeconfig, "--context", "nodewb-lab-viewer")

    def kubectl(self, *args: str, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *self.extra,
                                 *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def client(self):
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))


@pytest.fixture(scope="module", params=["fake", "lab"])
def target(request, tmp_path_factory):
    if request.param == "fake":
        fake = ThreadedFake(tmp_path_factory.mktemp("fake"), nodes=12)
        yield Target("fake", fake.running.kubeconfig)
        fake.stop()
        return
    from tests.conftest import start_lab, stop_lab

    directory = tmp_path_factory.mktemp("apilab") / "served"
    lab = start_lab(directory, "--nodes", "12", "--seed", "3",
                    "--scenario", "cert-expired@node-0002", "--scenario", "runtime-dead@node-0003")
    yield Target("lab", lab.kubeconfig)
    stop_lab(lab)


def _poll(check, timeout: float = 20, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_get_nodes_columns(target):
    out = target.kubectl("get", "nodes").stdout
    rows = _rows(out)
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r[0] for r in rows[1:]] == [f"node-{i:04d}" for i in range(1, 13)]
    assert all(r[1] in ("Ready", "NotReady", "Unknown") or "SchedulingDisabled" in r[1]
               for r in rows[1:])
    assert all(r[4].startswith("v1.") for r in rows[1:])
    wide = target.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    for col in ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"):
        assert col in wide[0]
    assert "containerd://" in wide[1]


def test_get_nodes_short_name_and_selectors(target):
    out = target.kubectl("get", "no", "node-0001", "-o", "name").stdout
    assert out.strip() == "node/node-0001"
    out = target.kubectl("get", "nodes", "-l", "kubernetes.io/hostname=node-0005",
                         "-o", "name").stdout
    assert out.strip() == "node/node-0005"


def test_describe_node(target):
    out = target.kubectl("describe", "node", "node-0001").stdout
    for section in ("Name:               node-0001", "Conditions:", "Addresses:",
                    "Non-terminated Pods:", "Events:", "Lease:", "HolderIdentity:  node-0001"):
        assert section in out, section
    assert "Failed to get lease" not in out


def test_get_lease(target):
    rows = _rows(target.kubectl("get", "lease", "-n", "kube-node-lease").stdout)
    assert rows[0] == ["NAME", "HOLDER", "AGE"]
    assert ["node-0001", "node-0001"] == rows[1][:2]


def test_get_events_and_pods(target):
    out = target.kubectl("get", "events", "-A").stdout
    assert out.splitlines()[0].split() == ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON",
                                           "OBJECT", "MESSAGE"]
    out = target.kubectl("get", "pods", "-A", "-o", "wide").stdout
    header = out.splitlines()[0]
    for col in ("NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                "NOMINATED NODE", "READINESS GATES"):
        assert col in header


def test_csr_list_and_approve(target):
    rows = _rows(target.kubectl("get", "csr").stdout)
    assert rows[0] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION",
                       "CONDITION"]
    pending = [r for r in rows[1:] if r[-1] == "Pending"]
    assert pending, rows
    name = pending[0][0]
    out = target.kubectl("certificate", "approve", name).stdout
    assert out.strip() == f"certificatesigningrequest.certificates.k8s.io/{name} approved"
    _poll(lambda: "Approved" in target.kubectl("get", "csr", name).stdout)
    if target.kind == "lab":  # the lab's signer issues the certificate shortly after
        _poll(lambda: "Approved,Issued" in target.kubectl("get", "csr", name).stdout)


def test_cordon_uncordon(target):
    assert "cordoned" in target.kubectl("cordon", "node-0004").stdout
    row = _rows(target.kubectl("get", "node", "node-0004").stdout)[1]
    assert row[1].endswith(",SchedulingDisabled")
    assert "uncordoned" in target.kubectl("uncordon", "node-0004").stdout
    row = _rows(target.kubectl("get", "node", "node-0004").stdout)[1]
    assert "SchedulingDisabled" not in row[1]


def test_taint_add_and_remove(target):
    target.kubectl("taint", "node", "node-0005", "dedicated=infra:NoSchedule")
    target.kubectl("taint", "node", "node-0005", "other=x:NoExecute")
    taints = json.loads(target.kubectl("get", "node", "node-0005", "-o",
                                       "jsonpath={.spec.taints}").stdout)
    assert {(t["key"], t["effect"]) for t in taints} >= {("dedicated", "NoSchedule"),
                                                         ("other", "NoExecute")}
    target.kubectl("taint", "node", "node-0005", "dedicated=infra:NoSchedule-")
    taints = json.loads(target.kubectl("get", "node", "node-0005", "-o",
                                       "jsonpath={.spec.taints}").stdout or "[]")
    keys = {t["key"] for t in taints}
    assert "dedicated" not in keys and "other" in keys
    target.kubectl("taint", "node", "node-0005", "other=x:NoExecute-")


def test_drain_ignoring_daemonsets(target):
    before = _rows(target.kubectl("get", "pods", "-A", "--field-selector",
                                  "spec.nodeName=node-0008").stdout)[1:]
    assert any(r[0] == "kube-system" for r in before)
    result = target.kubectl("drain", "node-0008", "--ignore-daemonsets",
                            "--delete-emptydir-data", "--timeout=60s", timeout=90)
    assert "node/node-0008 drained" in result.stdout
    assert "ignoring DaemonSet-managed Pods" in result.stderr
    after = _rows(target.kubectl("get", "pods", "-A", "--field-selector",
                                 "spec.nodeName=node-0008").stdout)[1:]
    assert after and all(r[0] == "kube-system" for r in after)
    target.kubectl("uncordon", "node-0008")


def test_node_proxy_metrics(target):
    out = target.kubectl("get", "--raw", "/api/v1/nodes/node-0001/proxy/metrics").stdout
    assert "kubelet_" in out
    out = target.kubectl("get", "--raw", "/api/v1/nodes/node-0001/proxy/healthz").stdout
    assert out.strip() == "ok"


def test_run_and_delete_canary(target):
    out = target.kubectl("run", "canary", "--image=nginx", "--restart=Never",
                         '--overrides={"spec":{"nodeName":"node-0001"}}').stdout
    assert out.strip() == "pod/canary created"
    pod = json.loads(target.kubectl("get", "pod", "canary", "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == "node-0001"
    if target.kind == "lab":
        _poll(lambda: _rows(target.kubectl("get", "pod", "canary").stdout)[1][2] == "Running")
    start = time.monotonic()
    out = target.kubectl("delete", "pod", "canary", timeout=30).stdout
    assert out.strip() == 'pod "canary" deleted'
    assert time.monotonic() - start < 10
    gone = target.kubectl("get", "pod", "canary", check=False)
    assert gone.returncode != 0 and 'pods "canary" not found' in gone.stderr


def test_viewer_is_read_only(target):
    viewer = target.viewer()
    assert "node-0001" in viewer.kubectl("get", "nodes").stdout
    denied = viewer.kubectl("cordon", "node-0001", check=False)  # kubectl cordon exits 0 here
    assert ('nodes "node-0001" is forbidden: User "viewer" cannot patch resource "nodes" in API '
            'group "" at the cluster scope') in denied.stderr
    denied = viewer.kubectl("label", "node", "node-0001", "x=y", check=False)
    assert denied.returncode != 0 and "(Forbidden)" in denied.stderr
    assert viewer.kubectl("auth", "can-i", "patch", "nodes", check=False).stdout.strip() == "no"
    assert viewer.kubectl("auth", "can-i", "list", "nodes").stdout.strip() == "yes"


def test_python_client_paging(target):
    api = target.client()
    names = []
    token = None
    pages = 0
    while True:
        resp = api.list_node(limit=5, _continue=token)
        names += [n.metadata.name for n in resp.items]
        pages += 1
        token = resp.metadata._continue
        if not token:
            break
        assert resp.metadata.remaining_item_count == 12 - len(names)
    assert pages == 3
    assert names == [f"node-{i:04d}" for i in range(1, 13)]


def test_python_client_watch(target):
    from kubernetes import watch

    api = target.client()
    rv = api.list_node().metadata.resource_version
    stamp = str(int(time.time() * 1000))

    def change():
        time.sleep(0.3)
        target.kubectl("label", "node", "node-0006", f"nodewb-test={stamp}", "--overwrite")

    threading.Thread(target=change, daemon=True).start()
    w = watch.Watch()
    seen = None
    for event in w.stream(api.list_node, resource_version=rv, timeout_seconds=15):
        obj = event["object"]
        if (event["type"] == "MODIFIED" and obj.metadata.name == "node-0006"
                and (obj.metadata.labels or {}).get("nodewb-test") == stamp):
            seen = event
            w.stop()
    assert seen is not None, "the label change never arrived on the watch"
    assert int(seen["object"].metadata.resource_version) > int(rv)


def test_python_client_410_then_relist(target):
    from kubernetes import watch
    from kubernetes.client.rest import ApiException

    api = target.client()
    w = watch.Watch()
    with pytest.raises(ApiException) as info:
        for _ in w.stream(api.list_node, resource_version="1", timeout_seconds=5):
            pass
    assert info.value.status == 410
    assert "too old resource version" in str(info.value)
    # relist, then watch from the fresh resourceVersion
    listed = api.list_node()
    rv = listed.metadata.resource_version
    events = []
    for event in w.stream(api.list_node, resource_version=rv, timeout_seconds=1):
        events.append(event)
    assert all(e["type"] in ("ADDED", "MODIFIED", "DELETED") for e in events)


def _node(target, name: str) -> dict:
    return json.loads(target.kubectl("get", "node", name, "-o", "json").stdout)


def _events(target, name: str, reason: str) -> int:
    out = target.kubectl("get", "events", "-n", "default", "--field-selector",
                         f"involvedObject.name={name},reason={reason}", "-o", "json").stdout
    return sum(e.get("count", 1) for e in json.loads(out)["items"])


def test_status_writes_are_kept_beside_the_kubelets_own(target):
    if target.kind != "lab":
        pytest.skip("the lab's node status merge")
    node = "node-0010"
    out = target.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p",
                         '{"status":{"capacity":{"example.com/dongle":"2"}}}').stdout
    assert "patched" in out
    status = _node(target, node)["status"]
    assert status["capacity"]["example.com/dongle"] == "2"
    assert status["allocatable"]["example.com/dongle"] == "2"
    # a condition type of the client's own is kept; the kubelet's own types stay the kubelet's
    target.kubectl("patch", "node", node, "--subresource=status", "--type=strategic", "-p",
                   json.dumps({"status": {"conditions": [
                       {"type": "KernelDeadlock", "status": "False",
                        "reason": "KernelHasNoDeadlock", "message": "kernel has no deadlock"},
                       {"type": "Ready", "status": "False", "reason": "Forged",
                        "message": "written by a client"}],
                       "capacity": {"cpu": "999"}}}))
    # the node is written again (a label, a cordon): what the client set is still there
    target.kubectl("label", "node", node, "nodewb-status-test=1", "--overwrite")
    target.kubectl("cordon", node)
    status = _node(target, node)["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["KernelDeadlock"]["reason"] == "KernelHasNoDeadlock"
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert status["capacity"]["cpu"] != "999"
    assert status["capacity"]["example.com/dongle"] == "2"
    described = target.kubectl("describe", "node", node).stdout
    assert "example.com/dongle:" in described and "KernelDeadlock" in described
    # removed again with a null
    target.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p",
                   '{"status":{"capacity":{"example.com/dongle":null}}}')
    status = _node(target, node)["status"]
    assert "example.com/dongle" not in status["capacity"]
    assert "example.com/dongle" not in status["allocatable"]
    target.kubectl("uncordon", node)
    target.kubectl("label", "node", node, "nodewb-status-test-")


def test_schedulable_events_only_when_it_flips(target):
    if target.kind != "lab":
        pytest.skip("the lab's node events")
    node = "node-0011"
    before = (_events(target, node, "NodeSchedulable"), _events(target, node, "NodeNotSchedulable"))
    target.kubectl("label", "node", node, "nodewb-event-test=1", "--overwrite")
    target.kubectl("annotate", "node", node, "nodewb/event-test=1", "--overwrite")
    target.kubectl("uncordon", node)  # already schedulable: nothing changes
    assert (_events(target, node, "NodeSchedulable"),
            _events(target, node, "NodeNotSchedulable")) == before
    target.kubectl("cordon", node)
    target.kubectl("label", "node", node, "nodewb-event-test=2", "--overwrite")
    assert _events(target, node, "NodeNotSchedulable") == before[1] + 1
    target.kubectl("uncordon", node)
    assert (_events(target, node, "NodeSchedulable"),
            _events(target, node, "NodeNotSchedulable")) == (before[0] + 1, before[1] + 1)
    target.kubectl("label", "node", node, "nodewb-event-test-")
