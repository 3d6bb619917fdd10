"""`nodewb act NODE ACTION [--yes] [--allow-actions]`: one safe action, non-interactive.

Diagnose (probes and the decision tree), plan the exact commands, check the guard rails
(enabled, RBAC, sudo, the runbooks' refusals), confirm, capture and verify an evidence bundle,
act, write the audit record, then watch the node until it is verified or the time is up.
`nodewb act NODE list` prints every action with its commands.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

EXIT_VERIFIED = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2
EXIT_NOT_FIXED = 3
EXIT_ACTION_FAILED = 4
EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes:
  0  the action ran and the node is verified healthy
  1  error before acting (bad input, cluster or node unreachable, nothing to act on,
     audit log not writable)
  2  refused: actions not enabled, forbidden or unknown action, RBAC or sudo missing,
     the runbooks' rules (no kubelet restart during an API partition), not confirmed,
     or no verified evidence bundle and no typed override
  3  the action ran but the node is not fixed within the verification time
  4  a command of the action failed
130  interrupted

environment:
  NODEWB_VERIFY_TIMEOUT  seconds to watch the node after acting (default 180)
  NODEWB_CANARY=1        also run a canary pod on the node before calling it verified
  NODEWB_EVIDENCE_DIR    where evidence bundles go
                         (default ${XDG_DATA_HOME:-~/.local/share}/nodewb/evidence)
  NODEWB_AUDIT_LOG       the audit log (default ${XDG_DATA_HOME:-~/.local/share}/nodewb/audit.jsonl)

When the evidence bundle cannot be captured, the action runs only if the override phrase
`act on NODE without evidence` is typed on stdin; the audit log records it.
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(f"nodewb act: {text}", file=sys.stderr, flush=True)


def _ask(prompt: str) -> str:
    """A line typed on stdin ('' at end of input)."""
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    return line.rstrip("\n")


def _verify_timeout(args: argparse.Namespace) -> float:
    given = getattr(args, "verify_timeout", None) or os.environ.get("NODEWB_VERIFY_TIMEOUT")
    from triage.verify import DEFAULT_TIMEOUT

    try:
        value = float(given) if given else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(
            f"NODEWB_VERIFY_TIMEOUT must be a number of seconds, not {given!r}") from None
    if value <= 0:
        raise ValueError("the verification time must be more than 0 seconds")
    return value


def _canary(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "canary", False)) or os.environ.get("NODEWB_CANARY", "") in (
        "1", "true", "yes")


def _kubeconfig_user(args: argparse.Namespace) -> tuple[str, str]:
    try:
        from probes.kube import Kube

        k = Kube(args.kubeconfig, args.context)
        return k.user or "", k.context or ""
    except Exception:
        return "", args.context or ""


def print_listing(node: str) -> int:
    from triage.actions import FORBIDDEN, listing

    for action, commands in listing(node):
        flags = []
        if action.sudo:
            flags.append("sudo")
        if action.restarts_kubelet:
            flags.append("restarts the kubelet")
        _say(f"{action.id:<20} {action.title}" + (f"  [{', '.join(flags)}]" if flags else ""))
        for c in commands:
            _say(f"{'':<22}$ {c}")
    _say()
    _say("not actions (the runbooks forbid them): " + ", ".join(sorted(FORBIDDEN)))
    return 0


async def _act(args: argparse.Namespace, ask: Callable[[str], str]) -> int:
    from probes.kubeconfig import KubeError
    from probes.node_probes import NodeProbes
    from triage.guards import Refused, override_phrase
    from triage.tree import Diagnosis
    from triage.verify import VERIFIED
    from triage.workflow import Attempt, EvidenceError, PlanError
    from tui.cli_session import node_session

    node, action_id = args.node, args.action
    user, context = _kubeconfig_user(args)

    def attempt_for(s: Any = None, verdict: Any = None) -> Attempt:
        return Attempt(s.kube if s else None, s.ssh if s else None, s.kubelet if s else None,
                       node, verdict=verdict, enabled=bool(args.allow_actions),
                       kube_context=context, kube_user=user,
                       internal_ip=s.internal_ip if s else None,
                       node_object=s.node_object if s else None)

    early_attempt = attempt_for()
    try:
        early = early_attempt.refuse_early(action_id)
    except OSError as err:
        _err(f"cannot write the audit log: {err.strerror or err}")
        return EXIT_ERROR
    if early is not None:
        for line in early.lines():
            _say(line)
        _err(f"refused: {'; '.join(early.refusals)}")
        return EXIT_REFUSED
    timeout = _verify_timeout(args)
    problem = early_attempt.audit_problem(action_id)
    if problem:
        _err(f"{problem}; no action runs without its audit record")
        return EXIT_ERROR

    async with node_session(args, node) as s:
        _say(f"diagnosing {node} (probes and the decision tree) ...")
        diagnosis = Diagnosis(node)
        await NodeProbes(s.kube, s.ssh, s.kubelet, s.node, internal_ip=s.internal_ip).run(
            on_observation=diagnosis.add)
        verdict = diagnosis.verdict()
        _say(f"verdict: {verdict.verdict}"
             + (f" (actions the runbooks suggest: {', '.join(verdict.actions)})"
                if verdict.actions else ""))
        attempt = attempt_for(s, verdict)
        try:
            plan = await attempt.prepare(action_id)
        except (PlanError, KubeError) as err:
            _err(f"{action_id} on {node}: {err}")
            return EXIT_ERROR
        _say()
        _say(plan.describe())
        report = attempt.report
        assert report is not None
        _say()
        _say("guard rails:")
        for line in report.lines():
            _say(f"  {line}")
        if not report.allowed:
            _err(f"refused: {'; '.join(report.refusals)}")
            return EXIT_REFUSED
        if not args.yes:
            answer = await asyncio.to_thread(
                ask, f"run {len(plan.steps)} command(s) of {action_id} on {node}, after "
                     f"capturing evidence? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                attempt.refuse("not confirmed")
                _err("not confirmed; nothing was run")
                return EXIT_REFUSED

        _say()
        _say(f"capturing evidence of {node} before acting ...")
        typed = None
        try:
            bundle = await attempt.capture()
            _say(f"evidence: {bundle.path} (sha256 {bundle.sha256}, verified)")
        except EvidenceError:
            _say(f"no verified evidence bundle: {attempt.capture_error}")
            typed = await asyncio.to_thread(
                ask, f"to act without evidence, type exactly: {override_phrase(node)}\n> ")
        try:
            cleared = attempt.clear(typed)
        except Refused as refused:
            _err(f"refused: {refused.reason}")
            return EXIT_REFUSED
        if typed is not None:
            _say("override typed: acting without evidence (recorded in the audit log)")

        _say()
        _say(f"acting: {action_id} on {node}")
        result = await attempt.run(cleared, on_step=lambda t: _say(f"  {t}"))
        if not result.ok:
            _err(f"{action_id} failed: {result.error}")
            return EXIT_ACTION_FAILED

        _say()
        _say(f"verifying {node} (up to {timeout:.0f} s) ...")
        shown: list[str] = []

        def progress(p: Any) -> None:
            failing = [c.name for c in p.checks if c.ok is False]
            if p.done or failing != shown:
                shown[:] = failing
                _say(f"  {p.line()}")
        final = await attempt.verify(progress, timeout=timeout, canary=_canary(args))
        for check in final.checks:
            _say(f"  {check.line()}")
        _say()
        _say(f"{node}: {final.message}")
        return EXIT_VERIFIED if final.outcome == VERIFIED else EXIT_NOT_FIXED


def cmd_act(args: argparse.Namespace, ask: Callable[[str], str] = _ask) -> int:
    from probes.kubeconfig import KubeError
    from probes.ssh_errors import SshError

    if args.action == "list":
        try:
            return print_listing(args.node)
        except BrokenPipeError:  # `nodewb act NODE list | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    try:
        return asyncio.run(_act(args, ask))
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except ValueError as err:
        _err(str(err))
        return EXIT_ERROR
    except (KubeError, SshError) as err:
        text = str(err)
        _err(text.splitlines()[0] if text else type(err).__name__)
        return EXIT_ERROR
