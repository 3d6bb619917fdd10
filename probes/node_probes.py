"""Every probe of one node at once: the SSH quick checks, the kubelet's endpoints and the API's
facts about the node, in parallel (bounded), each with its own time limit.

    probes = NodeProbes(kube, ssh, kubelet, "node-0004")
    probes.plan()                                  # [ProbeSpec(id, title, timeout), ...]
    observations = await probes.run(on_start=..., on_observation=...)

A probe that hangs is reported HUNG when its time limit passes and never holds up the others;
`on_observation` is called as each one completes, so a UI can show progress live. Without SSH
(`ssh=None`) the node checks come back SKIPPED with the reason; the same for the kubelet
endpoints without a KubeletClient and the API facts without a Kube.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from probes import node_checks
from probes.kube import node_record, parse_time
from probes.observation import Observation, Status

__all__ = ["NodeProbes", "ProbeSpec", "API_TIMEOUT", "KUBELET_TIMEOUT", "GRACE"]

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0
KUBELET_TIMEOUT = 10.0
GRACE = 5.0  # beyond a check's command limit: the SSH connection may have to be opened first
LEASE_DURATION = 40.0  # seconds: the default node lease duration
EVENTS_SHOWN = 20


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

    def __init__(self, kube: Any | None, ssh: Any | None, kubelet: Any | None, node_name: str,
                 *, internal_ip: str | None = None, concurrency: int = 8,
                 api_pod_count: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.kube = kube
        self.ssh = ssh
        self.kubelet = kubelet
        self.node = node_name
        self.internal_ip = internal_ip
        self.concurrency = concurrency
        self.api_pod_count = api_pod_count
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
            if c.id == "node.pods" and self.api_pod_count is not None:
                count = self.api_pod_count

                def call(count: int = count) -> Awaitable[Observation]:
                    return node_checks.pods(self.ssh, self.node, api_pod_count=count)
            else:
                def call(c: node_checks.CheckSpec = c) -> Awaitable[Observation]:
                    return c.run(self.ssh, self.node)
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
        for pid, title, fn in (("api.node", "node object: Ready and who set it", self._api_node),
                               ("api.lease", "node lease renew age", self._api_lease),
                               ("api.events", "events of the node", self._api_events)):
            spec = ProbeSpec(pid, title, API_TIMEOUT)
            if self.kube is None:
                out.append(_Probe(spec, 0.0, None, "no kubeconfig: the API server is not "
                                                   "available", "apiserver"))
                continue
            out.append(_Probe(spec, API_TIMEOUT + GRACE, fn, via="apiserver"))
        return out

    def plan(self) -> list[ProbeSpec]:
        return [p.spec for p in self._probes()]

    # -- running ------------------------------------------------------------------------------------
    async def run(self, on_start: Callable[[str], None] | None = None,
                  on_observation: Callable[[Observation], None] | None = None
                  ) -> list[Observation]:
        """Every probe, at most `concurrency` at once; the observations in plan order."""
        probes = self._probes()
        sem = asyncio.Semaphore(self.concurrency)

        def tell(fn: Callable[[Any], None] | None, arg: Any) -> None:
            if fn is None:
                return
            try:
                fn(arg)
            except Exception:  # a listener's bug must not stop the probes
                log.exception("node probe listener failed on %r", arg)

        async def one(p: _Probe) -> Observation:
            if p.call is None:
                obs = node_checks.skipped(p.spec.id, self.node, p.skip, p.via)
                tell(on_observation, obs)
                return obs
            async with sem:
                tell(on_start, p.spec.id)
                obs = await self._guarded(p)
            tell(on_observation, obs)
            return obs

        return list(await asyncio.gather(*(one(p) for p in probes)))

    async def _guarded(self, p: _Probe) -> Observation:
        started = time.time()
        t0 = time.monotonic()
        assert p.call is not None
        try:
            obs = await asyncio.wait_for(p.call(), p.limit)
        except asyncio.TimeoutError:
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

    # -- the API's facts ------------------------------------------------------------------------------
    async def _get(self, path: str, params: dict[str, Any] | None, doing: str) -> dict:
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
            hb = f", heartbeat {age:.0f} s ago" if age is not None else ""
            words = (f"Ready={rec.ready} ({rec.ready_reason or 'no reason'}, set by "
                     f"{rec.ready_by}){hb}")
            if rec.ready_message:
                words += f": {rec.ready_message[:160]}"
            if pressures:
                words += "; " + ", ".join(f"{p}=True" for p in pressures)
            conds = (obj.get("status") or {}).get("conditions") or []
            raw = "\n".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')} "
                            f"{c.get('message', '')}".strip() for c in conds)
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
