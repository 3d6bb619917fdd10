"""The lab API server's object store: versioned objects, list, watch history and fan-out.

Objects are kept as pre-serialised JSON so that a list of thousands of nodes is a join of bytes,
never a rebuild. One resource version counter spans every collection, as etcd's does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lab.timefmt import rfc3339

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Expired(Exception):
    """The requested resourceVersion is older than the watch history holds (HTTP 410)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(slots=True)
class Stored:
    name: str
    namespace: str
    rv: int
    raw: bytes
    labels: dict[str, str]
    fields: dict[str, str]
    obj: dict | None = None

    def object(self) -> dict:
        """The object as a dict: kept for small collections, parsed from the bytes otherwise."""
        return self.obj if self.obj is not None else json.loads(self.raw)


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    stored: Stored

    def line(self) -> bytes:
        return b'{"type":"' + self.type.encode() + b'","object":' + self.stored.raw + b"}\n"


@dataclass(eq=False)
class Watcher:
    """One open watch. The server drains `queue`; a slow reader past `limit` is closed, as the
    real API server closes watchers that cannot keep up."""

    collection: Collection
    namespace: str | None
    match: Callable[[Stored], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    limit: int = 200_000
    closed: bool = False

    def offer(self, event: WatchEvent) -> None:
        if self.closed:
            return
        if self.namespace and event.stored.namespace != self.namespace:
            return
        if not self.match(event.stored):
            return
        if self.queue.qsize() >= self.limit:
            self.close()
            return
        self.queue.put_nowait(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.collection.watchers.discard(self)
            self.queue.put_nowait(None)


Fields = Callable[[dict], dict[str, str]]


class Collection:
    """One resource type (nodes, leases, pods, ...)."""

    def __init__(
        self,
        store: Store,
        resource: str,
        kind: str,
        api_version: str,
        namespaced: bool,
        fields: Fields | None = None,
        keep_objects: bool = True,
    ) -> None:
        self.store = store
        self.resource = resource
        self.kind = kind
        self.api_version = api_version
        self.namespaced = namespaced
        self.fields = fields or (lambda obj: {})
        self.keep_objects = keep_objects
        self.items: dict[tuple[str, str], Stored] = {}
        self.history: deque[tuple[int, WatchEvent]] = deque(maxlen=store.history)
        self.watchers: set[Watcher] = set()
        # Watches from a resourceVersion below this floor get 410 Gone: their events are forgotten
        # (nothing is known from before the collection existed, as after an etcd compaction).
        self.floor = store.rv
        self._sorted: list[tuple[str, str]] | None = None

    # -- reads ----------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Stored | None:
        return self.items.get((namespace if self.namespaced else "", name))

    def keys_sorted(self) -> list[tuple[str, str]]:
        if self._sorted is None:
            self._sorted = sorted(self.items)
        return self._sorted

    def select(
        self, namespace: str | None = None, match: Callable[[Stored], bool] | None = None
    ) -> list[Stored]:
        out = []
        for key in self.keys_sorted():
            if namespace and key[0] != namespace:
                continue
            item = self.items[key]
            if match is None or match(item):
                out.append(item)
        return out

    # -- writes ---------------------------------------------------------------------------------
    def put(self, obj: dict) -> Stored:
        """Create or replace an object; fills in uid, creationTimestamp and resourceVersion."""
        meta = obj.setdefault("metadata", {})
        name = meta["name"]
        namespace = meta.get("namespace", "") if self.namespaced else ""
        if self.namespaced and not namespace:
            namespace = meta["namespace"] = "default"
        key = (namespace, name)
        old = self.items.get(key)
        if old is not None and not (meta.get("uid") and meta.get("creationTimestamp")):
            previous = old.object()["metadata"]
            if not meta.get("uid"):
                meta["uid"] = previous["uid"]
            if not meta.get("creationTimestamp"):
                meta["creationTimestamp"] = previous["creationTimestamp"]
        if not meta.get("uid"):
            meta["uid"] = str(uuid.uuid4())
        if not meta.get("creationTimestamp"):
            meta["creationTimestamp"] = rfc3339(time.time())
        obj.setdefault("kind", self.kind)
        obj.setdefault("apiVersion", self.api_version)
        rv = self.store.bump()
        meta["resourceVersion"] = str(rv)
        stored = Stored(
            name=name,
            namespace=namespace,
            rv=rv,
            raw=_dumps(obj).encode(),
            labels=dict(meta.get("labels") or {}),
            fields=self.fields(obj),
            obj=obj if self.keep_objects else None,
        )
        self.items[key] = stored
        if old is None:
            self._sorted = None
        self._emit(WatchEvent("ADDED" if old is None else "MODIFIED", stored))
        return stored

    def delete(self, namespace: str, name: str) -> Stored | None:
        key = (namespace if self.namespaced else "", name)
        old = self.items.pop(key, None)
        if old is None:
            return None
        self._sorted = None
        obj = old.object()
        rv = self.store.bump()
        obj["metadata"]["resourceVersion"] = str(rv)
        gone = Stored(old.name, old.namespace, rv, _dumps(obj).encode(), old.labels, old.fields)
        self._emit(WatchEvent("DELETED", gone))
        return gone

    def _emit(self, event: WatchEvent) -> None:
        if len(self.history) == self.history.maxlen:
            self.floor = self.history[0][0]
        self.history.append((event.stored.rv, event))
        for watcher in list(self.watchers):
            watcher.offer(event)

    # -- watch ----------------------------------------------------------------------------------
    def watch(
        self,
        since: int | None,
        namespace: str | None = None,
        match: Callable[[Stored], bool] | None = None,
    ) -> tuple[Watcher, list[WatchEvent]]:
        """Open a watch. `since` None or 0 means "from now, with the current state as ADDED"
        (what a watch without resourceVersion does); otherwise replay history after `since`.
        Raises Expired when `since` is older than the history kept."""
        watcher = Watcher(self, namespace, match or (lambda s: True))
        backlog: list[WatchEvent] = []
        if not since:
            backlog = [WatchEvent("ADDED", s) for s in self.select(namespace, match)]
        else:
            if since < self.floor:
                raise Expired(since, self.floor)
            for rv, event in self.history:
                if rv > since and (not namespace or event.stored.namespace == namespace):
                    if watcher.match(event.stored):
                        backlog.append(event)
        self.watchers.add(watcher)
        return watcher, backlog


class Store:
    def __init__(self, history: int = 50_000) -> None:
        self.rv = 1000
        self.history = history
        self.collections: dict[str, Collection] = {}

    def bump(self) -> int:
        self.rv += 1
        return self.rv

    def add(self, collection: Collection) -> Collection:
        self.collections[collection.resource] = collection
        return collection

    def __getitem__(self, resource: str) -> Collection:
        return self.collections[resource]

    def compact(self, upto: int | None = None) -> None:
        """Forget watch history up to `upto` (all of it by default), as an etcd compaction does:
        a watch from an older resourceVersion then gets 410 Gone."""
        upto = self.rv if upto is None else upto
        for collection in self.collections.values():
            while collection.history and collection.history[0][0] <= upto:
                collection.history.popleft()
            collection.floor = max(collection.floor, upto)


def dumps(obj: Any) -> bytes:
    return _dumps(obj).encode()


def join_list(kind: str, api_version: str, rv: int, items: Iterable[Stored], cont: str = "",
              remaining: int | None = None) -> bytes:
    """A List response assembled from pre-serialised items."""
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    head = (b'{"kind":"' + kind.encode() + b'","apiVersion":"' + api_version.encode()
            + b'","metadata":')
    return head + dumps(meta) + b',"items":[' + b",".join(s.raw for s in items) + b"]}"
