"""The actions menu and one action's modal: the exact commands, what was chosen and why, the guard
rails' checks, then (only on a deliberate confirm) evidence first, the action, and the audit
record. The modal dismisses with the attempt when the action ran, so the node screen can watch
the node come back.

Actions are off until enabled: --allow-actions, or the "Enable actions" button, which asks
again in a modal of its own. Confirming needs a button that is not focused by default (tab to
it), never a printable key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from triage.actions import ACTIONS, listing
from triage.guards import Refused, override_phrase
from triage.workflow import Attempt, EvidenceError, PlanError
from tui.node_journal import clean_line

__all__ = ["ActionsMenu", "ActionScreen", "ConfirmScreen", "menu_order"]


def menu_order(verdict_actions: list[str]) -> list[str]:
    """The verdict's actions first (the fix for what was found), then every other one."""
    first = [a for a in verdict_actions if a in ACTIONS]
    return first + [a for a in ACTIONS if a not in first]


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; No is focused, so Enter alone never says yes."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel", id="confirm.cancel")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 72; max-width: 100%; height: auto; border: thick $warning;
                               background: $surface; padding: 1 2; }
    ConfirmScreen #confirm-text { width: 100%; height: auto; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align: right middle; }
    ConfirmScreen Button { margin-left: 2; }
    """

    def __init__(self, text: str, yes: str = "Yes") -> None:
        super().__init__()
        self.text, self.yes = text, yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.text), id="confirm-text")
            with Horizontal():
                yield Button("No", id="confirm-no", variant="primary")
                yield Button(self.yes, id="confirm-yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")


class ActionsMenu(ModalScreen[str | None]):
    """Pick an action: the verdict's first. The highlighted action's commands show below."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="actions.close")]
    DEFAULT_CSS = """
    ActionsMenu { align: center middle; }
    ActionsMenu > Vertical { width: 100; max-width: 100%; height: auto; max-height: 100%;
                             border: round $primary; background: $surface; padding: 0 1; }
    ActionsMenu #actions-title { height: auto; text-style: bold; }
    ActionsMenu OptionList { height: auto; max-height: 16; }
    ActionsMenu #actions-commands { height: auto; color: $text-muted; padding: 1 0 0 0; }
    """

    def __init__(self, node: str, verdict: str, verdict_actions: list[str],
                 enabled: bool) -> None:
        super().__init__()
        self.node, self.verdict = node, verdict
        self.order = menu_order(verdict_actions)
        self.first = set(verdict_actions)
        self.enabled = enabled
        self.templates = {a.id: cmds for a, cmds in listing(node)}

    def compose(self) -> ComposeResult:
        with Vertical():
            state = "enabled" if self.enabled else "OFF (read-only until enabled)"
            yield Static(Text(f"Actions on {self.node} · verdict {self.verdict} · actions {state}"),
                         id="actions-title")
            options = []
            for ident in self.order:
                action = ACTIONS[ident]
                label = Text()
                label.append("★ " if ident in self.first else "  ",
                             "bold" if ident in self.first else "")
                label.append(f"{ident:<20}", "bold")
                label.append(action.title)
                options.append(Option(label, id=ident))
            yield OptionList(*options, id="actions-list")
            yield Static(id="actions-commands")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        options.highlighted = 0
        self._show(self.order[0] if self.order else None)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show(event.option.id)

    def _show(self, ident: str | None) -> None:
        out = Text()
        if ident is not None:
            action = ACTIONS[ident]
            if ident in self.first:
                out.append(f"heals the verdict ({self.verdict}). ", "bold")
            out.append(f"Runbook: {action.runbook}\n")
            for line in self.templates.get(ident, []):
                out.append(f"  $ {line}\n")
        self.query_one("#actions-commands", Static).update(out)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ActionScreen(ModalScreen[Attempt | None]):
    """One action: planned, checked, then (on confirm) captured, run and audited."""

    BINDINGS = [Binding("escape", "close", "Close", id="action.close")]
    DEFAULT_CSS = """
    ActionScreen { align: center middle; }
    ActionScreen > Vertical { width: 110; max-width: 100%; height: auto; max-height: 100%;
                              border: thick $warning; background: $surface; padding: 0 1; }
    ActionScreen VerticalScroll { height: auto; max-height: 30; }
    ActionScreen .section { height: auto; width: 100%; }
    ActionScreen #action-title { text-style: bold; }
    ActionScreen #action-override { display: none; }
    ActionScreen.-override #action-override { display: block; }
    ActionScreen Horizontal { height: auto; align: right middle; padding-top: 1; }
    ActionScreen Button { margin-left: 2; }
    ActionScreen #action-enable { display: none; }
    ActionScreen.-disabled #action-enable { display: block; }
    """

    def __init__(self, attempt: Attempt, action_id: str,
                 enable: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.attempt = attempt
        self.action_id = action_id
        self.enable = enable
        self.state = "planning"  # planning | ready | blocked | running | ran | failed
        self.said: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"{self.action_id} on {self.attempt.node}"), id="action-title",
                         classes="section")
            with VerticalScroll():
                yield Static(Text("planning the exact commands…", "dim"), id="action-plan",
                             classes="section")
                yield Static(id="action-guard", classes="section")
                yield Static(id="action-log", classes="section")
            yield Input(placeholder=f"type: {override_phrase(self.attempt.node)}",
                        id="action-override")
            with Horizontal():
                yield Button("Close", id="action-close", variant="primary")
                yield Button("Enable actions…", id="action-enable")
                yield Button("Capture evidence, then run", id="action-run", variant="error",
                             disabled=True)

    def on_mount(self) -> None:
        self.query_one("#action-close", Button).focus()
        self.set_class(not self.attempt.enabled, "-disabled")
        self.prepare()

    # -- planning and checks ---------------------------------------------------------------------
    @work(exclusive=True, group="action", exit_on_error=False)
    async def prepare(self) -> None:
        self.state = "planning"
        self._button(False)
        try:
            plan = await self.attempt.prepare(self.action_id, audit_refusal=False)
        except Refused as err:
            self.state = "blocked"
            self._show_plan(None)
            self._show_guard(err.report.lines() if err.report else [f"✘ {err.reason}"])
            return
        except PlanError as err:
            self.state = "blocked"
            self.query_one("#action-plan", Static).update(
                Text(f"nothing to act on: {err}", "bold"))
            return
        except Exception as err:  # the cluster's answer: shown, never raised
            self.state = "blocked"
            self.query_one("#action-plan", Static).update(
                Text(f"could not plan {self.action_id}: {type(err).__name__}: {err}", "bold"))
            return
        self._show_plan(plan)
        report = self.attempt.report
        self._show_guard(report.lines() if report else [])
        self.state = "ready" if report is not None and report.allowed else "blocked"
        self._button(self.state == "ready")

    def _show_plan(self, plan: Any) -> None:
        out = Text()
        if plan is None:
            out.append("not planned", "dim")
        else:
            out.append(f"{plan.action.title}\n", "bold")
            if plan.target:
                out.append(f"target: {clean_line(plan.target)}\n")
            for e in plan.evidence:
                out.append(f"  evidence: {clean_line(e)}\n", "dim")
            out.append("runs exactly:\n", "bold")
            for i, c in enumerate(plan.commands(), 1):
                out.append(f"  {i}. {c}\n")
        self.query_one("#action-plan", Static).update(out)

    def _show_guard(self, lines: list[str]) -> None:
        out = Text("guard rails:\n", "bold")
        for line in lines:
            style = "red" if line.startswith("✘") else ("yellow" if line.startswith("!") else "")
            out.append(f"  {clean_line(line)}\n", style)
        self.query_one("#action-guard", Static).update(out)

    def _button(self, on: bool) -> None:
        self.query_one("#action-run", Button).disabled = not on

    def _say(self, line: str, style: str = "") -> None:
        self.said.append(line)
        out = Text()
        for entry in self.said[-12:]:
            out.append(clean_line(entry) + "\n", style if entry == line else "")
        self.query_one("#action-log", Static).update(out)

    # -- buttons ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#action-close")
    def action_close(self) -> None:
        if self.state == "running":
            self.notify("the action is running; it is not stopped halfway", severity="warning")
            return
        self.dismiss(self.attempt if self.state in ("ran", "failed") else None)

    @on(Button.Pressed, "#action-enable")
    def _enable(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes and self.enable is not None:
                self.enable()
                self.attempt.enabled = True
                self.set_class(False, "-disabled")
                self.prepare()

        self.app.push_screen(ConfirmScreen(
            "Enable actions for this session? Actions change the cluster and the node. Each one "
            "still checks RBAC and sudo, refuses what the runbooks forbid, and captures a "
            "verified evidence bundle before it runs. Every attempt is written to the audit "
            "log.", yes="Enable actions"), answered)

    @on(Button.Pressed, "#action-run")
    def _run_pressed(self) -> None:
        if self.state == "ready":
            self.execute(None)
        elif self.state == "override":
            typed = self.query_one("#action-override", Input).value
            self.execute(typed)

    @on(Input.Changed, "#action-override")
    def _typed(self, event: Input.Changed) -> None:
        if self.state == "override":
            self._button(event.value.strip() == override_phrase(self.attempt.node))

    @work(exclusive=True, group="action", exit_on_error=False)
    async def execute(self, override: str | None) -> None:
        attempt = self.attempt
        self._button(False)
        self.state = "running"
        if override is None:
            self._say(f"capturing evidence of {attempt.node} first…")
            try:
                bundle = await attempt.capture()
            except EvidenceError as err:
                self.state = "override"
                self._say(f"✘ evidence capture failed: {err}", "red")
                self._say(f"nothing was run. To act anyway, type "
                          f"'{override_phrase(attempt.node)}' below (the audit log records "
                          f"it), or close.")
                self.set_class(True, "-override")
                self.query_one("#action-override", Input).focus()
                return
            self._say(f"✔ evidence verified: {bundle.path} (sha256 {bundle.sha256[:12]}…, "
                      f"{len(bundle.files)} files)")
        try:
            cleared = attempt.clear(override)
        except Refused as err:
            self.state = "blocked"
            self._say(f"✘ refused: {err.reason}", "red")
            return
        self.set_class(False, "-override")
        try:
            result = await attempt.run(cleared, on_step=lambda text: self._say(f"$ {text}"))
        except Exception as err:
            self.state = "failed"
            self._say(f"✘ {type(err).__name__}: {err}", "red")
            return
        if result.ok:
            self.state = "ran"
            self._say("✔ done; watching the node come back…", "green")
            self.dismiss(attempt)
        else:
            self.state = "failed"
            self._say(f"✘ failed: {result.error}", "red")
