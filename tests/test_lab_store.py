"""The store's watch history: replay, compaction and 410 Gone."""

from __future__ import annotations

import pytest

from lab.store import Collection, Expired, Store


def nodes_store() -> tuple[Store, Collection]:
    store = Store(history=1000)
    nodes = store.add(Collection(store, "nodes", "Node", "v1", False))
    return store, nodes


def test_watch_replays_after_a_resource_version():
    store, nodes = nodes_store()
    first = nodes.put({"metadata": {"name": "a"}})
    nodes.put({"metadata": {"name": "b"}})
    nodes.put({"metadata": {"name": "a", "labels": {"x": "1"}}})
    watcher, backlog = nodes.watch(first.rv)
    assert [(e.type, e.stored.name) for e in backlog] == [("ADDED", "b"), ("MODIFIED", "a")]
    watcher.close()


def test_partial_compaction_keeps_recent_history_and_expires_older():
    store, nodes = nodes_store()
    old = nodes.put({"metadata": {"name": "a"}}).rv
    cut = nodes.put({"metadata": {"name": "b"}}).rv
    nodes.put({"metadata": {"name": "c"}})
    store.compact(cut)
    with pytest.raises(Expired):
        nodes.watch(old)
    watcher, backlog = nodes.watch(cut)
    assert [e.stored.name for e in backlog] == ["c"]
    watcher.close()


def test_history_overflow_expires_the_oldest():
    store = Store(history=3)
    nodes = store.add(Collection(store, "nodes", "Node", "v1", False))
    rvs = [nodes.put({"metadata": {"name": f"n{i}"}}).rv for i in range(6)]
    with pytest.raises(Expired):
        nodes.watch(rvs[0])
    _, backlog = nodes.watch(rvs[3])
    assert [e.stored.name for e in backlog] == ["n4", "n5"]
