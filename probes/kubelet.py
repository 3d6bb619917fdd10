"""The kubelet's own endpoints: healthz, metrics, configz, the goroutine dump and the node log
query, over three paths, each result saying which one it came by (`via`):

- "apiserver-proxy": `/api/v1/nodes/NAME/proxy/PATH` on the kubeconfig's API server, with its CA
  and credentials (client certificate, bearer token, exec plugin token) taken from the
  kubernetes client Configuration that `probes.kube.Kube` loaded;
- "direct": https://IP:10250/PATH with the same client certificate or token, the kubelet's
  serving certificate checked against the cluster CA (or not, when asked);
- "ssh": `curl -sk https://localhost:10250/PATH` on the node through a runner,
  `async (node, command, timeout) -> (exit_status, stdout, stderr, timed_out)`.

`via="auto"` tries the proxy first and falls back to SSH when the proxy fails the way a partition
makes it fail (dial tcp ...: i/o timeout, 500/502/503/504, no answer in time): the runbook's
partition case, where the control plane cannot reach the node and the bastion still can. The
failed attempt is kept in the result's `data["attempts"]` as evidence. The client remembers such a
failure per node: for `proxy_retry` seconds (60) the auto path asks over SSH first, quoting the
remembered attempt as evidence, and tries the proxy again after that (or at once when SSH gets no
answer), so a scrape loop does not wait for a dead proxy every time.

The path used when a call names none is the client's `via` (default "auto"); `path_named` turns
the command line's words (auto, proxy, direct, ssh) into these names.

Every call has connect and read timeouts and returns a `probes.observation.Observation`; nothing
raises. A probe that does not answer in time is `hung`; one that cannot run is `error` with the
reason; one that answers with a problem is `bad`.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import json
import re
import shlex
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from probes import metrics as metrics_mod
from probes.observation import Observation, Status

if TYPE_CHECKING:
    from probes.kube import Kube

__all__ = ["KubeletClient", "Fetch", "Runner", "PROXY", "DIRECT", "SSH", "AUTO", "PATH_WORDS",
           "path_named", "parse_goroutines", "partition_signature"]

PROXY, DIRECT, SSH, AUTO = "apiserver-proxy", "direct", "ssh", "auto"
PATH_WORDS = {"auto": AUTO, "proxy": PROXY, "direct": DIRECT, "ssh": SSH}
PROXY_RETRY = 60.0  # seconds the auto path goes to SSH first after the proxy showed a partition
KUBELET_PORT = 10250
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY = 64 << 20
RAW_LIMIT = 64_000

Runner = Callable[[str, str, float], Awaitable[tuple[int | None, str, str, bool]]]


@dataclass(slots=True)
class Fetch:
    """One GET by one path: what came back, or why nothing did."""

    via: str
    url: str
    status: int = 0  # HTTP status; 0 when there was no answer
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # why there is no answer (refused, TLS, DNS, ...)
    timed_out: bool = False
    started: float = 0.0
    duration: float = 0.0
    proxy_error: str = ""  # the API server's own Status message when its proxy failed
    remembered: float | None = None  # seconds ago, when quoted from an earlier call

    @property
    def answered(self) -> bool:
        return self.status > 0 and not self.proxy_error

    def text(self, limit: int | None = None) -> str:
        body = self.body if limit is None else self.body[:limit]
        return body.decode("utf-8", "replace")

    def attempt(self) -> dict[str, Any]:
        out = {"via": self.via, "url": self.url, "status": self.status,
               "error": self.error or self.proxy_error, "timed_out": self.timed_out,
               "duration": round(self.duration, 3)}
        if self.remembered is not None:
            out["remembered"] = True
            out["age"] = round(self.remembered, 1)
        return out


def path_named(word: str) -> str:
    """The path a command-line word names (auto, proxy, direct, ssh, or a path's own name)."""
    if word in PATH_WORDS.values():
        return word
    try:
        return PATH_WORDS[word]
    except KeyError:
        raise ValueError(f"unknown kubelet path {word!r} (one of: "
                         f"{', '.join(PATH_WORDS)})") from None


def _fallback_note(attempts: list[Fetch]) -> str:
    """` (the proxy failed: WHY)` for a result that came after a failed attempt, else ""."""
    if not attempts:
        return ""
    a = attempts[-1]
    why = a.error or a.proxy_error or a.status
    who = "the proxy" if a.via == PROXY else a.via
    if a.remembered is not None:
        return f" ({who} failed {a.remembered:.0f} s ago: {why}; asked over SSH first until it " \
               f"is tried again)"
    return f" ({who} failed: {why})"


def _spanning(last: Fetch, first: Fetch) -> Fetch:
    """`last`, timed from the start of `first`: the wait for a failed path is part of the probe."""
    last.duration += last.started - first.started
    last.started = first.started
    return last


def partition_signature(f: Fetch) -> bool:
    """The proxy failed the way it does when the API server cannot reach the node: no answer in
    time, the API server's own failure Status (500 "error trying to reach service: dial tcp
    ...: i/o timeout"), or a 502/503/504 from it or a load balancer in front. A 500 that is the
    kubelet's own answer passed through (healthz `[-]syncloop failed`) is not one."""
    if f.via != PROXY:
        return False
    if f.timed_out:
        return True
    if f.status in (502, 503, 504):
        return True
    if f.proxy_error and f.status >= 500:
        return True
    text = (f.proxy_error or f.error).lower()
    return "i/o timeout" in text or "dial tcp" in text or "no route to host" in text


def _proxy_status_message(body: bytes) -> str:
    """The message of an API server Status object (the proxy's own failure), else ""."""
    if not body.lstrip().startswith(b"{"):
        return ""
    try:
        obj = json.loads(body)
    except ValueError:
        return ""
    if isinstance(obj, dict) and obj.get("kind") == "Status" and obj.get("status") == "Failure":
        return str(obj.get("message") or obj.get("reason") or "")
    return ""


def _chain(err: BaseException):
    seen = set()
    todo = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if isinstance(x, BaseException))
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))


def _explain(err: BaseException, where: str) -> str:
    """A transport failure in words: refused, unreachable, TLS, DNS."""
    kubelet = not where.startswith("the API server")
    refused = f"connection refused: nothing listens on {where}" + \
        (" (is the kubelet running?)" if kubelet else "")
    for e in _chain(err):
        if isinstance(e, ssl.SSLCertVerificationError):
            return (f"TLS: {where} presented a certificate that does not verify "
                    f"({e.verify_message or e})" + ("; the kubelet's serving certificate may be "
                    "self-signed or not issued for this address" if kubelet else ""))
        if isinstance(e, ssl.SSLError):
            return f"TLS failure with {where}: {e.reason or e}"
        if isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and
                                                     e.errno == _errno.ECONNREFUSED):
            return refused
        if isinstance(e, OSError) and e.errno:
            name = _errno.errorcode.get(e.errno, str(e.errno))
            return f"{where}: {e.strerror or e} ([Errno {e.errno}] {name})"
    text = str(err) or type(err).__name__
    low = text.lower()
    if "connection refused" in low or "connect call failed" in low:
        return refused
    if "certificate verify failed" in low:
        return f"TLS: the certificate of {where} does not verify ({text[:200]})"
    return f"{where}: {type(err).__name__}: {text[:300]}"


def _tls_context(ca: str | None, cert: str | None, key: str | None, verify: bool) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


class KubeletClient:
    """The kubelet endpoints of any node, by any of the three paths.

    `kube` (a probes.kube.Kube) gives the API server, its CA and credentials, and node addresses;
    `runner` runs a command on a node over SSH. Either may be None: the paths that need it are
    then skipped with a reason. `verify_direct=False` accepts any serving certificate on direct
    connections (real kubelets often serve a self-signed one). `via` is the path of calls that
    name none. The client remembers the last metrics scrape of each node, so `metrics()` reports
    rates between consecutive calls, and a proxy that failed with the partition signature (see
    `fetch_auto`).
    """

    def __init__(self, kube: Kube | None = None, runner: Runner | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 port: int = KUBELET_PORT, verify_direct: bool = True,
                 addresses: dict[str, str] | None = None, ssh_curl_args: str = "",
                 via: str = AUTO, proxy_retry: float = PROXY_RETRY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.via = path_named(via)
        self.proxy_retry = proxy_retry
        self._clock = clock
        self._proxy_down: dict[str, tuple[float, Fetch]] = {}  # node -> (when, the failed fetch)
        self.kube = kube
        self.runner = runner
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.port = port
        self.verify_direct = verify_direct
        self.addresses = dict(addresses or {})
        self.ssh_curl_args = ssh_curl_args
        self._clients: dict[tuple, httpx.AsyncClient] = {}
        self._last: dict[str, metrics_mod.Scrape] = {}

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            try:
                await c.aclose()
            except Exception:
                pass

    async def __aenter__(self) -> KubeletClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- credentials from the kubeconfig ---------------------------------------------------------
    def _credentials(self) -> tuple[dict[str, str], str | None, str | None, str | None, bool]:
        """(headers, ca file, cert file, key file, verify) from the kube Configuration; runs
        the exec plugin's refresh hook when its token expired (call in a thread)."""
        if self.kube is None:
            raise LookupError("no kubeconfig: no credentials for the kubelet")
        cfg = self.kube.configuration
        headers = {"User-Agent": "nodewb/0.1"}
        token = cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token if token.lower().startswith("bearer ") \
                else f"Bearer {token}"
        elif getattr(cfg, "username", None) and getattr(cfg, "password", None):
            headers["Authorization"] = cfg.get_basic_auth_token()
        return (headers, cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file,
                bool(getattr(cfg, "verify_ssl", True)))

    def _client(self, via: str, ca: str | None, cert: str | None, key: str | None,
                verify: bool) -> httpx.AsyncClient:
        k = (via, ca, cert, key, verify)
        client = self._clients.get(k)
        if client is None:
            ctx = _tls_context(ca, cert, key, verify)
            client = httpx.AsyncClient(
                verify=ctx, trust_env=False, follow_redirects=False,
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
            self._clients[k] = client
        return client

    async def node_address(self, node: str) -> str:
        """The node's InternalIP: given at construction, else read from the API server."""
        ip = self.addresses.get(node)
        if ip:
            return ip
        kube = self.kube
        if kube is None:
            raise LookupError(f"no address known for {node} and no cluster to ask")

        def lookup() -> str:
            obj = kube.get_json(f"/api/v1/nodes/{quote(node, safe='')}",
                                timeout=(self.connect_timeout, self.read_timeout),
                                doing=f"get node {node}")
            for a in (obj.get("status") or {}).get("addresses") or ():
                if a.get("type") == "InternalIP" and a.get("address"):
                    return str(a["address"])
            raise LookupError(f"node {node} has no InternalIP in its status")

        ip = await asyncio.to_thread(lookup)
        self.addresses[node] = ip
        return ip

    # -- one GET by one path ----------------------------------------------------------------------
    async def fetch(self, node: str, path: str, via: str, *, timeout: float | None = None,
                    accept: str = "*/*") -> Fetch:
        """GET `path` (with its query) from `node`'s kubelet by `via`. Never raises."""
        started = time.time()
        t0 = time.monotonic()
        try:
            if via == PROXY:
                f = await self._fetch_http(node, path, PROXY, timeout, accept)
            elif via == DIRECT:
                f = await self._fetch_http(node, path, DIRECT, timeout, accept)
            elif via == SSH:
                f = await self._fetch_ssh(node, path, timeout)
            else:
                f = Fetch(via, path, error=f"unknown path {via!r}")
        except Exception as err:  # a surprise in a transport must not escape
            f = Fetch(via, path, error=f"{type(err).__name__}: {err}")
        f.started, f.duration = started, time.monotonic() - t0
        return f

    async def _fetch_http(self, node: str, path: str, via: str, timeout: float | None,
                          accept: str) -> Fetch:
        if self.kube is None and via == PROXY:
            return Fetch(via, path, error="no kubeconfig: the API server's node proxy is not "
                                          "available")
        if via == PROXY and self.kube is not None:
            url = f"{self.kube.server}/api/v1/nodes/{quote(node, safe='')}/proxy{path}"
            where = f"the API server at {self.kube.server}"
        else:
            try:
                ip = await self.node_address(node)
            except Exception as err:
                return Fetch(via, path, error=f"no address for {node}: {err}")
            host = f"[{ip}]" if ":" in ip else ip
            url = f"https://{host}:{self.port}{path}"
            where = f"{ip}:{self.port}"
        if self.kube is not None:
            try:
                headers, ca, cert, key, verify = await asyncio.to_thread(self._credentials)
            except Exception as err:
                return Fetch(via, url, error=f"credentials from the kubeconfig: {err}")
        else:
            headers, ca, cert, key, verify = {"User-Agent": "nodewb/0.1"}, None, None, None, True
        if via == DIRECT and not self.verify_direct:
            verify = False
        headers = dict(headers, Accept=accept)
        t = httpx.Timeout(timeout or self.read_timeout, connect=self.connect_timeout)
        for attempt in (0, 1):
            try:
                client = self._client(via, ca, cert, key, verify)
            except (ssl.SSLError, OSError) as err:
                return Fetch(via, url, error=f"TLS setup from the kubeconfig failed: {err}")
            try:
                async with client.stream("GET", url, headers=headers, timeout=t) as r:
                    body = b""
                    async for chunk in r.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY:
                            return Fetch(via, url, r.status_code, body[:MAX_BODY],
                                         dict(r.headers), f"body larger than {MAX_BODY} bytes")
                    status, hdrs = r.status_code, dict(r.headers)
            except httpx.TimeoutException as err:
                kind = "connecting to" if isinstance(err, httpx.ConnectTimeout) else \
                    "waiting for an answer from"
                limit = self.connect_timeout if isinstance(err, httpx.ConnectTimeout) \
                    else (timeout or self.read_timeout)
                return Fetch(via, url, error=f"timed out {kind} {where} after {limit:g} s",
                             timed_out=True)
            except (httpx.HTTPError, OSError, ssl.SSLError) as err:
                return Fetch(via, url, error=_explain(err, where))
            if status == 401 and attempt == 0 and self.kube is not None:
                try:
                    renewed = await asyncio.to_thread(self.kube.reauthenticate)
                except Exception:
                    renewed = False
                if renewed:
                    headers2, ca, cert, key, verify = await asyncio.to_thread(self._credentials)
                    headers = dict(headers2, Accept=accept)
                    if via == DIRECT and not self.verify_direct:
                        verify = False
                    continue
            f = Fetch(via, url, status, body, hdrs)
            if via == PROXY and status >= 400:
                f.proxy_error = _proxy_status_message(body)
            return f
        raise AssertionError("unreachable")

    async def _fetch_ssh(self, node: str, path: str, timeout: float | None) -> Fetch:
        url = f"https://localhost:{self.port}{path}"
        if self.runner is None:
            return Fetch(SSH, url, error="no SSH runner configured")
        limit = timeout or self.read_timeout
        marker = "__nodewb_http_code__"
        command = (f"curl -sk --connect-timeout {self.connect_timeout:g} --max-time {limit:g} "
                   f"{self.ssh_curl_args + ' ' if self.ssh_curl_args else ''}"
                   f"-w '\\n{marker}%{{http_code}}\\n' {shlex.quote(url)}")
        try:
            code, out, err, timed_out = await self.runner(node, command, limit + 10.0)
        except Exception as exc:
            return Fetch(SSH, url, error=f"could not run curl on {node} over SSH: {exc}")
        if timed_out:
            return Fetch(SSH, url, error=f"curl on {node} did not return in {limit + 10:g} s",
                         timed_out=True)
        body, sep, tail = out.rpartition("\n" + marker)
        if not sep:
            body, tail = out, ""
        try:
            status = int(tail.strip()[:3] or 0)
        except ValueError:
            status = 0
        if code not in (0, None) or status == 0:
            why = {6: "cannot resolve localhost", 7: f"connection refused: nothing listens on "
                   f"localhost:{self.port} on {node} (is the kubelet running?)",
                   28: f"curl timed out on {node}", 35: "TLS handshake failed",
                   127: f"curl is not installed on {node}"}.get(code or -1, "")
            detail = (err.strip() or out.strip())[:300]
            f = Fetch(SSH, url, error=(why or f"curl exited {code}") + (f" ({detail})"
                                                                       if detail else ""))
            f.timed_out = code == 28
            return f
        return Fetch(SSH, url, status, body.encode("utf-8", "surrogateescape"))

    async def fetch_auto(self, node: str, path: str, via: str | None = None, *,
                         timeout: float | None = None, accept: str = "*/*") -> tuple[Fetch, list]:
        """One GET by `via` (default: the client's), or by AUTO: the proxy, then SSH when the
        proxy shows the partition signature (or, with no kubeconfig, SSH then direct). Returns
        the fetch that decided and the list of attempts before it.

        After a partition-signature failure of the proxy, AUTO asks over SSH first for
        `proxy_retry` seconds and quotes the remembered failure as its attempt; when SSH gets no
        answer in that time the proxy is tried again at once."""
        via = path_named(via) if via else self.via
        if via != AUTO:
            return await self.fetch(node, path, via, timeout=timeout, accept=accept), []
        if self.kube is None:
            if self.runner is not None:
                return await self.fetch(node, path, SSH, timeout=timeout, accept=accept), []
            return await self.fetch(node, path, DIRECT, timeout=timeout, accept=accept), []
        remembered = self.proxy_failure(node) if self.runner is not None else None
        if remembered is not None:
            over_ssh = await self.fetch(node, path, SSH, timeout=timeout, accept=accept)
            if over_ssh.status > 0:
                return over_ssh, [remembered]
            return _spanning(await self._proxy_auto(node, path, timeout, accept), over_ssh), \
                [over_ssh]
        first = await self._proxy_auto(node, path, timeout, accept)
        if not partition_signature(first) or self.runner is None:
            return first, []
        second = await self.fetch(node, path, SSH, timeout=timeout, accept=accept)
        return _spanning(second, first), [first]

    async def _proxy_auto(self, node: str, path: str, timeout: float | None,
                          accept: str) -> Fetch:
        """A proxy GET of the auto path: a partition-signature failure is remembered for the
        node, any other outcome forgets an earlier one."""
        f = await self.fetch(node, path, PROXY, timeout=timeout, accept=accept)
        if partition_signature(f):
            self._proxy_down[node] = (self._clock(), f)
        else:
            self._proxy_down.pop(node, None)
        return f

    def proxy_failure(self, node: str) -> Fetch | None:
        """The proxy's partition-signature failure for `node` in the last `proxy_retry`
        seconds (a copy saying how long ago), else None."""
        entry = self._proxy_down.get(node)
        if entry is None:
            return None
        at, f = entry
        age = self._clock() - at
        if age >= self.proxy_retry:
            return None
        return replace(f, remembered=max(0.0, age))

    # -- the observations --------------------------------------------------------------------------
    def _fail(self, probe: str, node: str, f: Fetch, attempts: list[Fetch],
              what: str) -> Observation | None:
        """The observation for a fetch that got no kubelet answer (or a refusal), else None."""
        data: dict[str, Any] = {"url": f.url}
        if attempts:
            data["attempts"] = [a.attempt() for a in attempts]
            data["fallback_from"] = attempts[-1].attempt()
        if f.timed_out:
            return Observation(probe, node, Status.HUNG, f.started, f.duration,
                               f"{what} via {f.via}: no answer ({f.error})", data, f.via, "",
                               f.error)
        if f.error:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"{what} via {f.via} failed: {f.error}", data, f.via, "", f.error)
        if f.proxy_error:
            reason = f"the API server could not reach the kubelet: {f.proxy_error}"
            data["status_code"] = f.status
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"{what} via {f.via} failed ({f.status}): {reason}", data, f.via,
                               f.text(2000), reason)
        if f.status in (401, 403):
            if f.via == SSH:
                reason = (f"the kubelet refused an anonymous request ({f.status}); over SSH only "
                          f"/healthz answers without credentials")
            elif f.status == 401:
                reason = "the kubelet or the API server did not accept the kubeconfig's credentials"
            else:
                reason = ("forbidden: the kubeconfig's user may not use this kubelet endpoint "
                          "(check RBAC for nodes/proxy)")
            data["status_code"] = f.status
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"{what} via {f.via}: {f.status} ({reason})", data, f.via,
                               f.text(2000), reason)
        return None

    def _base(self, f: Fetch, attempts: list[Fetch]) -> dict[str, Any]:
        data: dict[str, Any] = {"url": f.url, "status_code": f.status}
        if attempts:
            data["attempts"] = [a.attempt() for a in attempts]
            data["fallback_from"] = attempts[-1].attempt()
        return data

    async def healthz(self, node: str, via: str | None = None, *,
                      timeout: float | None = None) -> Observation:
        """200 `ok` is ok; 500 lists the failing checks (`[-]syncloop failed`) and is bad."""
        probe = "kubelet.healthz"
        f, attempts = await self.fetch_auto(node, "/healthz?verbose", via, timeout=timeout)
        failed = self._fail(probe, node, f, attempts, "healthz")
        if failed is not None:
            return failed
        text = f.text(RAW_LIMIT)
        data = self._base(f, attempts)
        checks = re.findall(r"^\[([+-])\]([\w.\-/]+) (ok|failed)(?:: (.*))?$", text, re.M)
        data["checks"] = {name: ("ok" if sign == "+" else "failed") for sign, name, _, _ in checks}
        failing = [name for sign, name, _, _ in checks if sign == "-"]
        data["failed_checks"] = failing
        fallback = _fallback_note(attempts)
        if f.status == 200:
            return Observation(probe, node, Status.OK, f.started, f.duration,
                               f"healthz 200 via {f.via}{fallback}", data, f.via, text.strip())
        if f.status == 404:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"healthz via {f.via}: 404 (no such endpoint)", data, f.via, text,
                               "404 from /healthz")
        lines = text.strip().splitlines()
        why = ", ".join(f"{n} failed" for n in failing) or (lines[-1] if lines else "") \
            or f"HTTP {f.status}"
        return Observation(probe, node, Status.BAD, f.started, f.duration,
                           f"healthz {f.status} via {f.via}: {why}{fallback}", data, f.via,
                           text.strip())

    async def scrape(self, node: str, via: str | None = None, *, timeout: float | None = None,
                     keep_raw: bool = False) -> tuple[Observation, metrics_mod.Scrape | None]:
        """/metrics read and parsed (the Observation has no figures yet: see `metrics`).
        `raw` is the whole payload with `keep_raw`, else the lines of the families read."""
        probe = "kubelet.metrics"
        f, attempts = await self.fetch_auto(node, "/metrics", via, timeout=timeout,
                                            accept="text/plain;version=0.0.4")
        failed = self._fail(probe, node, f, attempts, "metrics")
        if failed is not None:
            return failed, None
        data = self._base(f, attempts)
        if f.status != 200:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"metrics via {f.via}: HTTP {f.status}", data, f.via,
                               f.text(2000), f"HTTP {f.status}"), None
        s = metrics_mod.parse(f.body, at=f.started + f.duration)
        data.update(size=s.size, kept_lines=s.kept, bad_lines=s.bad_lines,
                    parse_ms=round(s.parse_seconds * 1000, 2), parse_errors=s.errors)
        if not s.ok:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"metrics via {f.via} unreadable: {s.error}", data, f.via,
                               f.text(2000), s.error), s
        if keep_raw:
            raw = f.text()
        else:
            raw = "\n".join(line.decode("utf-8", "replace")
                            for line in metrics_mod.prefilter(f.body))[:4 * RAW_LIMIT]
        return Observation(probe, node, Status.OK, f.started, f.duration,
                           f"metrics via {f.via}: {s.size} bytes", data, f.via, raw), s

    async def metrics(self, node: str, via: str | None = None, *, timeout: float | None = None,
                      keep_raw: bool = False) -> Observation:
        """/metrics reduced to figures (rates against this client's previous scrape of the node);
        bad when a runbook threshold is crossed. `keep_raw` quotes the whole payload in `raw`
        (for evidence bundles); otherwise `raw` holds the lines the figures came from."""
        obs, s = await self.scrape(node, via, timeout=timeout, keep_raw=keep_raw)
        if s is None or not s.ok:
            return obs
        prev = self._last.get(node)
        signals = metrics_mod.reduce(prev, s)
        self._last[node] = s
        data = dict(obs.data)
        data["signals"] = signals.as_dict()
        unreadable = f" ({s.bad_lines} line{'s' if s.bad_lines != 1 else ''} unreadable)" \
            if s.bad_lines else ""
        summary = f"metrics via {obs.via}{unreadable}: {signals.summary()}"
        return Observation(obs.probe, node, Status.BAD if signals.breaches() else Status.OK,
                           obs.started, obs.duration, summary, data, obs.via, obs.raw)

    async def configz(self, node: str, via: str | None = None, *,
                      timeout: float | None = None) -> Observation:
        probe = "kubelet.configz"
        f, attempts = await self.fetch_auto(node, "/configz", via, timeout=timeout,
                                            accept="application/json")
        failed = self._fail(probe, node, f, attempts, "configz")
        if failed is not None:
            return failed
        data = self._base(f, attempts)
        text = f.text(RAW_LIMIT)
        if f.status != 200:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"configz via {f.via}: HTTP {f.status}", data, f.via, text,
                               f"HTTP {f.status}")
        try:
            obj = json.loads(f.body)
            conf = obj["kubeletconfig"] if isinstance(obj, dict) and "kubeletconfig" in obj \
                else obj.get("componentconfig") if isinstance(obj, dict) else None
            if not isinstance(conf, dict):
                raise ValueError("no kubeletconfig object")
        except (ValueError, KeyError, AttributeError) as err:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"configz via {f.via}: not a kubelet configuration ({err})", data,
                               f.via, text[:2000], str(err))
        data["config"] = conf
        keys = ("cgroupDriver", "maxPods", "failSwapOn", "containerRuntimeEndpoint",
                "evictionHard", "rotateCertificates", "serverTLSBootstrap")
        shown = ", ".join(f"{k}={json.dumps(conf[k])}" for k in keys if k in conf)
        return Observation(probe, node, Status.OK, f.started, f.duration,
                           f"configz via {f.via}: {shown}", data, f.via, text)

    async def goroutines(self, node: str, via: str | None = None, *, timeout: float | None = None,
                         warn: int = 500) -> Observation:
        """The goroutine dump (debug=1): the total, the biggest groups and where they wait;
        bad above `warn` (the runbook's 500)."""
        probe = "kubelet.goroutines"
        f, attempts = await self.fetch_auto(node, "/debug/pprof/goroutine?debug=1", via,
                                            timeout=timeout)
        failed = self._fail(probe, node, f, attempts, "goroutine dump")
        if failed is not None:
            return failed
        data = self._base(f, attempts)
        text = f.text()
        if f.status != 200:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"goroutine dump via {f.via}: HTTP {f.status}", data, f.via,
                               text[:2000], f"HTTP {f.status}")
        dump = parse_goroutines(text)
        if dump["total"] is None:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"goroutine dump via {f.via}: not a debug=1 profile", data, f.via,
                               text[:2000], "no 'goroutine profile: total N' line")
        data.update(dump)
        total = dump["total"]
        top = dump["groups"][0] if dump["groups"] else None
        where = f"; largest group {top['count']} in {top['where']}" if top else ""
        cri = f"; {dump['waiting_on_cri']} waiting on CRI calls" if dump["waiting_on_cri"] else ""
        status = Status.BAD if total > warn else Status.OK
        return Observation(probe, node, status, f.started, f.duration,
                           f"{total} goroutines via {f.via}{where}{cri}", data, f.via,
                           text[:RAW_LIMIT])

    async def logs(self, node: str, query: str = "kubelet", *, tail_lines: int | None = 200,
                   since: float | str | None = None, pattern: str | None = None,
                   via: str | None = None, timeout: float | None = None) -> Observation:
        """The node log query (`/logs/?query=kubelet&tailLines=N&sinceTime=...`)."""
        probe = "kubelet.logs"
        params: dict[str, str] = {"query": query}
        if tail_lines is not None:
            params["tailLines"] = str(int(tail_lines))
        if since is not None:
            params["sinceTime"] = since if isinstance(since, str) else \
                datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if pattern:
            params["pattern"] = pattern
        path = "/logs/?" + urlencode(params, quote_via=quote, safe="")
        f, attempts = await self.fetch_auto(node, path, via, timeout=timeout)
        failed = self._fail(probe, node, f, attempts, "log query")
        if failed is not None:
            return failed
        data = self._base(f, attempts)
        text = f.text()
        if f.status == 400:
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"log query via {f.via} rejected: {text.strip()[:300]}", data,
                               f.via, text[:2000], text.strip()[:300])
        if f.status != 200:
            hint = " (the NodeLogQuery feature gate may be off)" if f.status == 404 else ""
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"log query via {f.via}: HTTP {f.status}{hint}", data, f.via,
                               text[:2000], f"HTTP {f.status}{hint}")
        if text.lstrip().lower().startswith(("<!doctype", "<pre", "<html")):
            reason = ("the kubelet answered with the /var/log listing: the NodeLogQuery "
                      "feature gate (or enableSystemLogQuery) is off")
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"log query via {f.via}: {reason}", data, f.via, text[:2000],
                               reason)
        lines = [] if text.strip() in ("-- No entries --", "") else text.rstrip("\n").split("\n")
        missing = [ln for ln in lines if ln.startswith("log not found for ")]
        if missing and len(missing) == len(lines):
            return Observation(probe, node, Status.ERROR, f.started, f.duration,
                               f"log query via {f.via}: {missing[0]}", data, f.via, text[:2000],
                               missing[0])
        data.update(lines=lines[-5000:], count=len(lines),
                    pleg_unhealthy=sum("PLEG is not healthy" in ln for ln in lines),
                    errors=sum(bool(re.search(r"\b(error|E\d{4} )", ln, re.I)) for ln in lines))
        return Observation(probe, node, Status.OK, f.started, f.duration,
                           f"{len(lines)} {query} journal lines via {f.via}"
                           + (f", {data['pleg_unhealthy']} 'PLEG is not healthy'"
                              if data["pleg_unhealthy"] else ""),
                           data, f.via, text[-RAW_LIMIT:])


# -- goroutine dumps -------------------------------------------------------------------------------
_GROUP = re.compile(r"^(\d+) @(?: 0x[0-9a-f]+)*\s*$", re.M)
_FRAME = re.compile(r"^#\t0x[0-9a-f]+\t(\S+)\+0x[0-9a-f]+\t+(.*)$", re.M)
_PARKING = ("runtime.gopark", "runtime.goparkunlock", "runtime.selectgo", "runtime.chanrecv",
            "runtime.chanrecv1", "runtime.chanrecv2", "runtime.chansend", "runtime.chansend1",
            "runtime.semacquire", "runtime.semacquire1", "runtime.netpollblock",
            "runtime.notetsleepg", "sync.runtime_SemacquireMutex", "sync.runtime_Semacquire",
            "sync.runtime_notifyListWait", "internal/poll.runtime_pollWait",
            "runtime.goparkunlock", "time.Sleep")
_CRI_CALLS = ("grpc.(*ClientConn).Invoke", "cri-api", "remote.(*remoteRuntimeService)")


def parse_goroutines(text: str) -> dict[str, Any]:
    """A `debug=1` goroutine profile: total, groups by size with the frame they wait in, and
    how many wait on a CRI call (gRPC Invoke) or in the PLEG relist."""
    m = re.search(r"^goroutine profile: total (\d+)", text, re.M)
    total = int(m.group(1)) if m else None
    groups: list[dict[str, Any]] = []
    cri = pleg = 0
    for block in re.split(r"\n\s*\n", text):
        g = _GROUP.search(block)
        if g is None:
            continue
        count = int(g.group(1))
        frames = [fn for fn, _ in _FRAME.findall(block)]
        where = next((fn for fn in frames if fn not in _PARKING and not fn.startswith("runtime.")),
                     frames[0] if frames else "?")
        joined = "\n".join(frames)
        if any(call in joined for call in _CRI_CALLS):
            cri += count
        if "pleg.(*GenericPLEG).Relist" in joined or "pleg.(*GenericPLEG).relist" in joined:
            pleg += count
        groups.append({"count": count, "where": where, "frames": frames[:8]})
    groups.sort(key=lambda x: -x["count"])
    return {"total": total, "groups": groups[:15], "group_count": len(groups),
            "waiting_on_cri": cri, "in_pleg_relist": pleg}
