"""The fleet feed under API faults, against a lab of its own over real HTTPS: stale while the API
server is away, back by itself within seconds, and then exactly the server's nodes (no ghosts, no
duplicates); 410 relists; dropped watches reconnect with backoff; 5xx and slow answers are named."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager

import pytest

from probes.fleet import FleetEvent, FleetFeed
from probes.kube import Kube
from tests.test_faults_lab import control, faults, inject, until
from tui.fleet_model import FleetModel

RECOVERY = 10.0  # s after the API server's return within which the feed must be live again


class Consumer:
    """Applies the feed to the fleet screen's own model, and keeps every event."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.model = FleetModel()
        self.events: list[tuple[float, FleetEvent]] = []

    def __call__(self, batch: list[FleetEvent]) -> None:
        with self.cond:
            now = time.time()
            self.events.extend((now, e) for e in batch)
            self.model.apply(batch)
            self.cond.notify_all()

    def kinds(self) -> list[str]:
        return [e.kind for _, e in self.events]

    def names(self) -> list[str]:
        with self.cond:
            return [entry.rec.name for entry in self.model.entries.values()]

    def wait(self, what, timeout: float, why: str) -> None:
        """Until `what(self)`: looked at on every batch, and every 0.2 s for time-based tests."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not what(self):
                left = deadline - time.monotonic()
                assert left > 0, \
                    f"timed out after {timeout}s waiting for {why}; saw {self.kinds()[-30:]}"
                self.cond.wait(min(0.2, left))

    def connection(self, connected: bool, after: float = 0.0) -> tuple[float, FleetEvent] | None:
        return next(((t, e) for t, e in self.events
                     if e.kind == "connection" and e.connected is connected and t >= after), None)


@contextmanager
def running(feed: FleetFeed):
    consumer = Consumer()
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(consumer, stop), daemon=True)
    thread.start()
    try:
        consumer.wait(lambda c: c.model.synced, 30, "the first list")
        yield consumer
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the feed did not stop"


def server_nodes(lab) -> list[str]:
    out = lab.kubectl("get", "nodes", "-o", "name").stdout.split()
    return sorted(n.removeprefix("node/") for n in out)


def same_as_server(lab, consumer: Consumer, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        want = server_nodes(lab)
        have = consumer.names()
        if sorted(have) == want:
            return have
        if time.monotonic() > deadline:
            raise AssertionError(f"fleet {sorted(have)} != server {want}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path_factory.mktemp("fleet-faults") / "lab", "--nodes", "30",
                       "--seed", "11")
    yield served
    faults(served, "DELETE")
    stop_lab(served)


@pytest.fixture
def clean(lab):
    yield lab
    deadline = time.monotonic() + 20  # an outage a failed test left runs out by itself
    while faults(lab, "DELETE", check=False).get("returncode", 0) != 0:
        assert time.monotonic() < deadline, "the lab's API server did not come back"
        time.sleep(0.5)


@pytest.mark.kubectl
def test_api_down_is_stale_then_recovers_with_exactly_the_servers_nodes(clean):
    lab = clean
    feed = FleetFeed(Kube(str(lab.kubeconfig)), pod_interval=2.0)
    with running(feed) as fleet:
        fleet.wait(lambda c: "leases" in c.kinds() and "pods" in c.kinds(), 20, "leases, pods")
        control(lab, "delete-node", {"node": "node-0009"})
        fleet.wait(lambda c: "node-0009" not in c.names(), 10, "the delete seen live")
        # while the API server is away: one node goes, the deleted one comes back
        control(lab, "delete-node", {"node": "node-0005", "after": 1.5})
        control(lab, "restore-node", {"node": "node-0009", "after": 2.0})
        down = inject(lab, "api-down:for=5")
        fleet.wait(lambda c: c.connection(False) is not None, 15, "connection lost")
        assert not fleet.model.connected and fleet.model.stale_since > 0
        fleet.wait(lambda c: any(not e.connected and "refused" in e.error.lower()
                                 for _, e in c.events if e.kind == "connection"), 10,
                   "the refusal named")
        _, lost = fleet.connection(False)
        assert lab.info["api"] in lost.error
        assert len(fleet.names()) == 29  # the last data stays while stale
        fleet.wait(lambda c: c.connection(True) is not None, down["ends"] - time.time() + 20,
                   "connection back")
        back_at, _ = fleet.connection(True)
        assert back_at - down["ends"] < RECOVERY, f"back {back_at - down['ends']:.1f}s after"
        names = same_as_server(lab, fleet)
        assert "node-0005" not in names and "node-0009" in names  # no ghost, nothing missing
        assert len(names) == len(set(names)) == 29  # no duplicates
        assert fleet.model.connected and fleet.model.stale_since == 0
        with fleet.cond:
            assert len(fleet.model.view()) == 29 and fleet.model.counts.total == 29
        lab.kubectl("cordon", "node-0012")  # and the watch runs on
        fleet.wait(lambda c: c.model.get("node-0012").rec.unschedulable, 15, "a later upsert")
    control(lab, "restore-node", {"node": "node-0005"})


@pytest.mark.kubectl
def test_410_on_watch_relists(clean):
    lab = clean
    feed = FleetFeed(Kube(str(lab.kubeconfig)), leases=False, pods=False)
    with running(feed) as fleet:
        relists = feed.relists
        inject(lab, "watch-gone:for=4")
        inject(lab, "watch-drop:every=0.5,for=1")  # the open watch must be made again
        fleet.wait(lambda c: c.kinds().count("synced") >= 2, 20, "a relist after 410 Gone")
        assert feed.relists > relists
        control(lab, "delete-node", {"node": "node-0020"})
        names = same_as_server(lab, fleet, timeout=20)
        assert "node-0020" not in names and len(names) == len(set(names))
        lab.kubectl("cordon", "node-0021")
        fleet.wait(lambda c: c.model.get("node-0021").rec.unschedulable, 15,
                   "the watch after the relists")
    control(lab, "restore-node", {"node": "node-0020"})


@pytest.mark.kubectl
def test_one_broken_watch_is_made_again_quietly(clean, monkeypatch):
    import probes.fleet

    monkeypatch.setattr(probes.fleet, "QUIET_RETRY", 1.0)
    lab = clean
    feed = FleetFeed(Kube(str(lab.kubeconfig)), leases=False, pods=False)
    with running(feed) as fleet:
        until(lambda: time.monotonic() - feed._opened.get("nodes", 1e18) > 2.5, 20,
              "a watch open for a while")
        before = time.monotonic()
        inject(lab, "watch-drop:every=2,for=1")  # cuts the old watch only
        until(lambda: feed._opened.get("nodes", 0) > before, 10, "the watch made again")
        lab.kubectl("cordon", "node-0013")
        fleet.wait(lambda c: c.model.get("node-0013").rec.unschedulable, 15, "the new watch")
        assert "connection" not in fleet.kinds()  # a single break never showed as stale


@pytest.mark.kubectl
def test_dropped_watches_reconnect_with_backoff(clean):
    lab = clean
    feed = FleetFeed(Kube(str(lab.kubeconfig)), leases=False, pods=False)
    with running(feed) as fleet:
        started = time.time()
        drop = inject(lab, "watch-drop:every=0.2,for=6")
        fleet.wait(lambda c: c.connection(False, started) is not None, 10, "a dropped watch")
        fleet.wait(lambda c: c.connection(True, drop["ends"]) is not None or (
            c.model.connected and time.time() > drop["ends"] + 1), drop["ends"] - time.time()
            + RECOVERY, "the watch back after the drops")
        losses = [t for t, e in fleet.events if e.kind == "connection" and not e.connected
                  and t >= started]
        # A watch dropped 0.2 s after it opens, for 6 s: reconnecting at once would make ~30
        # watches; the doubling backoff (0.25 s, 0.5 s, 1 s, 2 s, ...) makes far fewer.
        assert 2 <= len(losses) <= 12, losses
        gaps = [b - a for a, b in zip(losses, losses[1:], strict=False)]
        assert max(gaps) >= 1.0, gaps
        lab.kubectl("cordon", "node-0002")
        fleet.wait(lambda c: c.model.get("node-0002").rec.unschedulable, 15, "a later upsert")
        assert sorted(fleet.names()) == server_nodes(lab)


def live_feed(lab, **kw) -> tuple[FleetFeed, Consumer, threading.Event, threading.Thread]:
    feed = FleetFeed(Kube(str(lab.kubeconfig)), leases=False, pods=False, **kw)
    consumer = Consumer()
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(consumer, stop), daemon=True)
    thread.start()
    return feed, consumer, stop, thread


def lost_with(consumer: Consumer, pattern: str):
    return lambda c: any(not e.connected and re.search(pattern, e.error, re.I)
                         for _, e in c.events if e.kind == "connection")


@pytest.mark.kubectl
@pytest.mark.parametrize("spec, says", [("api-5xx:rate=1,code=503,for=3", r"503|unavailable"),
                                        ("api-slow:delay=3,for=4", r"did not answer in time")])
def test_5xx_and_slow_answers_are_named_and_outlived(clean, spec, says):
    lab = clean
    fault = inject(lab, spec)
    _, consumer, stop, thread = live_feed(lab, read_timeout=1.0)
    try:
        consumer.wait(lost_with(consumer, says), 15, f"the failure named ({says})")
        assert not consumer.model.connected
        consumer.wait(lambda c: c.model.synced and c.model.connected, fault["ends"] - time.time()
                      + RECOVERY, "listed once the fault ended")
        assert sorted(consumer.names()) == server_nodes(lab)
    finally:
        stop.set()
        thread.join(5)
