"""A small stand-in for lab.cluster used to test the API server's routes in isolation.

It keeps nodes, leases, events, pods, namespaces and CSRs in a lab Store, implements the cluster
methods the API server calls, and can write a kubeconfig (client certificates from a lab CA) so
the real kubectl and the official Python client can be pointed at it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import pki
from lab.apiserver import ApiServer, apply_patch
from lab.store import Collection, Store
from lab.timefmt import rfc3339, rfc3339_micro


def node_fields(obj: dict) -> dict[str, str]:
    return {"spec.unschedulable": "true" if obj.get("spec", {}).get("unschedulable") else "false"}


def pod_fields(obj: dict) -> dict[str, str]:
    return {
        "spec.nodeName": obj.get("spec", {}).get("nodeName", ""),
        "status.phase": obj.get("status", {}).get("phase", ""),
    }


def event_fields(obj: dict) -> dict[str, str]:
    inv = obj.get("involvedObject", {})
    return {
        "involvedObject.kind": inv.get("kind", ""),
        "involvedObject.name": inv.get("name", ""),
        "involvedObject.namespace": inv.get("namespace", ""),
        "involvedObject.uid": inv.get("uid", ""),
        "reason": obj.get("reason", ""),
        "type": obj.get("type", ""),
    }


def make_node(i: int, now: float, ready: str = "True") -> dict:
    name = f"node-{i:04d}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "topology.kubernetes.io/zone": f"zone-{'abc'[i % 3]}",
    }
    if i == 1:
        labels["node-role.kubernetes.io/control-plane"] = ""
    stamp = rfc3339(now)
    return {
        "metadata": {"name": name, "labels": labels,
                     "creationTimestamp": rfc3339(now - 86400 * 3)},
        "spec": {"podCIDR": f"10.244.{i}.0/24"},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False",
                 "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
                 "message": "kubelet has sufficient memory available"},
                {"type": "Ready", "status": ready, "reason": "KubeletReady",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
                 "message": "kubelet is posting ready status"},
            ],
            "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250 + 1}"},
                          {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "nodeInfo": {
                "kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.4",
                "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "5.15.0-1057-aws",
                "containerRuntimeVersion": "containerd://1.7.20", "operatingSystem": "linux",
                "architecture": "amd64", "machineID": f"{i:032x}", "systemUUID": f"{i:032x}",
                "bootID": f"{i:032x}",
            },
        },
    }


@dataclass
class KubeletReply:
    status: int
    headers: dict
    body: object


@dataclass
class FakeCluster:
    nodes: int = 5
    store: Store = field(default_factory=Store)
    tokens: dict = field(default_factory=dict)
    bookmark_interval: float = 5.0
    calls: list = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.store
        s.add(Collection(s, "nodes", "Node", "v1", False, node_fields, keep_objects=False))
        s.add(Collection(s, "leases", "Lease", "coordination.k8s.io/v1", True))
        s.add(Collection(s, "events", "Event", "v1", True, event_fields))
        s.add(Collection(s, "pods", "Pod", "v1", True, pod_fields))
        s.add(Collection(s, "namespaces", "Namespace", "v1", False))
        s.add(Collection(s, "certificatesigningrequests", "CertificateSigningRequest",
                         "certificates.k8s.io/v1", False))
        now = time.time()
        for ns in ("default", "kube-system", "kube-node-lease"):
            s["namespaces"].put({"metadata": {"name": ns,
                                              "labels": {"kubernetes.io/metadata.name": ns}},
                                 "spec": {"finalizers": ["kubernetes"]},
                                 "status": {"phase": "Active"}})
        for i in range(1, self.nodes + 1):
            self.add_node(i, now)
        s["events"].put({
            "metadata": {"name": "node-0001.17f0a1", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "node-0001", "uid": "node-0001"},
            "reason": "NodeReady", "type": "Normal",
            "message": "Node node-0001 status is now: NodeReady",
            "source": {"component": "kubelet", "host": "node-0001"},
            "firstTimestamp": rfc3339(now - 600), "lastTimestamp": rfc3339(now - 60),
            "count": 2,
        })
        s["pods"].put({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-0001",
                     "containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": rfc3339(now)}}}]},
        })
        for name, ns, kind, owner in (("kube-proxy-x7k2p", "kube-system", "DaemonSet",
                                       "kube-proxy"),
                                      ("api-7c9d4-qz5wt", "default", "ReplicaSet", "api-7c9d4")):
            s["pods"].put({
                "metadata": {"name": name, "namespace": ns, "labels": {"app": owner},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind,
                                                  "name": owner, "uid": f"uid-{owner}",
                                                  "controller": True}]},
                "spec": {"nodeName": "node-0008",
                         "containers": [{"name": owner, "image": f"registry/{owner}:1"}]},
                "status": {"phase": "Running", "podIP": "10.244.8.7",
                           "conditions": [{"type": "Ready", "status": "True"}]},
            })
        s["certificatesigningrequests"].put({
            "metadata": {"name": "csr-node-0002"},
            "spec": {"request": base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\n").decode(),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:node:node-0002", "usages": ["client auth"]},
            "status": {},
        })

    def add_node(self, i: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.store["nodes"].put(make_node(i, now))
        name = f"node-{i:04d}"
        self.store["leases"].put({
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": rfc3339_micro(now)},
        })

    # -- the cluster interface ------------------------------------------------------------------
    def patch_node(self, name, patch, patch_type, status=False):
        self.calls.append(("patch_node", name, patch_type, status))
        current = self.store["nodes"].get("", name)
        if current is None:
            raise KeyError(name)
        obj = apply_patch(current.object(), patch, patch_type)
        if status:
            keep = current.object()
            keep["status"] = obj.get("status", {})
            obj = keep
        else:
            obj["status"] = current.object().get("status", {})
        obj["metadata"].pop("resourceVersion", None)
        return self.store["nodes"].put(obj)

    async def create_pod(self, namespace, obj):
        self.calls.append(("create_pod", namespace, obj["metadata"]["name"]))
        obj.setdefault("status", {})["phase"] = "Pending"
        return self.store["pods"].put(obj)

    async def delete_pod(self, namespace, name, grace_seconds):
        self.calls.append(("delete_pod", namespace, name, grace_seconds))
        if self.store["pods"].get(namespace, name) is None:
            raise KeyError(name)
        return self.store["pods"].delete(namespace, name)

    def pod_log(self, namespace, name):
        return f"log of {namespace}/{name}\nline 2\n"

    def approve_csr(self, name, body):
        self.calls.append(("approve_csr", name))
        current = self.store["certificatesigningrequests"].get("", name)
        if current is None:
            raise KeyError(name)
        obj = current.object()
        obj = dict(obj)
        obj["status"] = body.get("status") or {}
        obj["metadata"] = dict(obj["metadata"])
        obj["metadata"].pop("resourceVersion", None)
        return self.store["certificatesigningrequests"].put(obj)

    async def kubelet_request(self, name, method, subpath, query_string, headers):
        self.calls.append(("kubelet", name, method, subpath, query_string))
        if subpath == "/healthz":
            return KubeletReply(200, {"Content-Type": "text/plain; charset=utf-8"}, b"ok")
        if subpath == "/metrics":
            return KubeletReply(200, {"Content-Type": "text/plain; version=0.0.4"},
                                b"# HELP up x\n# TYPE up gauge\nkubelet_running_pods 3\n")
        if subpath.startswith("/logs"):
            async def lines():
                for i in range(3):
                    yield f"kubelet line {i} {query_string}\n".encode()
                    await asyncio.sleep(0)
            return KubeletReply(200, {"Content-Type": "text/plain"}, lines())
        return KubeletReply(404, {"Content-Type": "text/plain"}, b"404 page not found\n")


@dataclass
class Running:
    cluster: FakeCluster
    server: ApiServer
    port: int
    dir: Path
    kubeconfig: Path
    viewer_kubeconfig: Path
    ca_file: Path
    admin_cert: Path
    admin_key: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def _kubeconfig(path: Path, port: int, ca: Path, cert: Path, key: Path, user: str) -> None:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: lab
  context:
    cluster: lab
    user: {user}
current-context: lab
""")


async def start_fake(tmp: Path, nodes: int = 5, **kw) -> Running:
    cluster = FakeCluster(nodes=nodes, **kw)
    now = time.time()
    ca = pki.CA("nodewb-lab-ca", now)
    server_cert = ca.issue("kube-apiserver", not_before=now - 60, not_after=now + 86400,
                           dns=("localhost",), ips=("127.0.0.1",), server=True)
    admin = ca.issue("admin", orgs=("system:masters",), not_before=now - 60,
                     not_after=now + 86400, client=True)
    viewer = ca.issue("viewer", orgs=("viewers",), not_before=now - 60, not_after=now + 86400,
                      client=True)
    cluster.tokens["admin-token"] = ("token-admin", ["system:masters"])
    cluster.tokens["viewer-token"] = ("token-viewer", ["viewers"])
    tmp.mkdir(parents=True, exist_ok=True)
    ca_file = tmp / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    for label, issued in (("admin", admin), ("viewer", viewer)):
        (tmp / f"{label}.crt").write_bytes(issued.cert_pem)
        (tmp / f"{label}.key").write_bytes(issued.key_pem)
    server = ApiServer(cluster, pki.server_context(ca, server_cert))
    port = await server.start()
    kubeconfig = tmp / "kubeconfig"
    viewer_kc = tmp / "viewer.kubeconfig"
    _kubeconfig(kubeconfig, port, ca_file, tmp / "admin.crt", tmp / "admin.key", "admin")
    _kubeconfig(viewer_kc, port, ca_file, tmp / "viewer.crt", tmp / "viewer.key", "viewer")
    return Running(cluster, server, port, tmp, kubeconfig, viewer_kc, ca_file,
                   tmp / "admin.crt", tmp / "admin.key")


class ThreadedFake:
    """The fake cluster and its API server on an event loop in a background thread, for tests
    that drive blocking clients (kubectl as a subprocess, the official Python client)."""

    def __init__(self, tmp: Path, nodes: int = 5, **kw) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.running: Running = self.run(start_fake(tmp, nodes=nodes, **kw))

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """Run a plain function on the server's loop (store writes must happen there)."""
        async def wrapper():
            return fn(*args)
        return self.run(wrapper())

    def stop(self) -> None:
        self.run(self.running.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
