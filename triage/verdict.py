"""The verdict: DESIGN's JSON contract, and text and markdown renderings of it.

    {"node": ..., "verdict": "<domain id>|healthy|unknown",
     "domains": [{"id", "status", "evidence": [...]}],
     "next_probes": [...], "fix": [...], "verify": [...], "dont": [...], "actions": [...],
     "leaf": "<finer cause under the verdict's domain>" | null, "cause": "..." | null,
     "notes": [...]}

The first eight keys are DESIGN's contract, in its order; `leaf`, `cause` and `notes` are extra
keys after them (the verdict stays a domain id; the leaf says which way it failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from triage.rules import COMMON_DONT, COMMON_VERIFY, DOMAINS, LEAF_ACTIONS, LEAF_CAUSES, LEAVES

__all__ = ["Verdict", "build", "to_json", "to_text", "to_markdown", "KEYS", "EXTRA_KEYS"]

KEYS = ("node", "verdict", "domains", "next_probes", "fix", "verify", "dont", "actions")
EXTRA_KEYS = ("leaf", "cause", "notes")


@dataclass(slots=True)
class Verdict:
    node: str | None
    verdict: str
    domains: list[dict[str, Any]]
    next_probes: list[str]
    fix: list[str]
    verify: list[str]
    dont: list[str]
    actions: list[str]
    notes: list[str] = field(default_factory=list)  # blast radius, explained domains, ...
    leaf: str | None = None  # the finer cause under the verdict's domain (LEAF_CAUSES)
    cause: str | None = None  # what that leaf means

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS + EXTRA_KEYS}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    def to_text(self) -> str:
        return to_text(self)

    def to_markdown(self) -> str:
        return to_markdown(self)


def build(diagnosis: Any) -> Verdict:
    states = diagnosis.domains()
    conclusion = diagnosis.conclusion()
    order = list(DOMAINS) + [d for d in states if d not in DOMAINS]
    domains = [{"id": d, "status": states[d].status, "evidence": list(states[d].evidence)}
               for d in order]
    leaf = LEAVES.get(conclusion)
    if leaf is not None:
        fix, verify = list(leaf.fix), list(leaf.verify) + list(COMMON_VERIFY)
        dont, actions = list(leaf.dont) + list(COMMON_DONT), list(leaf.actions)
    else:
        fix, verify, actions = [], [], []
        dont = list(COMMON_DONT) if conclusion == "unknown" else []
    leaf_id = diagnosis.leaf(conclusion) if conclusion in LEAVES else None
    cause = dict(LEAF_CAUSES.get(conclusion, ())).get(leaf_id) if leaf_id else None
    first = LEAF_ACTIONS.get((conclusion, leaf_id or ""), ())
    actions = list(first) + [a for a in actions if a not in first]
    return Verdict(diagnosis.node, conclusion, domains,
                   [] if conclusion == "healthy" else diagnosis.next_probes(),
                   fix, verify, dont, actions, diagnosis.notes(), leaf_id, cause)


def to_json(v: Verdict) -> str:
    return v.to_json()


_MARK = {"confirmed": "✔", "suspected": "?", "ruled_out": "✘", "untested": "·"}


def _headline(v: Verdict) -> str:
    leaf = LEAVES.get(v.verdict)
    what = f"{v.verdict} — {leaf.title}" if leaf else v.verdict
    if v.leaf:
        what += f" [{v.leaf}]"
    return f"{v.node or '(no node)'}: {what}"


def to_text(v: Verdict) -> str:
    out = [_headline(v), ""]
    for d in v.domains:
        out.append(f"  {_MARK.get(d['status'], ' ')} {d['id']:<22} {d['status']}")
        for e in d["evidence"]:
            out.append(f"      {e}")
    leaf = LEAVES.get(v.verdict)
    if leaf:
        out += ["", f"cause: {leaf.cause}"]
    if v.leaf:
        out += [f"leaf: {v.leaf} — {v.cause}"]
    for title, items in (("fix", v.fix), ("verify", v.verify), ("don't", v.dont),
                         ("actions", v.actions), ("next probes", v.next_probes),
                         ("notes", v.notes)):
        if items:
            out += ["", f"{title}:"] + [f"  - {i}" for i in items]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(v: Verdict) -> str:
    out = [f"# {_headline(v)}", "", "| domain | status | evidence |", "|---|---|---|"]
    for d in v.domains:
        ev = "<br>".join(f"`{_md(e)}`" for e in d["evidence"])
        out.append(f"| {d['id']} | {d['status']} | {ev} |")
    leaf = LEAVES.get(v.verdict)
    if leaf:
        out += ["", f"**Cause:** {leaf.cause}"]
    if v.leaf:
        out += ["", f"**Leaf:** `{v.leaf}` — {v.cause}"]
    for title, items, code in (("Fix", v.fix, False), ("Verify", v.verify, False),
                               ("Don't", v.dont, False), ("Actions", v.actions, True),
                               ("Next probes", v.next_probes, True), ("Notes", v.notes, False)):
        if items:
            out += ["", f"## {title}", ""]
            out += [f"- `{i}`" if code else f"- {i}" for i in items]
    return "\n".join(out) + "\n"
