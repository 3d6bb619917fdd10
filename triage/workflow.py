"""One attempt at a fix, in the runbooks' order: plan the exact commands, check the guard rails,
capture and verify the evidence bundle, act, write the audit record, then watch the node. The
TUI's action modal and `nodewb act` both go through it.

    attempt = Attempt(kube, ssh, kubelet, "node-0004", verdict=verdict, enabled=True)
    plan = await attempt.prepare("restart-containerd")   # attempt.report: the guard checks
    await attempt.capture()                                # EvidenceError: attempt.capture_error
    cleared = attempt.clear()                              # or attempt.clear(override="act on …")
    result = await attempt.run(cleared, on_step=print)
    progress = await attempt.verify(on_progress=print)

Every outcome that matters goes to the audit log (refused, failed, ran, then verified or not
fixed; one act_id ties them) and, when a timeline is given, onto the timeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.actions import ACTIONS, ActionContext, Plan, PlanError, RunResult, plan_action, run_plan
from triage.audit import AuditLog, AuditTrail, cleared_fields, plan_fields
from triage.capture import capture_node
from triage.evidence import Bundle, EvidenceError, bundle_path
from triage.guards import Cleared, Guard, GuardReport, Refused, refuse_early
from triage.timeline import Timeline
from triage.verify import VERIFIED, Progress, Verifier, patterns_from_verdict

__all__ = ["Attempt", "Refused", "EvidenceError", "PlanError"]


@dataclass
class Attempt:
    kube: Any
    ssh: Any | None
    kubelet: Any | None
    node: str
    verdict: Any | None = None  # triage.verdict.Verdict
    enabled: bool = False
    audit_log: AuditLog | None = None  # default: triage.audit.default_path()
    evidence_dir: Path | None = None  # default: triage.evidence.default_dir()
    timeline: Timeline | None = None
    kube_context: str = ""
    kube_user: str = ""
    internal_ip: str | None = None
    node_object: dict | None = None
    params: dict[str, Any] = field(default_factory=dict)
    plan: Plan | None = None
    report: GuardReport | None = None
    bundle: Bundle | None = None
    capture_error: str = ""
    trail: AuditTrail | None = None
    ran: dict[str, Any] = field(default_factory=dict)  # audit fields of the run, for verify
    started: float = 0.0

    @property
    def guard(self) -> Guard:
        return Guard(self.kube, self.ssh, enabled=self.enabled)

    def _trail(self, action_id: str) -> AuditTrail:
        if self.trail is None or self.trail.base["action"] != action_id:
            self.trail = AuditTrail(self.node, action_id, kube_user=self.kube_user,
                                    kube_context=self.kube_context, log=self.audit_log)
        return self.trail

    def audit_problem(self, action_id: str) -> str:
        """'' when the audit log can be written; no action runs unaudited."""
        return self._trail(action_id).check_writable()

    def _write(self, action_id: str, result: str, reason: str, **fields: Any) -> None:
        if self.timeline is not None and result == "refused":
            self.timeline.note(f"{action_id} refused: {reason}")
        self._trail(action_id).write(result, reason, **fields)

    # -- 1. plan and check ----------------------------------------------------------------------
    def refuse_early(self, action_id: str, *, audit: bool = True) -> GuardReport | None:
        """The refusals that need no cluster (forbidden, unknown, actions off): the report
        (audited) or None."""
        early = refuse_early(action_id, self.node, self.enabled)
        if early is not None and audit:
            commands = [t.replace("{node}", self.node) for t in ACTIONS[action_id].template] \
                if action_id in ACTIONS else []
            self._write(action_id, "refused", "; ".join(early.refusals), commands=commands,
                        guard=early.lines())
        return early

    async def prepare(self, action_id: str, *, audit_refusal: bool = True) -> Plan:
        """Plan `action_id` and check the guard rails (attempt.report says whether it may run:
        actions off, RBAC, sudo, the runbooks' rules). Raises Refused for an action the runbooks
        forbid or an unknown one, PlanError when there is nothing to act on. A refusal is
        audited unless `audit_refusal` is False (a preview: nothing was attempted)."""
        early = refuse_early(action_id, self.node, True)
        if early is not None:
            self.report = early
            if audit_refusal:
                self.refuse_early(action_id)
            raise Refused("; ".join(early.refusals), early)
        ctx = ActionContext(self.kube, self.ssh, self.kubelet, self.node, verdict=self.verdict,
                            node_object=self.node_object, params=dict(self.params))
        try:
            self.plan = await plan_action(action_id, ctx)
        except PlanError as err:
            if audit_refusal:
                self._write(action_id, "failed", f"could not plan: {err}",
                            verdict=getattr(self.verdict, "verdict", ""))
            raise
        self.report = await self.guard.check(self.plan, self.verdict)
        if not self.report.allowed and audit_refusal:
            self.refuse("; ".join(self.report.refusals))
        return self.plan

    def refuse(self, reason: str) -> None:
        """Audit a refusal of the planned action (not confirmed, guard said no)."""
        assert self.plan is not None
        self._write(self.plan.action.id, "refused", reason,
                    **plan_fields(self.plan, self.report, self.verdict))

    # -- 2. evidence first ----------------------------------------------------------------------
    async def capture(self) -> Bundle:
        """Write and verify the node's evidence bundle; EvidenceError (and capture_error set)
        when that cannot be done."""
        out = bundle_path(self.node, time.time(), self.evidence_dir) \
            if self.evidence_dir is not None else None
        try:
            self.bundle = await capture_node(self.kube, self.ssh, self.kubelet, self.node,
                                             internal_ip=self.internal_ip, out=out,
                                             verdict=self.verdict)
        except Exception as err:  # any failure to capture blocks the action the same way
            why = getattr(err, "reason", None) or (
                err.strerror if isinstance(err, OSError) and err.strerror else str(err)) \
                or type(err).__name__
            self.capture_error = f"capture failed: {why}"
            if self.timeline is not None:
                self.timeline.note(f"evidence capture failed: {why}")
            raise EvidenceError(self.capture_error) from None
        if self.timeline is not None:
            self.timeline.capture(self.bundle)
        return self.bundle

    # -- 3. clearance ---------------------------------------------------------------------------
    def clear(self, override: str | None = None) -> Cleared:
        """The guard's token for this plan: from the verified bundle, or (no bundle) from the
        typed override phrase. A refusal is audited."""
        assert self.plan is not None and self.report is not None, "prepare() first"
        problem = self.audit_problem(self.plan.action.id)
        if problem:  # nothing to write the refusal to either
            raise Refused(f"{problem}; no action runs without its audit record", self.report)
        try:
            if self.bundle is not None:
                return self.guard.clear(self.plan, self.report, self.bundle)
            return self.guard.clear_with_override(
                self.plan, self.report, override or "",
                self.capture_error or "no evidence bundle was captured")
        except Refused as err:
            self.refuse(err.reason)
            raise

    # -- 4. act ---------------------------------------------------------------------------------
    async def run(self, cleared: Cleared, on_step: Callable[[str], None] | None = None
                  ) -> RunResult:
        assert self.plan is not None
        self.started = time.monotonic()
        done: list[str] = []

        def step(text: str) -> None:
            done.append(text)
            if on_step is not None:
                on_step(text)
        try:
            result = await run_plan(self.plan, cleared, on_step=step)
        except asyncio.CancelledError:  # Ctrl-C, or the app closed: the record says how far
            self._write(self.plan.action.id, "failed",
                        f"interrupted with {sum(t.startswith('running: ') for t in done)} of "
                        f"{len(self.plan.steps)} step(s) started; check the node",
                        **{**plan_fields(self.plan, self.report, self.verdict),
                           **cleared_fields(cleared),
                           "duration": round(time.monotonic() - self.started, 3)})
            raise
        self.ran = {**plan_fields(self.plan, self.report, self.verdict),
                    **cleared_fields(cleared),
                    "duration": round(result.finished - result.started, 3)}
        if result.ok:
            said = "; ".join(f"{r.text}: {r.output.splitlines()[-1] if r.output else 'ok'}"
                             for r in result.steps)
            self._write(self.plan.action.id, "ran", said[:2000], **self.ran)
        else:
            self._write(self.plan.action.id, "failed", result.error, **self.ran)
        if self.timeline is not None:
            self.timeline.action(self.plan.action.id, "\n".join(self.plan.commands()),
                                 ok=result.ok, result=result.error,
                                 detail={"target": self.plan.target})
        return result

    # -- 5. watch the node come back ------------------------------------------------------------
    def verifier(self, timeout: float | None = None, canary: bool = False,
                 quiet: float | None = None) -> Verifier:
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = timeout
        if quiet is not None:
            kw["quiet"] = quiet
        plan = self.plan
        return Verifier(self.kube, self.ssh, self.kubelet, self.node,
                        patterns=patterns_from_verdict(self.verdict),
                        canary=canary and not (plan is not None and plan.canary),
                        expect=dict(plan.expect) if plan is not None else {}, **kw)

    async def verify(self, on_progress: Callable[[Progress], None] | None = None,
                     timeout: float | None = None, canary: bool = False,
                     quiet: float | None = None) -> Progress:
        """Watch the node until every check holds (verified) or `timeout` runs out; `quiet`:
        how long the journal must stay free of the error that was found. After an action
        the outcome is audited."""
        t0 = time.monotonic()
        final = await self.verifier(timeout, canary, quiet).run(on_progress)
        if self.plan is not None and self.ran:
            self._write(self.plan.action.id, final.outcome or "not fixed", final.message,
                        **{**self.ran, "duration": round(time.monotonic() - t0, 3)})
        if self.timeline is not None:
            self.timeline.verify(final.outcome == VERIFIED, final.message or final.line(),
                                 detail={"checks": [c.line() for c in final.checks]})
        return final
