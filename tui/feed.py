"""Where the fleet comes from, and how its batches cross from the feed's thread to the UI.

The feed (probes.fleet.FleetFeed, or anything with the same `run(emit, stop)`) runs in a thread
worker; `emit` only appends the batch to a deque. The app drains that deque once per frame, so a
burst of thousands of watch events costs one recomputation and one redraw.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from probes.kube import Kube, KubeError, NodeRecord


@dataclass(slots=True)
class FeedEvent:
    """The same attributes as probes.fleet.FleetEvent (the model reads either)."""

    kind: str
    nodes: list[NodeRecord] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    leases: dict[str, float] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)
    connected: bool = True
    error: str = ""
    at: float = 0.0


Emit = Callable[[list[Any]], None]


class Feed(Protocol):
    def run(self, emit: Emit, stop: threading.Event) -> None: ...


class Pump:
    """The hand-over point: the feed's thread appends, the UI drains (deque ops are atomic)."""

    def __init__(self) -> None:
        self.queue: deque[list[Any]] = deque()
        self.stop = threading.Event()
        self.ui_ready = threading.Event()  # the app is up: the feed may load the rest
        self.batches = 0

    def emit(self, batch: list[Any]) -> None:
        if batch:
            self.queue.append(batch)

    def drain(self, limit: int = 200_000) -> list[Any]:
        """Everything queued (up to `limit` events; the rest waits for the next frame)."""
        out: list[Any] = []
        queue = self.queue
        while queue and len(out) < limit:
            out.extend(queue.popleft())
            self.batches += 1
        return out


class FleetSource:
    """A cluster reached through a kubeconfig: connects in the feed's thread, lazily, and
    feeds the fleet with probes.fleet.FleetFeed (list in chunks, then watch nodes, leases and
    pods).

    `start(pump)` begins before the UI is even imported, so the first page of nodes is on its
    way while the terminal app loads; the app then only drains the pump.
    """

    def __init__(self, kubeconfig: str | None, context: str | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.kubeconfig = kubeconfig
        self.context = context or ""
        self.server = ""
        self.cluster = ""
        self.clock = clock
        self.kube: Kube | None = None
        self.running = False
        self.gate: threading.Event | None = None

    def start(self, pump: Pump) -> None:
        """Run the feed in a thread of its own now, into `pump`. After the first page it waits
        for `pump.ui_ready` (set by the app once it shows rows), at most a few seconds."""
        self.running = True
        self.gate = pump.ui_ready

        def work() -> None:
            try:
                self.run(pump.emit, pump.stop)
            except Exception as err:  # outside code: shown, never raised into the UI
                pump.emit([FeedEvent("connection", connected=False, at=self.clock(),
                                     error=f"the fleet feed stopped: {type(err).__name__}: "
                                           f"{err}")])

        threading.Thread(target=work, name="nodewb-fleet-feed", daemon=True).start()

    def connect(self) -> Kube:
        if self.kube is None:
            self.kube = Kube(self.kubeconfig, self.context or None)
            self.context = self.kube.context
            self.server = self.kube.server
            self.cluster = self.kube.cluster
        return self.kube

    def run(self, emit: Emit, stop: threading.Event) -> None:
        try:
            kube = self.connect()
        except KubeError as err:
            emit([FeedEvent("connection", connected=False, error=str(err), at=self.clock())])
            return
        make_feed(kube, self.clock, self.gate).run(emit, stop)


def make_feed(kube: Kube, clock: Callable[[], float],
              gate: threading.Event | None = None) -> Feed:
    from probes.fleet import FleetFeed

    return FleetFeed(kube, clock=clock, gate=gate)
