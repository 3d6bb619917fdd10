"""The audit log: one JSON object per line, appended, never rewritten.

Where: $NODEWB_AUDIT_LOG, else ${XDG_DATA_HOME:-~/.local/share}/nodewb/audit.jsonl. The file is
created 0600 and opened with O_APPEND for every record, so each record is one write(2) at the end
of the file, whoever else appends.

A record says who (local user, kube user and context), when, which node and action, the exact
commands, the evidence bundle (path and sha256) or the override that stood in for it, and the
result: refused | failed | ran | verified | not fixed, with the reason.
"""

from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AuditRecord", "AuditLog", "AuditTrail", "default_path", "RESULTS", "new_id",
           "plan_fields", "cleared_fields"]

RESULTS = ("refused", "failed", "ran", "verified", "not fixed")


def default_path() -> Path:
    explicit = os.environ.get("NODEWB_AUDIT_LOG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "nodewb" / "audit.jsonl"


def local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class AuditRecord:
    node: str
    action: str
    result: str  # one of RESULTS
    reason: str = ""
    commands: list[str] = field(default_factory=list)
    bundle_path: str | None = None
    bundle_sha256: str | None = None
    override: bool = False
    override_reason: str = ""  # why there was no bundle, when the override was used
    local_user: str = field(default_factory=local_user)
    kube_user: str = ""
    kube_context: str = ""
    verdict: str = ""
    guard: list[str] = field(default_factory=list)  # the guard checks, one line each
    target: str = ""  # what the action chose to act on, and why (delete-pod, approve-csr)
    act_id: str = ""  # ties the records of one attempt together (ran, then verified)
    duration: float | None = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"audit result must be one of {', '.join(RESULTS)}, "
                             f"not {self.result!r}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        return out


class AuditLog:
    """Append-only JSONL at `path` (default: `default_path()`)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()

    def append(self, record: AuditRecord) -> dict[str, Any]:
        """Write one record; OSError when the log cannot be written (the caller must stop)."""
        entry = record.as_dict()
        line = (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to the audit log {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first; a line that is not JSON is skipped."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
        except FileNotFoundError:
            return


class AuditTrail:
    """The records of one attempt at one action: who and what once, then one record per outcome
    (refused | failed | ran, then verified | not fixed), tied together by `act_id`."""

    def __init__(self, node: str, action: str, *, kube_user: str = "", kube_context: str = "",
                 log: AuditLog | None = None) -> None:
        self.log = log or AuditLog()
        self.base: dict[str, Any] = {"node": node, "action": action, "kube_user": kube_user,
                                     "kube_context": kube_context, "act_id": new_id()}

    def check_writable(self) -> str:
        """'' when the log can be appended to, else why not (no action runs unaudited)."""
        path = self.log.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)
        except OSError as err:
            return f"cannot write the audit log {path}: {err.strerror or err}"
        return ""

    def write(self, result: str, reason: str = "", **fields: Any) -> dict[str, Any]:
        """Append one record (OSError when the log cannot be written)."""
        return self.log.append(AuditRecord(result=result, reason=reason,
                                           **{**self.base, **fields}))


def plan_fields(plan: Any, report: Any | None = None, verdict: Any | None = None
                ) -> dict[str, Any]:
    """What a record says of a triage.actions.Plan, its guard report and the verdict."""
    out: dict[str, Any] = {"commands": plan.commands(), "target": plan.target}
    if report is not None:
        out["guard"] = report.lines()
        if report.kube_user:
            out["kube_user"] = report.kube_user
    if verdict is not None:
        out["verdict"] = verdict.verdict
    return out


def cleared_fields(cleared: Any) -> dict[str, Any]:
    """The evidence behind a triage.guards.Cleared token: the bundle, or the override."""
    bundle = cleared.bundle
    return {"bundle_path": str(bundle.path) if bundle is not None else None,
            "bundle_sha256": bundle.sha256 if bundle is not None else None,
            "override": cleared.override, "override_reason": cleared.override_reason,
            "guard": cleared.report.lines()}
