"""The command palette's fleet commands: everything a key does, and more, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.fleet_model import COLUMNS, GROUPS


class FleetCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        fleet = getattr(app, "fleet", None)
        out: list[tuple[str, Callable[[], object], str]] = []
        if fleet is not None:
            for col in COLUMNS:
                out.append((f"Sort by {col.title}", partial(fleet.sort_by, col.id),
                            col.help or f"order the fleet by {col.title}"))
            out.append(("Reverse sort order", fleet.action_reverse_sort, "S"))
            for key, (label, _) in GROUPS.items():
                out.append((f"Group by {label}", partial(fleet.group_by, key),
                            f"one header per {label}, with its node and NotReady counts"))
            out.append(("No grouping", partial(fleet.group_by, None), "one flat list"))
            out.append(("Filter nodes…", fleet.action_filter, "/"))
            out.append(("Clear filter", fleet.action_clear_filter, "esc"))
            out.append(("Show keys (help)", fleet.action_help, "?"))
        ours = [t for t in app.available_themes if t.startswith("nodewb-")]
        others = sorted(t for t in app.available_themes if not t.startswith("nodewb-"))
        for name in sorted(ours) + others:
            out.append((f"Theme: {name}", partial(setattr, app, "theme", name),
                        "switch theme (remembered in config.toml)"))
        out.append(("Quit nodewb", app.exit, "q"))
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
