"""After an action: watch the node come back, or say plainly that it did not.

    verifier = Verifier(kube, ssh, kubelet, "node-0004", patterns=patterns_from_verdict(v))
    async for p in verifier.watch():      # a Progress every round
        show(p.checks)                    # [Check(name, ok, detail)]
    p.outcome                             # "verified" | "not fixed"; p.message says why

Each round reads, at once: the Ready condition, the lease's renew age, the kubelet's healthz,
the node's pods (Running vs Pending), the kubelet journal since the action for the error the
verdict quoted, and what the action promised (unschedulable after cordon/drain, the canary pod
running). "verified" needs every check to pass in two rounds in a row, the journal to have been
quiet for `quiet` seconds since the action, and (with `canary=True`) a canary pod that ran on the
node and was deleted. Otherwise, at `timeout`, "not fixed after N s" with what still fails.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from probes.kube import parse_time
from probes.node_checks import JOURNAL_PATTERNS
from triage import api_write

__all__ = ["Verifier", "Progress", "VCheck", "patterns_from_verdict", "VERIFIED", "NOT_FIXED",
           "LEASE_MAX_AGE", "DEFAULT_TIMEOUT"]

VERIFIED, NOT_FIXED = "verified", "not fixed"
LEASE_MAX_AGE = 40.0
DEFAULT_TIMEOUT = 180.0
DEFAULT_INTERVAL = 3.0
DEFAULT_QUIET = 20.0
CANARY_IMAGE = "nginx"
PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")

# When the verdict quotes no journal line, the errors each domain leaves in the kubelet journal.
_DOMAIN_PATTERNS: dict[str, tuple[str, ...]] = {
    "pleg_runtime_slow": ("PLEG is not healthy",),
    "runtime_down": ("container runtime is down", "failed to connect to containerd",
                     "PLEG is not healthy"),
    "cert_expired": ("x509: certificate has expired or is not yet valid", "Unauthorized"),
    "cni_network": ("cni plugin not initialized", "NetworkPluginNotReady",
                    "failed to create vxlan tunnel"),
    "disk_pressure": ("eviction manager: attempting to reclaim", "no space left on device"),
    "memory_pid_pressure": ("eviction manager: attempting to reclaim",
                            "resource temporarily unavailable"),
    "apiserver_unreachable": ("Failed to update lease", "Failed to ensure lease exists"),
    "kubelet_config": ("misconfiguration: kubelet cgroup driver",
                       "running with swap on is not supported"),
    "clock_skew": ("x509: certificate has expired or is not yet valid",),
}


def patterns_from_verdict(verdict: Any | None) -> list[tuple[str, str]]:
    """(label, regex) of the journal errors to watch for: the JOURNAL_PATTERNS quoted in the
    verdict domain's evidence, else in any confirmed domain's, else the domain's usual ones."""
    if verdict is None or verdict.verdict in ("healthy", "unknown"):
        return []
    known = dict(JOURNAL_PATTERNS)

    def found(domains: list[dict]) -> list[str]:
        text = " ".join(" ".join(d.get("evidence") or []) for d in domains)
        return [label for label, rx in JOURNAL_PATTERNS
                if label != "oom" and re.search(rx, text, re.I)]
    labels = found([d for d in verdict.domains if d.get("id") == verdict.verdict])
    if not labels:
        labels = list(_DOMAIN_PATTERNS.get(verdict.verdict, ()))
    return [(label, known[label]) for label in dict.fromkeys(labels) if label in known]


@dataclass(frozen=True)
class VCheck:
    name: str  # ready | conditions | schedulable | lease | healthz | pods | journal | canary
    ok: bool | None  # None: could not be checked (skipped), does not hold verification up
    detail: str

    def line(self) -> str:
        mark = "✔" if self.ok else ("·" if self.ok is None else "✘")
        return f"{mark} {self.name}: {self.detail}"


@dataclass
class Progress:
    node: str
    elapsed: float
    round: int
    checks: list[VCheck] = field(default_factory=list)
    done: bool = False
    outcome: str | None = None  # VERIFIED | NOT_FIXED when done
    message: str = ""

    @property
    def passing(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def line(self) -> str:
        failing = [c for c in self.checks if c.ok is False]
        state = "all checks pass" if not failing else \
            "; ".join(f"{c.name}: {c.detail}" for c in failing)
        return f"[{self.elapsed:5.1f} s] {state}"


class Verifier:
    def __init__(self, kube: Any, ssh: Any | None, kubelet: Any | None, node: str, *,
                 patterns: list[tuple[str, str]] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 interval: float = DEFAULT_INTERVAL, quiet: float = DEFAULT_QUIET,
                 canary: bool = False, expect: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.ssh, self.kubelet, self.node = kube, ssh, kubelet, node
        self.patterns = list(patterns or [])
        self.timeout, self.interval, self.quiet = timeout, interval, quiet
        self.canary = canary
        self.expect = dict(expect or {})
        self.clock = clock
        self._canary_ran = False

    async def run(self, on_progress: Callable[[Progress], None] | None = None) -> Progress:
        last: Progress | None = None
        async for p in self.watch():
            last = p
            if on_progress:
                on_progress(p)
        assert last is not None
        return last

    async def watch(self) -> AsyncIterator[Progress]:
        t0 = self.clock()
        streak = 0
        n = 0
        canary_pod = self.expect.get("canary_pod")
        try:
            while True:
                n += 1
                elapsed = self.clock() - t0
                checks = await self._round(elapsed, canary_pod)
                p = Progress(self.node, elapsed, n, checks)
                streak = streak + 1 if p.passing else 0
                if streak >= 2 and self.canary and not self._canary_ran:
                    canary = await self._run_canary(t0)
                    p.checks.append(canary)
                    if not canary.ok:
                        streak = 0
                if streak >= 2:
                    p.done, p.outcome = True, VERIFIED
                    p.message = f"verified after {self.clock() - t0:.0f} s: " + ", ".join(
                        c.detail for c in p.checks if c.ok and c.name in ("ready", "healthz"))
                    yield p
                    return
                if self.clock() - t0 >= self.timeout:
                    p.done, p.outcome = True, NOT_FIXED
                    failing = [c for c in p.checks if c.ok is False]
                    p.message = (f"not fixed after {self.timeout:.0f} s: "
                                 + "; ".join(f"{c.name}: {c.detail}" for c in failing))
                    yield p
                    return
                yield p
                await asyncio.sleep(max(0.0, min(self.interval,
                                                 self.timeout - (self.clock() - t0))))
        finally:
            if canary_pod:
                await self._delete_pod("default", canary_pod)

    # -- one round ----------------------------------------------------------------------------
    async def _round(self, elapsed: float, canary_pod: str | None) -> list[VCheck]:
        jobs = [self._node(), self._lease(), self._healthz(), self._pods(canary_pod),
                self._journal(elapsed)]
        if canary_pod:
            jobs.append(self._canary_state(canary_pod))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        out: list[VCheck] = []
        names = ["ready", "lease", "healthz", "pods", "journal", "canary"]
        for name, r in zip(names, results, strict=False):
            if isinstance(r, BaseException):
                out.append(VCheck(name, False, f"could not check: {r}"))
            elif isinstance(r, list):
                out.extend(r)
            elif isinstance(r, VCheck):
                out.append(r)
        return out

    async def _get(self, path: str, params: dict | None = None) -> dict:
        return await asyncio.to_thread(self.kube.get_json, path, params,
                                       timeout=(5.0, 10.0), doing=f"GET {path}")

    async def _node(self) -> list[VCheck]:
        obj = await self._get(f"/api/v1/nodes/{self.node}")
        ready: dict = next((c for c in (obj.get("status") or {}).get("conditions") or []
                            if c.get("type") == "Ready"), {})
        status = ready.get("status", "Unknown")
        text = f"Ready={status}" + (f" ({ready.get('reason')})" if ready.get("reason") else "")
        if status != "True" and ready.get("message"):
            text += f": {ready['message'][:160]}"
        out = [VCheck("ready", status == "True", text)]
        bad = [f"{c.get('type')}=True" for c in (obj.get("status") or {}).get("conditions") or []
               if c.get("type") in PRESSURE and c.get("status") == "True"]
        out.append(VCheck("conditions", not bad, ", ".join(bad) if bad else
                          "no pressure, network available"))
        if "unschedulable" in self.expect:
            want = bool(self.expect["unschedulable"])
            got = bool((obj.get("spec") or {}).get("unschedulable"))
            out.append(VCheck("schedulable", got == want,
                              "cordoned (unschedulable)" if got else "schedulable"))
        return out

    async def _lease(self) -> VCheck:
        try:
            lease = await self._get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                    f"leases/{self.node}")
        except Exception as err:
            return VCheck("lease", False, f"no lease: {str(err)[:120]}")
        renewed = parse_time((lease.get("spec") or {}).get("renewTime"))
        if not renewed:
            return VCheck("lease", False, "never renewed")
        age = time.time() - renewed
        return VCheck("lease", age < LEASE_MAX_AGE, f"renewed {age:.0f} s ago")

    async def _healthz(self) -> VCheck:
        if self.kubelet is None:
            return VCheck("healthz", None, "no kubelet client")
        obs = await self.kubelet.healthz(self.node, timeout=8.0)
        return VCheck("healthz", obs.status.value == "ok", obs.summary[:160])

    async def _pods(self, canary_pod: str | None) -> VCheck:
        body = await self._get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={self.node}"})
        running = pending = 0
        for p in body.get("items") or []:
            meta = p.get("metadata") or {}
            if meta.get("deletionTimestamp") or meta.get("name") == canary_pod:
                continue
            phase = (p.get("status") or {}).get("phase")
            running += phase == "Running"
            pending += phase == "Pending"
        return VCheck("pods", pending == 0, f"{running} Running, {pending} Pending")

    async def _journal(self, elapsed: float) -> VCheck:
        if not self.patterns:
            return VCheck("journal", None, "no journal error in the verdict to watch for")
        if self.ssh is None:
            return VCheck("journal", None, "no SSH to read the kubelet journal")
        window = max(1, int(min(self.quiet, elapsed + self.interval)))
        rx = re.compile("|".join(f"(?:{r})" for _, r in self.patterns), re.I)
        r = await self.ssh.run(self.node, f"journalctl -u kubelet --since=-{window}s --no-pager",
                               15.0, sudo=False)
        if r.timed_out or r.exit_status != 0:
            return VCheck("journal", False, f"journalctl failed ({r.describe()})")
        hits = [ln for ln in r.stdout.splitlines() if rx.search(ln)]
        labels = " / ".join(label for label, _ in self.patterns)
        if hits:
            return VCheck("journal", False, f"{len(hits)} line(s) with {labels!r} in the last "
                                            f"{window} s: {hits[-1].strip()[-160:]}")
        if elapsed + self.interval < self.quiet:
            return VCheck("journal", False, f"no {labels!r} yet; waiting for {self.quiet:.0f} s "
                                            f"of quiet")
        return VCheck("journal", True, f"no {labels!r} in the last {window} s")

    async def _canary_state(self, name: str) -> VCheck:
        try:
            pod = await self._get(f"/api/v1/namespaces/default/pods/{name}")
        except Exception as err:
            return VCheck("canary", False, f"canary pod {name}: {str(err)[:120]}")
        phase = (pod.get("status") or {}).get("phase", "?")
        return VCheck("canary", phase == "Running", f"canary pod {name} {phase}")

    async def _run_canary(self, t0: float) -> VCheck:
        name = f"nodewb-canary-{secrets.token_hex(3)}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default",
                            "labels": {"app.kubernetes.io/managed-by": "nodewb"}},
               "spec": {"nodeName": self.node, "restartPolicy": "Never",
                        "containers": [{"name": "canary", "image": CANARY_IMAGE}]}}
        try:
            await api_write.send(self.kube, "POST", "/api/v1/namespaces/default/pods", pod,
                                 doing=f"create canary pod {name}")
        except api_write.KubeError as err:
            return VCheck("canary", False, f"could not create the canary pod: {err}")
        try:
            deadline = min(t0 + self.timeout, self.clock() + 60.0)
            phase = "?"
            while self.clock() < deadline:
                state = await self._canary_state(name)
                phase = state.detail.rsplit(" ", 1)[-1]
                if state.ok:
                    self._canary_ran = True
                    return VCheck("canary", True, f"canary pod {name} ran on {self.node} "
                                                  f"(deleted)")
                await asyncio.sleep(1.0)
            return VCheck("canary", False, f"canary pod {name} still {phase}")
        finally:
            await self._delete_pod("default", name)

    async def _delete_pod(self, ns: str, name: str) -> None:
        try:
            await api_write.send(self.kube, "DELETE", f"/api/v1/namespaces/{ns}/pods/{name}",
                                 doing=f"delete pod {ns}/{name}")
        except Exception:
            pass
