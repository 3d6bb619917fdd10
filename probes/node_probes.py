"""Every probe of one node at once: the SSH quick checks, the kubelet's endpoints and its serving
certificate, and the API's facts about the node, in parallel (bounded), each with its own time
limit.

    probes = NodeProbes(kube, ssh, kubelet, "node-0004")
    probes.plan()                                  # [ProbeSpec(id, title, timeout), ...]
    observations = await probes.run(on_start=..., on_observation=...)

A probe that hangs is reported HUNG when its time limit passes and never holds up the others;
`on_observation` is called as each one completes, so a UI can show progress live. With
`until=` (e.g. a Diagnosis's `settled`), the run stops as soon as it returns True: the probes
still running are cancelled and only the finished ones are returned. `fleet=True` adds one list
call of every node ("api.nodes"), the siblings a blast radius is judged on. Without SSH
(`ssh=None`) the node checks come back SKIPPED with the reason; the same for the kubelet
endpoints without a KubeletClient and the API facts without a Kube.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from probes import certs, node_checks
from probes.kube import node_record, parse_time
from probes.observation import Observation, Status

if TYPE_CHECKING:
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.ssh import SshClient

__all__ = ["NodeProbes", "ProbeSpec", "API_TIMEOUT", "KUBELET_TIMEOUT", "GRACE",
           "pending_csrs", "fleet_records", "ready_words", "conditions_text"]

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0
KUBELET_TIMEOUT = 10.0
GRACE = 5.0  # beyond a check's command limit: the SSH connection may have to be opened first
CLOCK_TIMEOUT = 5.0  # reading the node's clock (`date -u +%s`) before judging its certificate
HANDSHAKE_TIMEOUT = 5.0  # the TLS handshake that fetches the kubelet's serving certificate
KUBELET_PORT = 10250
LEASE_DURATION = 40.0  # seconds: the default node lease duration
EVENTS_SHOWN = 20
CSR_STALE = 300.0  # seconds a CSR may wait before its pending is a finding
FLEET_KEYS = ("name", "ready", "zone", "pool", "os_image", "kernel", "kubelet_version")


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    id: str
    title: str
    timeout: float


@dataclass(frozen=True, slots=True)
class _Probe:
    spec: ProbeSpec
    limit: float  # the outer guard: when it passes the probe is reported HUNG
    call: Callable[[], Awaitable[Observation]] | None
    skip: str = ""  # why it cannot run
    via: str = ""


class NodeProbes:
    """The probes of one node: `plan()` lists them, `run()` runs them all."""

    def __init__(self, kube: Kube | None, ssh: SshClient | None, kubelet: KubeletClient | None,
                 node_name: str,
                 *, internal_ip: str | None = None, concurrency: int = 8,
                 api_pod_count: int | None = None, fleet: bool = False) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.kube = kube
        self.ssh = ssh
        self.kubelet = kubelet
        self.node = node_name
        self.internal_ip = internal_ip
        self.concurrency = concurrency
        self.api_pod_count = api_pod_count
        self.fleet = fleet
        if internal_ip:
            if ssh is not None and hasattr(ssh, "addresses"):
                ssh.addresses.setdefault(node_name, internal_ip)
            if kubelet is not None and hasattr(kubelet, "addresses"):
                kubelet.addresses.setdefault(node_name, internal_ip)

    # -- what runs ---------------------------------------------------------------------------------
    def _probes(self) -> list[_Probe]:
        out: list[_Probe] = []
        no_ssh = "no SSH configured (give --ssh-config, or a bastion) for the node checks"
        for c in node_checks.CHECKS:
            spec = ProbeSpec(c.id, c.title, c.timeout)
            if self.ssh is None:
                out.append(_Probe(spec, 0.0, None, no_ssh, "ssh"))
                continue
            call: Callable[[], Awaitable[Observation]]
            if c.id == "node.pods" and self.api_pod_count is not None:
                call = functools.partial(node_checks.pods, self.ssh, self.node,
                                         api_pod_count=self.api_pod_count)
            else:
                call = functools.partial(c.run, self.ssh, self.node)
            # node.apiserver runs two commands: the kubeconfig read is bounded by 5 s
            extra = 5.0 if c.id == "node.apiserver" else 0.0
            out.append(_Probe(spec, c.timeout + extra + GRACE, call, via="ssh"))
        kl = self.kubelet
        for pid, title, method in (
                ("kubelet.healthz", "kubelet /healthz (API proxy, else SSH)", "healthz"),
                ("kubelet.metrics", "kubelet /metrics reduced to signals", "metrics"),
                ("kubelet.configz", "kubelet /configz", "configz"),
                ("kubelet.goroutines", "kubelet goroutine dump", "goroutines")):
            spec = ProbeSpec(pid, title, KUBELET_TIMEOUT)
            if kl is None:
                out.append(_Probe(spec, 0.0, None, "no kubelet client configured", "auto"))
                continue

            def kcall(method: str = method) -> Awaitable[Observation]:
                return getattr(kl, method)(self.node, timeout=KUBELET_TIMEOUT)
            # the auto path may wait for the proxy, then try SSH: both inside the limit
            out.append(_Probe(spec, 2 * KUBELET_TIMEOUT + GRACE, kcall, via="auto"))
        spec = ProbeSpec("kubelet.cert.serving", "kubelet serving certificate (TLS handshake "
                         "to :10250)", CLOCK_TIMEOUT + HANDSHAKE_TIMEOUT)
        if kl is None:
            out.append(_Probe(spec, 0.0, None, "no kubelet client configured", "direct"))
        else:
            # the address may have to be asked of the API server first
            out.append(_Probe(spec, spec.timeout + API_TIMEOUT + GRACE, self._serving_cert,
                              via="direct"))
        api = [("api.node", "node object: Ready and who set it", self._api_node),
               ("api.lease", "node lease renew age", self._api_lease),
               ("api.events", "events of the node", self._api_events),
               ("api.csr", "the node's pending certificate signing requests", self._api_csr)]
        if self.fleet:
            api.append(("api.nodes", "every node (one list): the blast radius", self._api_nodes))
        for pid, title, fn in api:
            spec = ProbeSpec(pid, title, API_TIMEOUT)
            if self.kube is None:
                out.append(_Probe(spec, 0.0, None, "no kubeconfig: the API server is not "
                                                   "available", "apiserver"))
                continue
            out.append(_Probe(spec, API_TIMEOUT + GRACE, fn, via="apiserver"))
        return out

    def plan(self) -> list[ProbeSpec]:
        return [p.spec for p in self._probes()]

    # -- running -----------------------------------------------------------------------------------
    async def run(self, on_start: Callable[[str], None] | None = None,
                  on_observation: Callable[[Observation], None] | None = None,
                  until: Callable[[], bool] | None = None) -> list[Observation]:
        """Every probe, at most `concurrency` at once; the observations in plan order. With
        `until`, asked after each observation: once it says True the probes still running are
        cancelled and the finished ones returned."""
        probes = self._probes()
        sem = asyncio.Semaphore(self.concurrency)
        enough = asyncio.Event()
        done: dict[int, Observation] = {}

        def tell(fn: Callable[[Any], None] | None, arg: Any) -> None:
            if fn is None:
                return
            try:
                fn(arg)
            except Exception:  # a listener's bug must not stop the probes
                log.exception("node probe listener failed on %r", arg)

        def ask_until() -> None:
            if until is None or enough.is_set():
                return
            try:
                if until():
                    enough.set()
            except Exception:  # a broken stop test must not stop the probes
                log.exception("node probe stop test failed")

        async def one(i: int, p: _Probe) -> None:
            if p.call is None:
                obs = node_checks.skipped(p.spec.id, self.node, p.skip, p.via)
            else:
                async with sem:
                    tell(on_start, p.spec.id)
                    obs = await self._guarded(p)
            done[i] = obs
            tell(on_observation, obs)
            ask_until()

        tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(probes)]
        stop = asyncio.create_task(enough.wait())
        every = asyncio.create_task(asyncio.wait(tasks))
        try:
            await asyncio.wait({stop, every}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left = [t for t in tasks if not t.done()]
            for t in left + [stop, every]:
                t.cancel()
            await asyncio.gather(*left, stop, every, return_exceptions=True)
        return [done[i] for i in sorted(done)]

    async def _guarded(self, p: _Probe) -> Observation:
        started = time.time()
        t0 = time.monotonic()
        assert p.call is not None
        try:
            obs = await asyncio.wait_for(p.call(), p.limit)
        except TimeoutError:
            return Observation(p.spec.id, self.node, Status.HUNG, started,
                               time.monotonic() - t0,
                               f"{p.spec.title}: no result in {p.limit:g} s", {"limit": p.limit},
                               p.via, "", f"no result in {p.limit:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe's bug is an ERROR observation, the others go on
            reason = f"{type(exc).__name__}: {exc}"
            return Observation(p.spec.id, self.node, Status.ERROR, started,
                               time.monotonic() - t0, f"{p.spec.title} failed: {reason}", {},
                               p.via, "", reason)
        if obs.probe != p.spec.id:
            obs = Observation(p.spec.id, obs.node, obs.status, obs.started, obs.duration,
                              obs.summary, dict(obs.data, source_probe=obs.probe), obs.via,
                              obs.raw, obs.reason)
        return obs

    # -- the kubelet's serving certificate ---------------------------------------------------------
    async def _serving_cert(self) -> Observation:
        """The certificate the kubelet serves on :10250, from a handshake, judged on the node's
        clock when SSH can read it (else on ours): expired, not yet valid, under 7 days left."""
        probe = "kubelet.cert.serving"
        started = time.time()
        t0 = time.monotonic()
        try:
            if self.kubelet is None:
                raise LookupError("no kubelet client")
            host = await self.kubelet.node_address(self.node)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return Observation(probe, self.node, Status.ERROR, started, time.monotonic() - t0,
                               f"kubelet serving certificate: no address for {self.node} "
                               f"({reason.splitlines()[0]})", {}, "direct", "", reason)
        offset, clock_error = await self._node_clock_offset()
        port = int(getattr(self.kubelet, "port", KUBELET_PORT))
        obs = await certs.serving_certificate(
            self.node, host, port, node_now=None if offset is None else time.time() + offset,
            timeout=HANDSHAKE_TIMEOUT, probe=probe, expect_names=(self.node, host))
        data = dict(obs.data, address=f"{host}:{port}")
        if offset is not None:
            data["node_clock_offset"] = round(offset, 1)
        if clock_error:
            data["node_clock_error"] = clock_error
        return Observation(probe, self.node, obs.status, started, time.monotonic() - t0,
                           obs.summary, data, obs.via, obs.raw, obs.reason)

    async def _node_clock_offset(self) -> tuple[float | None, str]:
        """The node's clock minus ours, from `date -u +%s` over SSH; None and why when it cannot
        be read (the certificate is then judged on our clock)."""
        if self.ssh is None:
            return None, "no SSH: judged on the local clock"
        try:
            r = await asyncio.wait_for(self.ssh.run(self.node, "date -u +%s", CLOCK_TIMEOUT),
                                       CLOCK_TIMEOUT)
        except TimeoutError:
            return None, f"`date -u +%s` did not answer in {CLOCK_TIMEOUT:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return None, (str(exc) or type(exc).__name__).splitlines()[0][:200]
        first = (r.stdout or "").strip().splitlines()[:1]
        try:
            node_time = float(first[0]) if first and not r.timed_out else None
        except ValueError:
            node_time = None
        if node_time is None:
            return None, f"`date -u +%s` printed {(r.stdout or r.stderr or '').strip()[:60]!r}"
        ours = r.started + r.duration / 2 if r.started else time.time()
        return node_time + 0.5 - ours, ""  # `date +%s` drops the fraction: take the middle

    # -- the API's facts ---------------------------------------------------------------------------
    async def _get(self, path: str, params: dict[str, Any] | None, doing: str) -> dict:
        if self.kube is None:
            raise LookupError("no kubeconfig")
        return await asyncio.to_thread(self.kube.get_json, path, params,
                                       timeout=(5.0, API_TIMEOUT), doing=doing)

    async def _api(self, probe: str, path: str, params: dict[str, Any] | None, doing: str,
                   judge: Callable[[dict, float], tuple[Status, str, dict[str, Any], str]]
                   ) -> Observation:
        started = time.time()
        t0 = time.monotonic()
        try:
            obj = await self._get(path, params, doing)
        except Exception as exc:
            status = getattr(exc, "status", 0)
            reason = str(exc) or type(exc).__name__
            if status == 404 and probe == "api.lease":
                return Observation(probe, self.node, Status.BAD, started, time.monotonic() - t0,
                                   f"no lease for {self.node} in kube-node-lease: the kubelet "
                                   f"has never renewed one", {"path": path, "http_status": 404},
                                   "apiserver", reason[:2000])
            return Observation(probe, self.node, Status.ERROR, started, time.monotonic() - t0,
                               f"{doing}: {reason.splitlines()[0] if reason else 'failed'}",
                               {"path": path, "http_status": status}, "apiserver", "", reason)
        duration = time.monotonic() - t0
        try:
            status, summary, data, raw = judge(obj, time.time())
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            return Observation(probe, self.node, Status.ERROR, started, duration,
                               f"{doing}: the answer could not be read ({reason})",
                               {"path": path}, "apiserver", "", reason)
        data = dict(data, path=path)
        return Observation(probe, self.node, status, started, duration, summary, data,
                           "apiserver", raw)

    async def _api_node(self) -> Observation:
        def judge(obj: dict, now: float) -> tuple[Status, str, dict[str, Any], str]:
            if not isinstance(obj, dict) or obj.get("kind") not in (None, "Node"):
                raise ValueError("not a Node object")
            rec = node_record(obj)
            age = now - rec.heartbeat if rec.heartbeat else None
            pressures = [k for k in ("MemoryPressure", "DiskPressure", "PIDPressure",
                                     "NetworkUnavailable") if rec.conditions.get(k) == "True"]
            data = {"ready": rec.ready, "reason": rec.ready_reason,
                    "message": rec.ready_message, "set_by": rec.ready_by,
                    "heartbeat_age": None if age is None else round(age, 1),
                    "ready_since": rec.ready_since, "conditions": rec.conditions,
                    "pressures": pressures, "taints": rec.taints,
                    "unschedulable": rec.unschedulable, "kubelet_version": rec.kubelet_version,
                    "runtime": rec.runtime, "kernel": rec.kernel, "os_image": rec.os_image,
                    "internal_ip": rec.internal_ip, "zone": rec.zone,
                    "pods_capacity": rec.pods_capacity}
            if rec.internal_ip and self.kubelet is not None and \
                    hasattr(self.kubelet, "addresses"):
                self.kubelet.addresses.setdefault(self.node, rec.internal_ip)
            words = ready_words(rec, pressures,
                                f", heartbeat {age:.0f} s ago" if age is not None else "")
            raw = conditions_text(obj)
            bad = rec.ready != "True" or bool(pressures)
            return (Status.BAD if bad else Status.OK), words, data, raw

        return await self._api("api.node", f"/api/v1/nodes/{quote(self.node, safe='')}", None,
                               f"get node {self.node}", judge)

    async def _api_lease(self) -> Observation:
        def judge(obj: dict, now: float) -> tuple[Status, str, dict[str, Any], str]:
            spec = obj.get("spec") or {}
            renew = parse_time(spec.get("renewTime"))
            duration = float(spec.get("leaseDurationSeconds") or LEASE_DURATION)
            holder = spec.get("holderIdentity") or ""
            data = {"renew_time": spec.get("renewTime"), "lease_duration": duration,
                    "holder": holder}
            raw = f"renewTime={spec.get('renewTime')} leaseDurationSeconds={duration:g}"
            if not renew:
                data["renew_age"] = None
                return Status.BAD, "the node lease has no renewTime", data, raw
            age = now - renew
            data["renew_age"] = round(age, 1)
            if age > duration:
                return (Status.BAD, f"lease last renewed {age:.0f} s ago (more than its "
                                    f"{duration:g} s): the kubelet's heartbeats are not "
                                    f"reaching the API server", data, raw)
            return Status.OK, f"lease renewed {age:.0f} s ago", data, raw

        return await self._api(
            "api.lease",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
            f"{quote(self.node, safe='')}", None, f"get the lease of {self.node}", judge)

    async def _api_csr(self) -> Observation:
        def judge(obj: dict, now: float) -> tuple[Status, str, dict[str, Any], str]:
            items = obj.get("items")
            if not isinstance(items, list):
                raise ValueError("not a CertificateSigningRequest list")
            pending = pending_csrs(items, self.node, now)
            stale = [c for c in pending if c["age"] is None or c["age"] > CSR_STALE]
            data = {"pending": stale, "waiting": len(pending), "total_for_node":
                    sum(1 for c in items if _csr_user(c) == f"system:node:{self.node}")}
            raw = "\n".join(f"{c['name']} {c['signer']} {c['username']} "
                            f"age={'?' if c['age'] is None else _human(c['age'])} Pending"
                            for c in pending)
            if stale:
                first = stale[0]
                age = "" if first["age"] is None else f" for {_human(first['age'])}"
                return (Status.BAD, f"{len(stale)} CSR(s) of system:node:{self.node} pending "
                                    f"approval: {first['name']} ({first['signer']}){age}",
                        data, raw)
            if pending:
                return (Status.OK, f"{len(pending)} CSR(s) of system:node:{self.node} just "
                                   f"created, not approved yet", data, raw)
            return Status.OK, f"no pending CSRs of system:node:{self.node}", data, raw

        return await self._api("api.csr",
                               "/apis/certificates.k8s.io/v1/certificatesigningrequests", None,
                               f"list the certificate signing requests of {self.node}", judge)

    async def _api_nodes(self) -> Observation:
        started = time.time()
        t0 = time.monotonic()
        try:
            if self.kube is None:
                raise LookupError("no kubeconfig")
            records = await asyncio.to_thread(self.kube.list_nodes, 500, API_TIMEOUT)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return Observation("api.nodes", self.node, Status.ERROR, started,
                               time.monotonic() - t0, f"list nodes: {reason.splitlines()[0]}",
                               {}, "apiserver", "", reason)
        nodes = fleet_records(records)
        down = [n["name"] for n in nodes if n["ready"] != "True"]
        summary = f"{len(nodes)} nodes, {len(down)} not Ready"
        if down:
            summary += ": " + ", ".join(down[:8]) + (" ..." if len(down) > 8 else "")
        return Observation("api.nodes", self.node, Status.BAD if down else Status.OK, started,
                           time.monotonic() - t0, summary, {"nodes": nodes,
                                                            "not_ready": len(down)},
                           "apiserver", "")

    async def _api_events(self) -> Observation:
        def judge(obj: dict, now: float) -> tuple[Status, str, dict[str, Any], str]:
            items = obj.get("items")
            if not isinstance(items, list):
                raise ValueError("not an event list")

            def when(e: dict) -> float:
                return parse_time(e.get("lastTimestamp") or e.get("eventTime")
                                  or (e.get("metadata") or {}).get("creationTimestamp"))
            events = sorted(items, key=when)
            shown = [{"type": e.get("type", ""), "reason": e.get("reason", ""),
                      "message": (e.get("message") or "")[:300], "count": e.get("count") or 1,
                      "last": e.get("lastTimestamp") or e.get("eventTime") or ""}
                     for e in events[-EVENTS_SHOWN:]]
            warnings = [e for e in events if e.get("type") == "Warning"]
            reasons: dict[str, int] = {}
            for e in warnings:
                r = e.get("reason") or "?"
                reasons[r] = reasons.get(r, 0) + int(e.get("count") or 1)
            data = {"total": len(events), "warnings": len(warnings),
                    "warning_reasons": reasons, "events": shown}
            raw = "\n".join(f"{e['last']} {e['type']} {e['reason']}: {e['message']}"
                            for e in shown)
            if warnings:
                top = ", ".join(f"{r} x{c}" for r, c in sorted(reasons.items(),
                                                                key=lambda kv: -kv[1])[:4])
                return Status.BAD, f"{len(warnings)} warning events: {top}", data, raw
            last = f"; last {shown[-1]['reason']}" if shown else ""
            return Status.OK, f"{len(events)} events, no warnings{last}", data, raw

        selector = f"involvedObject.kind=Node,involvedObject.name={self.node}"
        return await self._api("api.events", "/api/v1/events",
                               {"fieldSelector": selector}, f"list events of {self.node}",
                               judge)


def ready_words(rec: Any, pressures: list[str], heartbeat: str = "",
                has_ready: bool = True) -> str:
    """One line on a node's Ready condition: its status, reason and who set it, `heartbeat`
    (", heartbeat 12 s ago"), the message and the pressure conditions that are True."""
    words = (f"Ready={rec.ready} ({rec.ready_reason or 'no reason'}, set by {rec.ready_by})"
             if has_ready else "no Ready condition") + heartbeat
    if rec.ready_message:
        words += f": {rec.ready_message[:160]}"
    if pressures:
        words += "; " + ", ".join(f"{p}=True" for p in pressures)
    return words


def conditions_text(node: dict) -> str:
    """A node object's conditions, one per line: TYPE=STATUS REASON MESSAGE."""
    conds = (node.get("status") or {}).get("conditions") or []
    return "\n".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')} "
                     f"{c.get('message', '')}".strip() for c in conds if isinstance(c, dict))


def _csr_user(item: dict) -> str:
    return str((item.get("spec") or {}).get("username") or "")


def _human(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"


def pending_csrs(items: list[dict], node: str, now: float) -> list[dict[str, Any]]:
    """CSRs of system:node:NODE that nobody has approved or denied (no status conditions)."""
    out = []
    for item in items:
        if not isinstance(item, dict) or _csr_user(item) != f"system:node:{node}":
            continue
        if ((item.get("status") or {}).get("conditions")) or (item.get("status") or {}).get(
                "certificate"):
            continue
        meta = item.get("metadata") or {}
        created = parse_time(meta.get("creationTimestamp"))
        out.append({"name": meta.get("name") or "?",
                    "signer": (item.get("spec") or {}).get("signerName") or "",
                    "username": _csr_user(item),
                    "age": round(now - created, 1) if created else None})
    return out


def fleet_records(records: list[Any]) -> list[dict[str, Any]]:
    """The few fields of each NodeRecord a blast radius groups by."""
    return [{k: getattr(r, k, "") for k in FLEET_KEYS} for r in records]
