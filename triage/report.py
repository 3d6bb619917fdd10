"""The incident report: the timeline told as a runbook incident story, in Markdown.

    text = incident_report(timeline, verdict, bundle, "node-0004")
    write_report(path, text)                  # atomic, mode 0600

Sections: summary, timeline, root cause (the verdict and the evidence that decided it), fix
applied, verification, evidence bundle (path and sha256). `incident_report` is pure; only
`write_report` touches the disk.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from triage.timeline import Timeline

__all__ = ["incident_report", "write_report"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    s = _CONTROL.sub(" ", str(text)).replace("\n", " ").replace("\r", " ")
    return s.replace("\\", "\\\\").replace("|", "\\|")


def _line(text: Any) -> str:
    return _CONTROL.sub(" ", str(text)).replace("\n", " ")


def _code(text: str) -> str:
    ticks = "`"
    while ticks in text:
        ticks += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _verdict_dict(verdict: Any) -> dict[str, Any] | None:
    if verdict is None:
        return None
    if hasattr(verdict, "as_dict"):
        d = verdict.as_dict()
        for extra in ("leaf", "cause"):
            if extra not in d and hasattr(verdict, extra):
                d[extra] = getattr(verdict, extra)
        return d
    return dict(verdict)


def _leaf(domain: str) -> Any:
    try:
        from triage.rules import LEAVES
    except Exception:  # the report still renders without the rule table
        return None
    return LEAVES.get(domain)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def incident_report(timeline: Timeline, verdict: Any, bundle: Any, node: str | None) -> str:
    """Markdown: summary, timeline table, root cause, fix applied, verification, evidence."""
    v = _verdict_dict(verdict)
    node = node or timeline.node or (v or {}).get("node") or "(unknown node)"
    entries = timeline.entries
    domain = (v or {}).get("verdict") or "not diagnosed"
    leaf = _leaf(domain) if v else None
    title = leaf.title if leaf else domain
    actions = [e for e in entries if e.kind == "action"]
    verifies = [e for e in entries if e.kind == "verify"]
    last_verify = verifies[-1] if verifies else None
    verified = bool(last_verify and last_verify.detail.get("verified"))
    out: list[str] = [f"# Incident report: {_line(node)} — {_line(domain)}", ""]

    # -- summary
    out += ["## Summary", ""]
    out.append(f"- **Node:** {_line(node)}")
    if entries:
        start, end = entries[0].time, entries[-1].time
        out.append(f"- **Window:** {_utc(start)} → {_utc(end)} UTC ({_duration(end - start)})")
    out.append(f"- **Root cause:** {_line(domain)}" + (f" — {_line(title)}" if leaf else "")
               + (f" [{_line(v['leaf'])}]" if v and v.get("leaf") else ""))
    if actions:
        outcome = {True: "ok", False: "failed", None: "started"}
        done = ", ".join(f"{_line(e.detail.get('action', '?'))} "
                         f"({outcome.get(e.detail.get('ok'), 'started')})" for e in actions)
        out.append(f"- **Fix applied:** {done}")
    else:
        out.append("- **Fix applied:** none")
    if last_verify is None:
        out.append("- **Outcome:** not verified (no verification was run)")
    else:
        said = last_verify.detail.get("summary") or last_verify.text
        out.append(f"- **Outcome:** {'verified' if verified else 'NOT fixed'}"
                   + (f" — {_line(said)}" if said else ""))
    if bundle is not None:
        out.append(f"- **Evidence:** {_code(str(bundle.path))} (sha256 {_code(bundle.sha256)})")
    else:
        out.append("- **Evidence:** no bundle was captured")
    out.append("")

    # -- timeline
    out += ["## Timeline", ""]
    if entries:
        out += ["| Time (UTC) | Kind | What happened |", "|---|---|---|"]
        for e in entries:
            out.append(f"| {_hms(e.time)} | {e.kind} | {_cell(e.text)} |")
    else:
        out.append("Nothing was recorded.")
    out.append("")

    # -- root cause
    out += ["## Root cause", ""]
    if v is None:
        out += ["No verdict was reached.", ""]
    else:
        out.append(f"**{_line(domain)}**" + (f" — {_line(title)}" if leaf else ""))
        out.append("")
        cause = v.get("cause") or (leaf.cause if leaf else "")
        if cause:
            out += [_line(cause), ""]
        confirmed = [d for d in v.get("domains") or [] if d.get("status") == "confirmed"]
        if confirmed:
            out += ["Evidence that decided it:", ""]
            for d in confirmed:
                for ev in d.get("evidence") or []:
                    out.append(f"- {_line(d.get('id'))}: {_line(ev)[:600]}")
            out.append("")
        others = [d["id"] for d in v.get("domains") or [] if d.get("status") == "ruled_out"]
        if others:
            out += [f"Ruled out: {', '.join(_line(o) for o in others)}.", ""]

    # -- fix
    out += ["## Fix applied", ""]
    if actions:
        for e in actions:
            commands = [c for c in str(e.detail.get("command") or "").splitlines() if c.strip()]
            ok = e.detail.get("ok")
            ended = "succeeded" if ok is True else "failed" if ok is False else "started"
            out.append(f"- {_hms(e.time)} **{_line(e.detail.get('action', '?'))}** {ended}"
                       + (f": {_code(_line(commands[0]))}" if len(commands) == 1 else "")
                       + (f" — {_line(e.detail['result'])}" if e.detail.get("result") else ""))
            if len(commands) > 1:
                out += [f"  - {_code(_line(c))}" for c in commands]
        out.append("")
    else:
        out.append("No action was taken.")
        if v and v.get("fix"):
            out += ["", "The runbook's fix for this verdict:", ""]
            out += [f"- {_line(f)}" for f in v["fix"]]
        out.append("")

    # -- verification
    out += ["## Verification", ""]
    if verifies:
        for e in verifies:
            out.append(f"- {_hms(e.time)} {'✔' if e.detail.get('verified') else '✘'} "
                       f"{_line(e.text)}")
            checks = e.detail.get("checks")
            if isinstance(checks, list):
                out += [f"  - {_line(c)}" for c in checks]
        out.append("")
        out.append(f"Result: **{'verified' if verified else 'not fixed'}**.")
    else:
        out.append("Not verified: no verification was run.")
        if v and v.get("verify"):
            out += ["", "How to verify:", ""]
            out += [f"- {_line(x)}" for x in v["verify"]]
    out.append("")

    # -- evidence
    out += ["## Evidence bundle", ""]
    if bundle is None:
        out.append("No evidence bundle was captured.")
    else:
        out.append(f"- Path: {_code(str(bundle.path))}")
        out.append(f"- sha256: {_code(bundle.sha256)}")
        out.append(f"- Captured: {_utc(bundle.captured_at)} UTC, {len(bundle.files)} files "
                   f"(verified against its manifest)")
        out.append(f"- Files: {', '.join(_code(n) for n in sorted(bundle.files))}")
        problems = list(getattr(bundle, "problems", []) or [])
        if problems:
            out.append("- Not collected or hung:")
            out += [f"  - {_line(p)}" for p in problems]
        out.append("")
        out.append(f"Check it with `sha256sum {bundle.path.name}`; read it offline with "
                   f"`nodewb analyze {bundle.path.name}`.")
    out.append("")
    return "\n".join(out)


def write_report(path: Path | str, text: str) -> Path:
    """Write the report atomically (temp file in the same directory, fsync, rename), mode
    0600. Raises OSError."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target

