"""The decision-tree panel: the failure domains in the runbooks' order, each confirmed, suspected,
ruled out or still waiting for its probes, with the observation that decided it; the tree narrows
as probes finish, and the verdict's leaf opens onto its cause, fixes, verification steps and the
runbooks' don'ts. Text from the outside world (evidence quotes) is always shown literally."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from probes.observation import Observation
from triage.rules import COMMON_DONT, COMMON_VERIFY, LEAVES, RULES
from triage.tree import CONFIRMED, RULED_OUT, SUSPECTED, UNTESTED, Diagnosis
from tui.node_journal import clean_line

__all__ = ["DiagnosisPanel", "DOMAIN_ORDER", "siblings_from"]


def _domain_order() -> tuple[str, ...]:
    seen: list[str] = []
    for rule in RULES:
        if rule.domain not in seen:
            seen.append(rule.domain)
    seen += [d for d in LEAVES if d not in seen]
    return tuple(seen)


DOMAIN_ORDER = _domain_order()  # the order the runbooks' diagnosis reaches each domain
GLYPH = {CONFIRMED: "✗", SUSPECTED: "?", RULED_OUT: "✓", UNTESTED: "·"}
WORD = {CONFIRMED: "confirmed", SUSPECTED: "suspected", RULED_OUT: "ruled out",
        UNTESTED: "untested"}


def siblings_from(model: Any) -> list[dict[str, Any]]:
    """The fleet as the tree's blast-radius check wants it: one dict per node."""
    out = []
    for entry in getattr(model, "entries", {}).values():
        r = entry.rec
        out.append({"name": r.name, "ready": r.ready, "zone": r.zone, "pool": r.pool,
                    "os_image": r.os_image, "kernel": r.kernel,
                    "kubelet_version": r.kubelet_version})
    return out


def _pending_for(diagnosis: Diagnosis, domain: str) -> list[str]:
    """Probes a domain's rules read that have not come back yet."""
    out: list[str] = []
    for rule in diagnosis.rules:
        if rule.domain != domain:
            continue
        for p in rule.probes:
            if p not in diagnosis.observations and p not in out:
                out.append(p)
    return out


class DiagnosisPanel(Vertical):
    """A Textual Tree of the failure domains, redrawn at most once per frame."""

    COMPONENT_CLASSES = {"diag--confirmed", "diag--suspected", "diag--ruled-out",
                         "diag--untested", "diag--heading", "diag--evidence"}
    DEFAULT_CSS = """
    DiagnosisPanel { height: 1fr; }
    DiagnosisPanel > Tree { height: 1fr; background: $surface; padding: 0; overflow-x: hidden; }
    DiagnosisPanel > #diagnosis-detail { height: auto; max-height: 6; color: $text-muted;
                                         border-top: hkey $panel-lighten-2; }
    DiagnosisPanel > .diag--confirmed { color: $error; text-style: bold; }
    DiagnosisPanel > .diag--suspected { color: $warning; text-style: bold; }
    DiagnosisPanel > .diag--ruled-out { color: $success; }
    DiagnosisPanel > .diag--untested { color: $text-muted; }
    DiagnosisPanel > .diag--heading { color: $secondary; text-style: bold; }
    DiagnosisPanel > .diag--evidence { color: $text; }
    """

    def __init__(self, node: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.node = node
        self.diagnosis = Diagnosis(node)
        self.running: set[str] = set()
        self.finished = False
        self.note = ""  # set when the probes could not run
        self._dirty = True
        self._shown: dict[str, tuple] = {}  # domain -> what its node was last drawn from
        self._domain_nodes: dict[str, TreeNode] = {}
        self._extra: TreeNode | None = None
        self._extra_key: tuple = ()
        self.shown_headline = Text(node)  # what the tree's root says now

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree(Text(f"{self.node}"), id="diagnosis-tree")
        tree.show_root = True
        tree.guide_depth = 2
        yield tree
        yield Static(id="diagnosis-detail", markup=False)

    @property
    def decision_tree(self) -> Tree:
        return self.query_one("#diagnosis-tree", Tree)

    def on_mount(self) -> None:
        tree = self.decision_tree
        tree.root.expand()
        for domain in DOMAIN_ORDER:
            self._domain_nodes[domain] = tree.root.add(Text(domain), data=domain, expand=False)
        self.redraw()

    # -- state -----------------------------------------------------------------------------------
    def reset(self, siblings: list[dict[str, Any]] | None = None) -> None:
        self.diagnosis = Diagnosis(self.node, siblings=siblings)
        self.running.clear()
        self.finished = False
        self.note = ""
        self._dirty = True

    def started(self, probe: str) -> None:
        self.running.add(probe)
        self._dirty = True

    def observed(self, obs: Observation) -> None:
        self.running.discard(obs.probe)
        self.diagnosis.add(obs)
        self._dirty = True

    def done(self, note: str = "") -> None:
        self.running.clear()
        self.finished = True
        self.note = note
        self._dirty = True

    def flush(self) -> None:
        if self._dirty and self.is_mounted:
            self._dirty = False
            self.redraw()

    # -- drawing ---------------------------------------------------------------------------------
    def _style(self, status: str):
        name = {CONFIRMED: "confirmed", SUSPECTED: "suspected", RULED_OUT: "ruled-out"}.get(
            status, "untested")
        return self.get_component_rich_style(f"diag--{name}")

    def conclusion(self) -> str:
        return self.diagnosis.conclusion()

    def settled(self) -> bool:
        """True when no probe still out could change the verdict."""
        return self.diagnosis.settled()

    def headline(self) -> Text:
        d = self.diagnosis
        states = d.domains()
        conclusion = d.conclusion()
        open_ = sum(1 for s in states.values() if s.status != RULED_OUT)
        running = len(self.running)
        out = Text(f"{self.node}  ")
        if running:
            out.append(f"{running} probe{'s' if running != 1 else ''} running · ", "dim")
        elif self.note:
            out.append(f"{self.note} · ", "dim")
        if conclusion in LEAVES and (self.finished or not running or self.settled()):
            out.append(f"verdict: {conclusion}", self._style(CONFIRMED))
            out.append(f" — {LEAVES[conclusion].title}")
        elif conclusion in LEAVES:
            out.append(f"leading: {conclusion}", self._style(SUSPECTED))
            out.append(" — probes still running may change it")
        elif not self.finished and (running or not d.observations):
            out.append(f"narrowing: {open_} of {len(states)} domains open", self._style(SUSPECTED))
        elif conclusion == "healthy":
            out.append("healthy", self._style(RULED_OUT))
            out.append(" — no failure domain confirmed or suspected")
        else:
            out.append("unknown", self._style(SUSPECTED))
            out.append(" — the evidence decides nothing; see the next probes")
        return out

    def redraw(self) -> None:
        d = self.diagnosis
        tree = self.decision_tree
        self.shown_headline = self.headline()
        tree.root.set_label(self.shown_headline)
        states = d.domains()
        conclusion = d.conclusion()
        for domain in DOMAIN_ORDER:
            state = states.get(domain)
            if state is None:
                continue
            pending = _pending_for(d, domain) if state.status in (UNTESTED, SUSPECTED) else []
            key = (state.status, tuple(state.evidence), tuple(pending), domain == conclusion,
                   self.finished)
            if self._shown.get(domain) == key:
                continue
            before = self._shown.get(domain)
            self._shown[domain] = key
            node = self._domain_nodes[domain]
            node.set_label(self._domain_label(domain, state.status, pending))
            node.remove_children()
            self._fill(node, domain, state.status, state.evidence, pending,
                       verdict=domain == conclusion)
            if before is None or before[0] != state.status or before[3] != key[3]:
                if state.status in (CONFIRMED, SUSPECTED) or domain == conclusion:
                    node.expand()
                else:
                    node.collapse()
        self._draw_extra(d, conclusion)
        self._show_detail(tree.cursor_node)

    def _domain_label(self, domain: str, status: str, pending: list[str]) -> Text:
        style = self._style(status)
        leaf = LEAVES.get(domain)
        out = Text()
        out.append(f"{GLYPH[status]} {domain}", style)
        out.append(f"  {WORD[status]}", style)
        if leaf is not None and status != RULED_OUT:
            out.append(f" — {leaf.title}", "dim" if status == UNTESTED else "")
        if status == UNTESTED:
            if pending and not self.finished:
                waiting = [p for p in pending if p in self.running] or pending
                out.append(f"  (waiting for {', '.join(waiting[:3])}"
                           f"{' …' if len(waiting) > 3 else ''})", "dim italic")
            else:
                out.append("  (no probe decided it)", "dim italic")
        return out

    def _fill(self, node: TreeNode, domain: str, status: str, evidence: list[str],
              pending: list[str], verdict: bool) -> None:
        ev_style = self.get_component_rich_style("diag--evidence")
        for quote in evidence:
            shown = " / ".join(clean_line(part) for part in quote.splitlines())
            node.add_leaf(Text("← ") + Text(shown, ev_style), data=shown)
        if status in (UNTESTED, SUSPECTED) and pending and not self.finished:
            node.add_leaf(Text(f"needs: {', '.join(pending)}", "dim"),
                          data=f"still to come: {', '.join(pending)}")
        leaf = LEAVES.get(domain)
        if not verdict or leaf is None:
            return
        heading = self.get_component_rich_style("diag--heading")
        node.add_leaf(Text("cause: ", heading) + Text(leaf.cause), data=leaf.cause)
        self._section(node, "fix", leaf.fix, heading, expand=True)
        self._section(node, "verify", list(leaf.verify) + list(COMMON_VERIFY), heading)
        self._section(node, "don't", list(leaf.dont) + list(COMMON_DONT), heading, expand=True)
        if leaf.actions:
            text = ", ".join(leaf.actions)
            node.add_leaf(Text("actions: ", heading) + Text(f"{text}  (a: actions menu)"),
                          data=f"actions that heal it: {text}")

    @staticmethod
    def _section(parent: TreeNode, title: str, items: Iterable[str], style: Any,
                 expand: bool = False) -> None:
        items = list(items)
        section = parent.add(Text(f"{title} ({len(items)})", style), data=title, expand=expand)
        for item in items:
            section.add_leaf(Text(f"• {item}"), data=item)

    def _draw_extra(self, d: Diagnosis, conclusion: str) -> None:
        notes = d.notes()
        nxt = d.next_probes() if conclusion != "healthy" and self.finished else []
        key = (tuple(notes), tuple(nxt))
        if key == self._extra_key:
            return
        self._extra_key = key
        if self._extra is not None:
            self._extra.remove()
            self._extra = None
        if not notes and not nxt:
            return
        heading = self.get_component_rich_style("diag--heading")
        extra = self.decision_tree.root.add(Text("notes", heading), data="notes", expand=True)
        for note in notes:
            shown = clean_line(note)
            extra.add_leaf(Text(shown), data=shown)
        if nxt:
            extra.add_leaf(Text(f"next probes: {', '.join(nxt)}"),
                           data=f"next probes: {', '.join(nxt)}")
        self._extra = extra

    # -- the detail line -------------------------------------------------------------------------
    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        self._show_detail(event.node)

    def _show_detail(self, node: TreeNode | None) -> None:
        detail = self.query_one("#diagnosis-detail", Static)
        if node is not None and node is self.decision_tree.root:
            detail.update(self.headline())
            return
        if node is None or node.data is None:
            detail.update(Text("enter: open/close · the highlighted line shows here in full",
                               "dim"))
            return
        data = node.data
        if data in LEAVES:
            leaf = LEAVES[data]
            detail.update(Text(f"{data}: {leaf.cause}"))
        else:
            detail.update(Text(str(data)))
