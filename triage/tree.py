"""Walk the decision tree as observations arrive.

    d = Diagnosis("node-0004")
    for obs in observations:
        d.add(obs)
    d.domains()      # {domain: DomainState(status, evidence)}
    d.next_probes()  # probe ids the tree has not read yet, in diagnosis order
    d.verdict()      # triage.verdict.Verdict
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from probes.observation import Observation, Status
from triage.rules import (CONFIRM, DOMAINS, EXPLAINS, PRECEDENCE, RULE_OUT, RULES, SUSPECT,
                          Rule)

__all__ = ["Diagnosis", "DomainState", "CONFIRMED", "SUSPECTED", "RULED_OUT", "UNTESTED",
           "blast_radius"]

CONFIRMED, SUSPECTED, RULED_OUT, UNTESTED = "confirmed", "suspected", "ruled_out", "untested"
_STATUS = {CONFIRM: CONFIRMED, SUSPECT: SUSPECTED, RULE_OUT: RULED_OUT}
_RANK = {CONFIRMED: 3, RULED_OUT: 2, SUSPECTED: 1, UNTESTED: 0}
_UNDECIDED = (Status.SKIPPED, Status.ERROR)
BLAST_KEYS = ("zone", "pool", "os_image", "kernel", "kubelet_version")
BLAST_MIN = 3


@dataclass(slots=True)
class DomainState:
    id: str
    status: str = UNTESTED
    evidence: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


class Diagnosis:
    """The tree's state for one node; `add` observations one at a time, in any order."""

    def __init__(self, node: str | None = None, *, rules: Iterable[Rule] = RULES,
                 siblings: list[dict[str, Any]] | None = None) -> None:
        self.node = node
        self.rules = tuple(rules)
        self.observations: dict[str, Observation] = {}
        self.siblings = list(siblings or [])
        self._fired: list[tuple[Rule, str]] = []
        self._evaluated: set[str] = set()

    def add(self, obs: Observation) -> None:
        if self.node is None and obs.node:
            self.node = obs.node
        self.observations[obs.probe] = obs
        self._evaluate()

    def extend(self, observations: Iterable[Observation]) -> "Diagnosis":
        for o in observations:
            self.observations[o.probe] = o
            if self.node is None and o.node:
                self.node = o.node
        self._evaluate()
        return self

    def _evaluate(self) -> None:
        fired: list[tuple[Rule, str]] = []
        evaluated: set[str] = set()
        for rule in self.rules:
            obs = [self.observations.get(p) for p in rule.probes]
            if any(o is None for o in obs):
                continue
            evaluated.add(rule.id)
            got = [o for o in obs if o is not None]
            if rule.applies(got):
                fired.append((rule, rule.evidence(got)))
        self._fired, self._evaluated = fired, evaluated

    # -- what the tree knows ------------------------------------------------------------------
    def domains(self) -> dict[str, DomainState]:
        out = {d: DomainState(d) for d in DOMAINS}
        for rule, quote in self._fired:
            st = out.setdefault(rule.domain, DomainState(rule.domain))
            status = _STATUS[rule.effect]
            if _RANK[status] > _RANK[st.status]:
                st.status, st.evidence, st.rules = status, [], []
            if status == st.status and quote not in st.evidence:
                st.evidence.append(quote)
                st.rules.append(rule.id)
        return out

    def fired(self) -> list[tuple[str, str, str, str]]:
        """(rule id, domain, effect, evidence) of every rule that held, in diagnosis order."""
        return [(r.id, r.domain, r.effect, q) for r, q in self._fired]

    def next_probes(self) -> list[str]:
        """Probe ids the rules not yet evaluated still need, in diagnosis order: probes not
        run yet, and probes that came back skipped or in error (they decided nothing)."""
        out: list[str] = []
        decided = {d for d, s in self.domains().items() if s.status in (CONFIRMED, RULED_OUT)}
        for rule in self.rules:
            if rule.domain in decided:
                continue
            for p in rule.probes:
                o = self.observations.get(p)
                if (o is None or o.status in _UNDECIDED) and p not in out:
                    out.append(p)
        return out

    def ready(self) -> str | None:
        node = self.observations.get("api.node")
        return None if node is None else node.data.get("ready")

    def confirmed(self) -> list[str]:
        """Confirmed domains, the root cause first: PRECEDENCE order, then EXPLAINS links move
        a cause ahead of the effect it explains."""
        states = self.domains()
        out = [d for d in PRECEDENCE if states[d].status == CONFIRMED]
        fired = {r.id for r, _ in self._fired}
        for (cause, effect), rule_ids in EXPLAINS.items():
            if cause in out and effect in out and fired & set(rule_ids) \
                    and out.index(cause) > out.index(effect):
                out.remove(cause)
                out.insert(out.index(effect), cause)
        return out

    def conclusion(self) -> str:
        states = self.domains()
        confirmed = self.confirmed()
        if confirmed:
            return confirmed[0]
        if self.ready() == "True" and not any(s.status == SUSPECTED for s in states.values()):
            return "healthy"
        return "unknown"

    def notes(self) -> list[str]:
        out: list[str] = []
        confirmed = self.confirmed()
        if len(confirmed) > 1:
            out.append(f"also confirmed: {', '.join(confirmed[1:])} (explained by "
                       f"{confirmed[0]}, which comes first)")
        out.extend(blast_radius(self.siblings, self.node))
        return out

    def verdict(self) -> Any:
        from triage.verdict import build
        return build(self)


def blast_radius(siblings: list[dict[str, Any]], node: str | None = None) -> list[str]:
    """A note for each zone / pool / OS image / kernel that many NotReady nodes share."""
    down = [s for s in siblings if str(s.get("ready")) != "True"]
    if len(down) < BLAST_MIN:
        return []
    notes = []
    for key in BLAST_KEYS:
        counts = Counter(str(s[key]) for s in down if s.get(key))
        if not counts:
            continue
        value, n = counts.most_common(1)[0]
        if n < BLAST_MIN or n * 2 < len(down):
            continue
        total = sum(1 for s in siblings if str(s.get(key)) == value)
        names = sorted(str(s.get("name")) for s in down
                       if str(s.get(key)) == value and s.get("name"))
        shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
        notes.append(f"blast radius: {n} of {len(down)} NotReady nodes share {key} {value} "
                     f"({n} of {total} nodes with that {key} are NotReady"
                     + (f": {shown}" if shown else "") + ") — look for a common cause "
                     f"(an image or kernel update, the zone's network) before fixing nodes one "
                     f"by one")
    return notes
