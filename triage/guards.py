"""Guard rails between a planned action and the node: the only way to a `Cleared` token.

    guard = Guard(kube, ssh, enabled=args.allow_actions)
    report = await guard.check(plan, verdict)         # enabled, RBAC (SSAR), sudo, runbook rules
    report.allowed, report.checks                     # Check(name, state, reason) for a UI
    cleared = guard.clear(plan, report, bundle)       # re-verifies the evidence bundle, or raises
    cleared = guard.clear_with_override(plan, report, typed, why)   # the typed override
    await run_plan(plan, cleared)                     # triage.actions spends the token

`Cleared` cannot be made outside this module: its constructor wants a key only this module holds,
and `redeem` (called by triage.actions.run_plan) accepts a token once, for the plan it was minted
for (same action, node and commands), within a few minutes of the bundle's capture.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage import api_write
from triage.actions import ACTIONS, FORBIDDEN, Plan

__all__ = ["Check", "GuardReport", "Guard", "Cleared", "Refused", "redeem", "override_phrase",
           "refuse_early", "kube_identity", "PARTITION_WARNING", "OK", "BLOCKED", "WARN",
           "SKIPPED", "MAX_BUNDLE_AGE", "TOKEN_LIFETIME"]

OK, BLOCKED, WARN, SKIPPED = "ok", "blocked", "warn", "skipped"
MAX_BUNDLE_AGE = 600.0  # a bundle older than this is not "just before" the action
TOKEN_LIFETIME = 600.0
PARTITION_WARNING = ("Do not restart kubelet blindly during an API server outage. The kubelet "
                     "keeps existing pods alive while disconnected. Restarting it only adds a "
                     "reconciliation thundering herd when connectivity returns.")
EVIDENCE_RULE = ("Don't restart kubelet without checking logs first — you lose the evidence")
_KEY = object()
_MINTED: dict[str, tuple[str, float]] = {}  # token secret -> (plan fingerprint, expiry)


class Refused(Exception):
    """The guard says no; `reason` is for a person, `report` has every check."""

    def __init__(self, reason: str, report: GuardReport | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report


@dataclass(frozen=True)
class Check:
    name: str  # enabled | action | rbac | sudo | partition | drain | evidence | warning
    state: str  # ok | blocked | warn | skipped
    reason: str

    def line(self) -> str:
        mark = {OK: "✔", BLOCKED: "✘", WARN: "!", SKIPPED: "·"}[self.state]
        return f"{mark} {self.name}: {self.reason}"


@dataclass
class GuardReport:
    action: str
    node: str
    checks: list[Check] = field(default_factory=list)
    kube_user: str = ""

    @property
    def allowed(self) -> bool:
        return not any(c.state == BLOCKED for c in self.checks)

    @property
    def refusals(self) -> list[str]:
        return [c.reason for c in self.checks if c.state == BLOCKED]

    @property
    def warnings(self) -> list[str]:
        return [c.reason for c in self.checks if c.state == WARN]

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]


class Cleared:
    """Permission to run one plan once. Only Guard.clear / clear_with_override make these."""

    __slots__ = ("node", "action", "fingerprint", "bundle", "override", "override_reason",
                 "report", "minted_at", "_secret")

    def __init__(self, key: object, plan: Plan, report: GuardReport, bundle: Any | None,
                 override: bool, override_reason: str = "") -> None:
        if key is not _KEY:
            raise Refused("a Cleared token can only come from the guard (triage.guards.Guard)")
        self.node = plan.node
        self.action = plan.action.id
        self.fingerprint = plan.fingerprint()
        self.bundle = bundle
        self.override = override
        self.override_reason = override_reason
        self.report = report
        self.minted_at = time.time()
        self._secret = secrets.token_hex(16)
        _MINTED[self._secret] = (self.fingerprint, time.monotonic() + TOKEN_LIFETIME)


def redeem(token: Any, plan: Plan) -> str:
    """Spend `token` for `plan`: "" when it may run, else why not."""
    if not isinstance(token, Cleared):
        return (f"{plan.action.id} on {plan.node} was not cleared by the guard rails (no "
                f"verified evidence bundle, no override)")
    entry = _MINTED.pop(token._secret, None)
    if entry is None:
        return "this clearance was already used or never issued; check the guard rails again"
    fingerprint, expiry = entry
    if fingerprint != plan.fingerprint():
        return ("the clearance was given for other commands than these; plan and check the "
                "action again")
    if time.monotonic() > expiry:
        return f"the clearance expired ({TOKEN_LIFETIME:.0f} s); capture evidence again"
    return ""


def override_phrase(node: str) -> str:
    """What a person types to act without a verified evidence bundle."""
    return f"act on {node} without evidence"


def refuse_early(action_id: str, node: str, enabled: bool) -> GuardReport | None:
    """The refusals that need no cluster: an action the runbooks forbid, an unknown one, or
    actions not enabled. None when the action may go on to the full check."""
    report = GuardReport(action_id, node)
    if action_id in FORBIDDEN:
        report.checks.append(Check("action", BLOCKED,
                                   f"there is no {action_id!r} action: {FORBIDDEN[action_id]}"))
        return report
    if action_id not in ACTIONS:
        report.checks.append(Check("action", BLOCKED,
                                   f"unknown action {action_id!r}; choose from: "
                                   f"{', '.join(ACTIONS)}"))
        return report
    if not enabled:
        report.checks.append(Check("enabled", BLOCKED,
                                   "actions are off (read-only mode): pass --allow-actions, or "
                                   "turn actions on in the app and confirm"))
        return report
    return None


async def kube_identity(kube: Any) -> str:
    """The API's own name for us (SelfSubjectReview), else the kubeconfig's user name."""
    try:
        review = await api_write.send(kube, "POST",
                                      "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                      {"apiVersion": "authentication.k8s.io/v1",
                                       "kind": "SelfSubjectReview"}, doing="ask who I am",
                                      timeout=(5.0, 10.0))
        name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
        if name:
            return str(name)
    except Exception:
        pass
    return str(getattr(kube, "user", "") or "")


class Guard:
    """The checks for one session: `enabled` is the --allow-actions switch (or the app's
    confirmed toggle)."""

    def __init__(self, kube: Any, ssh: Any | None, *, enabled: bool) -> None:
        self.kube = kube
        self.ssh = ssh
        self.enabled = enabled

    async def check(self, plan: Plan, verdict: Any | None = None) -> GuardReport:
        early = refuse_early(plan.action.id, plan.node, self.enabled)
        if early is not None:
            return early
        report = GuardReport(plan.action.id, plan.node)
        report.checks.append(Check("enabled", OK, "actions are enabled"))
        rbac, sudo, who = await asyncio.gather(self._rbac(plan), self._sudo(plan),
                                               kube_identity(self.kube))
        report.kube_user = who
        report.checks.extend(rbac)
        report.checks.append(sudo)
        report.checks.extend(self._rules(plan, verdict))
        return report

    async def _rbac(self, plan: Plan) -> list[Check]:
        if not plan.needs:
            return [Check("rbac", OK, "no API writes needed")]

        async def review(need: Any) -> Check:
            body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": need.attributes()}}
            try:
                answer = await api_write.send(
                    self.kube, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    body, doing=f"ask whether I may {need.text()}", timeout=(5.0, 10.0))
            except api_write.KubeError as err:
                return Check("rbac", BLOCKED, f"cannot check whether {need.text()} is allowed "
                                              f"(SelfSubjectAccessReview failed: {err})")
            status = answer.get("status") or {}
            if status.get("allowed") and not status.get("denied"):
                return Check("rbac", OK, f"may {need.text()}")
            why = status.get("reason") or status.get("evaluationError") or "no rule allows it"
            return Check("rbac", BLOCKED,
                         f"RBAC: {getattr(self.kube, 'user', '') or 'this user'} may not "
                         f"{need.text()} (SelfSubjectAccessReview: {why})")
        return list(await asyncio.gather(*(review(n) for n in plan.needs)))

    async def _sudo(self, plan: Plan) -> Check:
        if not plan.sudo:
            return Check("sudo", SKIPPED, "no node command needs root")
        if self.ssh is None:
            return Check("sudo", BLOCKED, f"{plan.action.id} runs commands on {plan.node} but no "
                                          f"SSH is configured (--ssh-config or a bastion)")
        try:
            r = await self.ssh.run(plan.node, "sudo -n true", 15.0, sudo=False)
        except Exception as err:
            return Check("sudo", BLOCKED, f"cannot reach {plan.node} over SSH to check sudo: "
                                          f"{err}")
        if r.exit_status == 0 and not r.timed_out:
            return Check("sudo", OK, f"sudo -n true works on {plan.node}")
        said = (r.stderr or r.stdout).strip().splitlines()
        return Check("sudo", BLOCKED, f"sudo without a password is not allowed on {plan.node} "
                                      f"(`sudo -n true` exited {r.exit_status}"
                                      f"{': ' + said[-1] if said else ''})")

    def _rules(self, plan: Plan, verdict: Any | None) -> list[Check]:
        out: list[Check] = []
        partition = False
        if verdict is not None:
            partition = verdict.verdict == "apiserver_unreachable" or any(
                d.get("id") == "apiserver_unreachable" and d.get("status") == "confirmed"
                for d in verdict.domains)
        if plan.restarts_kubelet:
            if partition:
                out.append(Check("partition", BLOCKED,
                                 f"{plan.action.id} restarts the kubelet and the verdict is "
                                 f"apiserver_unreachable: {PARTITION_WARNING}"))
            elif verdict is None:
                out.append(Check("partition", WARN, "no verdict: could not rule out an API "
                                                    "server partition before restarting the "
                                                    "kubelet"))
            else:
                out.append(Check("partition", OK, f"verdict {verdict.verdict}: not an API "
                                                  f"server partition"))
        for w in plan.warnings:
            out.append(Check("drain" if plan.action.id == "drain" else "warning", WARN, w))
        out.append(Check("evidence", WARN, f"not yet: a bundle of {plan.node} is captured and "
                                           f"verified before acting ({EVIDENCE_RULE})"))
        return out

    # -- minting --------------------------------------------------------------------------------
    def clear(self, plan: Plan, report: GuardReport, bundle: Any,
              expected_sha256: str | None = None) -> Cleared:
        """`bundle`: a triage.evidence.Bundle (or its path). It is verified again here: it must
        be intact, of this node, and captured within MAX_BUNDLE_AGE."""
        from triage.evidence import EvidenceError, verify_bundle

        self._allowed(report, plan)
        path = Path(getattr(bundle, "path", bundle))
        sha = expected_sha256 or getattr(bundle, "sha256", None)
        try:
            checked = verify_bundle(path, sha)
        except EvidenceError as err:
            raise Refused(f"the evidence bundle {path} does not verify: {err}", report) from None
        except OSError as err:
            raise Refused(f"the evidence bundle {path} cannot be read: "
                          f"{err.strerror or err}", report) from None
        if checked.node != plan.node:
            raise Refused(f"the evidence bundle {path} is of {checked.node}, not {plan.node}",
                          report)
        age = time.time() - checked.captured_at
        if age > MAX_BUNDLE_AGE:
            raise Refused(f"the evidence bundle {path} was captured {age / 60:.0f} min ago; "
                          f"capture again just before acting", report)
        report.checks = [c for c in report.checks if c.name != "evidence"]
        report.checks.append(Check("evidence", OK, f"bundle {path} verified (sha256 "
                                                   f"{checked.sha256[:12]}…, "
                                                   f"{len(checked.files)} files)"))
        return Cleared(_KEY, plan, report, checked, False)

    def clear_with_override(self, plan: Plan, report: GuardReport, typed: str,
                            why: str) -> Cleared:
        """Act without a verified bundle: only when `typed` is exactly override_phrase(node).
        `why` (the capture failure) goes into the token for the audit log."""
        self._allowed(report, plan)
        wanted = override_phrase(plan.node)
        if typed.strip() != wanted:
            raise Refused(f"no verified evidence bundle ({why}) and the override was not typed "
                          f"(it is: {wanted})", report)
        report.checks = [c for c in report.checks if c.name != "evidence"]
        report.checks.append(Check("evidence", WARN, f"OVERRIDE: acting without a verified "
                                                     f"bundle ({why})"))
        return Cleared(_KEY, plan, report, None, True, why)

    @staticmethod
    def _allowed(report: GuardReport, plan: Plan) -> None:
        if report.action != plan.action.id or report.node != plan.node:
            raise Refused("the guard report is for another action or node", report)
        if not report.allowed:
            raise Refused("; ".join(report.refusals), report)
