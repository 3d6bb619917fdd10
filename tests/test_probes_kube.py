"""probes.kube and probes.kubeconfig against the served lab over real HTTPS: paged node lists,
kubeconfig merging, contexts, exec credential plugins, and every error worded for a person."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from probes.kube import Kube, KubeError, NodeRecord, node_record
from probes.kubeconfig import list_contexts
from tests._lab_in_process import lab_in_process, on_lab_loop


def lab_config(lab) -> dict:
    return json.loads(lab.kubeconfig.read_text())


def write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def cluster_entry(lab) -> dict:
    return lab_config(lab)["clusters"][0]


def token_config(lab, token: str, name: str = "t") -> dict:
    return {"apiVersion": "v1", "kind": "Config", "clusters": [cluster_entry(lab)],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "nodewb-lab", "user": name}}],
            "current-context": name}


def exec_plugin(tmp_path: Path, body: str, name: str = "cred") -> Path:
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\nimport json, os, sys, time, datetime\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def exec_config(lab, script: Path, version: str = "client.authentication.k8s.io/v1",
                args: list[str] | None = None) -> dict:
    doc = token_config(lab, "unused", "exec")
    doc["users"] = [{"name": "exec", "user": {"exec": {
        "apiVersion": version, "command": str(script), "args": args or [],
        "interactiveMode": "Never", "provideClusterInfo": True}}}]
    return doc


CREDENTIAL = """
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["spec"]["cluster"]["server"].startswith("https://")
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": {token!r}}}}}))
"""


# -- lists --------------------------------------------------------------------------------------

def test_node_list_comes_in_chunks_with_the_first_yielded_first(fresh_lab):
    lab = fresh_lab("--nodes", "1200")
    kube = Kube(str(lab.kubeconfig))
    pages = kube.node_pages(chunk=500)
    first = next(pages)  # the rest has not been asked for yet
    assert len(first.nodes) == 500 and not first.last
    assert first.remaining == 700
    assert first.nodes[0].name == "node-0001"
    rest = list(pages)
    assert [len(p.nodes) for p in rest] == [500, 200]
    assert rest[-1].last and not rest[0].last
    assert {p.resource_version for p in [first, *rest]} == {first.resource_version}
    names = [n.name for p in [first, *rest] for n in p.nodes]
    assert len(names) == len(set(names)) == 1200
    assert len(kube.list_nodes(chunk=500)) == 1200


def test_records_carry_labels_and_ready_since(served_lab):
    kube = Kube(str(served_lab.kubeconfig))
    records = {r.name: r for r in kube.list_nodes()}
    assert len(records) == served_lab.info["nodes"]
    healthy = records["node-0001"]
    assert healthy.ready == "True" and healthy.ready_by == "kubelet"
    assert healthy.labels["kubernetes.io/hostname"] == "node-0001"
    assert healthy.zone == healthy.labels["topology.kubernetes.io/zone"]
    assert 0 < healthy.ready_since <= time.time()
    assert healthy.heartbeat >= healthy.ready_since
    assert healthy.pods_capacity > 0 and healthy.conditions["Ready"] == "True"
    assert "DiskPressure" in healthy.conditions
    stale = records[[n for n, s in served_lab.info["scenarios"].items()
                     if s == "cert-expired"][0]]
    assert stale.ready == "Unknown" and stale.ready_by == "node-controller"


def test_record_keeps_to_the_fields_it_needs():
    obj = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "",
                                                  "cloud.google.com/gke-nodepool": "pool-a"},
                        "annotations": {"big": "x" * 10000}, "resourceVersion": "7"},
           "spec": {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]},
           "status": {"conditions": [{"type": "Ready", "status": "False",
                                      "reason": "KubeletNotReady",
                                      "lastTransitionTime": "2024-05-01T10:00:00Z",
                                      "lastHeartbeatTime": "2024-05-01T10:05:00Z"}],
                      "nodeInfo": {"kernelVersion": "6.8.0-1019-aws",
                                   "osImage": "Ubuntu 22.04.5 LTS",
                                   "containerRuntimeVersion": "containerd://1.7.24",
                                   "kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.3",
                                   "operatingSystem": "linux", "architecture": "amd64",
                                   "machineID": "m" * 32, "bootID": "b" * 36}}}
    r = node_record(obj)
    assert r.status == "NotReady,SchedulingDisabled"
    assert (r.kernel, r.os_image, r.runtime, r.kubelet_version) == \
        ("6.8.0-1019-aws", "Ubuntu 22.04.5 LTS", "containerd://1.7.24", "v1.31.4")
    bare = node_record({"metadata": {"name": "n2"}, "status": {}})  # no nodeInfo: blank cells
    assert (bare.kernel, bare.os_image, bare.runtime, bare.kubelet_version) == ("",) * 4
    assert bare.ready == "Unknown" and bare.roles == "<none>"
    assert r.roles == "control-plane" and r.pool == "pool-a" and r.taints == ["k:NoSchedule"]
    assert r.ready_since == 1714557600.0 and r.heartbeat == 1714557900.0
    assert not hasattr(r, "__dict__")  # slots: no per-record dict
    assert "annotations" not in NodeRecord.__dataclass_fields__


# -- kubeconfig -----------------------------------------------------------------------------------

def test_contexts_are_listed_with_the_current_one_marked(served_lab):
    kube = Kube(str(served_lab.kubeconfig))
    contexts = {c.name: c for c in kube.contexts()}
    assert set(contexts) == {"nodewb-lab", "nodewb-lab-viewer"}
    assert contexts["nodewb-lab"].current and not contexts["nodewb-lab-viewer"].current
    assert contexts["nodewb-lab-viewer"].user == "nodewb-viewer"
    viewer = Kube(str(served_lab.kubeconfig), "nodewb-lab-viewer")
    assert viewer.context == "nodewb-lab-viewer" and viewer.user == "nodewb-viewer"
    assert len(viewer.list_nodes()) == served_lab.info["nodes"]


def test_kubeconfig_env_with_two_files_merges_like_kubectl(served_lab, tmp_path, monkeypatch):
    cfg = lab_config(served_lab)
    clusters = write(tmp_path / "clusters.yaml", {"apiVersion": "v1", "kind": "Config",
                                                  "clusters": cfg["clusters"]})
    rest = {"apiVersion": "v1", "kind": "Config", "users": cfg["users"],
            "contexts": cfg["contexts"], "current-context": "nodewb-lab-viewer"}
    users = write(tmp_path / "users.yaml", rest)
    # a third file that disagrees: the first file to say wins, as with kubectl
    later = write(tmp_path / "later.yaml", {"apiVersion": "v1", "kind": "Config",
                                            "current-context": "nodewb-lab",
                                            "users": [{"name": "nodewb-viewer",
                                                       "user": {"token": "wrong"}}]})
    missing = tmp_path / "not-there.yaml"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, [missing, clusters, users,
                                                               later])))
    kube = Kube()
    assert kube.context == "nodewb-lab-viewer" and kube.user == "nodewb-viewer"
    assert kube.server == served_lab.info["api"]
    assert len(kube.list_nodes()) == served_lab.info["nodes"]
    assert {c.name: c.current for c in list_contexts()} == {"nodewb-lab": False,
                                                             "nodewb-lab-viewer": True}
    completed = served_lab.kubectl("config", "current-context", check=False)
    assert completed.returncode == 0  # the lab's own file still works on its own


def test_relative_certificate_paths_are_read_beside_their_file(served_lab, tmp_path):
    cfg = lab_config(served_lab)
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "ca.pem").write_bytes(base64.b64decode(cfg["clusters"][0]["cluster"]
                                                  ["certificate-authority-data"]))
    doc = token_config(served_lab, served_lab.info["admin_token"])
    doc["clusters"][0]["cluster"] = {"server": served_lab.info["api"],
                                     "certificate-authority": "ca.pem"}
    path = write(sub / "config", doc)
    assert len(Kube(str(path)).list_nodes()) == served_lab.info["nodes"]


@pytest.mark.parametrize("version", ["client.authentication.k8s.io/v1",
                                     "client.authentication.k8s.io/v1beta1"])
def test_exec_credential_plugin_lists_nodes(served_lab, tmp_path, version):
    script = exec_plugin(tmp_path, CREDENTIAL.format(token=served_lab.info["admin_token"]))
    path = write(tmp_path / "config", exec_config(served_lab, script, version))
    kube = Kube(str(path))
    assert kube.exec_credential is not None and kube.exec_credential.runs == 1
    assert len(kube.list_nodes()) == served_lab.info["nodes"]


def test_exec_token_is_fetched_again_when_it_expires(served_lab, tmp_path):
    runs = tmp_path / "runs"
    body = f"""
runs = {str(runs)!r}
n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
open(runs, "w").write(str(n))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": {served_lab.info["admin_token"]!r},
                             "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}))
"""
    script = exec_plugin(tmp_path, body)
    kube = Kube(str(write(tmp_path / "config", exec_config(served_lab, script))))
    kube.list_nodes()
    assert runs.read_text() == "1"
    deadline = time.monotonic() + 10
    while not kube.exec_credential.expired() and time.monotonic() < deadline:
        time.sleep(0.1)
    kube.list_nodes()  # the client's refresh hook runs the plugin again
    assert runs.read_text() == "2"


def test_token_file_is_read_again_after_a_401(tmp_path):
    """A rotated service-account token: the file changes, the old token stops working, and the
    next request that is refused reads the file again instead of failing."""
    with lab_in_process(tmp_path / "lab", nodes=3, seed=2) as lab:  # its tokens change
        tokens = lab.lab.cluster.tokens
        user = ("rotating", ["system:authenticated"])
        on_lab_loop(lab, lambda: tokens.update({"token-one": user}))
        token_file = tmp_path / "token"
        token_file.write_text("token-one\n")
        doc = {"apiVersion": "v1", "kind": "Config",
               "clusters": json.loads((tmp_path / "lab" / "kubeconfig").read_text())["clusters"],
               "users": [{"name": "sa", "user": {"tokenFile": str(token_file)}}],
               "contexts": [{"name": "sa", "context": {"cluster": "nodewb-lab", "user": "sa"}}],
               "current-context": "sa"}
        kube = Kube(str(write(tmp_path / "config", doc)))
        assert len(kube.list_nodes()) == 3
        assert kube._headers("application/json")["Authorization"] == "Bearer token-one"

        def rotate() -> None:
            tokens["token-two"] = tokens.pop("token-one")

        on_lab_loop(lab, rotate)
        token_file.write_text("token-two\n")
        assert len(kube.list_nodes()) == 3  # a 401, the file read again, the request repeated
        assert kube._headers("application/json")["Authorization"] == "Bearer token-two"
        # a file that holds no valid token either: one more read, then a clear 401
        token_file.write_text("token-three\n")
        on_lab_loop(lab, lambda: tokens.pop("token-two"))
        with pytest.raises(KubeError) as err:
            kube.list_nodes()
        assert err.value.status == 401 and "user 'sa' of context 'sa'" in str(err.value)
        assert kube._headers("application/json")["Authorization"] == "Bearer token-three"


def test_exec_plugin_is_run_again_after_a_401(served_lab, tmp_path):
    runs = tmp_path / "runs"
    body = f"""
runs = {str(runs)!r}
n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
open(runs, "w").write(str(n))
token = "stale-token" if n == 1 else {served_lab.info["admin_token"]!r}
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": token}}}}))
"""
    kube = Kube(str(write(tmp_path / "config", exec_config(served_lab, exec_plugin(tmp_path,
                                                                                    body)))))
    assert len(kube.list_nodes()) == served_lab.info["nodes"]
    assert runs.read_text() == "2"


# -- errors, each worded for a person --------------------------------------------------------------

def test_missing_kubeconfig(tmp_path, monkeypatch):
    with pytest.raises(KubeError, match="no kubeconfig at .*missing"):
        Kube(str(tmp_path / "missing"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    with pytest.raises(KubeError, match="no kubeconfig.*KUBECONFIG"):
        Kube()


def test_malformed_yaml(tmp_path):
    bad = write(tmp_path / "kubeconfig", "apiVersion: v1\nclusters: [oops\n")
    with pytest.raises(KubeError) as err:
        Kube(str(bad))
    assert f"kubeconfig {bad} is malformed" in str(err.value)
    assert "line" in str(err.value)
    with pytest.raises(KubeError, match="malformed: expected a mapping"):
        Kube(str(write(tmp_path / "list", "- a\n- b\n")))


def test_context_that_does_not_exist(served_lab):
    with pytest.raises(KubeError) as err:
        Kube(str(served_lab.kubeconfig), "prod-eu")
    text = str(err.value)
    assert "context 'prod-eu' is not in" in text and "nodewb-lab-viewer" in text


def test_user_without_credentials(served_lab, tmp_path):
    doc = token_config(served_lab, "x")
    doc["users"][0]["user"] = {}
    with pytest.raises(KubeError, match="user 't' with no credentials"):
        Kube(str(write(tmp_path / "config", doc)))
    doc["users"] = []
    with pytest.raises(KubeError, match="names user 't', which is not defined"):
        Kube(str(write(tmp_path / "config", doc)))


def test_exec_plugin_that_fails_names_its_command_and_stderr(served_lab, tmp_path):
    script = exec_plugin(tmp_path, 'sys.stderr.write("error: refresh token expired; run '
                                   'cloud-login\\n"); sys.exit(3)', name="cloud-cred")
    doc = exec_config(served_lab, script, args=["token", "--cluster", "lab"])
    with pytest.raises(KubeError) as err:
        Kube(str(write(tmp_path / "config", doc)))
    text = str(err.value)
    assert f"`{script} token --cluster lab`" in text and "user 'exec'" in text
    assert "exit status 3" in text and "refresh token expired; run cloud-login" in text
    doc["users"][0]["user"]["exec"]["command"] = "no-such-cred-helper"
    doc["users"][0]["user"]["exec"]["installHint"] = "install it with: brew install helper"
    with pytest.raises(KubeError, match="no-such-cred-helper.*was not found: install it"):
        Kube(str(write(tmp_path / "config", doc)))


def test_unreachable_api_server_names_url_and_errno(served_lab, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = token_config(served_lab, "x")
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kube = Kube(str(write(tmp_path / "config", doc)))
    started = time.monotonic()
    with pytest.raises(KubeError) as err:
        kube.list_nodes()
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert f"cannot reach the API server at https://127.0.0.1:{port}" in text
    assert "Errno 111" in text and "ECONNREFUSED" in text
    assert "Traceback" not in text


def test_wrong_ca_says_unknown_authority(served_lab, tmp_path):
    from lab.pki import CA

    other = CA("not-the-lab", time.time())
    doc = token_config(served_lab, served_lab.info["admin_token"])
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = \
        base64.b64encode(other.cert_pem).decode()
    kube = Kube(str(write(tmp_path / "config", doc)))
    with pytest.raises(KubeError) as err:
        kube.list_nodes()
    text = str(err.value)
    assert text.startswith(f"TLS failure talking to the API server at {served_lab.info['api']}")
    assert "unknown certificate authority" in text and "certificate verify failed" in text


def test_bad_token_is_a_401_naming_the_identity(served_lab, tmp_path):
    kube = Kube(str(write(tmp_path / "config", token_config(served_lab, "nope", "alice"))))
    with pytest.raises(KubeError) as err:
        kube.list_nodes()
    assert err.value.status == 401
    text = str(err.value)
    assert "refused the credentials of user 'alice' of context 'alice'" in text
    assert "401 Unauthorized" in text and "auth whoami" in text


def test_forbidden_is_a_403_naming_the_identity_and_rbac(served_lab):
    # The lab lets every authenticated user read everything, so the viewer is refused on a
    # write; the message is built from the API server's own Status.
    kube = Kube(str(served_lab.kubeconfig), "nodewb-lab-viewer")
    response = kube.pool.request(
        "PATCH", f"{kube.server}/api/v1/nodes/node-0001",
        body=b'{"spec":{"unschedulable":true}}',
        headers={**kube._headers("application/json"),
                 "Content-Type": "application/merge-patch+json"})
    assert response.status == 403
    err = kube._status_error(403, response.reason, response.data, "patch nodes")
    text = str(err)
    assert err.status == 403
    assert text.startswith("user 'nodewb-viewer' of context 'nodewb-lab-viewer' may not patch "
                           "nodes (403 Forbidden")
    assert 'User "viewer" cannot patch resource "nodes"' in text
    assert "auth can-i patch nodes" in text
