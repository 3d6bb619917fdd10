"""The nodewb Textual app: the fleet, live, and a node's page behind Enter."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.filter import LineFilter, Monochrome, NoColor
from textual.theme import Theme

from tui.commands import FleetCommands
from tui.config import Config, load_config, save_theme
from tui.feed import Feed, FeedEvent, FleetSource, Pump
from tui.fleet_model import FleetModel
from tui.fleet_screen import FleetScreen
from tui.node_context import live_context
from tui.themes import DEFAULT_THEME, load_themes

FRAME_HZ = 20
_NO_COLOR = NoColor()


class NodewbApp(App):
    TITLE = "nodewb"
    COMMANDS = {FleetCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.palette"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True,
                id="app.palette_anywhere"),
    ]

    def __init__(self, source: Feed, *, title: str = "nodewb",
                 clock: Callable[[], float] = time.time, config: Config | None = None,
                 themes: tuple[list[Theme], list[str]] | None = None,
                 frame_hz: float = FRAME_HZ, pump: Pump | None = None,
                 ssh_config: str | None = None,
                 ssh_options: dict[str, Any] | None = None,
                 allow_actions: bool = False) -> None:
        super().__init__()
        # Read-only until enabled: --allow-actions, or the confirmed toggle in an action's modal.
        self.actions_enabled = allow_actions
        self.node_memory: dict[str, dict[str, Any]] = {}  # per node: timeline, bundle, attempt
        self.source = source
        self.title = title
        self.clock = clock
        self.config = config if config is not None else load_config()
        self.model = FleetModel()
        self.pump = pump if pump is not None else Pump()
        connect = getattr(source, "connect", None)
        # What the node screen needs (kube, SSH, kubelet client, probes), made on first use.
        self.node_context = (live_context(connect, ssh_config, clock, ssh_options)
                             if connect else None)
        self.frame_hz = frame_hz
        self.frames = 0
        self._themes, self._theme_problems = themes if themes is not None else load_themes()
        self._remember_theme = False
        for theme in self._themes:
            self.register_theme(theme)
        wanted = self.config.theme or DEFAULT_THEME
        if wanted in self.available_themes:
            self.theme = wanted
        elif self._themes:
            self.theme = self._themes[0].name

    # -- screens -----------------------------------------------------------------------------------
    def get_default_screen(self) -> FleetScreen:
        self.fleet = FleetScreen(self.model, self.clock, self.title)
        return self.fleet

    def on_mount(self) -> None:
        problems = list(self._theme_problems)
        if self.config.problem:
            problems.append(self.config.problem)
        if self.config.theme and self.config.theme not in self.available_themes:
            problems.append(f"theme {self.config.theme!r} from {self.config.path} is not "
                            f"installed; using {self.theme}")
        if self.config.keys:
            try:
                self.set_keymap(self.config.keys)
            except Exception as err:  # a bad key string in the user's file
                problems.append(f"[keys] in {self.config.path} ignored: {err}")
        for problem in problems:
            self.notify(problem, title="settings", severity="warning", timeout=10, markup=False)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self._remember_theme = True
        self.set_interval(1 / self.frame_hz, self.frame, name="frame")
        if not getattr(self.source, "running", False):
            self.run_feed()
        self.call_after_refresh(self.frame)

    def _theme_changed(self, theme: Theme) -> None:
        if not self._remember_theme or theme.name == self.config.theme:
            return
        problem = save_theme(self.config, theme.name)
        if problem:
            self.notify(problem, title="theme", severity="warning", timeout=8, markup=False)

    def get_line_filters(self) -> Sequence[LineFilter]:
        """With NO_COLOR, an ANSI theme (the terminal's own colours) loses its colours rather than
        being turned to greys: Textual chooses its grey filter before the theme is known, and
        greys the terminal's default colours to black on black."""
        filters = super().get_line_filters()
        if self.no_color and self.native_ansi_color:
            return [_NO_COLOR if isinstance(f, Monochrome) else f for f in filters]
        return filters

    # -- the feed ----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="fleet-feed", exit_on_error=False)
    def run_feed(self) -> None:
        try:
            self.source.run(self.pump.emit, self.pump.stop)
        except Exception as err:  # the feed is outside code: its failure is shown, not raised
            self.pump.emit([FeedEvent("connection", connected=False, at=self.clock(),
                                      error=f"the fleet feed stopped: {type(err).__name__}: "
                                            f"{err}")])

    def frame(self) -> None:
        """Once per frame: apply what the feed queued, then redraw what changed."""
        self.frames += 1
        events = self.pump.drain()
        if events:
            self.model.apply(events)
            if not self.pump.ui_ready.is_set():
                self.call_after_refresh(self.pump.ui_ready.set)
        now = self.clock()
        fleet = getattr(self, "fleet", None)
        if fleet is None or not fleet.ready:
            return
        try:
            source = self.source
            fleet.header.set_source(getattr(source, "context", "") or "",
                                    getattr(source, "server", "") or "", source_cluster(source))
            fleet.update_view(now)
            screen = self.screen
            update = getattr(screen, "update_from", None)  # the node screen, when it is open
            if update is not None:
                update(now)
        except NoMatches:  # the app is shutting down and has already removed the screens' widgets
            return

    async def on_unmount(self) -> None:
        self.pump.ui_ready.set()
        self.pump.stop.set()
        close = getattr(self.node_context, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing connections at exit: nothing left to tell the user
                pass

    def action_quit(self) -> Any:
        self.pump.stop.set()
        return super().action_quit()


def source_cluster(source: Feed) -> str:
    """The kubeconfig's name for the cluster (empty until the feed has connected, and for
    feeds that have no kubeconfig)."""
    return str(getattr(source, "cluster", "") or "")


def run_app(kubeconfig: str | None, context: str | None, ssh_config: str | None,
            title: str = "nodewb", source: FleetSource | None = None,
            pump: Pump | None = None, ssh_options: dict[str, Any] | None = None,
            allow_actions: bool = False) -> int:
    """Run the app; `source` and `pump` may come already started (see tui.cli)."""
    if source is None:
        source = FleetSource(kubeconfig, context)
    NodewbApp(source, title=title, pump=pump, ssh_config=ssh_config,
              ssh_options=ssh_options, allow_actions=allow_actions).run()
    return 0
