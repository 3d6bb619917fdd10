"""The lab's Kubernetes API server against a fake cluster: routes, auth, paging, selectors,
Tables, watch (bookmarks, 410), writes, proxy and access reviews."""

from __future__ import annotations

import asyncio
import json
import ssl
import time

import httpx
import pytest

from lab.apiserver import ApiServer, authorize
from lab.store import Collection
from tests._fake_cluster import start_fake

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _ctx(run, who: str = "admin") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(run.ca_file))
    if who:
        ctx.load_cert_chain(run.dir / f"{who}.crt", run.dir / f"{who}.key")
    return ctx


@pytest.fixture
async def lab(tmp_path):
    run = await start_fake(tmp_path, nodes=12)
    run.cluster.bookmark_interval = 0.2
    clients = []

    def client(who: str = "admin", **kw) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=run.url, verify=_ctx(run, who), timeout=10, **kw)
        clients.append(c)
        return c

    run.client = client
    yield run
    for c in clients:
        await c.aclose()
    await run.server.stop()


# -- public endpoints, authentication, authorization ---------------------------------------------

async def test_version_and_health_are_public(lab):
    anon = lab.client(who="")
    r = await anon.get("/version")
    assert r.status_code == 200
    assert r.json()["gitVersion"] == "v1.31.4" and r.json()["minor"] == "31"
    for path in ("/healthz", "/livez", "/readyz"):
        r = await anon.get(path)
        assert (r.status_code, r.text) == (200, "ok")


async def test_unauthenticated_gets_401_status(lab):
    anon = lab.client(who="")
    r = await anon.get("/api/v1/nodes")
    assert r.status_code == 401
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "Unauthorized",
                        "reason": "Unauthorized", "code": 401}
    r = await anon.get("/api/v1/nodes", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_bearer_token_and_forbidden_message(lab):
    anon = lab.client(who="")
    r = await anon.get("/api/v1/nodes", headers={"Authorization": "Bearer viewer-token"})
    assert r.status_code == 200 and len(r.json()["items"]) == 12
    r = await anon.patch("/api/v1/nodes/node-0001", json={"spec": {"unschedulable": True}},
                         headers={"Authorization": "Bearer viewer-token",
                                  "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 403
    body = r.json()
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == ('nodes "node-0001" is forbidden: User "token-viewer" cannot patch '
                               'resource "nodes" in API group "" at the cluster scope')
    assert lab.cluster.calls == []


async def test_client_cert_user_and_groups(lab):
    viewer = lab.client("viewer")
    r = await viewer.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          json={"apiVersion": "authentication.k8s.io/v1",
                                "kind": "SelfSubjectReview"})
    assert r.status_code == 201
    info = r.json()["status"]["userInfo"]
    assert info["username"] == "viewer" and "viewers" in info["groups"]
    r = await viewer.delete("/api/v1/namespaces/default/pods/web-1")
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "web-1" is forbidden: User "viewer" cannot delete '
                                   'resource "pods" in API group "" in the namespace "default"')
    r = await viewer.put("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001",
                         json={"metadata": {"name": "node-0001"}})
    assert r.status_code == 403
    assert 'leases.coordination.k8s.io "node-0001" is forbidden' in r.json()["message"]


def test_authorize_policy():
    assert authorize("admin", ["system:masters"], "delete", "", "nodes", "", "n")
    assert authorize("viewer", ["system:authenticated"], "watch", "", "nodes", "", "")
    assert not authorize("viewer", ["system:authenticated"], "patch", "", "nodes/status", "", "n")
    assert authorize("viewer", [], "create", "authorization.k8s.io", "selfsubjectaccessreviews",
                     "", "")
    kubelet = ("system:node:node-0001", ["system:nodes"])
    assert authorize(*kubelet, "update", "coordination.k8s.io", "leases", "kube-node-lease",
                     "node-0001")
    assert not authorize(*kubelet, "update", "coordination.k8s.io", "leases", "kube-node-lease",
                         "node-0002")
    assert authorize(*kubelet, "patch", "", "nodes/status", "", "node-0001")
    assert not authorize(*kubelet, "delete", "", "pods", "default", "x")


async def test_selfsubjectaccessreview(lab):
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "patch", "resource": "nodes",
                                            "name": "node-0001"}}}
    r = await lab.client("admin").post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
    assert r.status_code == 201 and r.json()["status"]["allowed"] is True
    r = await lab.client("viewer").post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
    assert r.status_code == 201 and r.json()["status"]["allowed"] is False
    body["spec"]["resourceAttributes"]["verb"] = "list"
    r = await lab.client("viewer").post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
    assert r.json()["status"]["allowed"] is True


async def test_cluster_authorize_is_used_when_present(lab):
    decisions = []

    def deny_nodes(user, groups, verb, group, resource, namespace, name):
        decisions.append((user, verb, resource, name))
        return resource != "nodes"

    lab.cluster.authorize = deny_nodes
    c = lab.client("admin")
    assert (await c.get("/api/v1/nodes/node-0001")).status_code == 403
    assert (await c.get("/api/v1/namespaces/default/pods")).status_code == 200
    assert ("admin", "get", "nodes", "node-0001") in decisions


# -- discovery ---------------------------------------------------------------------------------

async def test_discovery_documents(lab):
    c = lab.client()
    aggregated = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json")
    r = await c.get("/api", headers={"Accept": aggregated})
    assert r.headers["content-type"] == "application/json"
    assert r.json()["kind"] == "APIVersions" and r.json()["versions"] == ["v1"]
    r = await c.get("/apis", headers={"Accept": aggregated})
    groups = {g["name"]: g for g in r.json()["groups"]}
    assert r.json()["kind"] == "APIGroupList"
    for g in ("coordination.k8s.io", "certificates.k8s.io", "authorization.k8s.io"):
        assert groups[g]["preferredVersion"]["groupVersion"] == f"{g}/v1"
    r = await c.get("/api/v1")
    res = {x["name"]: x for x in r.json()["resources"]}
    assert res["nodes"]["shortNames"] == ["no"] and res["nodes"]["namespaced"] is False
    assert res["pods"]["shortNames"] == ["po"] and res["pods"]["namespaced"] is True
    assert res["events"]["shortNames"] == ["ev"] and res["namespaces"]["shortNames"] == ["ns"]
    for sub in ("nodes/status", "nodes/proxy", "pods/log", "pods/status"):
        assert sub in res
    assert "watch" in res["nodes"]["verbs"] and "patch" in res["nodes"]["verbs"]
    r = await c.get("/apis/coordination.k8s.io/v1")
    assert r.json()["groupVersion"] == "coordination.k8s.io/v1"
    assert r.json()["resources"][0]["name"] == "leases"
    r = await c.get("/apis/certificates.k8s.io/v1")
    names = {x["name"] for x in r.json()["resources"]}
    assert {"certificatesigningrequests", "certificatesigningrequests/approval"} <= names
    r = await c.get("/apis/nope.k8s.io/v1")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"


async def test_openapi_v3_advertises_field_validation(lab):
    c = lab.client()
    root = (await c.get("/openapi/v3")).json()["paths"]
    url = root["api/v1"]["serverRelativeURL"]
    doc = (await c.get(url)).json()
    op = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert any(p["name"] == "fieldValidation" for p in op["parameters"])
    assert (await c.get("/openapi/v2")).status_code == 404


# -- reads -------------------------------------------------------------------------------------

async def test_get_and_not_found(lab):
    c = lab.client()
    r = await c.get("/api/v1/nodes/node-0003")
    assert r.status_code == 200 and r.json()["metadata"]["name"] == "node-0003"
    r = await c.get("/api/v1/nodes/x")
    assert r.status_code == 404
    assert r.json()["message"] == 'nodes "x" not found'
    assert r.json()["details"] == {"name": "x", "kind": "nodes"}
    r = await c.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/nope")
    assert r.json()["message"] == 'leases.coordination.k8s.io "nope" not found'
    r = await c.get("/api/v1/namespaces/kube-node-lease")
    assert r.json()["kind"] == "Namespace"


async def test_list_paging_with_continue(lab):
    c = lab.client()
    seen = []
    params = {"limit": "5"}
    pages = 0
    while True:
        r = await c.get("/api/v1/nodes", params=params)
        body = r.json()
        assert body["kind"] == "NodeList" and body["apiVersion"] == "v1"
        seen += [i["metadata"]["name"] for i in body["items"]]
        pages += 1
        token = body["metadata"].get("continue")
        if not token:
            assert "remainingItemCount" not in body["metadata"]
            break
        assert body["metadata"]["remainingItemCount"] == 12 - len(seen)
        params = {"limit": "5", "continue": token}
    assert pages == 3
    assert seen == [f"node-{i:04d}" for i in range(1, 13)]
    r = await c.get("/api/v1/nodes", params={"continue": "garbage!"})
    assert r.status_code == 400


async def test_namespaced_and_cluster_wide_lists(lab):
    c = lab.client()
    r = await c.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    params={"limit": "4"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == \
        ["node-0001", "node-0002", "node-0003", "node-0004"]
    assert r.json()["kind"] == "LeaseList"
    assert r.json()["metadata"]["remainingItemCount"] == 8
    r = await c.get("/apis/coordination.k8s.io/v1/namespaces/default/leases")
    assert r.json()["items"] == []
    r = await c.get("/api/v1/pods")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in r.json()["items"]] == [
        ("default", "api-7c9d4-qz5wt"), ("default", "web-1"), ("kube-system", "kube-proxy-x7k2p")]
    r = await c.get("/api/v1/namespaces/kube-system/pods")
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["kube-proxy-x7k2p"]


async def test_label_and_field_selectors(lab):
    c = lab.client()

    async def names(path, **params):
        r = await c.get(path, params=params)
        assert r.status_code == 200, r.text
        return [i["metadata"]["name"] for i in r.json()["items"]]

    assert await names("/api/v1/nodes", labelSelector="topology.kubernetes.io/zone=zone-a") == \
        ["node-0003", "node-0006", "node-0009", "node-0012"]
    assert await names("/api/v1/nodes", labelSelector="node-role.kubernetes.io/control-plane") \
        == ["node-0001"]
    assert len(await names("/api/v1/nodes",
                           labelSelector="!node-role.kubernetes.io/control-plane")) == 11
    assert len(await names("/api/v1/nodes",
                           labelSelector="topology.kubernetes.io/zone in (zone-a,zone-b)")) == 8
    assert len(await names("/api/v1/nodes",
                           labelSelector="topology.kubernetes.io/zone notin (zone-a),"
                                         "kubernetes.io/os==linux")) == 8
    assert await names("/api/v1/nodes", fieldSelector="metadata.name=node-0007") == ["node-0007"]
    assert len(await names("/api/v1/nodes", fieldSelector="metadata.name!=node-0007")) == 11
    assert await names("/api/v1/pods",
                       fieldSelector="spec.nodeName=node-0001,status.phase!=Failed,"
                                     "status.phase!=Succeeded") == ["web-1"]
    assert await names("/api/v1/pods", fieldSelector="spec.nodeName=node-0002") == []
    events = await names("/api/v1/events", fieldSelector="involvedObject.kind=Node,"
                         "involvedObject.name=node-0001,involvedObject.namespace=,"
                         "involvedObject.uid=node-0001")
    assert events == ["node-0001.17f0a1"]
    r = await c.get("/api/v1/nodes", params={"labelSelector": "a b"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    # selectors with paging: continue is given, remainingItemCount is not
    r = await c.get("/api/v1/nodes", params={"labelSelector": "kubernetes.io/os=linux",
                                             "limit": "5"})
    assert len(r.json()["items"]) == 5 and r.json()["metadata"]["continue"]
    assert "remainingItemCount" not in r.json()["metadata"]


# -- tables ------------------------------------------------------------------------------------

async def test_node_table(lab):
    c = lab.client()
    lab.cluster.patch_node("node-0002", {"spec": {"unschedulable": True}},
                           "application/strategic-merge-patch+json")
    obj = lab.cluster.store["nodes"].get("", "node-0003").object()
    obj["status"]["conditions"][1]["status"] = "Unknown"
    obj["metadata"].pop("resourceVersion")
    lab.cluster.store["nodes"].put(obj)
    r = await c.get("/api/v1/nodes", headers={"Accept": TABLE}, params={"limit": "500"})
    table = r.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    cols = [(d["name"], d["priority"]) for d in table["columnDefinitions"]]
    assert cols == [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
                    ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1),
                    ("Kernel-Version", 1), ("Container-Runtime", 1)]
    rows = {row["cells"][0]: row for row in table["rows"]}
    assert rows["node-0001"]["cells"][:5] == ["node-0001", "Ready", "control-plane", "3d",
                                              "v1.31.4"]
    assert rows["node-0002"]["cells"][1] == "Ready,SchedulingDisabled"
    assert rows["node-0003"]["cells"][1] == "NotReady"
    assert rows["node-0004"]["cells"][2] == "<none>"
    assert rows["node-0004"]["cells"][5:] == ["10.0.0.5", "<none>", "Ubuntu 22.04.4 LTS",
                                              "5.15.0-1057-aws", "containerd://1.7.20"]
    meta_obj = rows["node-0001"]["object"]
    assert meta_obj["kind"] == "PartialObjectMetadata"
    assert meta_obj["metadata"]["labels"]["kubernetes.io/hostname"] == "node-0001"
    assert "spec" not in meta_obj

    r = await c.get("/api/v1/nodes", headers={"Accept": TABLE},
                    params={"includeObject": "Object", "limit": "2"})
    assert r.json()["rows"][0]["object"]["kind"] == "Node"
    assert r.json()["rows"][0]["object"]["spec"]["podCIDR"] == "10.244.1.0/24"
    token = r.json()["metadata"]["continue"]
    r = await c.get("/api/v1/nodes", headers={"Accept": TABLE},
                    params={"includeObject": "None", "limit": "2", "continue": token})
    assert [row["cells"][0] for row in r.json()["rows"]] == ["node-0003", "node-0004"]
    assert "object" not in r.json()["rows"][0]
    r = await c.get("/api/v1/nodes/node-0005", headers={"Accept": TABLE})
    assert r.json()["kind"] == "Table" and r.json()["rows"][0]["cells"][0] == "node-0005"


async def test_table_age_is_computed_per_request(lab, monkeypatch):
    c = lab.client()
    r1 = await c.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001",
                     headers={"Accept": TABLE})
    assert [d["name"] for d in r1.json()["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert r1.json()["rows"][0]["cells"][:2] == ["node-0001", "node-0001"]
    real = time.time
    monkeypatch.setattr("lab.tables.time.time", lambda: real() + 3 * 3600)
    r2 = await c.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001",
                     headers={"Accept": TABLE})
    assert r2.json()["rows"][0]["cells"][2] == "3h"


async def test_other_tables(lab):
    c = lab.client()
    r = await c.get("/api/v1/pods", headers={"Accept": TABLE},
                    params={"fieldSelector": "metadata.name=web-1"})
    t = r.json()
    assert [d["name"] for d in t["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
        "Readiness Gates"]
    cells = t["rows"][0]["cells"]
    assert cells[:4] == ["web-1", "1/1", "Running", "0"]
    assert cells[5:] == ["10.244.1.5", "node-0001", "<none>", "<none>"]
    assert t["rows"][0]["object"]["metadata"]["namespace"] == "default"

    r = await c.get("/api/v1/events", headers={"Accept": TABLE})
    t = r.json()
    names = [d["name"] for d in t["columnDefinitions"] if d["priority"] == 0]
    assert names == ["Last Seen", "Type", "Reason", "Object", "Message"]
    cells = t["rows"][0]["cells"]
    assert cells[0] in ("60s", "61s", "62s")  # LAST SEEN: the event was last seen 60 s ago
    assert cells[1:4] == ["Normal", "NodeReady", "node/node-0001"]
    assert cells[5] == "kubelet, node-0001" and cells[8] == 2

    r = await c.get("/apis/certificates.k8s.io/v1/certificatesigningrequests",
                    headers={"Accept": TABLE})
    t = r.json()
    assert [d["name"] for d in t["columnDefinitions"]] == [
        "Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    assert t["rows"][0]["cells"][2:] == ["kubernetes.io/kube-apiserver-client-kubelet",
                                         "system:node:node-0002", "<none>", "Pending"]

    r = await c.get("/api/v1/namespaces", headers={"Accept": TABLE})
    assert [row["cells"][:2] for row in r.json()["rows"]] == [
        ["default", "Active"], ["kube-node-lease", "Active"], ["kube-system", "Active"]]


# -- watch -------------------------------------------------------------------------------------

async def _events(c: httpx.AsyncClient, path: str, params: dict, count: int,
                  headers: dict | None = None, during=None, timeout: float = 5) -> list[dict]:
    out = []

    async def read():
        async with c.stream("GET", path, params=params, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"
            async for line in r.aiter_lines():
                if line:
                    out.append(json.loads(line))
                    if len(out) >= count:
                        return

    task = asyncio.create_task(read())
    if during is not None:
        await asyncio.sleep(0.05)
        during()
    await asyncio.wait_for(task, timeout)
    return out


async def test_watch_without_rv_sends_state_then_changes(lab):
    c = lab.client()

    def cordon():
        lab.cluster.patch_node("node-0004", {"spec": {"unschedulable": True}},
                               "application/merge-patch+json")

    events = await _events(c, "/api/v1/nodes", {"watch": "true"}, 13, during=cordon)
    assert [e["type"] for e in events[:12]] == ["ADDED"] * 12
    assert events[12]["type"] == "MODIFIED"
    assert events[12]["object"]["metadata"]["name"] == "node-0004"
    assert events[12]["object"]["spec"]["unschedulable"] is True


async def test_watch_from_resource_version_with_selector(lab):
    c = lab.client()
    rv = (await c.get("/api/v1/nodes")).json()["metadata"]["resourceVersion"]

    def changes():
        for n in ("node-0005", "node-0006"):
            lab.cluster.patch_node(n, {"metadata": {"labels": {"x": n}}},
                                   "application/merge-patch+json")

    events = await _events(c, "/api/v1/nodes",
                           {"watch": "1", "resourceVersion": rv,
                            "fieldSelector": "metadata.name=node-0006"}, 1, during=changes)
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"]["metadata"]["labels"]["x"] == "node-0006"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(rv)


async def test_watch_history_replay_and_delete(lab):
    c = lab.client()
    rv = lab.cluster.store.rv
    lab.cluster.store["events"].put({"metadata": {"name": "e2", "namespace": "default"},
                                     "involvedObject": {"kind": "Node", "name": "node-0002"},
                                     "reason": "Rebooted", "type": "Warning"})
    lab.cluster.store["events"].delete("default", "e2")
    events = await _events(c, "/api/v1/namespaces/default/events",
                           {"watch": "true", "resourceVersion": str(rv)}, 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_watch_bookmarks(lab):
    c = lab.client()
    rv = lab.cluster.store.rv
    events = await _events(c, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                           {"watch": "true", "resourceVersion": str(rv),
                            "allowWatchBookmarks": "true"}, 2)
    for e in events:
        assert e == {"type": "BOOKMARK", "object": {
            "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"resourceVersion": str(lab.cluster.store.rv)}}}


async def test_watch_send_initial_events(lab):
    c = lab.client()
    events = await _events(c, "/api/v1/namespaces", {
        "watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan"}, 4)
    assert [e["type"] for e in events] == ["ADDED"] * 3 + ["BOOKMARK"]
    assert events[3]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_timeout_ends_stream(lab):
    c = lab.client()
    start = time.monotonic()
    async with c.stream("GET", "/api/v1/nodes", params={
            "watch": "true", "resourceVersion": str(lab.cluster.store.rv),
            "timeoutSeconds": "1"}) as r:
        body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert body == b""
    assert 0.9 < time.monotonic() - start < 3


async def test_watch_too_old_resource_version_gets_410_event(lab):
    c = lab.client()
    lab.cluster.store.compact()
    events = await _events(c, "/api/v1/nodes", {"watch": "true", "resourceVersion": "1001"}, 1)
    assert events == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: 1001 ({lab.cluster.store.rv})",
        "reason": "Expired", "code": 410}}]


async def test_watch_as_table(lab):
    c = lab.client()

    def cordon():
        lab.cluster.patch_node("node-0009", {"spec": {"unschedulable": True}},
                               "application/merge-patch+json")

    events = await _events(c, "/api/v1/nodes", {"watch": "true",
                           "resourceVersion": str(lab.cluster.store.rv)}, 1,
                           headers={"Accept": TABLE}, during=cordon)
    obj = events[0]["object"]
    assert obj["kind"] == "Table"
    assert obj["rows"][0]["cells"][:2] == ["node-0009", "Ready,SchedulingDisabled"]


async def test_watcher_released_when_client_disconnects(lab):
    coll = lab.cluster.store["nodes"]
    c = lab.client()
    async with c.stream("GET", "/api/v1/nodes", params={"watch": "true"}) as r:
        async for _line in r.aiter_lines():
            break
        assert len(coll.watchers) == 1
    await c.aclose()
    deadline = time.monotonic() + 5
    while coll.watchers and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not coll.watchers


async def test_watch_throughput(lab):
    """Thousands of events per second reach a watcher (a sanity floor, not a benchmark)."""
    c = lab.client()
    n = 5000
    coll = lab.cluster.store["leases"]
    rv = lab.cluster.store.rv
    got = 0
    start = time.monotonic()

    def flood():
        base = coll.get("kube-node-lease", "node-0001").object()
        for i in range(n):
            obj = json.loads(json.dumps(base))
            obj["metadata"].pop("resourceVersion")
            obj["spec"]["renewTime"] = f"2026-01-01T00:00:{i % 60:02d}.000000Z"
            coll.put(obj)

    async with c.stream("GET", "/apis/coordination.k8s.io/v1/leases",
                        params={"watch": "true", "resourceVersion": str(rv)}) as r:
        flood()
        async for line in r.aiter_lines():
            if line:
                got += 1
                if got == n:
                    break
    assert got == n
    assert time.monotonic() - start < 5


# -- writes ------------------------------------------------------------------------------------

async def test_cordon_patch_routes_to_cluster(lab):
    c = lab.client()
    r = await c.patch("/api/v1/nodes/node-0002", content=b'{"spec":{"unschedulable":true}}',
                      headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["unschedulable"] is True
    assert lab.cluster.calls[-1] == ("patch_node", "node-0002",
                                     "application/strategic-merge-patch+json", False)
    r = await c.patch("/api/v1/nodes/node-0002/status",
                      content=b'[{"op":"add","path":"/status/phase","value":"Running"}]',
                      headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200
    assert lab.cluster.calls[-1] == ("patch_node", "node-0002", "application/json-patch+json",
                                     True)
    r = await c.patch("/api/v1/nodes/node-0002", content=b"{}",
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = await c.patch("/api/v1/nodes/nope", content=b"{}",
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 404 and r.json()["message"] == 'nodes "nope" not found'


async def test_node_dry_run_patch_does_not_persist(lab):
    c = lab.client()
    r = await c.patch("/api/v1/nodes/node-0002", params={"dryRun": "All"},
                      content=b'{"spec":{"unschedulable":true}}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["spec"]["unschedulable"] is True
    assert lab.cluster.calls == []
    assert "unschedulable" not in lab.cluster.store["nodes"].get("", "node-0002").object()["spec"]


async def test_cluster_errors_become_statuses(lab, capsys):
    c = lab.client()

    def invalid(*a, **k):
        raise ValueError("spec.taints[0].effect: Unsupported value: \"Sometimes\"")

    lab.cluster.patch_node = invalid
    r = await c.patch("/api/v1/nodes/node-0002", content=b'{"spec":{}}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    assert "Unsupported value" in r.json()["message"]

    def broken(*a, **k):
        raise RuntimeError("model exploded")

    lab.cluster.patch_node = broken
    r = await c.patch("/api/v1/nodes/node-0002", content=b'{"spec":{}}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 500 and r.json()["reason"] == "InternalError"
    assert "Traceback" not in r.text
    assert "model exploded" in capsys.readouterr().err


async def test_lease_update_with_optimistic_concurrency(lab):
    c = lab.client()
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001"
    lease = (await c.get(path)).json()
    lease["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
    r = await c.put(path, json=lease)
    assert r.status_code == 200
    assert r.json()["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"
    assert r.json()["metadata"]["uid"] == lease["metadata"]["uid"]
    assert int(r.json()["metadata"]["resourceVersion"]) > int(lease["metadata"]["resourceVersion"])
    r = await c.put(path, json=lease)  # stale resourceVersion
    assert r.status_code == 409
    assert r.json()["reason"] == "Conflict"
    assert r.json()["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "node-0001": the object has '
        "been modified; please apply your changes to the latest version and try again")


async def test_lease_create_and_merge_patch(lab):
    c = lab.client()
    base = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    r = await c.post(base, json={"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": "node-0100"},
                                 "spec": {"holderIdentity": "node-0100"}})
    assert r.status_code == 201
    assert r.json()["metadata"]["namespace"] == "kube-node-lease"
    r = await c.post(base, json={"metadata": {"name": "node-0100"}})
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"
    r = await c.patch(base + "/node-0100", content=b'{"spec":{"leaseDurationSeconds":40}}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.json()["spec"] == {"holderIdentity": "node-0100", "leaseDurationSeconds": 40}
    r = await c.post("/apis/coordination.k8s.io/v1/namespaces/nope/leases",
                     json={"metadata": {"name": "x"}})
    assert r.status_code == 404 and r.json()["message"] == 'namespaces "nope" not found'


async def test_pod_create_dry_run_log_delete(lab):
    c = lab.client()
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "canary", "creationTimestamp": None},
           "spec": {"nodeName": "node-0001",
                    "containers": [{"name": "canary", "image": "nginx"}]}}
    r = await c.post("/api/v1/namespaces/default/pods", params={"dryRun": "All"}, json=pod)
    assert r.status_code == 201 and r.json()["metadata"]["creationTimestamp"]
    assert lab.cluster.calls == []
    r = await c.post("/api/v1/namespaces/default/pods", json=pod)
    assert r.status_code == 201
    assert lab.cluster.calls[-1] == ("create_pod", "default", "canary")
    assert r.json()["metadata"]["creationTimestamp"]
    r = await c.get("/api/v1/namespaces/default/pods/canary/log")
    assert r.status_code == 200 and r.text == "log of default/canary\nline 2\n"
    assert r.headers["content-type"].startswith("text/plain")
    r = await c.request("DELETE", "/api/v1/namespaces/default/pods/canary",
                        json={"kind": "DeleteOptions", "apiVersion": "v1",
                              "gracePeriodSeconds": 0})
    assert r.status_code == 200
    assert lab.cluster.calls[-1] == ("delete_pod", "default", "canary", 0)
    r = await c.get("/api/v1/namespaces/default/pods/canary")
    assert r.status_code == 404
    bad = {"metadata": {"name": "bad"}, "spec": {"containers": []}}
    r = await c.post("/api/v1/namespaces/default/pods", json=bad)
    assert r.status_code == 422
    assert r.json()["message"] == 'Pod "bad" is invalid: spec.containers: Required value'
    r = await c.post("/api/v1/namespaces/default/pods", json={"metadata": {}})
    assert r.status_code == 422


async def test_generate_name_and_event_post(lab):
    c = lab.client()
    r = await c.post("/api/v1/namespaces/default/events", json={
        "metadata": {"generateName": "node-0003."},
        "involvedObject": {"kind": "Node", "name": "node-0003", "uid": "node-0003"},
        "reason": "NodeNotReady", "type": "Warning", "message": "Node is not ready"})
    assert r.status_code == 201
    name = r.json()["metadata"]["name"]
    assert name.startswith("node-0003.") and len(name) == len("node-0003.") + 5
    assert r.json()["firstTimestamp"] and r.json()["lastTimestamp"]
    r = await c.get("/api/v1/events", params={"fieldSelector": "involvedObject.name=node-0003"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == [name]


async def test_csr_approval(lab):
    c = lab.client()
    csr = (await c.get("/apis/certificates.k8s.io/v1/certificatesigningrequests/"
                       "csr-node-0002")).json()
    csr["status"]["conditions"] = [{"type": "Approved", "status": "True",
                                    "reason": "KubectlApprove", "message": "ok"}]
    r = await c.put("/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-node-0002/"
                    "approval", json=csr)
    assert r.status_code == 200, r.text
    assert lab.cluster.calls[-1] == ("approve_csr", "csr-node-0002")
    assert r.json()["status"]["conditions"][0]["type"] == "Approved"


async def test_missing_cluster_method_is_405(lab):
    c = lab.client()
    r = await c.request("DELETE", "/api/v1/nodes/node-0001")
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"


# -- node proxy ----------------------------------------------------------------------------------

async def test_node_proxy(lab):
    c = lab.client()
    r = await c.get("/api/v1/nodes/node-0001/proxy/metrics")
    assert r.status_code == 200 and b"kubelet_running_pods 3" in r.content
    assert r.headers["content-type"] == "text/plain; version=0.0.4"
    assert lab.cluster.calls[-1] == ("kubelet", "node-0001", "GET", "/metrics", "")
    r = await c.get("/api/v1/nodes/node-0002:10250/proxy/healthz")
    assert r.text == "ok"
    assert lab.cluster.calls[-1][:4] == ("kubelet", "node-0002", "GET", "/healthz")
    r = await c.get("/api/v1/nodes/https:node-0003:10250/proxy/healthz")
    assert r.text == "ok"
    assert lab.cluster.calls[-1][:4] == ("kubelet", "node-0003", "GET", "/healthz")
    r = await c.get("/api/v1/nodes/node-0001/proxy/logs/",
                    params={"query": "kubelet", "tailLines": "3"})
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.text.splitlines() == [f"kubelet line {i} query=kubelet&tailLines=3"
                                   for i in range(3)]
    assert lab.cluster.calls[-1][3] == "/logs/"
    r = await c.get("/api/v1/nodes/node-0001/proxy/configz")
    assert r.status_code == 404
    r = await c.get("/api/v1/nodes/nope/proxy/healthz")
    assert r.status_code == 404 and r.json()["message"] == 'nodes "nope" not found'


async def test_collections_missing_from_store_are_not_served(tmp_path):
    from tests._fake_cluster import FakeCluster

    cluster = FakeCluster(nodes=1)
    del cluster.store.collections["certificatesigningrequests"]
    server = ApiServer(cluster)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            r = await c.get("/apis/certificates.k8s.io/v1/certificatesigningrequests",
                            headers={"Authorization": "Bearer x"})
            assert r.status_code == 401
            cluster.tokens["t"] = ("admin", ["system:masters"])
            h = {"Authorization": "Bearer t"}
            r = await c.get("/apis/certificates.k8s.io/v1/certificatesigningrequests", headers=h)
            assert r.status_code == 404
            r = await c.get("/apis/certificates.k8s.io/v1", headers=h)
            assert r.json()["resources"] == []
            r = await c.get("/api/v1/nodes", headers=h)
            assert r.status_code == 200
    finally:
        await server.stop()


def test_collection_type_is_the_store_one():
    # the fake must be built from the real store classes
    from tests._fake_cluster import FakeCluster

    assert isinstance(FakeCluster(nodes=1).store["nodes"], Collection)


async def test_workloads_derived_from_pods(lab):
    c = lab.client()
    r = await c.get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
    assert r.status_code == 200
    ds = r.json()
    assert ds["kind"] == "DaemonSet" and ds["apiVersion"] == "apps/v1"
    assert ds["metadata"]["uid"] == "uid-kube-proxy"
    assert ds["status"]["desiredNumberScheduled"] == 1 and ds["status"]["numberReady"] == 1
    r = await c.get("/apis/apps/v1/namespaces/default/daemonsets/kube-proxy")
    assert r.status_code == 404
    assert r.json()["message"] == 'daemonsets.apps "kube-proxy" not found'
    r = await c.get("/apis/apps/v1/replicasets")
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["api-7c9d4"]
    r = await c.get("/apis/apps/v1/daemonsets", headers={"Accept": TABLE})
    assert r.json()["rows"][0]["cells"][:6] == ["kube-proxy", 1, 1, 1, 1, 1]
    r = await c.request("DELETE", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
    assert r.status_code == 405


async def test_eviction(lab):
    c = lab.client()
    r = await c.post("/api/v1/namespaces/default/pods/api-7c9d4-qz5wt/eviction",
                     json={"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": "api-7c9d4-qz5wt", "namespace": "default"}})
    assert r.status_code == 201 and r.json()["status"] == "Success"
    assert lab.cluster.calls[-1] == ("delete_pod", "default", "api-7c9d4-qz5wt", None)
    r = await c.post("/api/v1/namespaces/default/pods/nope/eviction", json={})
    assert r.status_code == 404


async def test_stop_ends_open_watches(lab):
    c = lab.client()
    async with c.stream("GET", "/api/v1/nodes", params={"watch": "true"}) as r:
        lines = r.aiter_lines()
        await lines.__anext__()
        start = time.monotonic()
        await asyncio.wait_for(lab.server.stop(), 5)

        async def drain():
            async for _ in lines:
                pass

        with pytest.raises(httpx.RemoteProtocolError):  # cut mid-stream, as a dying server does
            await asyncio.wait_for(drain(), 5)
    assert time.monotonic() - start < 5
    assert not lab.cluster.store["nodes"].watchers
