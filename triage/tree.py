"""Walk the decision tree as observations arrive.

    d = Diagnosis("node-0004")
    for obs in observations:
        d.add(obs)
    d.domains()      # {domain: DomainState(status, evidence)}
    d.next_probes()  # probe ids the tree has not read yet, in diagnosis order
    d.settled()      # True once no probe still to come could change the verdict
    d.leaf()         # the finer cause under the concluded domain, e.g. "hung"
    d.verdict()      # triage.verdict.Verdict

Siblings for the blast radius come from `siblings=` or from an "api.nodes" observation (one
list call of the fleet: data["nodes"] is a list of {name, ready, zone, pool, ...}).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from probes.observation import Observation, Status
from triage.rules import (
    CONFIRM,
    DOMAINS,
    EXPLAINS,
    LEAF_CAUSES,
    PRECEDENCE,
    RULE_OUT,
    RULES,
    SUSPECT,
    Rule,
)

__all__ = ["Diagnosis", "DomainState", "CONFIRMED", "SUSPECTED", "RULED_OUT", "UNTESTED",
           "blast_radius"]

CONFIRMED, SUSPECTED, RULED_OUT, UNTESTED = "confirmed", "suspected", "ruled_out", "untested"
_STATUS = {CONFIRM: CONFIRMED, SUSPECT: SUSPECTED, RULE_OUT: RULED_OUT}
_RANK = {CONFIRMED: 3, RULED_OUT: 2, SUSPECTED: 1, UNTESTED: 0}
_UNDECIDED = (Status.SKIPPED, Status.ERROR)
BLAST_KEYS = ("zone", "pool", "os_image", "kernel", "kubelet_version")
BLAST_MIN = 3
FLEET_PROBE = "api.nodes"


@dataclass(slots=True)
class DomainState:
    id: str
    status: str = UNTESTED
    evidence: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


class Diagnosis:
    """The tree's state for one node; `add` observations one at a time, in any order."""

    def __init__(self, node: str | None = None, *, rules: Iterable[Rule] = RULES,
                 siblings: list[dict[str, Any]] | None = None,
                 wait_for: Iterable[str] = ()) -> None:
        self.node = node
        self.rules = tuple(rules)
        self.observations: dict[str, Observation] = {}
        self._siblings = list(siblings or [])
        self.wait_for = tuple(wait_for)  # probes settled() waits for whatever the rules say
        self._fired: list[tuple[Rule, str]] = []
        self._evaluated: set[str] = set()

    def add(self, obs: Observation) -> None:
        if self.node is None and obs.node:
            self.node = obs.node
        self.observations[obs.probe] = obs
        self._evaluate()

    def extend(self, observations: Iterable[Observation]) -> Diagnosis:
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

    @property
    def siblings(self) -> list[dict[str, Any]]:
        """The fleet around the node: given, else from the "api.nodes" observation."""
        if self._siblings:
            return self._siblings
        fleet = self.observations.get(FLEET_PROBE)
        nodes = fleet.data.get("nodes") if fleet is not None else None
        return list(nodes) if isinstance(nodes, list) else []

    @siblings.setter
    def siblings(self, value: list[dict[str, Any]]) -> None:
        self._siblings = list(value or [])

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
        """Probe ids the rules not yet evaluated still need, in diagnosis order: probes with no
        result yet (whatever their domain), and probes that came back skipped or in error while
        their domain is still undecided (they decided nothing)."""
        out: list[str] = []
        decided = {d for d, s in self.domains().items() if s.status in (CONFIRMED, RULED_OUT)}
        for rule in self.rules:
            for p in rule.probes:
                o = self.observations.get(p)
                if p in out:
                    continue
                if o is None or (o.status in _UNDECIDED and rule.domain not in decided):
                    out.append(p)
        return out

    def outstanding(self) -> list[Rule]:
        """Rules still waiting for a probe that has not reported."""
        return [r for r in self.rules if any(p not in self.observations for p in r.probes)]

    def settled(self) -> bool:
        """True when a domain is confirmed and no probe still to come could change the verdict:
        no outstanding rule could confirm a domain that would come before it (earlier in
        PRECEDENCE, or a cause that EXPLAINS it) or point at a more specific leaf of it, and
        every probe of `wait_for` has reported. Rules only ever add: a confirmed domain stays
        confirmed, so the verdict is final even while slow probes (a hung crictl) still run."""
        confirmed = self.confirmed()
        if not confirmed or any(p not in self.observations for p in self.wait_for):
            return False
        top = confirmed[0]
        waiting = self.outstanding()
        leaves = [leaf for leaf, _ in LEAF_CAUSES.get(top, ())]
        leaf = self.leaf(top)
        better = leaves[:leaves.index(leaf)] if leaf in leaves else leaves
        if any(r.domain == top and r.leaf in better for r in waiting):
            return False  # a more specific leaf of the verdict may still come
        waiting_ids = {r.id for r in waiting}
        fired = {r.id for r, _ in self._fired}
        rank = {d: i for i, d in enumerate(PRECEDENCE)}
        for rule in waiting:
            if rule.effect != CONFIRM or rule.domain == top:
                continue
            if rank.get(rule.domain, len(rank)) < rank.get(top, len(rank)):
                return False
            links = EXPLAINS.get((rule.domain, top))
            if links and set(links) & (fired | waiting_ids):
                return False
        for (cause, effect), links in EXPLAINS.items():
            # a cause already confirmed behind `top` may still be moved ahead of it
            if effect == top and cause in confirmed and set(links) & waiting_ids:
                return False
        return True

    def leaf(self, domain: str | None = None) -> str | None:
        """The finer cause under `domain` (default: the concluded one) that the rules that held
        point at, most specific first (LEAF_CAUSES order); None when none does."""
        domain = domain or self.conclusion()
        order = [leaf for leaf, _ in LEAF_CAUSES.get(domain, ())]
        pointed = {r.leaf for r, _ in self._fired
                   if r.domain == domain and r.leaf and r.effect in (CONFIRM, SUSPECT)}
        return next((leaf for leaf in order if leaf in pointed), None)

    def leaf_cause(self, domain: str | None = None) -> str | None:
        domain = domain or self.conclusion()
        leaf = self.leaf(domain)
        return dict(LEAF_CAUSES.get(domain, ())).get(leaf) if leaf else None

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
    """A note for each zone / pool / OS image / kernel / version that many NotReady nodes share
    and that sets them apart: most of the NotReady nodes have it, and nodes with it fail at
    least twice as often as the nodes without it (a value every node shares says nothing)."""
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
        others = [s for s in siblings if s.get(key) and str(s.get(key)) != value]
        others_down = sum(1 for s in others if str(s.get("ready")) != "True")
        if not others or n * len(others) < 2 * others_down * total:
            continue
        names = sorted(str(s.get("name")) for s in down
                       if str(s.get(key)) == value and s.get("name"))
        shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
        notes.append(f"blast radius: {n} of {len(down)} NotReady nodes share {key} {value} "
                     f"({n} of {total} nodes with that {key} are NotReady"
                     + (f": {shown}" if shown else "") + ") — look for a common cause "
                     "(an image or kernel update, the zone's network) before fixing nodes one "
                     "by one")
    return notes
