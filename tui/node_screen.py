"""One node: its facts (describe-like, events, pods), the decision tree narrowing as probes
finish, the kubelet journal live, the kubelet's signals over time, and the node probes as they run.

At 100 columns and 30 rows or more the five panels share the screen (facts, diagnosis and probes
on the left, journal and signals on the right); below that one panel shows at a time, like tabs, and
tab/shift+tab move between them. Everything outside comes through a `NodeContext`
(tui.node_context): the app gives one, tests give fakes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.events import DescendantFocus, Resize
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from probes.metrics import reduce
from probes.observation import Observation, Status
from triage.timeline import Timeline
from tui.fleet_model import FleetModel
from tui.help_screen import HelpScreen, key_help
from tui.node_context import NodeContext
from tui.node_diagnosis import DiagnosisPanel, siblings_from
from tui.node_facts import PLAIN, describe, events_text, pods_text
from tui.node_journal import JournalPanel
from tui.node_probes_panel import ProbesPanel
from tui.node_signals import SignalsPanel

__all__ = ["NodeScreen", "describe", "new_lines"]

PANELS = (("facts", "Facts"), ("diagnosis", "Diagnosis"), ("journal", "Journal"),
          ("probes", "Probes"), ("signals", "Signals"))
WIDE = (100, 30)  # columns, rows from which all panels show at once
FLUSH_HZ = 20


class FactsLoaded(Message):
    def __init__(self, events: list[dict], pods: list[dict], problems: list[str]) -> None:
        super().__init__()
        self.events, self.pods, self.problems = events, pods, problems


class ProbeStarted(Message):
    """A probe started (ident), or the run ended (no ident; `stopped` says why if it failed)."""

    def __init__(self, ident: str, run: int, stopped: str = "") -> None:
        super().__init__()
        self.ident, self.run, self.stopped = ident, run, stopped


class ProbeObserved(Message):
    def __init__(self, obs: Observation, run: int) -> None:
        super().__init__()
        self.obs, self.run = obs, run


def new_lines(seen: list[str], lines: list[str]) -> tuple[list[str], bool]:
    """The lines of a fresh log query that come after what was already shown (`seen`: the last
    lines shown). False when the overlap was not found (lines may be missing in between)."""
    if not seen:
        return lines, True
    probe = seen[-5:]
    n = len(probe)
    for end in range(len(lines), n - 1, -1):
        if lines[end - n:end] == probe:
            return lines[end:], True
    if lines and lines[-1] == seen[-1]:
        return [], True
    return lines, False


def report_path(node: str, at: float) -> Path:
    """${NODEWB_REPORT_DIR:-${XDG_DATA_HOME:-~/.local/share}/nodewb/reports}/NODE-STAMP.md"""
    import os

    base = os.environ.get("NODEWB_REPORT_DIR")
    if base:
        directory = Path(base).expanduser()
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        directory = Path(data) / "nodewb" / "reports"
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{node}-{stamp}.md"


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S UTC")


class NodeScreen(Screen):
    """The node view."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="node.back"),
        Binding("slash", "search", "Search journal", id="node.search"),
        Binding("p", "pause", "Pause/resume journal", id="node.pause"),
        Binding("ctrl+r", "rerun", "Re-run probes", id="node.rerun"),
        Binding("c", "capture", "Capture evidence", id="node.capture"),
        Binding("a", "actions", "Actions", id="node.actions"),
        Binding("v", "verify", "Verify", id="node.verify"),
        Binding("V", "verify(True)", "Verify with a canary pod", show=False,
                id="node.verify_canary"),
        Binding("r", "report", "Report", id="node.report"),
        Binding("tab", "panel(1)", "Next panel", id="node.next_panel"),
        Binding("shift+tab", "panel(-1)", "Previous panel", show=False, id="node.prev_panel"),
        Binding("question_mark", "help", "Help", id="node.help"),
        Binding("j,down", "scroll('down')", "Down", show=False, id="node.down"),
        Binding("k,up", "scroll('up')", "Up", show=False, id="node.up"),
    ]
    COMPONENT_CLASSES = {"node--bad", "node--warn", "node--good", "node--label", "node--section"}
    DEFAULT_CSS = """
    NodeScreen > .node--bad { color: $error; text-style: bold; }
    NodeScreen > .node--warn { color: $warning; text-style: bold; }
    NodeScreen > .node--good { color: $success; }
    NodeScreen > .node--label { color: $primary; text-style: bold; }
    NodeScreen > .node--section { color: $secondary; text-style: bold underline; }
    NodeScreen #node-title { height: 1; background: $panel; color: $primary;
                             text-style: bold; padding: 0 1; }
    NodeScreen #node-tabs { height: 1; display: none; padding: 0 1; }
    NodeScreen.-narrow #node-tabs { display: block; }
    NodeScreen #node-grid { grid-size: 2 3; grid-columns: 50fr 70fr; grid-rows: 3fr 4fr 3fr;
                            height: 1fr; }
    NodeScreen #panel-journal { row-span: 2; }
    NodeScreen.-narrow #node-grid { grid-size: 1 1; grid-columns: 1fr; grid-rows: 1fr; }
    NodeScreen.-narrow .panel { display: none; }
    NodeScreen.-narrow .panel.-current { display: block; }
    NodeScreen .panel { border: round $panel-lighten-2; border-title-color: $text-muted;
                        padding: 0 1; height: 1fr; }
    NodeScreen .panel.-current { border: round $primary; border-title-color: $primary; }
    NodeScreen.-narrow .panel { border: none; padding: 0; }
    NodeScreen #panel-facts { row-span: 1; }
    """

    def __init__(self, model: FleetModel, name: str, now: float,
                 context: NodeContext | None = None) -> None:
        super().__init__()
        self.model = model
        self.node_name = name
        self._key: tuple = ()
        self._now = now
        self.context = context
        self.current = 0
        self.events: list[dict] = []
        self.pods: list[dict] = []
        self.facts_problems: list[str] = []
        self.facts_state = "loading events and pods…"
        self.probe_run = 0
        self._seen: list[str] = []
        self.capturing = False
        self._title = ""
        self._locating: asyncio.Future | None = None

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Text(f"node {self.node_name}"), id="node-title")
        yield Static(id="node-tabs")
        with Grid(id="node-grid"):
            with VerticalScroll(id="panel-facts", classes="panel -current") as facts:
                facts.border_title = "Facts"
                yield Static(id="node-body")
                yield Static(id="node-events")
                yield Static(id="node-pods")
            with Vertical(id="panel-journal", classes="panel") as journal:
                journal.border_title = "Journal"
                yield JournalPanel(id="journal")
            diagnosis = DiagnosisPanel(self.node_name, id="panel-diagnosis", classes="panel")
            diagnosis.border_title = "Diagnosis"
            yield diagnosis
            probes = ProbesPanel(self._clock, id="panel-probes", classes="panel")
            probes.border_title = "Probes"
            yield probes
            with Vertical(id="panel-signals", classes="panel") as signals:
                signals.border_title = "Signals"
                yield SignalsPanel(id="signals")
        yield Footer()

    # What the node screen keeps of a node across visits (the app holds it): the incident's
    # timeline, the last verified evidence bundle, the last action attempt.
    def _memory(self) -> dict[str, Any]:
        memory = getattr(self.app, "node_memory", None)
        if memory is None:
            memory = self._own_memory = getattr(self, "_own_memory", {})
        if self.node_name not in memory:
            memory[self.node_name] = {"timeline": Timeline(self.node_name, clock=self._clock),
                                      "bundle": None, "attempt": None}
        return memory[self.node_name]

    @property
    def timeline(self) -> Timeline:
        return self._memory()["timeline"]

    @property
    def bundle(self) -> Any:
        return self._memory()["bundle"]

    @bundle.setter
    def bundle(self, value: Any) -> None:
        self._memory()["bundle"] = value

    @property
    def attempt(self) -> Any:
        return self._memory()["attempt"]

    @attempt.setter
    def attempt(self, value: Any) -> None:
        self._memory()["attempt"] = value

    def _clock(self) -> float:
        ctx = self.context
        return ctx.clock() if ctx is not None else self._now

    @property
    def journal(self) -> JournalPanel:
        return self.query_one(JournalPanel)

    @property
    def signals(self) -> SignalsPanel:
        return self.query_one(SignalsPanel)

    @property
    def diagnosis(self) -> DiagnosisPanel:
        return self.query_one(DiagnosisPanel)

    @property
    def probes(self) -> ProbesPanel:
        return self.query_one(ProbesPanel)

    def panel(self, index: int) -> Widget:
        return self.query_one(f"#panel-{PANELS[index][0]}")

    def on_mount(self) -> None:
        if self.context is None:
            self.context = self._context_from_app()
        self._layout_for(self.app.size.width, self.app.size.height)
        self.update_from(self._now)
        self._show_current()
        self._focus_target(self.current).focus()
        self.set_interval(1 / FLUSH_HZ, self.flush, name="node-flush")
        self._start()

    def _context_from_app(self) -> NodeContext | None:
        make = getattr(self.app, "node_context", None)
        if make is None:
            return None
        try:
            return make() if callable(make) else make
        except Exception as err:  # a connection that cannot be made: said on each panel
            self.notify(f"cannot reach the node's endpoints: {type(err).__name__}: {err}",
                        title=self.node_name, severity="error", markup=False)
            return None

    def _start(self) -> None:
        ctx = self.context
        if ctx is None:
            why = "no cluster connection was given to this view"
            self.facts_state = why
            self.journal.set_source(f"journal: {why}")
            self.signals.failed(why)
            self.probes.failed(why)
            self.diagnosis.done(why)
            self._update_facts_extra()
            return
        if ctx.kube is not None:
            self.load_facts()
        else:
            self.facts_state = "events and pods: no API connection"
            self._update_facts_extra()
        if ctx.ssh is not None or ctx.kubelet is not None:
            self.follow_journal()
        else:
            self.journal.set_source("journal: neither SSH nor the kubelet API is configured")
        if ctx.kubelet is not None:
            self.scrape_metrics()
        else:
            self.signals.failed("the kubelet API is not configured")
        if ctx.probes is not None:
            self.run_probes()
        else:
            self.probes.failed("node probes are not available")
            self.diagnosis.done("node probes are not available")

    def on_resize(self, event: Resize) -> None:
        self._layout_for(event.size.width, event.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        self.set_class(width < WIDE[0] or height < WIDE[1], "-narrow")
        self._show_current()

    def _show_current(self) -> None:
        if not self.is_mounted:
            return
        for i, (key, _) in enumerate(PANELS):
            self.query_one(f"#panel-{key}").set_class(i == self.current, "-current")
        tabs = Text()
        for i, (_, title) in enumerate(PANELS):
            tabs.append(f" {title} ", "reverse bold" if i == self.current else "dim")
            tabs.append(" ")
        tabs.append(" tab/shift+tab: switch", "dim")
        self.query_one("#node-tabs", Static).update(tabs)

    def _focus_target(self, index: int) -> Widget:
        key = PANELS[index][0]
        if key == "journal":
            return self.journal.log_view
        if key == "signals":
            return self.signals
        if key == "diagnosis":
            return self.diagnosis.decision_tree
        return self.panel(index)

    # -- the frame -------------------------------------------------------------------------------
    def update_from(self, now: float) -> None:
        """The facts from the fleet model (called by the app each frame)."""
        if not self.query("#node-body"):
            return
        entry = self.model.get(self.node_name)
        key = (entry.version if entry else None, int(now), self.model.connected,
               self.model.leases.get(self.node_name), self.model.pods.get(self.node_name))
        if key == self._key:
            return
        self._key = key
        self._now = now
        self.query_one("#node-body", Static).update(
            describe(self.model, self.node_name, now, self._styles()))
        self._update_facts_extra()

    def _styles(self) -> dict:
        return {k: self.get_component_rich_style(f"node--{k}") for k in PLAIN}

    def flush(self) -> None:
        """Per frame: draw the journal lines that arrived, tick running probes."""
        self.journal.flush()
        self.probes.tick()
        self.diagnosis.flush()
        headline = self.diagnosis.shown_headline
        if headline.plain != self._title:
            self._title = headline.plain
            self.query_one("#node-title", Static).update(Text("node ") + headline, layout=False)

    def _update_facts_extra(self) -> None:
        if not self.is_mounted:
            return
        st = self._styles()
        out = Text()
        out.append("\nEvents:\n", st["section"])
        if self.facts_state:
            out.append(f"  {self.facts_state}\n", "dim")
        else:
            out.append_text(events_text(self.events, self._now, st))
        for problem in self.facts_problems:
            out.append(f"  {problem}\n", st["bad"])
        self.query_one("#node-events", Static).update(out)
        pods = Text()
        pods.append(f"\nPods on the node ({len(self.pods)}):\n" if not self.facts_state
                    else "\nPods on the node:\n", st["section"])
        if self.facts_state:
            pods.append(f"  {self.facts_state}\n", "dim")
        else:
            pods.append_text(pods_text(self.pods, st))
        self.query_one("#node-pods", Static).update(pods)

    # -- workers ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="node-facts", exit_on_error=False)
    def load_facts(self) -> None:
        kube = self.context.kube if self.context else None
        name = self.node_name
        events: list[dict] = []
        pods: list[dict] = []
        problems: list[str] = []
        if kube is None:
            problems.append("no API client: events and pods are not listed")
            self.post_message(FactsLoaded(events, pods, problems))
            return
        try:
            events = kube.get_json("/api/v1/events", {
                "fieldSelector": f"involvedObject.kind=Node,involvedObject.name={name}"}
            ).get("items") or []
        except Exception as err:  # outside code: shown, never raised
            problems.append(f"events could not be listed: {err}")
        try:
            pods = kube.get_json("/api/v1/pods", {"fieldSelector": f"spec.nodeName={name}"}
                                 ).get("items") or []
        except Exception as err:
            problems.append(f"pods could not be listed: {err}")
        self.post_message(FactsLoaded(events, pods, problems))

    @on(FactsLoaded)
    def _facts_loaded(self, message: FactsLoaded) -> None:
        self.events, self.pods = message.events, message.pods
        self.facts_problems = message.problems
        self.facts_state = ""
        self._update_facts_extra()

    async def _located(self) -> str | None:
        """The node's InternalIP, told to the SSH and kubelet clients before either reaches the
        node (from the fleet's record of it, else asked of the API once), so they reach it the
        way `nodewb diagnose` does. None when unknown or the context has no `locate`."""
        ctx = self.context
        if ctx is None or ctx.locate is None:
            return None
        if self._locating is None:
            entry = self.model.get(self.node_name)
            known = getattr(getattr(entry, "rec", None), "internal_ip", None) or None
            self._locating = asyncio.ensure_future(ctx.locate(self.node_name, known))
        try:
            return await asyncio.shield(self._locating)
        except asyncio.CancelledError:
            raise
        except Exception:  # outside code: the clients fall back to the node's name
            return None

    def _ssh_where(self) -> str:
        """` (user@host:port via bastion)` for an SSH client that can say where it goes."""
        target = getattr(self.context.ssh, "target", None) if self.context else None
        if target is None:
            return ""
        try:
            return f" ({target(self.node_name).describe()})"
        except Exception:  # the connection attempt will say what is wrong
            return ""

    @work(exclusive=True, group="node-journal", exit_on_error=False)
    async def follow_journal(self) -> None:
        ctx = self.context
        assert ctx is not None
        panel = self.journal
        if ctx.ssh is not None:
            await self._located()
            panel.set_source(f"ssh {self.node_name}{self._ssh_where()}: {ctx.journal_command}")
            try:
                async with ctx.ssh.stream(self.node_name, ctx.journal_command) as stream:
                    n = 0
                    async for item in stream:
                        if isinstance(item, str):
                            panel.add_lines((item,))
                        else:
                            panel.add_marker(item.describe() if hasattr(item, "describe")
                                             else str(item))
                        n += 1
                        if n % 512 == 0:
                            await asyncio.sleep(0)  # let the UI draw during a burst
                panel.add_marker(f"journalctl ended (exit status "
                                 f"{getattr(stream, 'exit_status', '?')})")
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                panel.add_marker(f"ssh journal failed: {type(err).__name__}: {err}")
                if ctx.kubelet is None:
                    panel.set_source("journal: ssh failed and the kubelet API is not configured")
                    return
                panel.add_marker("falling back to the kubelet log query")
        await self._poll_journal(ctx)

    async def _poll_journal(self, ctx: NodeContext) -> None:
        panel = self.journal
        kubelet = ctx.kubelet() if ctx.kubelet else None
        if kubelet is None:
            return
        await self._located()
        panel.set_source(f"kubelet log query (polled every {ctx.poll_every:g} s)")
        last_error = ""
        while True:
            try:
                obs = await kubelet.logs(self.node_name, "kubelet", tail_lines=200)
            except Exception as err:
                obs = None
                error = f"log query failed: {type(err).__name__}: {err}"
            else:
                error = "" if obs.status == Status.OK else obs.summary
            if obs is not None and not error:
                lines = list(obs.data.get("lines") or [])
                fresh, joined = new_lines(self._seen, lines)
                if not joined:
                    panel.add_marker("the log query moved past the last line shown; lines may "
                                     "be missing")
                panel.add_lines(fresh)
                if lines:
                    self._seen = lines[-20:]
                if last_error:
                    panel.add_marker("log query answering again")
                last_error = ""
                panel.set_source(f"kubelet log query via {obs.via} (polled every "
                                 f"{ctx.poll_every:g} s)")
            elif error != last_error:
                panel.add_marker(error)
                last_error = error
            await asyncio.sleep(ctx.poll_every)

    @work(exclusive=True, group="node-signals", exit_on_error=False)
    async def scrape_metrics(self) -> None:
        ctx = self.context
        assert ctx is not None and ctx.kubelet is not None
        kubelet = ctx.kubelet()
        panel = self.signals
        prev = None
        await self._located()
        while True:
            try:
                obs, scrape = await kubelet.scrape(self.node_name)
            except Exception as err:
                obs, scrape = None, None
                panel.failed(f"scrape failed: {type(err).__name__}: {err}")
            if scrape is not None and scrape.ok:
                signals = reduce(prev, scrape)
                panel.push(signals, prev, scrape, obs.via if obs else "",
                           _stamp(scrape.at))
                prev = scrape
            elif obs is not None:
                panel.failed(obs.summary)
            await asyncio.sleep(ctx.scrape_every)

    @work(exclusive=True, group="node-probes", exit_on_error=False)
    async def run_probes(self) -> None:
        ctx = self.context
        assert ctx is not None and ctx.probes is not None
        self.probe_run += 1
        run = self.probe_run
        panel = self.probes
        await self._located()
        try:
            probes = ctx.probes(self.node_name)
            panel.set_plan(probes.plan())
            self.diagnosis.reset(siblings_from(self.model))
        except Exception as err:
            panel.failed(f"the probes could not be planned: {type(err).__name__}: {err}")
            self.diagnosis.done("the probes could not be planned")
            return

        def on_start(spec: Any, *_: Any) -> None:
            self.post_message(ProbeStarted(str(getattr(spec, "id", spec)), run))

        def on_observation(obs: Observation, *_: Any) -> None:
            self.post_message(ProbeObserved(obs, run))

        try:
            await probes.run(on_start, on_observation)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            panel.failed(f"the probes stopped: {type(err).__name__}: {err}")
            self.post_message(ProbeStarted("", run, stopped=f"the probes stopped: {err}"))
            return
        self.post_message(ProbeStarted("", run))  # the run is over

    @on(ProbeStarted)
    def _probe_started(self, message: ProbeStarted) -> None:
        if message.run != self.probe_run:
            return
        if message.ident:
            self.probes.started(message.ident)
            self.diagnosis.started(message.ident)
        elif message.stopped:
            self.diagnosis.done(message.stopped)
        else:
            self.probes.failed(f"run {self.probe_run} finished at {_stamp(self._clock())} "
                               f"(ctrl+r runs them again)")
            self.diagnosis.done()
            self.timeline.verdict(self.verdict())

    @on(ProbeObserved)
    def _probe_observed(self, message: ProbeObserved) -> None:
        if message.run == self.probe_run:
            self.probes.observed(message.obs)
            self.diagnosis.observed(message.obs)
            self.timeline.observation(message.obs)

    # -- actions ---------------------------------------------------------------------------------
    def action_search(self) -> None:
        self._select(PANELS.index(("journal", "Journal")), focus=False)
        self.journal.open_search()

    def action_pause(self) -> None:
        self.journal.set_paused(not self.journal.paused)

    def action_rerun(self) -> None:
        ctx = self.context
        if ctx is None or ctx.probes is None:
            self.notify("node probes are not available here", severity="warning")
            return
        self.run_probes()
        if ctx.kube is not None:
            self.load_facts()

    # -- evidence, actions, verification, report ------------------------------------------------
    def verdict(self) -> Any:
        return self.diagnosis.diagnosis.verdict()

    def _attempt(self) -> Any:
        from triage.workflow import Attempt

        ctx = self.context
        if ctx is None:
            raise RuntimeError(f"no cluster context for {self.node_name}: nothing to act with")
        entry = self.model.get(self.node_name)
        make = ctx.attempt or Attempt
        return make(ctx.kube, ctx.ssh, ctx.kubelet() if ctx.kubelet else None,
                       self.node_name, verdict=self.verdict(),
                       enabled=bool(getattr(self.app, "actions_enabled", False)),
                       timeline=self.timeline,
                       kube_context=str(getattr(getattr(self.app, "source", None), "context",
                                                "") or ""),
                       internal_ip=entry.rec.internal_ip if entry else None)

    def _connected(self, what: str) -> bool:
        if self.context is None or self.context.kube is None:
            self.notify(f"{what} needs a cluster connection", severity="warning")
            return False
        return True

    def action_capture(self) -> None:
        if not self._connected("capturing evidence"):
            return
        if self.capturing:
            self.notify("a capture is already running", severity="warning")
            return
        self.capture()

    @work(exclusive=True, group="node-capture", exit_on_error=False)
    async def capture(self) -> None:
        from triage.evidence import EvidenceError

        self.capturing = True
        self.notify(f"capturing evidence of {self.node_name}…", title="evidence", timeout=4)
        attempt = self._attempt()
        try:
            bundle = await attempt.capture()
        except EvidenceError as err:
            self.notify(f"no bundle was written: {err}", title="evidence", severity="error",
                        timeout=15, markup=False)
            return
        except Exception as err:  # outside code: shown, never raised
            self.notify(f"capture failed: {type(err).__name__}: {err}", title="evidence",
                        severity="error", timeout=15, markup=False)
            return
        finally:
            self.capturing = False
        self.bundle = bundle
        problems = f"; {len(bundle.problems)} problems noted" if bundle.problems else ""
        self.notify(f"{bundle.path}\nsha256 {bundle.sha256[:16]}… · {len(bundle.files)} files"
                    f"{problems}", title="evidence captured and verified", timeout=12,
                    markup=False)

    def action_actions(self) -> None:
        from tui.node_actions import ActionScreen, ActionsMenu

        if not self._connected("an action"):
            return
        verdict = self.verdict()

        def chosen(action_id: str | None) -> None:
            if action_id:
                self.app.push_screen(ActionScreen(self._attempt(), action_id,
                                                  enable=self._enable_actions), self._acted)

        self.app.push_screen(ActionsMenu(self.node_name, verdict.verdict, list(verdict.actions),
                                         bool(getattr(self.app, "actions_enabled", False))),
                             chosen)

    def _enable_actions(self) -> None:
        self.app.actions_enabled = True  # type: ignore[attr-defined]
        self.timeline.note("actions enabled for this session (confirmed in the app)")

    def _acted(self, attempt: Any) -> None:
        if attempt is None:
            return
        self.attempt = attempt
        if attempt.bundle is not None:
            self.bundle = attempt.bundle
        if attempt.plan is not None:
            self._watch(attempt, f"after {attempt.plan.action.id}: watching {self.node_name} "
                                 f"come back")

    def action_verify(self, canary: bool = False) -> None:
        if not self._connected("verification"):
            return
        attempt = self.attempt if self.attempt is not None else self._attempt()
        what = f"verifying {self.node_name}: Ready, lease, healthz, pods, journal"
        self._watch(attempt, what + (", canary pod" if canary else ""), canary=canary)

    def _watch(self, attempt: Any, what: str, canary: bool = False) -> None:
        from tui.node_verify import VerifyScreen

        quiet = self.context.verify_quiet if self.context is not None else None

        async def watch(on_progress) -> Any:
            return await attempt.verify(on_progress=on_progress, quiet=quiet, canary=canary)

        self.app.push_screen(VerifyScreen(self.node_name, watch, what))

    def action_report(self) -> None:
        from triage.report import incident_report, write_report
        from tui.node_report import ReportScreen

        verdict = self.verdict()
        text = incident_report(self.timeline, verdict, self.bundle, self.node_name)
        path = report_path(self.node_name, self._clock())
        try:
            write_report(path, text)
        except OSError as err:
            self.notify(f"the report could not be written to {path}: {err.strerror or err}",
                        title="report", severity="error", markup=False)
            return
        self.timeline.note(f"incident report written to {path}")
        self.app.push_screen(ReportScreen(text, str(path)))

    def action_panel(self, step: int) -> None:
        self._select((self.current + step) % len(PANELS))

    def _select(self, index: int, focus: bool = True) -> None:
        self.current = index
        self._show_current()
        if focus:
            self._focus_target(index).focus()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(key_help(self)))

    def action_scroll(self, direction: str) -> None:
        target = self._focus_target(self.current)
        if direction == "down":
            target.scroll_down(animate=False)
        else:
            target.scroll_up(animate=False)

    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        for i, (key, _) in enumerate(PANELS):
            panel = self.query_one(f"#panel-{key}")
            if event.widget is panel or panel in event.widget.ancestors:
                if i != self.current:
                    self.current = i
                    self._show_current()
                return
