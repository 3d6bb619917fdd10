"""Cluster access from a kubeconfig, and node lists read as raw JSON into slim records.

The kubeconfig context is resolved into credentials (`probes.credentials.Credentials`, or a
kubernetes client `Configuration` for auth-provider users only); nothing is sent through the
kubernetes package. Requests go through a urllib3 pool of our own (`_pool`: the context's CA,
client certificate, TLS server name and proxy-url), made again when an exec plugin hands back a
new client certificate. Each request takes its Authorization header from those credentials
(bearer token through the exec plugin's refresh hook, else basic auth); a 401 runs the exec
plugin again or re-reads the tokenFile, once. No generated client models: bodies are read as
bytes and parsed with `json` straight into the records below. Lists are paged
(`limit`/`continue`) and yielded a page at a time, so a caller can show the first rows before
the last page arrives.
"""

from __future__ import annotations

import errno as _errno
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from probes.kubeconfig import ContextInfo, Kubeconfig, KubeError

__all__ = ["Kube", "KubeError", "NodeRecord", "NodePage", "WatchStream", "ContextInfo",
           "node_record", "parse_time", "age"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


@dataclass(slots=True)
class NodeRecord:
    """What the fleet view shows of one node. Lease renewals and pod counts are not here: they
    come from other streams (see probes.fleet) and are kept by the consumer beside the record."""

    name: str
    ready: str  # True | False | Unknown
    ready_reason: str
    ready_message: str
    ready_by: str  # kubelet | node-controller
    heartbeat: float  # Ready's lastHeartbeatTime, epoch seconds
    roles: str
    unschedulable: bool
    kubelet_version: str
    runtime: str
    kernel: str
    os_image: str
    internal_ip: str
    zone: str
    pool: str
    created: float
    pods_capacity: int
    conditions: dict[str, str] = field(default_factory=dict)  # type -> True|False|Unknown
    taints: list[str] = field(default_factory=list)  # key:effect
    resource_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ready_since: float = 0.0  # Ready's lastTransitionTime, epoch seconds

    @property
    def status(self) -> str:
        text = {"True": "Ready", "False": "NotReady"}.get(self.ready, "Unknown")
        return text + (",SchedulingDisabled" if self.unschedulable else "")


_TS_CACHE: dict[str, float] = {}
_INTERN: dict[str, str] = {}


def parse_time(text: str | None) -> float:
    """RFC 3339 (with or without fractions) to epoch seconds; 0.0 for empty or unreadable."""
    if not text:
        return 0.0
    value = _TS_CACHE.get(text)
    if value is None:
        try:
            value = datetime.fromisoformat(text).timestamp()
        except ValueError:
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            except ValueError:
                value = 0.0
        if len(_TS_CACHE) > 20_000:
            _TS_CACHE.clear()
        _TS_CACHE[text] = value
    return value


_ts = parse_time


def _intern(text: str) -> str:
    """One copy of strings that repeat across thousands of nodes (label keys and values)."""
    found = _INTERN.get(text)
    if found is None:
        if len(_INTERN) > 200_000:
            _INTERN.clear()
        _INTERN[text] = found = text
    return found


_ROLE_PREFIX = "node-role.kubernetes.io/"
_POOL_KEYS = ("eks.amazonaws.com/nodegroup", "cloud.google.com/gke-nodepool",
              "kubernetes.azure.com/agentpool", "karpenter.sh/nodepool",
              "node.kubernetes.io/pool")


def node_record(obj: dict[str, Any]) -> NodeRecord:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    raw_labels = meta.get("labels") or {}
    labels = {_intern(k): _intern(v) for k, v in raw_labels.items()}
    info = status.get("nodeInfo") or {}
    ready: dict[str, Any] = {}
    conditions: dict[str, str] = {}
    for c in status.get("conditions") or ():
        kind = c.get("type", "")
        conditions[_intern(kind)] = _intern(c.get("status", ""))
        if kind == "Ready":
            ready = c
    roles = sorted(k[len(_ROLE_PREFIX):] for k in labels if k.startswith(_ROLE_PREFIX)
                   and len(k) > len(_ROLE_PREFIX))
    ip = ""
    for a in status.get("addresses") or ():
        if a.get("type") == "InternalIP":
            ip = a.get("address", "")
            break
    try:
        pods = int((status.get("capacity") or {}).get("pods", "0"))
    except ValueError:
        pods = 0
    pool = ""
    for key in _POOL_KEYS:
        if key in labels:
            pool = labels[key]
            break
    reason = ready.get("reason", "")
    return NodeRecord(
        name=meta.get("name", ""),
        ready=_intern(ready.get("status", "Unknown")),
        ready_reason=_intern(reason),
        ready_message=_intern(ready.get("message", "")),
        ready_by="node-controller" if reason == "NodeStatusUnknown" else "kubelet",
        heartbeat=parse_time(ready.get("lastHeartbeatTime")),
        roles=_intern(",".join(roles) or "<none>"),
        unschedulable=bool(spec.get("unschedulable")),
        kubelet_version=_intern(info.get("kubeletVersion", "")),
        runtime=_intern(info.get("containerRuntimeVersion", "")),
        kernel=_intern(info.get("kernelVersion", "")),
        os_image=_intern(info.get("osImage", "")),
        internal_ip=ip,
        zone=labels.get("topology.kubernetes.io/zone")
        or labels.get("failure-domain.beta.kubernetes.io/zone", ""),
        pool=pool,
        created=parse_time(meta.get("creationTimestamp")),
        pods_capacity=pods,
        conditions=conditions,
        taints=[_intern(f"{t.get('key')}:{t.get('effect')}") for t in spec.get("taints") or ()],
        resource_version=meta.get("resourceVersion", ""),
        labels=labels,
        ready_since=parse_time(ready.get("lastTransitionTime")),
    )


@dataclass(slots=True)
class NodePage:
    """One page of a node list."""

    nodes: list[NodeRecord]
    resource_version: str  # the list's resourceVersion (the same on every page of one list)
    remaining: int | None  # remainingItemCount when the server says, else None
    last: bool


class WatchStream:
    """An open watch: `batches()` yields lists of raw event lines (bytes) as they arrive.

    `close()` may be called from another thread: it shuts the socket so a blocked read returns."""

    def __init__(self, response: Any, on_close: Callable[[WatchStream], None] | None = None):
        self.response = response
        self._on_close = on_close
        self.closed = False
        self.cancelled = False  # closed from outside (stop, rewind), not by the server

    def batches(self) -> Iterator[list[bytes]]:
        pending = b""
        response = self.response
        try:
            for data in response.stream(1 << 16, decode_content=True):
                if not data:
                    continue
                if pending:
                    data = pending + data
                if data.endswith(b"\n"):
                    pending = b""
                    lines = data.split(b"\n")
                    lines.pop()
                else:
                    lines = data.split(b"\n")
                    pending = lines.pop()
                if lines:
                    yield lines
        finally:
            self.close()

    def cancel(self) -> None:
        """Close from another thread: a blocked read returns with an error."""
        self.cancelled = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for step in ("shutdown", "close", "release_conn"):
            try:
                method = getattr(self.response, step, None)
                if method is not None:
                    method()
            except Exception:
                pass
        if self._on_close is not None:
            self._on_close(self)


TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


class Kube:
    """One cluster connection made from a kubeconfig (`--kubeconfig`, or `KUBECONFIG` with
    several files, or ~/.kube/config) and a context (or the current one)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.kubeconfig = Kubeconfig(kubeconfig)
        resolved = self.kubeconfig.resolve(context)
        self.resolved = resolved
        self.path = resolved.where
        self.context = resolved.context
        self.user = resolved.user_name
        self.cluster = resolved.cluster_name
        self.server = resolved.server
        self.configuration, self.exec_credential = resolved.configuration()
        self.pool = _pool(self.configuration)
        self._auth_lock = threading.Lock()
        self._cert = (self.configuration.cert_file, self.configuration.key_file)
        self._open: set[WatchStream] = set()
        self._open_lock = threading.Lock()

    # -- contexts ---------------------------------------------------------------------------------
    def contexts(self) -> list[ContextInfo]:
        """Every context of the merged kubeconfig; `current` marks its current-context."""
        return self.kubeconfig.contexts()

    # -- credentials ------------------------------------------------------------------------------
    def reauthenticate(self) -> bool:
        """After a 401: run the exec plugin again (or re-read a tokenFile). True when there
        is something new to try."""
        with self._auth_lock:
            if self.exec_credential is not None:
                self.exec_credential.refresh(self.configuration)
                self._renew_pool()
                return True
            if self.resolved.user.get("tokenFile"):
                fresh, _ = self.resolved.configuration()
                self.configuration.api_key.update(fresh.api_key)
                return True
        return False

    def _renew_pool(self) -> None:
        cert = (self.configuration.cert_file, self.configuration.key_file)
        if cert != self._cert:
            self._cert = cert
            self.pool = _pool(self.configuration)

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "nodewb/0.1", "Accept-Encoding": "gzip"}
        cfg = self.configuration
        token = cfg.get_api_key_with_prefix("BearerToken")  # runs the refresh hook
        if token:
            headers["Authorization"] = token
        elif cfg.username and cfg.password:
            headers["Authorization"] = cfg.get_basic_auth_token()
        return headers

    # -- requests ---------------------------------------------------------------------------------
    def request(self, path: str, params: dict[str, Any] | None = None, *,
                accept: str = "application/json", timeout: tuple[float, float] | None = None,
                doing: str = "") -> Any:
        """GET `path` and return the urllib3 response with its body unread (status 200).
        Anything else raises KubeError worded for a person; `status` carries the HTTP code."""
        import urllib3

        query = urlencode({k: ("true" if v is True else v) for k, v in (params or {}).items()
                           if v is not None and v != ""}, quote_via=quote, safe="")
        url = self.server + path + ("?" + query if query else "")
        connect, read = timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
        doing = doing or f"GET {path}"
        for attempt in (0, 1):
            try:
                response = self.pool.request(
                    "GET", url, headers=self._headers(accept), preload_content=False,
                    timeout=urllib3.Timeout(connect=connect, read=read), retries=_retries())
            except KubeError:
                raise
            except Exception as err:
                if attempt == 0 and _closed_under_us(err):
                    continue  # a kept-alive connection the server had just closed: a GET is safe
                raise self.explain(err, doing) from None
            if response.status == 200:
                return response
            body = _drain(response)
            if response.status == 401 and attempt == 0:
                try:
                    if self.reauthenticate():
                        continue
                except KubeError:
                    raise
            raise self._status_error(response.status, response.reason, body, doing)
        raise AssertionError("unreachable")

    def send(self, method: str, path: str, body: Any = None, *,
             content_type: str = "application/json", doing: str = "",
             timeout: tuple[float, float] | None = None) -> dict:
        """One write (POST, PUT, PATCH, DELETE) of `body` as JSON; the parsed answer (2xx).
        Anything else raises KubeError worded for a person, with `status`. Not retried: a
        write may have happened even when the answer was lost."""
        import urllib3

        doing = doing or f"{method} {path}"
        data = None if body is None else json.dumps(body).encode()
        connect, read = timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
        for attempt in (0, 1):
            headers = self._headers("application/json")
            headers.pop("Accept-Encoding", None)
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                response = self.pool.request(method, self.server + path, body=data,
                                             headers=headers, preload_content=True,
                                             retries=False,
                                             timeout=urllib3.Timeout(connect=connect, read=read))
            except Exception as err:
                raise self.explain(err, doing) from None
            if 200 <= response.status < 300:
                try:
                    return json.loads(response.data or b"{}")
                except ValueError:
                    return {}
            if response.status == 401 and attempt == 0 and self.reauthenticate():
                continue
            raise self._status_error(response.status, response.reason or "",
                                     response.data or b"", doing)
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: dict[str, Any] | None = None, *,
                 accept: str = "application/json", timeout: tuple[float, float] | None = None,
                 doing: str = "") -> dict:
        response = self.request(path, params, accept=accept, timeout=timeout, doing=doing)
        with self._tracked(response):
            try:
                data = response.read()
            except Exception as err:
                raise self.explain(err, doing or f"GET {path}") from None
        try:
            return json.loads(data)
        except ValueError:
            raise KubeError(f"the API server at {self.server} sent a body that is not JSON for "
                            f"{doing or path}: {data[:120]!r}") from None

    def pages(self, path: str, params: dict[str, Any] | None = None, *, chunk: int = 500,
              accept: str = "application/json", timeout: tuple[float, float] | None = None,
              doing: str = "", first: int | None = None) -> Iterator[dict]:
        """A paged list: yields each page's parsed body as it arrives. `first` makes the first
        page smaller, so something can be shown while the bulk is still on its way."""
        token = ""
        limit = first or chunk
        while True:
            query = dict(params or {}, limit=limit)
            limit = chunk
            if token:
                query["continue"] = token
            body = self.get_json(path, query, accept=accept, timeout=timeout, doing=doing)
            yield body
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def node_pages(self, chunk: int = 500, timeout: tuple[float, float] | None = None,
                   label_selector: str = "", first: int | None = None) -> Iterator[NodePage]:
        """The node list, a page at a time, as slim records (no client models)."""
        for body in self.pages("/api/v1/nodes", {"labelSelector": label_selector or None},
                               chunk=chunk, timeout=timeout, doing="list nodes", first=first):
            meta = body.get("metadata") or {}
            remaining = meta.get("remainingItemCount")
            yield NodePage([node_record(item) for item in body.get("items") or ()],
                           str(meta.get("resourceVersion") or ""),
                           int(remaining) if remaining is not None else None,
                           not meta.get("continue"))

    def list_nodes(self, chunk: int = 500, timeout: float = 20.0) -> list[NodeRecord]:
        """All nodes, read in chunks as raw JSON."""
        records: list[NodeRecord] = []
        for page in self.node_pages(chunk, (CONNECT_TIMEOUT, timeout)):
            records.extend(page.nodes)
        return records

    def watch(self, path: str, resource_version: str, *, timeout_seconds: int = 300,
              read_timeout: float = READ_TIMEOUT, params: dict[str, Any] | None = None,
              doing: str = "") -> WatchStream:
        """Open a watch from `resource_version` with bookmarks; the server ends it after
        `timeout_seconds`; a read that waits longer than `read_timeout` raises (a stalled peer)."""
        query = dict(params or {}, watch="true", resourceVersion=resource_version or None,
                     allowWatchBookmarks="true", timeoutSeconds=int(timeout_seconds))
        response = self.request(path, query, timeout=(CONNECT_TIMEOUT, read_timeout),
                                doing=doing or f"watch {path}")
        stream = WatchStream(response, self._forget)
        with self._open_lock:
            self._open.add(stream)
        return stream

    def _forget(self, stream: WatchStream) -> None:
        with self._open_lock:
            self._open.discard(stream)

    def _tracked(self, response: Any) -> _Tracked:
        return _Tracked(self, response)

    def close_streams(self) -> None:
        """Shut every open watch and body read (from any thread): blocked reads return."""
        with self._open_lock:
            streams = list(self._open)
        for stream in streams:
            stream.cancel()

    # -- errors -----------------------------------------------------------------------------------
    def identity(self) -> str:
        who = f"user {self.user!r}" if self.user else "no user"
        return f"{who} of context {self.context!r}"

    def _status_error(self, status: int, reason: str, body: bytes, doing: str) -> KubeError:
        message = ""
        try:
            message = str(json.loads(body).get("message") or "")
        except (ValueError, AttributeError):
            message = body[:200].decode("utf-8", "replace").strip()
        if status == 401:
            hint = (f"the exec plugin `{self.exec_credential.command_line}` returned a "
                    f"credential the server does not accept; run it in a shell to log in again"
                    if self.exec_credential else
                    "the token or client certificate is wrong or has expired; log in again or "
                    "renew it")
            return KubeError(f"the API server at {self.server} refused the credentials of "
                             f"{self.identity()} (401 Unauthorized) while trying to {doing}: "
                             f"{hint}; check with `kubectl --context {self.context} auth whoami`",
                             401)
        if status == 403:
            verb, _, what = doing.partition(" ")
            return KubeError(f"{self.identity()} may not {doing} (403 Forbidden from "
                             f"{self.server}: {message or reason}); check its RBAC with "
                             f"`kubectl --context {self.context} auth can-i {verb} "
                             f"{what or 'nodes'}`", 403)
        if status == 410:
            return KubeError(f"the API server at {self.server} no longer holds that "
                             f"resourceVersion (410 Gone): {message}", 410)
        return KubeError(f"the API server at {self.server} answered {status} {reason} to "
                         f"{doing}: {message}", status)

    def explain(self, err: BaseException, doing: str = "list nodes") -> KubeError:
        """A transport failure worded for a person: the URL, the errno, what to check."""
        if isinstance(err, KubeError):
            return err
        text = " | ".join(_chain_texts(err))
        low = text.lower()
        if "certificate verify failed" in low or "certificate_verify_failed" in low:
            if "unable to get local issuer" in low or "self-signed certificate" in low or \
                    "self signed certificate" in low or "unknown ca" in low:
                why = ("its certificate is signed by an unknown certificate authority (not the "
                       f"certificate-authority of cluster {self.cluster!r} in {self.path})")
            elif "hostname mismatch" in low or "doesn't match" in low or "ip address mismatch" \
                    in low:
                why = "its certificate is not valid for that host name or address"
            elif "expired" in low:
                why = "its certificate has expired"
            else:
                why = "its certificate could not be verified"
            detail = _ssl_detail(text)
            return KubeError(f"TLS failure talking to the API server at {self.server}: {why} "
                             f"({detail}); check the cluster's certificate-authority(-data) and "
                             f"that this is the right server")
        os_err = _find_oserror(err)
        if isinstance(os_err, socket.gaierror):
            return KubeError(f"cannot resolve the API server's host name in {self.server}: "
                             f"{os_err.strerror or os_err}; check the server address and DNS")
        if os_err is not None and os_err.errno:
            name = _errno.errorcode.get(os_err.errno, str(os_err.errno))
            reason = os_err.strerror or str(os_err)
            return KubeError(f"cannot reach the API server at {self.server}: {reason} "
                             f"([Errno {os_err.errno}] {name}); check the address and port, "
                             f"the VPN or tunnel, and that the server is running")
        if "timed out" in low or "timeout" in low:
            return KubeError(f"the API server at {self.server} did not answer in time "
                             f"({_first(text)}); it may be overloaded, stopped or unreachable")
        if "ssl" in low and ("wrong version number" in low or "handshake" in low
                             or "eof occurred" in low or "alert" in low):
            return KubeError(f"TLS failure talking to the API server at {self.server}: "
                             f"{_ssl_detail(text)}")
        if "name or service not known" in low or "nodename nor servname" in low or \
                "failed to resolve" in low:
            return KubeError(f"cannot resolve the API server's host name in {self.server}: "
                             f"{_first(text)}")
        if "connection" in low or "protocol" in low or "incomplete" in low:
            return KubeError(f"the connection to the API server at {self.server} failed while "
                             f"trying to {doing}: {_first(text)}")
        return KubeError(f"{doing} at {self.server} failed: {_first(text) or type(err).__name__}")


class _Tracked:
    """Registers a body read with its Kube so `close_streams` can cut it short."""

    def __init__(self, kube: Kube, response: Any) -> None:
        self.stream = WatchStream(response, kube._forget)
        self.kube = kube

    def __enter__(self) -> WatchStream:
        with self.kube._open_lock:
            self.kube._open.add(self.stream)
        return self.stream

    def __exit__(self, *exc: Any) -> None:
        self.kube._forget(self.stream)
        try:
            self.stream.response.release_conn()
        except Exception:
            pass


def _pool(cfg: Any) -> Any:
    """A urllib3 pool with the context's TLS settings: its CA, client certificate, and
    server name; through the cluster's proxy-url when it has one."""
    import ssl

    import urllib3

    options: dict[str, Any] = {"num_pools": 4, "maxsize": 8, "retries": _retries()}
    if getattr(cfg, "verify_ssl", True):
        options["cert_reqs"] = ssl.CERT_REQUIRED
        if cfg.ssl_ca_cert:
            options["ca_certs"] = cfg.ssl_ca_cert
        server_name = getattr(cfg, "tls_server_name", "")
        if server_name:
            options["server_hostname"] = server_name
            options["assert_hostname"] = server_name
    else:
        options["cert_reqs"] = ssl.CERT_NONE
    if cfg.cert_file:
        options["cert_file"] = cfg.cert_file
    if cfg.key_file:
        options["key_file"] = cfg.key_file
    proxy = getattr(cfg, "proxy", None)
    if proxy:
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def _closed_under_us(err: BaseException) -> bool:
    """The server closed the connection before answering (a pooled keep-alive connection it
    had just timed out), as opposed to a timeout or a refusal."""
    import http.client

    import urllib3

    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (http.client.RemoteDisconnected, ConnectionResetError,
                            BrokenPipeError)):
            return True
        if isinstance(cur, urllib3.exceptions.MaxRetryError):
            cur = cur.reason
            continue
        nxt = cur.args[1] if isinstance(cur, urllib3.exceptions.ProtocolError) and \
            len(cur.args) > 1 and isinstance(cur.args[1], BaseException) else None
        cur = nxt or cur.__cause__ or cur.__context__
    return False


def _retries() -> Any:
    import urllib3

    return urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0,
                         raise_on_status=False)


def _drain(response: Any) -> bytes:
    try:
        return response.read(1 << 16) or b""
    except Exception:
        return b""
    finally:
        try:
            response.release_conn()
        except Exception:
            pass


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (getattr(e, "reason", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
        for arg in getattr(e, "args", ()):
            if isinstance(arg, BaseException):
                todo.append(arg)


def _chain_texts(err: BaseException) -> list[str]:
    return [f"{type(e).__name__}: {e}" for e in _chain(err)]


def _find_oserror(err: BaseException) -> OSError | None:
    import ssl

    for e in _chain(err):
        if isinstance(e, OSError) and not isinstance(e, ssl.SSLError) and e.errno:
            return e
    return None


def _ssl_detail(text: str) -> str:
    low = text.lower()
    i = low.find("certificate verify failed")
    if i >= 0:
        end = text.find(")", i)
        return text[i:end if end > 0 else i + 120]
    return _first(text)


def _first(text: str) -> str:
    return text.split(" | ")[0].splitlines()[0][:240] if text else ""


def age(seconds_ago_ts: float, now: float | None = None) -> str:
    seconds = max(0, int((now or time.time()) - seconds_ago_ts))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"

