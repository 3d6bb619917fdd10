"""Each lab node's kubelet HTTPS endpoints on `machine.ip:10250`, and the API server's way to them.

`kubelet_request()` is the one handler: the node listeners call it for direct HTTPS (the bastion's
view, authenticated like a kubelet with webhook authn: a client certificate from the lab CA or a
bearer token), and the API server's node proxy calls it through `proxy_request()` (trusted, but
only when the control plane can reach the node).

`KubeletServers` keeps one listening socket per node whose kubelet runs. Sockets are plain
non-blocking listeners watched by the event loop; TLS is set up per connection with the node's own
serving certificate, whose SSLContext is built on the first connection. A node whose kubelet is not
running has no listener at all, so connecting is refused exactly as on a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import html
import inspect
import json
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from lab import http as lab_http
from lab.cadvisor import pod_uid, render_cadvisor
from lab.faults import garble_metrics
from lab.metrics import KubeletMetrics, attach, render_configz, render_goroutines
from lab.pki import CA, Issued, server_context
from lab.timefmt import parse_rfc3339, rfc3339

KUBELET_PORT = 10250
PROXY_TIMEOUT = 5.0
MAX_TAIL_LINES = 100_000

Body = bytes | AsyncIterator[bytes]
TokenCheck = Callable[[str], "bool | Awaitable[bool]"]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


@dataclass
class KubeletResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""

    @property
    def text(self) -> str:
        return self.body.decode() if isinstance(self.body, (bytes, bytearray)) else ""


class KubeletUnavailable(ConnectionRefusedError):
    """Nothing listens on the node's kubelet port (the kubelet is not running)."""


def _text(status: int, body: str, extra: Mapping[str, str] | None = None) -> KubeletResponse:
    headers = {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff"}
    if extra:
        headers.update(extra)
    return KubeletResponse(status, headers, body.encode("utf-8", "surrogateescape"))


def _not_found() -> KubeletResponse:
    return _text(404, "404 page not found\n")


def _status_error(status: int, message: str, reason: str | None = None) -> KubeletResponse:
    """An API server Status object, as the node proxy answers when it cannot reach the kubelet."""
    obj: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": message}
    if reason:
        obj["reason"] = reason
    obj["code"] = status
    return KubeletResponse(status, {"Content-Type": JSON},
                           (json.dumps(obj, indent=2) + "\n").encode())


def _norm_query(query) -> dict[str, list[str]]:
    if query is None:
        return {}
    if isinstance(query, (str, bytes)):
        q = query.decode() if isinstance(query, bytes) else query
        return parse_qs(q.lstrip("?"), keep_blank_values=True)
    out: dict[str, list[str]] = {}
    for k, v in dict(query).items():
        out[k] = list(v) if isinstance(v, (list, tuple)) else [str(v)]
    return out


def _header(headers, name: str) -> str | None:
    if headers is None:
        return None
    get = getattr(headers, "get", None)
    if isinstance(headers, Mapping):
        for k, v in headers.items():
            if k.lower() == name.lower():
                return v
        return None
    return get(name) if get else None


def _path_label(path: str) -> str:
    p = path.strip("/")
    if p.startswith("metrics/cadvisor"):
        return "metrics/cadvisor"
    first = p.split("/", 1)[0]
    if first in ("healthz", "metrics", "pods", "logs", "configz", "debug", "stats"):
        return first
    return "other"


async def _authenticated(headers, peercert, authenticate_token: TokenCheck | None) -> bool:
    if peercert:
        return True
    auth = _header(headers, "authorization") or ""
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if authenticate_token is None:
        return True
    ok = authenticate_token(token)
    if inspect.isawaitable(ok):
        ok = await ok
    return bool(ok)


async def kubelet_request(machine, method: str, path: str, query=None, headers=None,
                          now: float | None = None, *, trusted: bool = False,
                          peercert: dict | None = None,
                          authenticate_token: TokenCheck | None = None) -> KubeletResponse:
    """Answer one request to `machine`'s kubelet as the real kubelet would.

    `trusted` is the API server's own connection (the node proxy); otherwise the caller must show a
    verified client certificate (`peercert`, as `ssl.getpeercert()` returns it) or a bearer token,
    except for /healthz. Raises KubeletUnavailable when the kubelet is not running.
    """
    now = time.time() if now is None else now
    machine.catch_up(now)
    if not machine.kubelet.running:
        raise KubeletUnavailable(f"dial tcp {machine.ip}:{KUBELET_PORT}: connect: "
                                 "connection refused")
    started = time.perf_counter()
    q = _norm_query(query)
    response = await _route(machine, method.upper(), path or "/", q, headers, now, trusted,
                            peercert, authenticate_token)
    metrics = machine.metrics
    if isinstance(metrics, KubeletMetrics) and response.status != 401:
        metrics.http_request(_path_label(path or "/"), method.upper(),
                             time.perf_counter() - started)
    return response


async def _route(machine, method: str, path: str, q: dict[str, list[str]], headers, now: float,
                 trusted: bool, peercert, authenticate_token) -> KubeletResponse:
    if path in ("/healthz", "/healthz/"):
        return _healthz(machine, now, "verbose" in q)
    if path.startswith("/healthz/"):
        return _healthz_check(machine, now, path[len("/healthz/"):])
    if not trusted and not await _authenticated(headers, peercert, authenticate_token):
        return KubeletResponse(401, {"Content-Type": TEXT}, b"Unauthorized")
    if method not in ("GET", "HEAD"):
        if path.startswith(("/exec/", "/run/", "/attach/", "/portForward/")):
            return _text(501, "Not implemented\n")
        return KubeletResponse(405, {"Content-Type": TEXT}, b"405: Method Not Allowed")
    if path == "/metrics":
        metrics = attach(machine)
        body = metrics.render(machine, now)
        faults = getattr(machine, "lab_faults", None)
        broken = faults.active("metrics-garbage", machine.name) if faults is not None else None
        if broken is not None:
            body = garble_metrics(body, broken["mode"])
        hdrs = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        if "gzip" in (_header(headers, "accept-encoding") or ""):
            body = gzip.compress(body, compresslevel=1)
            hdrs["Content-Encoding"] = "gzip"
        return KubeletResponse(200, hdrs, body)
    if path == "/metrics/cadvisor":
        return KubeletResponse(200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
                               render_cadvisor(machine, now))
    if path == "/configz":
        return KubeletResponse(200, {"Content-Type": JSON}, render_configz(machine))
    if path in ("/pods", "/pods/"):
        return KubeletResponse(200, {"Content-Type": JSON}, pod_list(machine, now))
    if path == "/debug/pprof/goroutine":
        try:
            debug = int((q.get("debug") or ["0"])[0] or 0)
        except ValueError:
            debug = 0
        attach(machine)
        body = render_goroutines(machine, now, debug=max(1, debug))
        return KubeletResponse(200, {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff"},
                               body)
    if path in ("/debug/pprof", "/debug/pprof/"):
        return KubeletResponse(200, {"Content-Type": "text/html; charset=utf-8"},
                               _pprof_index(machine, now).encode())
    if path == "/logs":
        return KubeletResponse(301, {"Location": "/logs/",
                                     "Content-Type": "text/html; charset=utf-8"},
                               b'<a href="/logs/">Moved Permanently</a>.\n\n')
    if path.startswith("/logs/"):
        return _logs(machine, path[len("/logs/"):], q, now)
    return _not_found()


# -- /healthz --------------------------------------------------------------------------------
def _checks(machine, now: float) -> list[tuple[str, bool]]:
    return [("ping", True), ("log", True), ("syncloop", machine.pleg_healthy(now))]


def _healthz(machine, now: float, verbose: bool) -> KubeletResponse:
    status, text = machine.kubelet_healthz(now)
    if status == 200 and verbose:
        lines = "".join(f"[+]{name} ok\n" for name, _ in _checks(machine, now))
        return _text(200, lines + "healthz check passed\n")
    if status == 200:
        return _text(200, text)
    return _text(status or 500, text)


def _healthz_check(machine, now: float, name: str) -> KubeletResponse:
    for check, ok in _checks(machine, now):
        if check == name.strip("/"):
            if ok:
                return _text(200, "ok")
            return _text(500, "internal server error: reason withheld\n")
    return _not_found()


def _pprof_index(machine, now: float) -> str:
    metrics = attach(machine)
    g = metrics.goroutines(machine, now)
    rows = [("allocs", 0), ("block", 0), ("cmdline", 0), ("goroutine", g), ("heap", 0),
            ("mutex", 0), ("profile", 0), ("threadcreate", 18 + machine.cpus), ("trace", 0)]
    body = "".join(f"<tr><td>{n}</td><td><a href='{k}?debug=1'>{k}</a></td></tr>\n"
                   for k, n in rows)
    return ("<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/\n<br>\n"
            "<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\n"
            "Types of profiles available:\n<table>\n"
            "<thead><td>Count</td><td>Profile</td></thead>\n"
            f"{body}</table>\n</body>\n</html>\n")


# -- /pods ------------------------------------------------------------------------------------
def _uid(*parts: str) -> str:
    from hashlib import sha1

    h = sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pod_object(machine, p, now: float) -> dict:
    from lab.shell_node import pod_container_id

    uid = pod_uid(machine, p)
    cid = pod_container_id(machine, p, p.restarts)
    started = max(p.created + 2, machine.containerd.since if p.daemon else p.created + 2)
    running = p.phase == "Running"
    labels = {"app": p.app}
    if p.owner_kind == "ReplicaSet":
        labels["pod-template-hash"] = p.owner_name.rsplit("-", 1)[-1]
    elif p.owner_kind == "DaemonSet":
        labels["controller-revision-hash"] = _uid("rev", p.owner_name)[:10].replace("-", "")
        labels["pod-template-generation"] = "1"
    meta = {
        "name": p.name, "namespace": p.namespace, "uid": uid,
        "resourceVersion": str(1000 + (int(uid[:6], 16) % 90000)),
        "creationTimestamp": rfc3339(p.created), "labels": labels,
        "annotations": {"kubernetes.io/config.seen":
                        rfc3339(machine.kubelet.since).replace("Z", ".000000000Z"),
                        "kubernetes.io/config.source": "api"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": p.owner_kind, "name": p.owner_name,
                             "uid": _uid(p.namespace, p.owner_kind, p.owner_name),
                             "controller": True, "blockOwnerDeletion": True}],
    }
    if p.deleting:
        meta["deletionTimestamp"] = rfc3339(now)
        meta["deletionGracePeriodSeconds"] = 30
    container = {
        "name": p.app, "image": p.image,
        "resources": {"requests": {"cpu": "100m", "memory": f"{max(1, p.memory // 1024 ** 2)}Mi"},
                      "limits": {"memory": f"{max(1, p.memory * 2 // 1024 ** 2)}Mi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    spec = {
        "containers": [container], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "serviceAccount": "default",
        "nodeName": machine.name, "securityContext": {}, "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300}],
        "priority": 2000001000 if p.daemon else 0, "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if p.daemon:
        spec["hostNetwork"] = p.namespace == "kube-system"
        spec["priorityClassName"] = "system-node-critical"
    ready = "True" if running else "False"
    state: dict
    if running:
        state = {"running": {"startedAt": rfc3339(started)}}
    elif p.phase == "Pending":
        state = {"waiting": {"reason": "ContainerCreating"}}
    else:
        state = {"terminated": {"exitCode": 0 if p.phase == "Succeeded" else 1,
                                "reason": "Completed" if p.phase == "Succeeded" else "Error",
                                "startedAt": rfc3339(started), "finishedAt": rfc3339(now),
                                "containerID": f"containerd://{cid}"}}
    cstatus = {"name": p.app, "state": state, "lastState": {}, "ready": running,
               "restartCount": p.restarts, "image": p.image,
               "imageID": f"{p.image.split(':')[0]}@sha256:{_uid('img', p.image).replace('-', '')}"
                          f"{_uid('img2', p.image).replace('-', '')[:32]}",
               "started": running}
    if running or p.phase != "Pending":
        cstatus["containerID"] = f"containerd://{cid}"
    status = {
        "phase": p.phase,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True" if running else "False",
             "lastProbeTime": None, "lastTransitionTime": rfc3339(started)},
            {"type": "Initialized", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": rfc3339(p.created)},
            {"type": "Ready", "status": ready, "lastProbeTime": None,
             "lastTransitionTime": rfc3339(started)},
            {"type": "ContainersReady", "status": ready, "lastProbeTime": None,
             "lastTransitionTime": rfc3339(started)},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": rfc3339(p.created)},
        ],
        "hostIP": machine.ip, "hostIPs": [{"ip": machine.ip}],
        "startTime": rfc3339(p.created + 1), "containerStatuses": [cstatus],
        "qosClass": "Burstable",
    }
    if p.pod_ip:
        status["podIP"] = p.pod_ip
        status["podIPs"] = [{"ip": p.pod_ip}]
    return {"metadata": meta, "spec": spec, "status": status}


def pod_list(machine, now: float) -> bytes:
    items = [pod_object(machine, p, now) for p in machine.pods]
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items},
                      separators=(",", ":")).encode()


# -- /logs/ -----------------------------------------------------------------------------------
VAR_LOG = ("alternatives.log", "amazon/", "apt/", "auth.log", "btmp", "cloud-init-output.log",
           "cloud-init.log", "containers/", "dist-upgrade/", "dmesg", "dpkg.log", "journal/",
           "kern.log", "landscape/", "lastlog", "pods/", "private/", "syslog",
           "unattended-upgrades/", "wtmp")


def _dir_listing(machine) -> bytes:
    names = set(VAR_LOG)
    for path in machine.files:
        if path.startswith("/var/log/"):
            rest = path[len("/var/log/"):]
            names.add(rest.split("/", 1)[0] + ("/" if "/" in rest else ""))
    rows = "".join(f'<a href="{html.escape(n, quote=True)}">{html.escape(n)}</a>\n'
                   for n in sorted(names))
    return ("<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n"
            + rows + "</pre>\n").encode()


def _bad_request(errors: list[str]) -> KubeletResponse:
    if len(errors) == 1:
        return _text(400, errors[0] + "\n")
    return _text(400, "[" + ", ".join(errors) + "]\n")


def journal_line(entry, hostname: str) -> str:
    """journalctl --utc --output=short-precise."""
    t = time.gmtime(entry.ts)
    micros = int(round((entry.ts % 1) * 1e6))
    if micros >= 1_000_000:
        micros = 999_999
    stamp = time.strftime("%b %d %H:%M:%S", t) + f".{micros:06d}"
    who = f"{entry.ident}[{entry.pid}]" if entry.pid else entry.ident
    return f"{stamp} {hostname} {who}: {entry.message}"


def _smart_case(pattern: str) -> int:
    return 0 if any(c.isupper() for c in pattern) else re.IGNORECASE


def _logs(machine, rest: str, q: dict[str, list[str]], now: float) -> KubeletResponse:
    queries = q.get("query")
    if queries is None:
        if rest:
            text = machine.files.get("/var/log/" + rest)
            if text is None:
                return _not_found()
            return _text(200, text)
        return KubeletResponse(200, {"Content-Type": "text/html; charset=utf-8"},
                               _dir_listing(machine))
    errors: list[str] = []
    services = [s.strip() for s in queries if s.strip()]
    if not services:
        errors.append('query: Required value: query cannot be empty')
    files = [s for s in services if s.startswith(("/", "\\"))]
    services = [s for s in services if s not in files]
    if len(services) > 4:
        errors.append(f"query: Too many: {len(services)}: must have at most 4 items")
    for s in services:
        if not re.fullmatch(r"[A-Za-z0-9_.@:\-]{1,100}", s):
            errors.append(f'query: Invalid value: "{s}": input contains unsupported characters')
    if files and (services or len(files) > 1):
        errors.append("query: Invalid value: cannot specify more than one file, or a file and a "
                      "service")
    since = until = None
    tail = None
    boot = None
    pattern = (q.get("pattern") or [""])[0]
    try:
        if (q.get("sinceTime") or [""])[0]:
            since = parse_rfc3339(q["sinceTime"][0])
    except ValueError as exc:
        errors.append(f'sinceTime: Invalid value: "{q["sinceTime"][0]}": {exc}')
    try:
        if (q.get("untilTime") or [""])[0]:
            until = parse_rfc3339(q["untilTime"][0])
    except ValueError as exc:
        errors.append(f'untilTime: Invalid value: "{q["untilTime"][0]}": {exc}')
    raw_tail = (q.get("tailLines") or [None])[0]
    if raw_tail is not None:
        try:
            tail = int(raw_tail)
            if tail < 0:
                raise ValueError
        except ValueError:
            errors.append(f'tailLines: Invalid value: "{raw_tail}": must be a non-negative integer')
    raw_boot = (q.get("boot") or [""])[0]
    if raw_boot:
        try:
            boot = int(raw_boot)
            if boot > 0:
                errors.append(f"boot: Invalid value: {boot}: must be less than 1")
        except ValueError:
            errors.append(f'boot: Invalid value: "{raw_boot}": must be an integer')
    regex = None
    if pattern:
        try:
            regex = re.compile(pattern, _smart_case(pattern))
        except re.error as exc:
            errors.append(f'pattern: Invalid value: "{pattern}": {exc}')
    if since is not None and until is not None and since > until:
        errors.append("untilTime: Invalid value: must be after `sinceTime`")
    if files and (since is not None or until is not None or tail is not None or pattern):
        errors.append("query: Invalid value: options cannot be used with a file")
    if errors:
        return _bad_request(errors)
    if files:
        text = machine.files.get("/var/log/" + files[0].lstrip("/\\"))
        if text is None:
            return _text(200, f"log not found for {files[0]}\n")
        return _text(200, text)

    entries = []
    missing = []
    for service in services:
        unit = service.removesuffix(".service")
        journal = machine.journals.get(unit)
        if journal is None:
            if machine.unit(unit) is None:
                missing.append(service)
            continue
        entries.extend(journal.entries)
    if missing and not entries and len(missing) == len(services):
        return _text(200, "".join(f"log not found for {s}\n" for s in missing))
    if boot is not None and boot < 0:
        entries = []  # the lab keeps only the current boot
    lines = []
    for e in sorted(entries, key=lambda e: e.ts):
        if boot == 0 and e.ts < machine.boot_time:
            continue
        if since is not None and e.ts < since:
            continue
        if until is not None and e.ts > until:
            continue
        if regex is not None and not regex.search(e.message):
            continue
        lines.append(journal_line(e, machine.name))
    if tail is not None:
        tail = min(tail, MAX_TAIL_LINES)
        lines = lines[-tail:] if tail else []
    if not lines:
        return _text(200, "-- No entries --\n")
    return _text(200, "\n".join(lines) + "\n")


# -- the API server's node proxy ----------------------------------------------------------------
async def proxy_request(machine, method: str, path: str, query=None, headers=None,
                        now: float | None = None, *, timeout: float = PROXY_TIMEOUT,
                        clock: Callable[[], float] | None = None) -> KubeletResponse:
    """GET /api/v1/nodes/NAME/proxy/PATH as the API server answers it.

    A partitioned node (`machine.api_reachable` False) costs the caller `timeout` seconds and ends
    in the dial timeout; a node without a running kubelet is refused at once.
    """
    now = time.time() if now is None else now
    machine.catch_up(now)
    target = f"{machine.ip}:{KUBELET_PORT}"
    if not machine.api_reachable:
        await asyncio.sleep(timeout)
        return _status_error(500, f"error trying to reach service: dial tcp {target}: i/o timeout")
    if not machine.kubelet.running:
        return _status_error(500, f"error trying to reach service: dial tcp {target}: connect: "
                                  f"connection refused")
    try:
        return await kubelet_request(machine, method, path, query, headers,
                                     clock() if clock else now, trusted=True)
    except KubeletUnavailable:
        return _status_error(500, f"error trying to reach service: dial tcp {target}: connect: "
                                  f"connection refused")


# -- the node listeners ---------------------------------------------------------------------------
def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class KubeletServers:
    """One HTTPS listener per machine on `machine.ip:port`, present while its kubelet runs."""

    def __init__(self, machines: Mapping[str, object], ca: CA, *,
                 clock: Callable[[], float] = time.time, port: int = KUBELET_PORT,
                 authenticate_token: TokenCheck | None = None, backlog: int = 64,
                 cert_lifetime: float = 365 * 86400.0) -> None:
        self.machines = machines
        self.ca = ca
        self.clock = clock
        self.port = port
        self.authenticate_token = authenticate_token
        self.backlog = backlog
        self.cert_lifetime = cert_lifetime
        self.issued: dict[str, Issued] = {}
        self._ctx: dict[str, object] = {}
        self._socks: dict[str, socket.socket] = {}
        self._conns: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        now = self.clock()
        for name, m in self.machines.items():
            attach(m)
            if not m.serving_cert_pem or name not in self.issued:
                self.issue(m, now)
            if self._on_change not in m.listeners:
                m.listeners.append(self._on_change)
            if m.kubelet.running:
                self._open(m)
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for m in self.machines.values():
            with contextlib.suppress(ValueError):
                m.listeners.remove(self._on_change)
        for name in list(self._socks):
            self._close(name)
        tasks = list(self._conns)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def issue(self, m, now: float) -> Issued:
        """The node's serving certificate (CN NODE@TIMESTAMP, SANs the node name and IP)."""
        since = m.kubelet.since or now
        issued = self.ca.issue(f"{m.name}@{int(since)}", not_before=since - 3600,
                               not_after=since + self.cert_lifetime, dns=(m.name,), ips=(m.ip,),
                               server=True)
        self.issued[m.name] = issued
        self._ctx.pop(m.name, None)
        m.serving_cert_pem = issued.cert_pem
        return issued

    async def proxy(self, machine, method: str, path: str, query=None, headers=None, *,
                    timeout: float = PROXY_TIMEOUT) -> KubeletResponse:
        """The API server's node proxy to `machine` (see `proxy_request`), on this lab's clock."""
        return await proxy_request(machine, method, path, query, headers, self.clock(),
                                   timeout=timeout, clock=self.clock)

    @property
    def listening(self) -> set[str]:
        return set(self._socks)

    def address(self, name: str) -> tuple[str, int]:
        return (self.machines[name].ip, self.port)

    # -- listening sockets follow the kubelet unit ------------------------------------------------
    def _on_change(self, m) -> None:
        if not self._started or self._loop is None:
            return
        running = m.kubelet.running
        if running and m.name not in self._socks:
            self._open(m)
        elif not running and m.name in self._socks:
            self._close(m.name)

    def _open(self, m) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((m.ip, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socks[m.name] = sock
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._accept, m, sock)

    def _close(self, name: str) -> None:
        sock = self._socks.pop(name, None)
        if sock is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        sock.close()

    def _accept(self, m, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = self.clock()
            try:
                m.catch_up(now)
            except Exception:
                pass
            if not m.kubelet.running:
                _rst(conn)
                self._on_change(m)
                return
            conn.setblocking(False)
            task = asyncio.ensure_future(self._serve(m, conn))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    def _context(self, m):
        ctx = self._ctx.get(m.name)
        if ctx is None:
            issued = self.issued.get(m.name) or self.issue(m, self.clock())
            ctx = server_context(self.ca, issued)
            self._ctx[m.name] = ctx
        return ctx

    async def _serve(self, m, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=lab_http.MAX_HEAD, loop=loop)
        done: asyncio.Future = loop.create_future()

        def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if not done.done():
                done.set_result(w)

        protocol = asyncio.StreamReaderProtocol(reader, connected, loop=loop)
        try:
            await loop.connect_accepted_socket(lambda: protocol, conn, ssl=self._context(m),
                                               ssl_handshake_timeout=15.0)
            writer: asyncio.StreamWriter = await asyncio.wait_for(done, 15.0)
        except Exception:
            with contextlib.suppress(OSError):
                conn.close()
            return

        async def handler(request: lab_http.Request) -> lab_http.Response:
            try:
                resp = await kubelet_request(m, request.method, request.path, request.query,
                                             request.headers, self.clock(),
                                             peercert=request.peercert,
                                             authenticate_token=self.authenticate_token)
            except KubeletUnavailable:
                # the kubelet went away under a kept-alive connection: the peer sees a reset
                self._on_change(m)
                writer.transport.abort()
                raise asyncio.CancelledError from None
            return lab_http.Response(resp.status, resp.body, list(resp.headers.items()),
                                     content_type=None)

        with contextlib.suppress(asyncio.CancelledError):
            await lab_http._Connection(handler, reader, writer).run()
