"""probes.fleet against the lab over real HTTPS: the list/watch sequence, leases, pod counts,
410 relists, a stalled API server and recovery, and a prompt stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from probes.fleet import FleetEvent, FleetFeed
from probes.kube import Kube, WatchStream
from tests._lab_in_process import lab_in_process, on_lab_loop


class Fleet:
    """A consumer that applies the feed as the fleet screen does, and records every batch."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.batches: list[list[FleetEvent]] = []
        self.nodes: dict = {}
        self.seen: set[str] = set()
        self.leases: dict[str, float] = {}
        self.pods: dict[str, int] = {}
        self.threads: set[str] = set()

    def __call__(self, batch: list[FleetEvent]) -> None:
        with self.cond:
            self.threads.add(threading.current_thread().name)
            self.batches.append(batch)
            for e in batch:
                if e.kind == "reset":
                    self.seen = set()
                elif e.kind in ("chunk", "upsert"):
                    for n in e.nodes:
                        self.nodes[n.name] = n
                        self.seen.add(n.name)
                elif e.kind == "synced":
                    self.nodes = {k: v for k, v in self.nodes.items() if k in self.seen}
                elif e.kind == "delete":
                    for name in e.names:
                        self.nodes.pop(name, None)
                elif e.kind == "leases":
                    self.leases.update(e.leases)
                elif e.kind == "pods":
                    self.pods = dict(e.pods)
            self.cond.notify_all()

    def events(self) -> list[FleetEvent]:
        return [e for b in self.batches for e in b]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events()]

    def wait(self, what, timeout: float = 20.0, why: str = "") -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: what(self), timeout)
        assert ok, f"timed out after {timeout}s waiting for {why or what}; saw {self.kinds()}"


@contextmanager
def running(feed: FleetFeed):
    fleet = Fleet()
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(fleet, stop), name="feed-run", daemon=True)
    thread.start()
    try:
        yield fleet
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the feed did not stop"


def synced(n: int = 1):
    return lambda f: f.kinds().count("synced") >= n


def test_sequence_then_an_upsert_when_a_node_is_cordoned(fresh_lab):
    lab = fresh_lab("--nodes", "1200", "--seed", "3")
    feed = FleetFeed(Kube(str(lab.kubeconfig)), chunk=500, leases=False, pods=False)
    with running(feed) as fleet:
        fleet.wait(synced(), why="the first list")
        kinds = fleet.kinds()
        start = kinds.index("reset")
        assert kinds[start:start + 6] == ["reset", "chunk", "chunk", "chunk", "chunk", "synced"]
        chunks = [e for e in fleet.events() if e.kind == "chunk"]
        assert [len(e.nodes) for e in chunks] == [100, 500, 500, 100]  # a small first page
        assert chunks[0].nodes[0].name == "node-0001"
        assert len(fleet.nodes) == 1200 and feed.resource_version
        synced_event = next(e for e in fleet.events() if e.kind == "synced")
        assert synced_event.resource_version.isdigit()
        assert all(e.at > 0 for e in fleet.events())
        lab.kubectl("cordon", "node-0042")
        fleet.wait(lambda f: any(n.name == "node-0042" and n.unschedulable
                                 for e in f.events() if e.kind == "upsert" for n in e.nodes),
                   why="an upsert of the cordoned node")
        assert fleet.nodes["node-0042"].status.endswith("SchedulingDisabled")
        assert fleet.threads == {"feed-run"}  # emit is called from run's own thread
        assert len(fleet.batches) < len(fleet.events()) + 1


def test_lease_ages_are_fresh_for_healthy_nodes_and_stale_for_cert_expired(served_lab):
    expired = [n for n, s in served_lab.info["scenarios"].items() if s == "cert-expired"][0]
    feed = FleetFeed(Kube(str(served_lab.kubeconfig)), pods=False)
    with running(feed) as fleet:
        fleet.wait(lambda f: len(f.leases) == len(f.nodes) == served_lab.info["nodes"],
                   why="every node and its lease")
        now = time.time()
        assert now - fleet.leases[expired] > 40
        healthy = [n for n in fleet.nodes if n not in served_lab.info["scenarios"]]
        assert healthy
        ages = {n: now - fleet.leases[n] for n in healthy}
        assert max(ages.values()) < 15, ages
        # renewals keep arriving on the watch
        before = dict(fleet.leases)
        fleet.wait(lambda f: any(f.leases.get(n, 0) > before[n] for n in healthy),
                   timeout=15, why="a renewal")


def test_pod_counts_are_per_node_and_refreshed(served_lab):
    feed = FleetFeed(Kube(str(served_lab.kubeconfig)), leases=False, pod_interval=1.0)
    with running(feed) as fleet:
        fleet.wait(lambda f: f.kinds().count("pods") >= 2, why="two pod counts")
        assert set(fleet.pods) <= {f"node-{i:04d}" for i in range(1, 100)}
        assert sum(fleet.pods.values()) > served_lab.info["nodes"]
        crowded = [n for n, s in served_lab.info["scenarios"].items() if s == "too-many-pods"][0]
        assert fleet.pods[crowded] > max(v for n, v in fleet.pods.items() if n != crowded) * 0.9
        kubectl = served_lab.kubectl("get", "pods", "-A", "--field-selector",
                                     "spec.nodeName=node-0001,status.phase!=Succeeded,"
                                     "status.phase!=Failed", "--no-headers")
        assert fleet.pods.get("node-0001", 0) == len(kubectl.stdout.splitlines())
        assert "pods" not in feed.notes


class _OneEvent:
    """A watch response that sends one MODIFIED node at resourceVersion 42, then ends."""

    def stream(self, *_args, **_kw):
        node = {"metadata": {"name": "node-0001", "resourceVersion": "42"}}
        yield json.dumps({"type": "MODIFIED", "object": node}).encode() + b"\n"


def test_a_rewind_while_the_next_watch_opens_is_not_lost():
    """rewind() between two watches (the previous one closed, the next not yet registered):
    the opening watch is cancelled, so its events do not overwrite the version asked for."""
    feed: FleetFeed

    class Opening:
        def watch(self, path, since, **_kw):
            assert since == "7"
            feed.rewind("1")  # lands while this watch is being opened
            return WatchStream(_OneEvent())

    feed = FleetFeed(Opening(), leases=False, pods=False)  # type: ignore[arg-type]
    feed.resource_version = "7"
    feed._watch_nodes()
    assert feed.resource_version == "1"


def test_a_too_old_resource_version_relists_without_ghosts(fresh_lab):
    lab = fresh_lab("--nodes", "30")
    feed = FleetFeed(Kube(str(lab.kubeconfig)), leases=False, pods=False)
    with running(feed) as fleet:
        fleet.wait(synced(), why="the first list")
        before = fleet.kinds().count("reset")
        # a node the consumer holds but the cluster no longer has (the lab refuses node
        # deletes, so it is planted): the relist must drop it
        with fleet.cond:
            fleet.nodes["node-gone"] = fleet.nodes["node-0001"]
        feed.rewind("1")  # older than anything the server keeps: a real 410 Gone follows
        fleet.wait(synced(2), why="the relist after 410")
        assert fleet.kinds().count("reset") == before + 1 and feed.relists == 2
        tail = fleet.kinds()[fleet.kinds().index("reset", fleet.kinds().index("synced")):]
        assert tail[:3] == ["reset", "chunk", "synced"]
        assert sorted(fleet.nodes) == [f"node-{i:04d}" for i in range(1, 31)]
        assert int(feed.resource_version) > 1
        lab.kubectl("cordon", "node-0003")  # and the watch runs on after the relist
        fleet.wait(lambda f: f.nodes["node-0003"].unschedulable, why="a later upsert")


@pytest.mark.slow
def test_a_stalled_api_server_is_reported_and_recovered(fresh_lab):
    lab = fresh_lab("--nodes", "40")
    feed = FleetFeed(Kube(str(lab.kubeconfig)), read_timeout=2.0, backoff=(0.2, 1.0),
                     pod_interval=2.0)
    with running(feed) as fleet:
        fleet.wait(lambda f: synced()(f) and f.leases and "pods" in f.kinds(), why="a start")
        os.kill(lab.process.pid, signal.SIGSTOP)
        try:
            fleet.wait(lambda f: any(e.kind == "connection" and not e.connected
                                     for e in f.events()), timeout=20, why="connection(False)")
        finally:
            os.kill(lab.process.pid, signal.SIGCONT)
        down = next(e for e in fleet.events() if e.kind == "connection" and not e.connected)
        assert lab.info["api"] in down.error and "did not answer in time" in down.error
        fleet.wait(lambda f: any(e.kind == "connection" and e.connected for e in f.events()),
                   timeout=30, why="connection(True)")
        lab.kubectl("cordon", "node-0007")
        fleet.wait(lambda f: f.nodes["node-0007"].unschedulable, why="the resumed watch")
        assert sorted(fleet.nodes) == [f"node-{i:04d}" for i in range(1, 41)]
        assert len({n.name for n in fleet.nodes.values()}) == 40


def test_a_long_running_watch_picks_up_a_refreshed_exec_token(served_lab, tmp_path):
    runs = tmp_path / "runs"
    body = f"""#!{sys.executable}
import datetime, json, os
runs = {str(runs)!r}
n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
open(runs, "w").write(str(n))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": {served_lab.info["admin_token"]!r},
                             "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}))
"""
    plugin = tmp_path / "cred"
    plugin.write_text(body)
    plugin.chmod(0o755)
    config = json.loads(served_lab.kubeconfig.read_text())
    config["users"] = [{"name": "exec", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
        "interactiveMode": "Never"}}}]
    config["contexts"] = [{"name": "exec", "context": {"cluster": "nodewb-lab", "user": "exec"}}]
    config["current-context"] = "exec"
    (tmp_path / "config").write_text(json.dumps(config))
    kube = Kube(str(tmp_path / "config"))
    feed = FleetFeed(kube, watch_timeout=2, pods=False)
    with running(feed) as fleet:
        fleet.wait(synced(), why="the first list")
        fleet.wait(lambda f: int(runs.read_text()) >= 3, timeout=45,
                   why="the plugin run again as watches reconnect")
        before = len(fleet.events())
        fleet.wait(lambda f: any(e.kind == "leases" for e in f.events()[before:]),
                   why="leases still flowing on the refreshed token")
    lost = [e for e in fleet.events() if e.kind == "connection"]
    assert not lost, [(e.connected, e.error) for e in lost]


def test_stop_returns_within_a_second_even_while_the_server_hangs(fresh_lab):
    lab = fresh_lab("--nodes", "20")
    feed = FleetFeed(Kube(str(lab.kubeconfig)), read_timeout=30.0, pod_interval=1.0)
    fleet = Fleet()
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(fleet, stop), daemon=True)
    thread.start()
    try:
        fleet.wait(synced(), why="the first list")
        os.kill(lab.process.pid, signal.SIGSTOP)
        time.sleep(0.3)  # let the streams block on the frozen server
        started = time.monotonic()
        stop.set()
        thread.join(3)
        took = time.monotonic() - started
    finally:
        os.kill(lab.process.pid, signal.SIGCONT)
    assert not thread.is_alive()
    assert took < 1.0, took


def test_after_the_first_page_the_feed_waits_for_the_gate(fresh_lab):
    lab = fresh_lab("--nodes", "700", "--seed", "5")
    gate = threading.Event()
    feed = FleetFeed(Kube(str(lab.kubeconfig)), chunk=500, gate=gate, gate_timeout=30.0)
    with running(feed) as fleet:
        fleet.wait(lambda f: f.kinds().count("chunk") >= 1, why="the first page")
        time.sleep(1.0)
        kinds = fleet.kinds()
        assert kinds.count("chunk") == 1 and "synced" not in kinds and "leases" not in kinds
        gate.set()
        fleet.wait(synced(), why="the rest of the list once the gate opened")
        fleet.wait(lambda f: "leases" in f.kinds(), why="leases after the gate")
        assert len(fleet.nodes) == 700


# -- bookmarks, against a lab in this process (its clock stopped, its bookmarks frequent) --------

def test_bookmarks_move_the_watch_positions_while_nothing_changes(tmp_path):
    with lab_in_process(tmp_path / "lab") as lab:
        cluster = lab.lab.cluster
        on_lab_loop(lab, lab.lab._ticker.cancel)  # quiet: no status posts, no lease renewals
        cluster.bookmark_interval = 0.3
        kube = Kube(str(tmp_path / "lab" / "kubeconfig"))
        feed = FleetFeed(kube, pods=False)
        with running(feed) as fleet:
            fleet.wait(lambda f: synced()(f) and "leases" in f.kinds() and feed.lease_version,
                       why="the node and lease lists")
            listed = len(fleet.events())
            node_rv, lease_rv = int(feed.resource_version), int(feed.lease_version)
            # a write to neither nodes nor leases: only a bookmark can tell the watches of it
            stored = kube.send("PATCH", "/api/v1/namespaces/default",
                               {"metadata": {"labels": {"touched": "yes"}}},
                               content_type="application/merge-patch+json")
            target = int(stored["metadata"]["resourceVersion"])
            assert target > max(node_rv, lease_rv)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (int(feed.resource_version) < target
                                                   or int(feed.lease_version) < target):
                time.sleep(0.05)
            assert int(feed.resource_version) == target, "no bookmark moved the node watch"
            assert int(feed.lease_version) == target, "no bookmark moved the lease watch"
            assert int(cluster.store.rv) == target  # and nothing else was written meanwhile
            after = [e.kind for e in fleet.events()[listed:]]
            assert not {"upsert", "delete", "leases", "reset"} & set(after), after
