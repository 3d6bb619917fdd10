"""The lab's Kubernetes API server: discovery, list/get/watch with selectors and paging, Tables,
writes routed to the cluster model, the node proxy, and access reviews.

It is built on a `cluster` object that provides:

  store                                  lab.store.Store with the collections served here
  tokens: dict[str, (user, [groups])]    bearer tokens
  bookmark_interval: float               seconds between watch BOOKMARK events (default 5)
  patch_node(name, patch, patch_type, status=False) -> Stored
  create_pod(namespace, obj) -> Stored
  delete_pod(namespace, name, grace_seconds) -> Stored | None
  pod_log(namespace, name) -> str | bytes | async iterator of bytes
  approve_csr(name, body) -> Stored
  kubelet_request(name, method, subpath, query_string, headers) -> object with .status,
      .headers (dict) and .body (bytes or async iterator of bytes)
  authorize(user, groups, verb, group, resource, namespace, name) -> bool   (optional; the
      module-level `authorize` is used otherwise)

Any of these may be plain functions or coroutines. Optional extras used when present:
`update_node`, `delete_node`, `patch_pod`, `create_csr`, `delete_csr`, `version`.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import inspect
import json
import os
import random
import ssl
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from lab.faults import Fault, FaultSet
from lab.http import DropConnection, Request, Response, close_server, serve_http
from lab.selectors import SelectorError, make_predicate
from lab.store import Collection, Expired, Stored, WatchEvent, dumps, join_list
from lab.tables import TableCache
from lab.timefmt import rfc3339

KUBE_VERSION = "v1.31.4"
_BUILD = {
    "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean",
    "buildDate": "2024-12-10T18:36:31Z",
    "goVersion": "go1.22.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}

READ_VERBS = frozenset({"get", "list", "watch"})


def store_floor(coll: Any) -> int:
    return int(getattr(coll, "floor", 0) or 0)


# -- errors -----------------------------------------------------------------------------------

class ApiError(Exception):
    """An API failure with its Status body. The cluster may raise it for exact control."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details


class Conflict(ApiError):
    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(409, "Conflict", message, details)


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason}
    if details:
        body["details"] = details
    body["code"] = code
    return dumps(body)


def _status_response(err: ApiError) -> Response:
    return Response(err.code, status_body(err.code, err.reason, err.message, err.details))


# -- resources ---------------------------------------------------------------------------------

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    name: str
    singular: str
    kind: str
    group: str
    version: str
    namespaced: bool
    short: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (name, kind, verbs)
    stored: bool = True
    derived: str = ""  # served read-only from the pods' controller references

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`nodes` or `leases.coordination.k8s.io`, as messages name them."""
        return f"{self.name}.{self.group}" if self.group else self.name


_STATUS_VERBS = ("get", "patch", "update")

RESOURCES: list[Resource] = [
    Resource("namespaces", "namespace", "Namespace", "", "v1", False, ("ns",),
             ("create", "delete", "get", "list", "patch", "update", "watch"),
             subresources=(("finalize", "Namespace", ("update",)),
                           ("status", "Namespace", _STATUS_VERBS))),
    Resource("nodes", "node", "Node", "", "v1", False, ("no",),
             subresources=(("proxy", "NodeProxyOptions",
                            ("create", "delete", "get", "patch", "update")),
                           ("status", "Node", _STATUS_VERBS))),
    Resource("pods", "pod", "Pod", "", "v1", True, ("po",), categories=("all",),
             subresources=(("eviction", "Eviction", ("create",)),
                           ("log", "Pod", ("get",)),
                           ("status", "Pod", _STATUS_VERBS))),
    Resource("events", "event", "Event", "", "v1", True, ("ev",)),
    Resource("leases", "lease", "Lease", "coordination.k8s.io", "v1", True),
    Resource("certificatesigningrequests", "certificatesigningrequest",
             "CertificateSigningRequest", "certificates.k8s.io", "v1", False, ("csr",),
             subresources=(("approval", "CertificateSigningRequest", _STATUS_VERBS),
                           ("status", "CertificateSigningRequest", _STATUS_VERBS))),
    Resource("daemonsets", "daemonset", "DaemonSet", "apps", "v1", True, ("ds",),
             ("get", "list", "watch"), ("all",), derived="DaemonSet"),
    Resource("replicasets", "replicaset", "ReplicaSet", "apps", "v1", True, ("rs",),
             ("get", "list", "watch"), ("all",), derived="ReplicaSet"),
    Resource("selfsubjectaccessreviews", "selfsubjectaccessreview", "SelfSubjectAccessReview",
             "authorization.k8s.io", "v1", False, verbs=("create",), stored=False),
    Resource("selfsubjectrulesreviews", "selfsubjectrulesreview", "SelfSubjectRulesReview",
             "authorization.k8s.io", "v1", True, verbs=("create",), stored=False),
    Resource("selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview",
             "authentication.k8s.io", "v1", False, verbs=("create",), stored=False),
]

GROUPS = ["apps", "coordination.k8s.io", "certificates.k8s.io", "authorization.k8s.io",
          "authentication.k8s.io"]


def _by_version() -> dict[tuple[str, str], dict[str, Resource]]:
    out: dict[tuple[str, str], dict[str, Resource]] = {}
    for res in RESOURCES:
        out.setdefault((res.group, res.version), {})[res.name] = res
    return out


_INDEX = _by_version()


# -- authorization -------------------------------------------------------------------------------

def authorize(user: str, groups: list[str], verb: str, group: str, resource: str,
              namespace: str = "", name: str = "") -> bool:
    """The lab's RBAC. `resource` may carry a subresource (`nodes/status`); a non-resource
    request passes its path as `resource` with an empty group.

    system:masters may do anything; every authenticated user may read (get/list/watch) and ask
    about itself (self-subject reviews); kubelets (system:nodes) may also renew their lease,
    report their own node's status, post events and request certificates."""
    if "system:masters" in groups:
        return True
    if verb in READ_VERBS:
        return True
    base, _, sub = resource.partition("/")
    if verb == "create" and base in ("selfsubjectaccessreviews", "selfsubjectrulesreviews",
                                     "selfsubjectreviews"):
        return True
    if "system:nodes" in groups and user.startswith("system:node:"):
        node = user[len("system:node:"):]
        if base == "leases" and namespace == "kube-node-lease" and (not name or name == node):
            return verb in ("create", "update", "patch")
        if base == "nodes" and (not name or name == node) and sub in ("", "status"):
            return verb in ("create", "update", "patch")
        if base == "events":
            return verb in ("create", "update", "patch")
        if base == "certificatesigningrequests" and not sub:
            return verb == "create"
    return False


def _forbidden_message(user: str, verb: str, res: Resource | None, resource: str, namespace: str,
                       name: str, path: str = "") -> str:
    if res is None:
        return f'forbidden: User "{user}" cannot {verb} path "{path}"'
    who = f'{res.qualified} "{name}"' if name else res.qualified
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (f'{who} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
            f'in API group "{res.group}" {where}')


# -- helpers ----------------------------------------------------------------------------------

async def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call a cluster method that may be sync or async; keyword arguments it does not take are
    dropped so the cluster can grow into them."""
    if kwargs:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "t", "y")


def _stored_bytes(result: Any) -> bytes:
    if isinstance(result, Stored):
        return result.raw
    if isinstance(result, (bytes, bytearray)):
        return bytes(result)
    if isinstance(result, dict):
        return dumps(result)
    raise TypeError(f"unexpected result {type(result).__name__}")


_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _generate_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = dumps({"v": "nodewb/1", "rv": rv, "start": [key[0], key[1]]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except Exception:
        raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                       "resourceVersion (version meta.k8s.io/v1)") from None


def _wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


@dataclass
class Target:
    res: Resource
    namespace: str = ""
    name: str = ""
    sub: str = ""
    rest: str = ""  # the path after a proxy subresource, with its leading "/"


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""


# -- the server ---------------------------------------------------------------------------------

class ApiServer:
    def __init__(self, cluster: Any, ssl_context: ssl.SSLContext | None = None,
                 log_requests: bool | None = None) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.ssl_context = ssl_context
        self.tables = TableCache()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.host = "127.0.0.1"
        self.log_requests = (os.environ.get("NODEWB_LAB_HTTP_LOG") == "1"
                             if log_requests is None else log_requests)
        self._streams: set[asyncio.Task] = set()
        self._ctx: ssl.SSLContext | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        ctx = self.ssl_context
        if ctx is None:
            ctx = self._context_from_cluster()
        self._ctx = ctx
        self.server = await serve_http(self.handle, host, port, ctx)
        self.host = host
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def _context_from_cluster(self) -> ssl.SSLContext | None:
        maker = getattr(self.cluster, "apiserver_ssl_context", None)
        if maker is not None:
            return maker()
        ca = getattr(self.cluster, "ca", None)
        for attr in ("server_context", "apiserver_context", "ssl_server_context"):
            fn = getattr(ca, attr, None)
            if fn is not None:
                return fn()
        return None

    async def stop(self) -> None:
        self._stopping = True
        if self.server is not None:
            await close_server(self.server)
            self.server = None

    # -- entry ----------------------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        started = time.monotonic()
        try:
            faulty = self._fault_response(req) if self.faults.faults else None
            if faulty is not None:
                response = await faulty
            else:
                response = await self._dispatch(req)
        except ApiError as err:
            response = _status_response(err)
        except SelectorError as err:
            response = _status_response(ApiError(400, "BadRequest", str(err)))
        except Exception as exc:  # never a traceback to the client
            print(f"nodewb lab apiserver: {req.method} {req.target}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            response = _status_response(ApiError(500, "InternalError",
                                                 f"Internal error occurred: {exc}"))
        if self.log_requests:
            print(f"{req.method} {req.target} {response.status} "
                  f"{(time.monotonic() - started) * 1000:.1f}ms", file=sys.stderr)
        return response

    @property
    def faults(self) -> FaultSet:
        faults = getattr(self.cluster, "faults", None)
        if faults is None:
            faults = self.cluster.faults = FaultSet()
        return faults

    def _fault_response(self, req: Request):
        """The API faults in force, for every request but the lab's own control: None when
        none applies, else an awaitable Response (slow answers still reach the handler)."""
        if req.path.startswith("/lab/v1/"):
            return None
        slow = self.faults.active("api-slow")
        failing = self.faults.active("api-5xx")
        if slow is None and failing is None:
            return None

        async def answer() -> Response:
            if slow is not None:
                await asyncio.sleep(slow["delay"])
            if failing is not None and random.random() < failing["rate"]:
                code = failing["code"]
                reason = {500: "InternalError", 503: "ServiceUnavailable",
                          504: "Timeout"}.get(code, "InternalError")
                return _status_response(ApiError(code, reason, f"lab fault api-5xx: the server "
                                                 f"is failing ({code})"))
            return await self._dispatch(req)

        return answer()

    async def outage(self, fault: Fault) -> None:
        """The api-down fault: stop listening (open connections are reset) until it ends."""
        await asyncio.sleep(0.2)  # the control request that asked for it gets its answer
        if self.server is None:
            return
        port, host = self.port, self.host
        await close_server(self.server)
        self.server = None
        try:
            await self.faults.until_over(fault)
        finally:
            for _ in range(50 if not self._stopping else 0):
                try:
                    self.server = await serve_http(self.handle, host, port, self._ctx)
                    break
                except OSError:  # the port is still being released
                    await asyncio.sleep(0.1)

    def _authenticate(self, req: Request) -> User | None:
        auth = req.headers.get("authorization")
        if auth and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            found = getattr(self.cluster, "tokens", {}).get(token)
            if found is None:
                return None
            user, groups = found
            return User(user, list(groups))
        cert = req.peercert
        if cert:
            cn = ""
            orgs: list[str] = []
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
                    elif key == "organizationName":
                        orgs.append(value)
            if cn:
                return User(cn, orgs)
        return None

    def _authorize(self, user: User, verb: str, group: str, resource: str, namespace: str,
                   name: str) -> bool:
        groups = list(user.groups)
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")
        fn = getattr(self.cluster, "authorize", None) or authorize
        return bool(fn(user.name, groups, verb, group, resource, namespace, name))

    async def _dispatch(self, req: Request) -> Response:
        path = req.path
        if len(path) > 1 and path.endswith("/") and "/proxy/" not in path:
            path = path.rstrip("/")
        public = self._public(req, path)
        if public is not None:
            return public
        user = self._authenticate(req)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if path.startswith("/lab/v1/"):
            return await self._lab_control(req, user, path[len("/lab/v1/"):])
        parts = [p for p in path.split("/") if p != ""] if "/proxy" not in path else \
            path.split("/")[1:]
        if not parts or parts[0] not in ("api", "apis"):
            return self._nonresource(req, user, path)
        if parts[0] == "api":
            if len(parts) == 1:
                return self._json(self._api_versions())
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._json(self._group_list())
            if len(parts) == 2:
                return self._json(self._group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        resources = _INDEX.get((group, version))
        if resources is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return self._json(self._resource_list(group, version))
        watch_path = False
        if rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
        target = self._target(resources, rest)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource_request(req, user, target, watch_path)

    def _public(self, req: Request, path: str) -> Response | None:
        if path == "/version" and req.method == "GET":
            version = getattr(self.cluster, "version", None) or KUBE_VERSION
            major, minor = version.lstrip("v").split(".")[:2]
            return self._json({"major": major, "minor": minor, "gitVersion": version, **_BUILD})
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
                ("/healthz/", "/livez/", "/readyz/")):
            if "verbose" in req.query:
                text = "[+]ping ok\n[+]log ok\n[+]etcd ok\n" + path.strip("/").split("/")[0] + \
                    " check passed\n"
                return Response(200, text.encode(), content_type="text/plain; charset=utf-8")
            return Response(200, b"ok", content_type="text/plain; charset=utf-8")
        return None

    async def _lab_control(self, req: Request, user: User, action: str) -> Response:
        control = getattr(self.cluster, "control", None)
        if control is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if "system:masters" not in user.groups:
            raise ApiError(403, "Forbidden", f'User "{user.name}" cannot use the lab control')
        try:
            params = json.loads(req.body or b"{}") if req.method in ("POST", "DELETE") else {}
            if not isinstance(params, dict):
                raise ValueError("the body must be a JSON object")
            if req.method != "POST" and not params:
                params = {k: v[0] for k, v in req.query.items()}
            result = await control.handle(action, params, method=req.method)
        except KeyError as err:
            raise ApiError(404, "NotFound", str(err).strip("'\"")) from None
        except (TypeError, ValueError) as err:
            raise ApiError(400, "BadRequest", str(err)) from None
        return self._json(result)

    def _nonresource(self, req: Request, user: User, path: str) -> Response:
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
                "DELETE": "delete"}.get(req.method, req.method.lower())
        if not self._authorize(user, verb, "", path, "", ""):
            raise ApiError(403, "Forbidden", _forbidden_message(user.name, verb, None, "", "", "",
                                                                path))
        if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return self._openapi_v3(path[len("/openapi/v3"):].strip("/"))
        if path == "/":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for g in GROUPS:
                paths += [f"/apis/{g}", f"/apis/{g}/v1"]
            return self._json({"paths": sorted(paths)})
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # -- discovery --------------------------------------------------------------------------------
    def _openapi_v3(self, sub: str) -> Response:
        """A minimal OpenAPI v3: enough for kubectl to see that every resource accepts the
        `fieldValidation` parameter, so it validates on the server instead of downloading
        schemas. Schemas themselves are not served (`kubectl explain` will not work)."""
        gvs = sorted({(r.group, r.version) for r in RESOURCES if self._served(r)})

        def gv_path(group: str, version: str) -> str:
            return f"apis/{group}/{version}" if group else f"api/{version}"

        if not sub:
            paths = {gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}"
                                     f"?hash={KUBE_VERSION.replace('.', '')}{len(RESOURCES)}"}
                     for g, v in gvs}
            return self._json({"paths": paths})
        for g, v in gvs:
            if gv_path(g, v) == sub:
                break
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string",
                 "uniqueItems": True}}
        paths: dict[str, Any] = {}
        for res in _INDEX[(g, v)].values():
            if not self._served(res) or "patch" not in res.verbs:
                continue
            gvk = {"group": g, "version": v, "kind": res.kind}
            prefix = "/" + gv_path(g, v)
            item = (f"{prefix}/namespaces/{{namespace}}/{res.name}/{{name}}" if res.namespaced
                    else f"{prefix}/{res.name}/{{name}}")
            op = {"operationId": f"patch{res.kind}", "parameters": [param],
                  "responses": {"200": {"description": "OK"}},
                  "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk}
            post = dict(op, operationId=f"create{res.kind}", **{"x-kubernetes-action": "post"})
            put = dict(op, operationId=f"replace{res.kind}", **{"x-kubernetes-action": "put"})
            paths[item] = {"patch": op, "put": put}
            coll = item.rsplit("/", 1)[0]
            paths[coll] = {"post": post}
        doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBE_VERSION},
               "paths": paths, "components": {"schemas": {}}}
        return Response(200, dumps(doc), headers=[("Cache-Control", "public, immutable")])

    def _json(self, obj: Any, status: int = 200) -> Response:
        return Response(status, dumps(obj))

    def _served(self, res: Resource) -> bool:
        if res.derived:
            return "pods" in self.store.collections
        return not res.stored or res.name in self.store.collections

    def _api_versions(self) -> dict:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]}

    def _group(self, group: str) -> dict:
        if group not in GROUPS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gv = {"groupVersion": f"{group}/v1", "version": "v1"}
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv],
                "preferredVersion": gv}

    def _group_list(self) -> dict:
        groups = []
        for g in GROUPS:
            gv = {"groupVersion": f"{g}/v1", "version": "v1"}
            groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict:
        out = []
        for res in _INDEX[(group, version)].values():
            if not self._served(res):
                continue
            entry: dict[str, Any] = {"name": res.name, "singularName": res.singular,
                                     "namespaced": res.namespaced, "kind": res.kind,
                                     "verbs": list(res.verbs)}
            if res.short:
                entry["shortNames"] = list(res.short)
            if res.categories:
                entry["categories"] = list(res.categories)
            out.append(entry)
            for sub, kind, verbs in res.subresources:
                sub_entry: dict[str, Any] = {"name": f"{res.name}/{sub}", "singularName": "",
                                             "namespaced": res.namespaced, "kind": kind,
                                             "verbs": list(verbs)}
                if sub == "eviction":
                    sub_entry.update(group="policy", version="v1")
                out.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": out}

    # -- routing ----------------------------------------------------------------------------------
    def _target(self, resources: dict[str, Resource], rest: list[str]) -> Target | None:
        namespace = ""
        if (len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in resources
                and resources[rest[2]].namespaced):
            namespace = rest[1]
            rest = rest[2:]
        res = resources.get(rest[0])
        if res is None or (namespace and not res.namespaced):
            return None
        if not self._served(res):
            return None
        target = Target(res, namespace)
        if len(rest) >= 2:
            target.name = rest[1]
        if len(rest) >= 3:
            target.sub = rest[2]
            subs = {s[0] for s in res.subresources}
            if target.sub not in subs:
                return None
            if target.sub == "proxy":
                target.rest = "/" + "/".join(rest[3:])
            elif len(rest) > 3:
                return None
        if not target.name and not res.namespaced and len(rest) == 1:
            pass
        return target

    async def _resource_request(self, req: Request, user: User, t: Target,
                                watch_path: bool) -> Response:
        res = t.res
        method = req.method
        watching = watch_path or _truthy(req.arg("watch"))
        if method in ("GET", "HEAD"):
            if t.sub == "proxy":
                verb = "get"
            elif t.name and not watching:
                verb = "get"
            else:
                verb = "watch" if watching else "list"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if t.name else "deletecollection"
        else:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        if t.sub == "proxy":
            verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update",
                    "PATCH": "patch", "DELETE": "delete"}.get(method, verb)
        resource = f"{res.name}/{t.sub}" if t.sub else res.name
        name = t.name
        if t.sub == "proxy":  # NAME, NAME:PORT or SCHEME:NAME:PORT
            pieces = t.name.split(":")
            name = pieces[1] if pieces[0] in ("http", "https") and len(pieces) > 1 else pieces[0]
        if not self._authorize(user, verb, res.group, resource, t.namespace, name):
            raise ApiError(403, "Forbidden",
                           _forbidden_message(user.name, verb, res, resource, t.namespace, name),
                           self._details(res, name))
        if not res.stored:
            return await self._review(req, user, t)
        if t.sub == "proxy":
            return await self._proxy(req, t, name)
        if res.derived and verb not in READ_VERBS:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        if verb in ("list", "watch"):
            if watching:
                return await self._watch(req, t)
            return self._list(req, t)
        if verb == "get":
            if t.sub == "log":
                return await self._log(req, t)
            return self._get(req, t)
        if verb == "create":
            return await self._create(req, user, t)
        if verb == "update":
            return await self._update(req, t)
        if verb == "patch":
            return await self._patch(req, t)
        if verb == "delete":
            return await self._delete(req, t)
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    # -- reads ----------------------------------------------------------------------------------
    def _details(self, res: Resource, name: str) -> dict:
        d: dict[str, Any] = {"name": name} if name else {}
        if res.group:
            d["group"] = res.group
        d["kind"] = res.name
        return d

    def _not_found(self, res: Resource, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found',
                        self._details(res, name))

    def _collection(self, res: Resource) -> Collection:
        if res.derived:
            return _Derived(self.store, res)  # type: ignore[return-value]
        return self.store[res.name]

    def _lookup(self, t: Target) -> Stored:
        stored = self._collection(t.res).get(t.namespace, t.name)
        if stored is None:
            raise self._not_found(t.res, t.name)
        return stored

    def _include(self, req: Request) -> str:
        include = req.arg("includeObject") or "Metadata"
        return include if include in ("None", "Metadata", "Object") else "Metadata"

    def _get(self, req: Request, t: Target) -> Response:
        stored = self._lookup(t)
        if _wants_table(req.headers.get("accept") or ""):
            body = self.tables.table(t.res.name, [stored], self.store.rv, self._include(req),
                                     live=len(self._collection(t.res).items))
            return Response(200, body)
        return Response(200, stored.raw)

    def _predicate(self, req: Request):
        return make_predicate(req.arg("labelSelector"), req.arg("fieldSelector"))

    def _list(self, req: Request, t: Target) -> Response:
        coll = self._collection(t.res)
        pred = self._predicate(req)
        rv = self.store.rv
        limit_text = req.arg("limit")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit: {limit_text}") from None
        keys = coll.keys_sorted()
        ns = t.namespace
        if ns:
            lo = bisect.bisect_left(keys, (ns, ""))
            hi = bisect.bisect_left(keys, (ns + "\0", ""))
        else:
            lo, hi = 0, len(keys)
        token = req.arg("continue")
        if token:
            rv, start = _decode_continue(token)
            lo = max(lo, bisect.bisect_right(keys, start))
        items: list[Stored] = []
        cont = ""
        remaining: int | None = None
        i = lo
        table = coll.items
        while i < hi:
            stored = table[keys[i]]
            i += 1
            if pred is None or pred(stored):
                items.append(stored)
                if limit and len(items) >= limit:
                    break
        if limit and len(items) >= limit and i < hi:
            last = items[-1]
            cont = _encode_continue(rv, (last.namespace, last.name))
            if pred is None:
                remaining = hi - i
        if _wants_table(req.headers.get("accept") or ""):
            body = self.tables.table(t.res.name, items, rv, self._include(req), cont, remaining,
                                     live=len(coll.items))
        else:
            body = join_list(t.res.kind + "List", t.res.api_version, rv, items, cont, remaining)
        return Response(200, body)

    # -- watch ----------------------------------------------------------------------------------
    async def _watch(self, req: Request, t: Target) -> Response:
        coll = self._collection(t.res)
        match = self._predicate(req)
        if t.name:
            name = t.name
            inner = match
            def match(s):
                return (s.name == name and (inner is None or inner(s)))
        rv_text = req.arg("resourceVersion") or ""
        initial = _truthy(req.arg("sendInitialEvents"))
        try:
            since = int(rv_text) if rv_text else 0
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text}") from None
        if initial:
            since = 0
        bookmarks = _truthy(req.arg("allowWatchBookmarks"))
        table = _wants_table(req.headers.get("accept") or "")
        include = self._include(req)
        timeout_text = req.arg("timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else 1800.0 * (1 + random.random())
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid timeoutSeconds: {timeout_text}") from None
        interval = float(getattr(self.cluster, "bookmark_interval", 5) or 5)
        faults = self.faults
        try:
            gone = faults.active("watch-gone") if since else None
            if gone is not None and random.random() < gone["rate"]:
                raise Expired(since, store_floor(coll))
            watcher, backlog = coll.watch(since, t.namespace or None, match)
        except Expired as exc:
            line = (b'{"type":"ERROR","object":'
                    + status_body(410, "Expired", str(exc)) + b"}\n")

            async def expired() -> AsyncIterator[bytes]:
                yield line

            return Response(200, expired(), headers=[("Cache-Control", "no-cache, private")])
        resource = t.res.name
        store = self.store
        tables = self.tables
        kind, api_version = t.res.kind, t.res.api_version

        def render(event: WatchEvent, now: float) -> bytes:
            if not table:
                return event.line()
            obj = tables.table(resource, [event.stored], event.stored.rv, include, now=now,
                               live=len(coll.items))
            return b'{"type":"' + event.type.encode() + b'","object":' + obj + b"}\n"

        def bookmark(extra: dict | None = None) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(store.rv)}
            if extra:
                meta["annotations"] = extra
            if table:
                obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                       "columnDefinitions": None, "rows": None}
            else:
                obj = {"kind": kind, "apiVersion": api_version, "metadata": meta}
            return b'{"type":"BOOKMARK","object":' + dumps(obj) + b"}\n"

        async def stream() -> AsyncIterator[bytes]:
            queue = watcher.queue
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + interval
            opened = time.time()
            try:
                now = time.time()
                for i in range(0, len(backlog), 500):
                    yield b"".join(render(e, now) for e in backlog[i:i + 500])
                if initial and bookmarks:
                    yield bookmark({"k8s.io/initial-events-end": "true"})
                while True:
                    t_now = loop.time()
                    if t_now >= deadline:
                        return
                    wait = deadline - t_now
                    if bookmarks:
                        wait = min(wait, max(0.0, next_bookmark - t_now))
                    # a watch-drop fault may arrive at any time: look every half second
                    wait = min(wait, 0.5 if not faults.faults else 0.1)
                    drop = faults.active("watch-drop")
                    if drop is not None and time.time() >= opened + drop["every"]:
                        raise DropConnection
                    try:
                        event = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        try:
                            event = await asyncio.wait_for(queue.get(), wait)
                        except TimeoutError:
                            if bookmarks and loop.time() >= next_bookmark:
                                next_bookmark = loop.time() + interval
                                yield bookmark()
                            continue
                    if event is None:
                        return
                    now = time.time()
                    chunk = [render(event, now)]
                    closed = False
                    while len(chunk) < 2000:
                        try:
                            event = queue.get_nowait()
                        except asyncio.QueueEmpty:
                            break
                        if event is None:
                            closed = True
                            break
                        chunk.append(render(event, now))
                    yield b"".join(chunk)
                    if closed:
                        return
                    if bookmarks and loop.time() >= next_bookmark and queue.empty():
                        next_bookmark = loop.time() + interval
                        yield bookmark()
            finally:
                watcher.close()

        return Response(200, stream(), headers=[("Cache-Control", "no-cache, private")])

    # -- writes -----------------------------------------------------------------------------------
    def _body(self, req: Request) -> Any:
        if not req.body:
            raise ApiError(400, "BadRequest", "the body of the request was empty")
        try:
            return json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "BadRequest",
                           f"error decoding request body: {exc}") from None

    def _dry_run(self, req: Request) -> bool:
        values = req.query.get("dryRun") or []
        if any(v not in ("All", "") for v in values):
            raise ApiError(400, "BadRequest", f"Invalid dryRun value: {values}")
        return "All" in values

    def _error_from(self, exc: Exception, t: Target, name: str) -> ApiError:
        """Map a cluster exception to the Status the API server would send."""
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, KeyError):
            return self._not_found(t.res, name)
        if isinstance(exc, Expired):
            return ApiError(410, "Expired", str(exc))
        cls = type(exc).__name__
        text = str(exc) or cls
        if cls == "Conflict":
            return ApiError(409, "Conflict", text, self._details(t.res, name))
        if cls == "AlreadyExists" or isinstance(exc, FileExistsError):
            return ApiError(409, "AlreadyExists", f'{t.res.qualified} "{name}" already exists',
                            self._details(t.res, name))
        if isinstance(exc, PermissionError):
            return ApiError(403, "Forbidden", text, self._details(t.res, name))
        if isinstance(exc, PatchError):
            return ApiError(422, "Invalid", text, self._details(t.res, name))
        if isinstance(exc, (ValueError, TypeError)):
            return ApiError(422, "Invalid",
                            f'{t.res.kind} "{name}" is invalid: {text}', self._details(t.res, name))
        if isinstance(exc, NotImplementedError):
            return ApiError(405, "MethodNotAllowed", text or
                            "the server does not allow this method on the requested resource")
        raise exc

    async def _cluster(self, t: Target, name: str, fn_name: str, *args: Any,
                       **kwargs: Any) -> Any:
        fn = getattr(self.cluster, fn_name, None)
        if fn is None:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        try:
            return await _call(fn, *args, **kwargs)
        except Exception as exc:
            raise self._error_from(exc, t, name) from exc

    def _prepare_new(self, req: Request, t: Target, obj: Any) -> dict:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        kind = obj.get("kind")
        if kind and kind != t.res.kind:
            raise ApiError(400, "BadRequest",
                           f"the API version in the data ({obj.get('apiVersion')}) does not "
                           f"match the expected API version ({t.res.api_version})")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = _generate_name(meta["generateName"])
        if not meta.get("name"):
            raise ApiError(422, "Invalid",
                           f"{t.res.kind} \"\" is invalid: metadata.name: Required value: name "
                           "or generateName is required",
                           {"group": t.res.group, "kind": t.res.kind} if t.res.group
                           else {"kind": t.res.kind})
        if t.res.namespaced:
            ns = meta.get("namespace") or t.namespace or "default"
            if t.namespace and ns != t.namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            meta["namespace"] = ns
            self._require_namespace(ns)
        else:
            meta.pop("namespace", None)
        obj["kind"] = t.res.kind
        obj["apiVersion"] = t.res.api_version
        for key in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(key, None)
        return obj

    def _require_namespace(self, ns: str) -> None:
        coll = self.store.collections.get("namespaces")
        if coll is not None and coll.get("", ns) is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})

    def _dry_fill(self, obj: dict) -> bytes:
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", rfc3339(time.time()))
        return dumps(obj)

    def _validate_pod(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            raise ApiError(422, "Invalid",
                           f'Pod "{name}" is invalid: spec.containers: Required value',
                           {"name": name, "kind": "Pod", "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value",
                                "field": "spec.containers"}]})
        for i, c in enumerate(containers):
            if not c.get("name") or not c.get("image"):
                missing = "name" if not c.get("name") else "image"
                raise ApiError(422, "Invalid",
                               f'Pod "{name}" is invalid: spec.containers[{i}].{missing}: '
                               "Required value", {"name": name, "kind": "Pod"})

    async def _create(self, req: Request, user: User, t: Target) -> Response:
        res = t.res
        dry = self._dry_run(req)
        if t.sub == "eviction" and res.name == "pods":
            body = self._body(req) if req.body else {}
            self._lookup(t)
            grace = ((body.get("deleteOptions") or {}).get("gracePeriodSeconds")
                     if isinstance(body, dict) else None)
            if not dry:
                if getattr(self.cluster, "evict_pod", None) is not None:
                    await self._cluster(t, t.name, "evict_pod", t.namespace, t.name)
                else:
                    await self._cluster(t, t.name, "delete_pod", t.namespace, t.name, grace)
            return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "code": 201}, 201)
        if t.name:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        obj = self._prepare_new(req, t, self._body(req))
        name = obj["metadata"]["name"]
        coll = self._collection(res)
        if coll.get(obj["metadata"].get("namespace", ""), name) is not None:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists',
                           self._details(res, name))
        if res.name == "pods":
            self._validate_pod(obj)
            if dry:
                return Response(201, self._dry_fill(obj))
            stored = await self._cluster(t, name, "create_pod", obj["metadata"]["namespace"], obj)
            return Response(201, _stored_bytes(stored))
        if res.name == "certificatesigningrequests":
            spec = obj.setdefault("spec", {})
            spec.setdefault("username", user.name)
            spec.setdefault("groups", user.groups + ["system:authenticated"])
            if dry:
                return Response(201, self._dry_fill(obj))
            if getattr(self.cluster, "create_csr", None) is not None:
                stored = await self._cluster(t, name, "create_csr", obj)
                return Response(201, _stored_bytes(stored))
        if res.name == "nodes" and getattr(self.cluster, "create_node", None) is not None:
            if dry:
                return Response(201, self._dry_fill(obj))
            stored = await self._cluster(t, name, "create_node", obj)
            return Response(201, _stored_bytes(stored))
        if res.name == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
            labels = obj["metadata"].setdefault("labels", {})
            labels.setdefault("kubernetes.io/metadata.name", name)
        if res.name == "events":
            now = rfc3339(time.time())
            if not obj.get("firstTimestamp") and not obj.get("eventTime"):
                obj["firstTimestamp"] = now
            if not obj.get("lastTimestamp") and obj.get("firstTimestamp"):
                obj["lastTimestamp"] = obj["firstTimestamp"]
        if dry:
            return Response(201, self._dry_fill(obj))
        stored = coll.put(obj)
        return Response(201, stored.raw)

    def _check_rv(self, t: Target, current: Stored, obj: dict) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv and rv != str(current.rv):
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {t.res.qualified} "{t.name}": the '
                           "object has been modified; please apply your changes to the latest "
                           "version and try again", self._details(t.res, t.name))

    async def _update(self, req: Request, t: Target) -> Response:
        res = t.res
        dry = self._dry_run(req)
        if not t.name:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        obj = self._body(req)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != t.name:
            raise ApiError(400, "BadRequest",
                           f"the name of the object ({meta['name']}) does not match the name on "
                           f"the URL ({t.name})")
        meta["name"] = t.name
        current = self._lookup(t)
        self._check_rv(t, current, obj)
        if res.name == "certificatesigningrequests" and t.sub == "approval":
            if dry:
                return Response(200, dumps(obj))
            stored = await self._cluster(t, t.name, "approve_csr", t.name, obj)
            return Response(200, _stored_bytes(stored))
        if res.name == "nodes":
            if getattr(self.cluster, "update_node", None) is not None and not dry:
                stored = await self._cluster(t, t.name, "update_node", t.name, obj,
                                             status=t.sub == "status")
                return Response(200, _stored_bytes(stored))
            # A replacement is a JSON patch of the parts a client may change.
            if t.sub == "status":
                ops = [{"op": "add", "path": "/status", "value": obj.get("status") or {}}]
            else:
                ops = [{"op": "add", "path": "/spec", "value": obj.get("spec") or {}}]
                for key in ("labels", "annotations"):
                    ops.append({"op": "add", "path": f"/metadata/{key}",
                                "value": meta.get(key) or {}})
            return await self._patch_node(t, ops, "application/json-patch+json", dry)
        if res.name == "pods":
            if getattr(self.cluster, "update_pod", None) is not None and not dry:
                stored = await self._cluster(t, t.name, "update_pod", t.namespace, t.name, obj,
                                             status=t.sub == "status")
                return Response(200, _stored_bytes(stored))
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        if t.sub:
            # status or approval of a store-owned object: replace that part only
            base = json.loads(current.raw)
            part = "status" if t.sub in ("status", "approval") else t.sub
            base[part] = obj.get(part) or {}
            obj = base
        else:
            previous = json.loads(current.raw)["metadata"]
            meta["uid"] = previous["uid"]
            meta["creationTimestamp"] = previous["creationTimestamp"]
            if res.namespaced:
                meta["namespace"] = t.namespace
            obj["kind"] = res.kind
            obj["apiVersion"] = res.api_version
        if dry:
            return Response(200, dumps(obj))
        stored = self._collection(res).put(obj)
        return Response(200, stored.raw)

    async def _patch_node(self, t: Target, patch: Any, ptype: str, dry: bool) -> Response:
        if dry:
            current = json.loads(self._lookup(t).raw)
            try:
                result = apply_patch(current, patch, ptype)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc), self._details(t.res, t.name)) from None
            return Response(200, dumps(result))
        stored = await self._cluster(t, t.name, "patch_node", t.name, patch, ptype,
                                     status=t.sub == "status")
        return Response(200, _stored_bytes(stored))

    async def _patch(self, req: Request, t: Target) -> Response:
        res = t.res
        dry = self._dry_run(req)
        if not t.name:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        ptype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ptype == "application/apply-patch+yaml":
            ptype = "application/merge-patch+json"
        if ptype not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media '
                           f'types include: {", ".join(PATCH_TYPES)}')
        patch = self._body(req)
        current = self._lookup(t)
        if res.name == "nodes":
            return await self._patch_node(t, patch, ptype, dry)
        if res.name == "pods" and getattr(self.cluster, "patch_pod", None) is not None:
            if dry:
                result = apply_patch(json.loads(current.raw), patch, ptype)
                return Response(200, dumps(result))
            stored = await self._cluster(t, t.name, "patch_pod", t.namespace, t.name, patch,
                                         ptype, status=t.sub == "status")
            return Response(200, _stored_bytes(stored))
        if res.name == "pods":
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        base = json.loads(current.raw)
        try:
            result = apply_patch(base, patch, ptype)
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc), self._details(res, t.name)) from None
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "the patch result is not an object")
        self._check_rv(t, current, result if isinstance(patch, dict) else {})
        meta = result.setdefault("metadata", {})
        meta["name"] = t.name
        if res.namespaced:
            meta["namespace"] = t.namespace
        meta.pop("resourceVersion", None)
        if t.sub:
            part = "status" if t.sub in ("status", "approval") else t.sub
            merged = json.loads(current.raw)
            merged[part] = result.get(part)
            result = merged
        if dry:
            return Response(200, dumps(result))
        if res.name == "certificatesigningrequests" and t.sub == "approval":
            stored = await self._cluster(t, t.name, "approve_csr", t.name, result)
            return Response(200, _stored_bytes(stored))
        stored = self._collection(res).put(result)
        return Response(200, stored.raw)

    async def _delete(self, req: Request, t: Target) -> Response:
        res = t.res
        dry = self._dry_run(req)
        if t.sub:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        options: dict = {}
        if req.body:
            body = self._body(req)
            if isinstance(body, dict):
                options = body
        grace_text = req.arg("gracePeriodSeconds")
        grace = options.get("gracePeriodSeconds")
        if grace_text:
            try:
                grace = int(grace_text)
            except ValueError:
                raise ApiError(400, "BadRequest",
                               f"invalid gracePeriodSeconds: {grace_text}") from None
        current = self._lookup(t)
        precond = (options.get("preconditions") or {})
        if precond.get("uid") and precond["uid"] != json.loads(current.raw)["metadata"]["uid"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {res.qualified} "{t.name}": '
                           f'Precondition failed: UID in precondition: {precond["uid"]}',
                           self._details(res, t.name))
        if dry:
            return Response(200, current.raw)
        if res.name == "pods":
            result = await self._cluster(t, t.name, "delete_pod", t.namespace, t.name, grace)
        elif res.name == "nodes" and getattr(self.cluster, "delete_node", None) is not None:
            result = await self._cluster(t, t.name, "delete_node", t.name)
        elif (res.name == "certificatesigningrequests"
              and getattr(self.cluster, "delete_csr", None) is not None):
            result = await self._cluster(t, t.name, "delete_csr", t.name)
        elif res.name == "nodes":
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        else:
            result = self._collection(res).delete(t.namespace, t.name)
        if result is None or isinstance(result, bool):
            uid = json.loads(current.raw)["metadata"].get("uid", "")
            details = self._details(res, t.name)
            details["uid"] = uid
            return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "details": details})
        return Response(200, _stored_bytes(result))

    # -- pods/log, node proxy ----------------------------------------------------------------------
    async def _log(self, req: Request, t: Target) -> Response:
        self._lookup(t)
        tail = req.arg("tailLines")
        result = await self._cluster(
            t, t.name, "pod_log", t.namespace, t.name,
            container=req.arg("container"), follow=_truthy(req.arg("follow")),
            tail_lines=int(tail) if tail and tail.lstrip("-").isdigit() else None,
            previous=_truthy(req.arg("previous")), timestamps=_truthy(req.arg("timestamps")))
        ctype = "text/plain"
        if isinstance(result, str):
            return Response(200, result.encode(), content_type=ctype)
        if isinstance(result, (bytes, bytearray)):
            return Response(200, bytes(result), content_type=ctype)
        if hasattr(result, "__aiter__"):
            return Response(200, _bytes_iter(result), content_type=ctype)
        return Response(200, b"".join(_as_bytes(x) for x in result or ()), content_type=ctype)

    async def _proxy(self, req: Request, t: Target, name: str) -> Response:
        if self._collection(t.res).get("", name) is None:
            raise self._not_found(t.res, name)
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() not in ("authorization", "host", "connection", "content-length",
                                        "transfer-encoding", "accept-encoding")}
        result = await self._cluster(t, name, "kubelet_request", name, req.method, t.rest,
                                     req.query_string, headers)
        status = int(getattr(result, "status", 200))
        out_headers = []
        ctype = None
        for k, v in (getattr(result, "headers", None) or {}).items():
            lk = k.lower()
            if lk in ("content-length", "transfer-encoding", "connection", "date"):
                continue
            if lk == "content-type":
                ctype = v
                continue
            out_headers.append((k, v))
        body = getattr(result, "body", b"")
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, (bytes, bytearray)) and hasattr(body, "__aiter__"):
            body = _bytes_iter(body)
        elif body is None:
            body = b""
        return Response(status, body, headers=out_headers, content_type=ctype)

    # -- access reviews ----------------------------------------------------------------------------
    async def _review(self, req: Request, user: User, t: Target) -> Response:
        if req.method != "POST" or t.name:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        obj = self._body(req)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        groups = list(user.groups)
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")
        obj.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        obj["kind"] = t.res.kind
        obj["apiVersion"] = t.res.api_version
        if t.res.name == "selfsubjectreviews":
            obj["status"] = {"userInfo": {"username": user.name, "groups": groups}}
            return self._json(obj, 201)
        spec = obj.get("spec") or {}
        if t.res.name == "selfsubjectrulesreviews":
            masters = "system:masters" in groups
            rules = [{"verbs": ["*"] if masters else ["get", "list", "watch"],
                      "apiGroups": ["*"], "resources": ["*"]}]
            if not masters:
                rules.append({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                              "resources": ["selfsubjectaccessreviews",
                                            "selfsubjectrulesreviews"]})
            nonres = [{"verbs": ["*"] if masters else ["get"], "nonResourceURLs": ["*"]}]
            obj["status"] = {"resourceRules": rules, "nonResourceRules": nonres,
                             "incomplete": False}
            return self._json(obj, 201)
        attrs = spec.get("resourceAttributes")
        nonres_attrs = spec.get("nonResourceAttributes")
        fn = getattr(self.cluster, "authorize", None) or authorize
        if attrs:
            resource = attrs.get("resource", "")
            if attrs.get("subresource"):
                resource = f"{resource}/{attrs['subresource']}"
            allowed = bool(fn(user.name, groups, attrs.get("verb", ""), attrs.get("group", ""),
                              resource, attrs.get("namespace", ""), attrs.get("name", "")))
        elif nonres_attrs:
            allowed = bool(fn(user.name, groups, nonres_attrs.get("verb", ""), "",
                              nonres_attrs.get("path", ""), "", ""))
        else:
            raise ApiError(422, "Invalid", 'SelfSubjectAccessReview.authorization.k8s.io "" is '
                           "invalid: spec.resourceAttributes: Invalid value: \"null\": exactly "
                           "one of nonResourceAttributes or resourceAttributes must be specified")
        status: dict[str, Any] = {"allowed": allowed}
        if allowed and "system:masters" not in groups:
            status["reason"] = "allowed by the lab's read-only policy"
        obj["status"] = status
        return self._json(obj, 201)


class _Derived:
    """DaemonSets and ReplicaSets, read-only, derived from the pods' controller references
    (what `kubectl drain --ignore-daemonsets` and `kubectl get ds` need). They do not change
    on their own, so a watch on them only ever sends the initial state and bookmarks."""

    def __init__(self, store: Any, res: Resource) -> None:
        self.store = store
        self.res = res
        self.watchers: set = set()
        self._items: dict[tuple[str, str], Stored] | None = None

    def _build(self, namespace: str | None = None, name: str | None = None) -> dict:
        pods = self.store["pods"]
        keys = pods.keys_sorted()
        if namespace:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\0", ""))
        else:
            lo, hi = 0, len(keys)
        kind = self.res.derived
        needle = b'"kind":"' + kind.encode() + b'"'
        name_needle = b'"name":' + dumps(name) if name else b""
        groups: dict[tuple[str, str], list[tuple[Stored, dict, dict]]] = {}
        for key in keys[lo:hi]:
            stored = pods.items[key]
            if needle not in stored.raw or (name_needle and name_needle not in stored.raw):
                continue
            pod = stored.object()
            for ref in pod.get("metadata", {}).get("ownerReferences") or []:
                if ref.get("kind") == kind and ref.get("controller", True):
                    if not name or ref.get("name") == name:
                        groups.setdefault((key[0], ref["name"]), []).append((stored, pod, ref))
        out: dict[tuple[str, str], Stored] = {}
        for (ns, owner), members in groups.items():
            obj = self._object(ns, owner, members)
            rv = max(s.rv for s, _, _ in members)
            out[(ns, owner)] = Stored(owner, ns, rv, dumps(obj), obj["metadata"]["labels"], {},
                                      obj)
        return dict(sorted(out.items()))

    def _object(self, ns: str, owner: str, members: list) -> dict:
        first_pod = members[0][1]
        ref = members[0][2]
        labels = dict(first_pod["metadata"].get("labels") or {})
        labels.pop("pod-template-hash", None)
        created = min(p["metadata"].get("creationTimestamp") or "" for _, p, _ in members)
        n = len(members)
        ready = sum(1 for _, p, _ in members if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []))
        spec_pod = {k: v for k, v in (first_pod.get("spec") or {}).items() if k != "nodeName"}
        meta = {"name": owner, "namespace": ns, "uid": ref.get("uid", ""),
                "resourceVersion": str(max(s.rv for s, _, _ in members)),
                "generation": 1, "creationTimestamp": created, "labels": labels}
        spec: dict[str, Any] = {"selector": {"matchLabels": labels},
                                "template": {"metadata": {"labels": labels}, "spec": spec_pod}}
        if self.res.derived == "DaemonSet":
            spec["updateStrategy"] = {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
            status = {"currentNumberScheduled": n, "desiredNumberScheduled": n,
                      "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                      "updatedNumberScheduled": n, "observedGeneration": 1}
            if n - ready:
                status["numberUnavailable"] = n - ready
        else:
            spec["replicas"] = n
            status = {"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": ready,
                      "availableReplicas": ready, "observedGeneration": 1}
        return {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": meta,
                "spec": spec, "status": status}

    @property
    def items(self) -> dict[tuple[str, str], Stored]:
        if self._items is None:
            self._items = self._build()
        return self._items

    def keys_sorted(self) -> list[tuple[str, str]]:
        return list(self.items)

    def get(self, namespace: str, name: str) -> Stored | None:
        if self._items is None:
            return self._build(namespace, name).get((namespace, name))
        return self._items.get((namespace, name))

    def watch(self, since: int | None, namespace: str | None = None, match: Any = None):
        from lab.store import Watcher

        watcher = Watcher(self, namespace, match or (lambda s: True))  # type: ignore[arg-type]
        backlog = []
        if not since:
            backlog = [WatchEvent("ADDED", s) for s in self.items.values()
                       if (not namespace or s.namespace == namespace)
                       and (match is None or match(s))]
        return watcher, backlog


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode()
    return bytes(chunk)


async def _bytes_iter(source: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in source:
            if chunk:
                yield _as_bytes(chunk)
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                pass


PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def apply_patch(target: dict, patch: Any, patch_type: str) -> Any:
    """Apply a PATCH body by its Content-Type (a full media type or just json/merge/strategic)."""
    kind = patch_type.split(";")[0].strip().lower()
    if kind in ("application/json-patch+json", "json"):
        return apply_json_patch(target, patch)
    if kind in ("application/merge-patch+json", "merge", "application/apply-patch+yaml"):
        return apply_merge_patch(target, patch)
    if kind in ("application/strategic-merge-patch+json", "strategic"):
        return apply_strategic_merge_patch(target, patch)
    raise PatchError(f"unsupported patch type: {patch_type}")


# -- patches: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902) --------
# Every function returns a new object and leaves its inputs untouched.

# Lists merged element by element on these keys (the API's patchMergeKey). Keyed by field name,
# which is unambiguous across the objects the lab serves. Node taints carry no merge key in the
# API, so a strategic patch replaces the whole list (what `kubectl taint` relies on to remove one).
MERGE_KEYS: dict[str, str | tuple[str, ...]] = {
    "conditions": "type",
    "addresses": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
}
# Lists of scalars merged as sets (patchStrategy merge without a key).
MERGE_SCALARS = {"finalizers", "podCIDRs"}


class PatchError(ValueError):
    """The patch cannot be applied (the API answers 422 or 400)."""


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


# -- RFC 7386 --------------------------------------------------------------------------------------

def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


def apply_merge_patch(target: dict, patch: Any) -> Any:
    """JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    return _merge(_copy(target), _copy(patch))


# -- strategic merge patch -----------------------------------------------------------------------

def _key_of(item: Any, key: str | tuple[str, ...]) -> Any:
    if not isinstance(item, dict):
        return None
    if isinstance(key, tuple):
        return tuple(item.get(k) for k in key)
    return item.get(key)


def _merge_list(current: list, patch: list, key: str | tuple[str, ...],
                keys: dict[str, str | tuple[str, ...]]) -> list:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [p for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    result = list(current)
    for item in patch:
        if not isinstance(item, dict):
            if item not in result:
                result.append(item)
            continue
        k = _key_of(item, key)
        if item.get("$patch") == "delete":
            result = [r for r in result if _key_of(r, key) != k]
            continue
        for i, existing in enumerate(result):
            if _key_of(existing, key) == k:
                result[i] = _strategic(existing if isinstance(existing, dict) else {}, item, keys)
                break
        else:
            result.append(_strategic({}, item, keys))
    return result


def _order(items: list, order: list, key: str | tuple[str, ...] | None) -> list:
    if key is None:
        rank = {json.dumps(v, sort_keys=True): i for i, v in enumerate(order)}
        ident = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
    else:
        rank = {json.dumps(_key_of(v, key), sort_keys=True): i for i, v in enumerate(order)}
        ident = lambda v: json.dumps(_key_of(v, key), sort_keys=True)  # noqa: E731
    listed = [v for v in items if ident(v) in rank]
    listed.sort(key=lambda v: rank[ident(v)])
    rest = [v for v in items if ident(v) not in rank]
    return listed + rest


def _strategic(target: dict, patch: dict, keys: dict[str, str | tuple[str, ...]]) -> dict:
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = dict(target)
    orders: dict[str, list] = {}
    for name, value in patch.items():
        if name in ("$patch", "$retainKeys"):
            continue
        if name.startswith("$setElementOrder/"):
            orders[name.split("/", 1)[1]] = value
            continue
        if name.startswith("$deleteFromPrimitiveList/"):
            field = name.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(name, None)
            continue
        current = result.get(name)
        if isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(name, None)
            else:
                result[name] = _strategic(current if isinstance(current, dict) else {}, value, keys)
        elif isinstance(value, list) and name in keys:
            result[name] = _merge_list(current if isinstance(current, list) else [], value,
                                       keys[name], keys)
        elif isinstance(value, list) and name in MERGE_SCALARS:
            merged = list(current) if isinstance(current, list) else []
            for v in value:
                if v not in merged:
                    merged.append(v)
            result[name] = merged
        else:
            result[name] = value
    for name, order in orders.items():
        if isinstance(result.get(name), list) and isinstance(order, list):
            result[name] = _order(result[name], order, keys.get(name))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def apply_strategic_merge_patch(target: dict, patch: dict,
                                merge_keys: dict[str, str | tuple[str, ...]] | None = None) -> dict:
    """Strategic merge patch: like a merge patch, but lists with a merge key (conditions by type,
    addresses by type, containers by name, ...) merge element-wise, and `$patch`,
    `$setElementOrder/`, `$deleteFromPrimitiveList/` and `$retainKeys` directives are honoured.
    `merge_keys` adds or overrides keys, e.g. `{"taints": ("key", "effect")}`."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    keys = dict(MERGE_KEYS)
    if merge_keys:
        keys.update(merge_keys)
    return _strategic(_copy(target), _copy(patch), keys)


# -- RFC 6902 -------------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list, token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}")
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise PatchError(f"array index out of range: {idx}")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"missing path: /{'/'.join(tokens)}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, False)]
        else:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchError(f"missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, False))
    raise PatchError(f"missing path: /{'/'.join(tokens)}")


def apply_json_patch(target: Any, ops: list) -> Any:
    """JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = _copy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid json patch operation: {op!r}")
        kind = op["op"]
        tokens = _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, tokens, _copy(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)
            if not tokens:
                doc = _copy(op.get("value"))
            else:
                doc, _ = _remove(doc, tokens)
                doc = _add(doc, tokens, _copy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            if kind == "move":
                doc, value = _remove(doc, source)
            else:
                value = _copy(_get(doc, source))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
        else:
            raise PatchError(f"unknown json patch operation: {kind!r}")
    return doc
