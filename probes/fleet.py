"""The live fleet feed: nodes, lease renewals and pod counts from list+watch, in batches.

Three worker threads block on the kubernetes client's connection pool, one per stream:

  nodes   paged list (`reset`, a `chunk` per page, `synced`), then a watch from the list's
          resourceVersion with bookmarks (`upsert`, `delete`); a 410 Gone relists.
  leases  paged list then watch of kube-node-lease (`leases`: node -> renewTime).
  pods    every `pod_interval` s a paged list of non-terminated pods read as a server-side Table
          (name and node only, a few hundred bytes a pod), counted per node (`pods`).

Events are queued and handed to `emit` from the thread that called `run`, in batches: whatever
arrives within `batch_window` (30 ms) of the first event, or up to `batch_max` records. Adjacent
events of the same kind are merged, so a burst of watch events is one `upsert` with many nodes.

Failures: a watch that breaks after running a while (QUIET_RETRY) is made again at once, quietly;
when that fails too, or a watch breaks soon after opening, the stream reports `connection` lost and
retries with exponential backoff and full jitter (`backoff`: 0.5 s doubling up to 5 s, so the feed
is live again within seconds of the API server's return). Resuming a watch replays what happened
meanwhile (deletions included); a 410 Gone relists, and `synced` drops the nodes that went.

Consumer contract:
  reset      forget which nodes were seen; keep showing them until `synced`
  chunk      nodes from the list (a page); mark them seen
  synced     the list is complete: drop every node not seen since `reset`
  upsert     nodes added or changed
  delete     names of deleted nodes
  leases     node -> renewTime (epoch s); merge into what you hold
  pods       node -> non-terminated pods: a complete count, replace what you hold (a node not in
             it has none); never sent when pods may not be listed (see `FleetFeed.notes`)
  connection connected=False with what failed and why; connected=True once every stream is back
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from probes.kube import Kube, KubeError, NodeRecord, WatchStream, node_record, parse_time

POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


@dataclass(slots=True)
class FleetEvent:
    kind: str  # reset | chunk | synced | upsert | delete | leases | pods | connection
    nodes: list[NodeRecord] = field(default_factory=list)  # chunk, upsert
    names: list[str] = field(default_factory=list)  # delete
    leases: dict[str, float] = field(default_factory=dict)  # node -> renewTime (epoch s)
    pods: dict[str, int] = field(default_factory=dict)  # node -> non-terminated pods
    connected: bool = True  # connection
    error: str = ""  # connection: what failed, why
    at: float = 0.0  # when observed
    resource_version: str = ""  # synced: the list's resourceVersion

    def size(self) -> int:
        return max(1, len(self.nodes) + len(self.names) + len(self.leases))


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class _Stopped(Exception):
    pass


_MERGEABLE = frozenset({"upsert", "delete", "leases"})


STABLE_WATCH = 30.0  # s a watch must have run for its failure to restart the backoff
QUIET_RETRY = 5.0  # s a watch must have run for its break to be retried at once, unreported
FIRST_PAGE = 100  # the first list page is small: rows on screen sooner, the bulk follows


class FleetFeed:
    """Nodes, leases and pod counts of one cluster, live. See the module docstring."""

    def __init__(self, kube: Kube, *, chunk: int = 500, clock: Callable[[], float] = time.time,
                 backoff: tuple[float, float] = (0.5, 5.0), pod_interval: float = 60.0,
                 batch_window: float = 0.03, batch_max: int = 5000,
                 watch_timeout: float = 300.0, read_timeout: float = 30.0,
                 leases: bool = True, pods: bool = True,
                 gate: threading.Event | None = None, gate_timeout: float = 3.0,
                 first_page: int | None = FIRST_PAGE) -> None:
        self.kube = kube
        self.first_page = first_page
        # After the first page, wait (at most gate_timeout) for `gate`: a UI that is still
        # starting gets the interpreter to itself instead of sharing it with the bulk list.
        self.gate = gate
        self.gate_timeout = gate_timeout
        self.chunk = chunk
        self._listed_once = False
        self.clock = clock
        self.backoff = backoff
        self.pod_interval = pod_interval
        self.batch_window = batch_window
        self.batch_max = batch_max
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout
        self.want_leases = leases
        self.want_pods = pods
        self.resource_version = ""  # the node list/watch position kept across reconnects
        self.lease_version = ""
        self.notes: dict[str, str] = {}  # stream -> why it is off (pods forbidden, ...)
        self.relists = 0
        self.reconnects = 0
        self._queue: deque[FleetEvent] = deque()
        self._queued = 0  # records waiting in _queue
        self._rv_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._failing: dict[str, str] = {}
        self._down = False
        self._state = threading.Lock()
        self._node_stream: WatchStream | None = None
        self._opened: dict[str, float] = {}  # stream -> when its watch last opened (monotonic)

    # -- the public side --------------------------------------------------------------------------
    def run(self, emit: Callable[[list[FleetEvent]], None], stop: threading.Event) -> None:
        """Blocking; run it in a thread. Emits batches of events until `stop` is set, and
        returns within a second of it."""
        self._stop = stop
        self._first_page = threading.Event()
        nodes = threading.Thread(target=self._guard, args=(self._nodes, "nodes"),
                                 name="fleet-nodes", daemon=True)
        others: list[threading.Thread] = []
        if self.want_leases:
            others.append(threading.Thread(target=self._guard, args=(self._leases, "leases"),
                                           name="fleet-leases", daemon=True))
        if self.want_pods:
            others.append(threading.Thread(target=self._guard, args=(self._pods, "pods"),
                                           name="fleet-pods", daemon=True))
        workers = [nodes, *others]
        nodes.start()
        if self.gate is None:
            for worker in others:
                worker.start()
        else:  # leases and pods wait for the first page and the gate, as the node list does
            opener = threading.Thread(target=self._after_gate, args=(others,),
                                      name="fleet-gate", daemon=True)
            opener.start()
            workers.append(opener)
        try:
            while not stop.is_set():
                batch = self._take(stop)
                if batch and not stop.is_set():
                    emit(batch)
        finally:
            stop.set()
            with self._cond:
                self._cond.notify_all()
            self.kube.close_streams()
            deadline = time.monotonic() + 0.8
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))

    def _after_gate(self, others: list[threading.Thread]) -> None:
        self._first_page.wait(self.gate_timeout)
        self._wait_gate()
        for worker in others:
            if not self._stop.is_set():
                worker.start()

    def _wait_gate(self) -> None:
        if self.gate is not None:
            self.gate.wait(self.gate_timeout)

    def rewind(self, resource_version: str) -> None:
        """Resume the node watch from `resource_version` now: the open watch is closed and the
        next one starts there. With a version the server has compacted away this provokes a
        real 410 Gone and a relist (how the tests exercise that path)."""
        with self._rv_lock:
            self.resource_version = resource_version
            stream = self._node_stream
            if stream is not None:
                stream.cancel()

    # -- batching ---------------------------------------------------------------------------------
    def _put(self, *events: FleetEvent) -> None:
        if self._stop.is_set():
            return
        with self._cond:
            self._queue.extend(events)
            self._queued += sum(e.size() for e in events)
            self._cond.notify()

    def _take(self, stop: threading.Event) -> list[FleetEvent]:
        queue = self._queue
        with self._cond:
            while not queue and not stop.is_set():
                self._cond.wait(0.2)
            if stop.is_set():
                return []
            deadline = time.monotonic() + self.batch_window
            while not stop.is_set():
                if self._queued >= self.batch_max:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken = list(queue)
            queue.clear()
            self._queued = 0
        return _merge(taken)

    # -- connection state -------------------------------------------------------------------------
    def _failed(self, stream: str, error: str) -> None:
        with self._state:
            changed = self._failing.get(stream) != error
            self._failing[stream] = error
            self._down = True
        if changed:
            self._put(FleetEvent("connection", connected=False, error=f"{stream}: {error}",
                                 at=self.clock()))

    def _ok(self, stream: str) -> None:
        with self._state:
            if stream not in self._failing:
                return
            del self._failing[stream]
            back = self._down and not self._failing
            if back:
                self._down = False
                self.reconnects += 1
        if back:
            self._put(FleetEvent("connection", connected=True, at=self.clock()))

    def _ran(self, stream: str) -> float:
        """How long the stream's last watch had been open when it broke (-inf: it never
        opened since the last break), once: a second call says -inf."""
        opened = self._opened.pop(stream, math.inf)
        return time.monotonic() - opened

    def _wait(self, attempt: int) -> None:
        """Exponential backoff with full jitter; returns early (raising) when stopped."""
        low, high = self.backoff
        delay = min(high, low * (2 ** min(attempt, 16)))
        delay = random.uniform(delay / 2, delay)
        if self._stop.wait(delay):
            raise _Stopped

    def _guard(self, body: Callable[[], None], stream: str) -> None:
        try:
            body()
        except _Stopped:
            pass
        except Exception as err:  # a bug must not kill the app: say so on the feed
            if not self._stop.is_set():
                self._failed(stream, f"stopped: {type(err).__name__}: {err}")

    # -- nodes ------------------------------------------------------------------------------------
    def _nodes(self) -> None:
        attempt = 0
        gone_in_a_row = 0
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._relist_nodes()
                self._watch_nodes()
                attempt = 0
                gone_in_a_row = 0
            except _Gone:
                self.resource_version = ""
                gone_in_a_row += 1
                if gone_in_a_row > 1:
                    self._wait(gone_in_a_row - 2)
            except KubeError as err:
                if self._stop.is_set():
                    return
                ran = self._ran("nodes")
                if ran >= STABLE_WATCH:
                    attempt = 0  # the watch had run well for a while: a fresh failure
                if ran >= QUIET_RETRY:
                    continue  # one broken connection: watch again at once before telling
                self._failed("nodes", str(err))
                self._wait(attempt)
                attempt += 1
            except _Stopped:
                return

    def _relist_nodes(self) -> None:
        self.relists += 1
        self._put(FleetEvent("reset", at=self.clock()))
        rv = ""
        try:
            first = self.first_page if not self._listed_once else None
            self._listed_once = True
            for page in self.kube.node_pages(self.chunk, (5.0, self.read_timeout), first=first):
                if self._stop.is_set():
                    raise _Stopped
                self._ok("nodes")
                rv = page.resource_version
                self._put(FleetEvent("chunk", nodes=page.nodes, at=self.clock()))
                if first is not None and not self._first_page.is_set():
                    self._first_page.set()
                    self._wait_gate()
        except KubeError as err:
            if err.status == 410:  # the continue token expired mid-list
                raise _Gone from None
            raise
        self.resource_version = rv
        self._put(FleetEvent("synced", at=self.clock(), resource_version=rv))

    def _watch_nodes(self) -> None:
        timeout = int(self.watch_timeout * (1 + random.random()) / 2) or 1
        with self._rv_lock:
            since = self.resource_version
        stream = self.kube.watch("/api/v1/nodes", since,
                                 timeout_seconds=timeout, read_timeout=self.read_timeout,
                                 doing="watch nodes")
        with self._rv_lock:
            self._node_stream = stream
            if self.resource_version != since:  # rewound while this watch was opening
                stream.cancel()
        self._opened["nodes"] = time.monotonic()
        self._ok("nodes")
        clock = self.clock
        try:
            for lines in stream.batches():
                ups: list[NodeRecord] = []
                gone: list[str] = []
                rv = ""
                for event in _parse_lines(lines):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ADDED" or kind == "MODIFIED":
                        record = node_record(obj)
                        ups.append(record)
                        rv = record.resource_version or rv
                    elif kind == "DELETED":
                        meta = obj.get("metadata") or {}
                        gone.append(meta.get("name", ""))
                        rv = meta.get("resourceVersion") or rv
                    elif kind == "BOOKMARK":
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    elif kind == "ERROR":
                        _raise_status(obj, "watch nodes")
                if self._stop.is_set():
                    raise _Stopped
                now = clock()
                if ups:
                    self._put(FleetEvent("upsert", nodes=ups, at=now))
                if gone:
                    self._put(FleetEvent("delete", names=gone, at=now))
                if rv:
                    with self._rv_lock:
                        if not stream.cancelled:
                            self.resource_version = rv
        except (_Gone, _Stopped, KubeError):
            raise
        except Exception as err:
            if self._stop.is_set() or stream.cancelled or _is_timeout(err):
                return  # closed on purpose (stop, rewind), or a quiet stream: watch again
            raise self.kube.explain(err, "watch nodes") from None
        finally:
            stream.close()
            with self._rv_lock:
                self._node_stream = None

    # -- leases -----------------------------------------------------------------------------------
    def _leases(self) -> None:
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        attempt = 0
        while not self._stop.is_set():
            try:
                if not self.lease_version:
                    rv = ""
                    for body in self.kube.pages(path, chunk=self.chunk,
                                                timeout=(5.0, self.read_timeout),
                                                doing="list leases"):
                        self._ok("leases")
                        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
                        renew = {}
                        for item in body.get("items") or ():
                            name, when = _lease(item)
                            if name:
                                renew[name] = when
                        self._put(FleetEvent("leases", leases=renew, at=self.clock()))
                    self.lease_version = rv
                self._watch_leases(path)
                attempt = 0
            except _Gone:
                self.lease_version = ""
            except KubeError as err:
                if self._stop.is_set():
                    return
                if err.status == 410:
                    self.lease_version = ""
                    continue
                if err.status == 403:
                    self.notes["leases"] = str(err)
                    return
                ran = self._ran("leases")
                if ran >= STABLE_WATCH:
                    attempt = 0
                if ran >= QUIET_RETRY:
                    continue
                self._failed("leases", str(err))
                self._wait(attempt)
                attempt += 1

    def _watch_leases(self, path: str) -> None:
        timeout = int(self.watch_timeout * (1 + random.random()) / 2) or 1
        stream = self.kube.watch(path, self.lease_version, timeout_seconds=timeout,
                                 read_timeout=self.read_timeout, doing="watch leases")
        self._opened["leases"] = time.monotonic()
        self._ok("leases")
        try:
            for lines in stream.batches():
                renew: dict[str, float] = {}
                rv = ""
                for event in _parse_lines(lines):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ADDED" or kind == "MODIFIED":
                        name, when = _lease(obj)
                        if name:
                            renew[name] = when
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    elif kind == "BOOKMARK" or kind == "DELETED":
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    elif kind == "ERROR":
                        _raise_status(obj, "watch leases")
                if self._stop.is_set():
                    raise _Stopped
                if renew:
                    self._put(FleetEvent("leases", leases=renew, at=self.clock()))
                if rv:
                    self.lease_version = rv
        except (_Gone, _Stopped, KubeError):
            raise
        except Exception as err:
            if self._stop.is_set() or stream.cancelled or _is_timeout(err):
                return
            raise self.kube.explain(err, "watch leases") from None
        finally:
            stream.close()

    # -- pods -------------------------------------------------------------------------------------
    def _pods(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                counts = self.count_pods()
            except KubeError as err:
                if self._stop.is_set():
                    return
                if err.status == 403:
                    self.notes["pods"] = str(err)
                    return
                self._failed("pods", str(err))
                self._wait(attempt)
                attempt += 1
                continue
            attempt = 0
            self._put(FleetEvent("pods", pods=counts, at=self.clock()))
            if self._stop.wait(self.pod_interval):
                return

    def count_pods(self) -> dict[str, int]:
        """Non-terminated pods per node, from a paged list read as a Table (name and node
        columns only; a plain list's spec.nodeName if the server sends no Table)."""
        from probes.kube import TABLE_ACCEPT

        counts: dict[str, int] = {}
        column = -1
        for body in self.kube.pages("/api/v1/pods", {"fieldSelector": POD_SELECTOR,
                                                     "includeObject": "None"},
                                    chunk=self.chunk, accept=TABLE_ACCEPT,
                                    timeout=(5.0, self.read_timeout), doing="list pods"):
            if self._stop.is_set():
                raise _Stopped
            self._ok("pods")
            if body.get("kind") == "Table":
                if column < 0:
                    names = [c.get("name") for c in body.get("columnDefinitions") or ()]
                    column = names.index("Node") if "Node" in names else -1
                    if column < 0:
                        raise KubeError("the API server's pod Table has no Node column")
                for row in body.get("rows") or ():
                    cells = row.get("cells") or ()
                    node = cells[column] if len(cells) > column else ""
                    if node and node != "<none>":
                        counts[node] = counts.get(node, 0) + 1
            else:
                for item in body.get("items") or ():
                    node = (item.get("spec") or {}).get("nodeName")
                    if node:
                        counts[node] = counts.get(node, 0) + 1
        return counts


# -- parsing -----------------------------------------------------------------------------------

def _parse_lines(lines: list[bytes]) -> Iterator[dict]:
    """Watch event lines to dicts, one at a time so a parsed object is dropped as soon as its
    record is made (measured: holding a batch of 2,000 parsed nodes first, or parsing the batch
    as one JSON array, halves the rate through allocation and collector work)."""
    loads = json.loads
    for line in lines:
        if not line or line.isspace():
            continue
        try:
            yield loads(line)
        except ValueError:
            continue


def _lease(obj: dict) -> tuple[str, float]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    return meta.get("name", ""), parse_time(spec.get("renewTime") or spec.get("acquireTime"))


def _raise_status(obj: dict, doing: str) -> None:
    code = obj.get("code")
    if code == 410 or obj.get("reason") in ("Expired", "Gone"):
        raise _Gone
    raise KubeError(f"{doing}: the API server sent an error: {obj.get('message') or obj}",
                    int(code or 0))


def _is_timeout(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return "timeout" in text or "timed out" in text


def _merge(events: list[FleetEvent]) -> list[FleetEvent]:
    out: list[FleetEvent] = []
    for event in events:
        last = out[-1] if out else None
        if last is not None and last.kind == event.kind and event.kind in _MERGEABLE:
            if event.kind == "upsert":
                last.nodes.extend(event.nodes)
            elif event.kind == "delete":
                last.names.extend(event.names)
            else:
                last.leases.update(event.leases)
            last.at = event.at
            continue
        out.append(event)
    return out
