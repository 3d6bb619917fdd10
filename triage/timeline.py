"""The incident's timeline: every observation, verdict, capture, action and verification, in
the order they happened, like the runbook's incident story.

    tl = Timeline("node-0004")
    tl.observation(obs)                       # a probes Observation
    tl.verdict(verdict)                       # a triage Verdict or its dict
    tl.capture(bundle)                        # a triage.evidence Bundle
    tl.action("restart-containerd", "systemctl restart containerd", ok=True)
    tl.verify(True, "Ready=True after 42 s")
    tl.note("paged by the NotReady alert")
    Timeline.from_json(tl.to_json())          # round trip

Pure Python: nothing here reads or writes files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Timeline", "Entry", "KINDS"]

KINDS = ("observation", "verdict", "action", "capture", "verify", "note")


@dataclass(frozen=True, slots=True)
class Entry:
    time: float  # epoch seconds
    kind: str  # one of KINDS
    text: str  # one line a person reads
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "text": self.text,
                "detail": self.detail}


def _plain(value: Any) -> Any:
    """`value` as JSON data (raises TypeError/ValueError when it cannot be)."""
    return json.loads(json.dumps(value, allow_nan=False))


class Timeline:
    """Entries kept in time order (equal times in the order they were added)."""

    def __init__(self, node: str | None = None, *, clock: Callable[[], float] = time.time,
                 entries: list[Entry] | None = None) -> None:
        self.node = node
        self.clock = clock
        self._entries: list[Entry] = []
        for e in entries or []:
            self._insert(e)

    # -- adding -----------------------------------------------------------------------------------
    def add(self, kind: str, text: str, detail: dict[str, Any] | None = None, *,
            at: float | None = None) -> Entry:
        if kind not in KINDS:
            raise ValueError(f"timeline entry kind {kind!r}: one of {', '.join(KINDS)}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a timeline entry needs a text")
        try:
            plain = _plain(dict(detail or {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"timeline entry detail is not JSON data ({exc})") from None
        when = self.clock() if at is None else float(at)
        entry = Entry(when, kind, " ".join(text.split()), plain)
        self._insert(entry)
        return entry

    def _insert(self, entry: Entry) -> None:
        i = len(self._entries)
        while i > 0 and self._entries[i - 1].time > entry.time:
            i -= 1
        self._entries.insert(i, entry)

    def observation(self, obs: Any, *, at: float | None = None) -> Entry:
        """A probes.observation.Observation: its probe, status and summary."""
        status = getattr(getattr(obs, "status", None), "value", getattr(obs, "status", ""))
        detail = {"probe": obs.probe, "status": str(status), "via": getattr(obs, "via", ""),
                  "duration": round(float(getattr(obs, "duration", 0.0) or 0.0), 3)}
        when = at if at is not None else (getattr(obs, "started", None) or None)
        return self.add("observation", f"{obs.probe} [{status}]: {obs.summary}", detail,
                        at=when)

    def verdict(self, verdict: Any, *, at: float | None = None) -> Entry:
        """A triage Verdict (or its as_dict()): the domain and what confirmed it."""
        v = verdict.as_dict() if hasattr(verdict, "as_dict") else dict(verdict)
        confirmed = [d["id"] for d in v.get("domains") or [] if d.get("status") == "confirmed"]
        text = f"verdict: {v.get('verdict')}"
        if v.get("leaf"):
            text += f" [{v['leaf']}]"
        if confirmed:
            text += f" (confirmed: {', '.join(confirmed)})"
        detail = {"verdict": v.get("verdict"), "leaf": v.get("leaf"), "confirmed": confirmed,
                  "actions": list(v.get("actions") or [])}
        return self.add("verdict", text, detail, at=at)

    def capture(self, bundle: Any, *, at: float | None = None) -> Entry:
        """A triage.evidence.Bundle, written and verified."""
        problems = list(getattr(bundle, "problems", []) or [])
        text = (f"evidence captured and verified: {bundle.path} (sha256 {bundle.sha256[:12]}…, "
                f"{len(bundle.files)} files" + (f", {len(problems)} problems" if problems else "")
                + ")")
        detail = {"path": str(bundle.path), "sha256": bundle.sha256,
                  "files": len(bundle.files), "problems": problems}
        when = at if at is not None else getattr(bundle, "finished_at", None)
        return self.add("capture", text, detail, at=when)

    def action(self, action: str, command: str = "", *, ok: bool | None = None,
               result: str = "", detail: dict[str, Any] | None = None,
               at: float | None = None) -> Entry:
        outcome = {True: "done", False: "failed", None: "started"}[ok]
        text = f"action {action} {outcome}" + (f": {result}" if result else "")
        d = dict(detail or {})
        d.update(action=action, command=command, ok=ok, result=result)
        return self.add("action", text, d, at=at)

    def verify(self, verified: bool, text: str = "", *, detail: dict[str, Any] | None = None,
               at: float | None = None) -> Entry:
        d = dict(detail or {})
        d["verified"] = bool(verified)
        d.setdefault("summary", text)
        words = "verified" if verified else "not fixed"
        return self.add("verify", f"{words}: {text}" if text else words, d, at=at)

    def note(self, text: str, *, detail: dict[str, Any] | None = None,
             at: float | None = None) -> Entry:
        return self.add("note", text, detail, at=at)

    # -- reading ----------------------------------------------------------------------------------
    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def of(self, kind: str) -> list[Entry]:
        return [e for e in self._entries if e.kind == kind]

    def last(self, kind: str) -> Entry | None:
        found = self.of(kind)
        return found[-1] if found else None

    # -- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "entries": [e.as_dict() for e in self._entries]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *,
                  clock: Callable[[], float] = time.time) -> Timeline:
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError("not a timeline: no entries list")
        tl = cls(data.get("node"), clock=clock)
        for i, e in enumerate(data["entries"]):
            if not isinstance(e, dict):
                raise ValueError(f"timeline entry {i} is not an object")
            try:
                tl.add(e["kind"], e["text"], e.get("detail") or {}, at=float(e["time"]))
            except (KeyError, TypeError) as exc:
                raise ValueError(f"timeline entry {i}: missing or bad {exc}") from None
        return tl

    @classmethod
    def from_json(cls, text: str, *, clock: Callable[[], float] = time.time) -> Timeline:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a timeline: {exc}") from None
        return cls.from_dict(data, clock=clock)
