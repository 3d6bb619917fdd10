"""Where the fleet comes from, and how its batches cross from the feed's thread to the UI.

The feed (probes.fleet.FleetFeed, or anything with the same `run(emit, stop)`) runs in a thread
worker; `emit` only appends the batch to a deque. The app drains that deque once per frame, so a
burst of thousands of watch events costs one recomputation and one redraw.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

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
    """A cluster reached through a kubeconfig: connects in the feed's thread, lazily.

    Uses probes.fleet.FleetFeed (list in chunks, then watch nodes, leases and pods); where that
    module is not installed, falls back to listing the nodes every few seconds.
    """

    def __init__(self, kubeconfig: str | None, context: str | None,
                 clock: Callable[[], float] = time.time, poll: float = 5.0) -> None:
        self.kubeconfig = kubeconfig
        self.context = context or ""
        self.server = ""
        self.clock = clock
        self.poll = poll
        self.kube: Kube | None = None

    def connect(self) -> Kube:
        if self.kube is None:
            self.kube = Kube(self.kubeconfig, self.context or None)
            self.context = self.kube.context
            self.server = self.kube.server
        return self.kube

    def run(self, emit: Emit, stop: threading.Event) -> None:
        try:
            kube = self.connect()
        except KubeError as err:
            emit([FeedEvent("connection", connected=False, error=str(err), at=self.clock())])
            return
        feed = make_feed(kube, self.clock, self.poll)
        feed.run(emit, stop)


def make_feed(kube: Kube, clock: Callable[[], float], poll: float = 5.0) -> Feed:
    try:
        from probes.fleet import FleetFeed
    except ImportError:
        return PollingFeed(kube, clock=clock, interval=poll)
    return FleetFeed(kube, clock=clock)


class PollingFeed:
    """Lists every node every `interval` seconds (the stand-in when no watch feed is present)."""

    def __init__(self, kube: Any, clock: Callable[[], float] = time.time,
                 interval: float = 5.0) -> None:
        self.kube = kube
        self.clock = clock
        self.interval = interval

    def run(self, emit: Emit, stop: threading.Event) -> None:
        connected = True
        while not stop.is_set():
            try:
                records = self.kube.list_nodes()
            except KubeError as err:
                if connected:
                    connected = False
                emit([FeedEvent("connection", connected=False, error=str(err), at=self.clock())])
            else:
                batch: list[Any] = []
                if not connected:
                    connected = True
                    batch.append(FeedEvent("connection", connected=True, at=self.clock()))
                batch += [FeedEvent("reset", at=self.clock()),
                          FeedEvent("chunk", nodes=records, at=self.clock()),
                          FeedEvent("synced", at=self.clock())]
                emit(batch)
            stop.wait(self.interval)
