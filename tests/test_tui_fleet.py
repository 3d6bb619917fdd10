"""The first screen: snapshots with seeded data and a frozen clock, keys driven by the pilot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from probes.kube import KubeError, NodeRecord, node_record
from tui.app import NodeSource, NodewbApp

ROOT = Path(__file__).resolve().parent.parent
REAL_NODES = ROOT.parent / "shared" / "data" / "node-objects" / "node_list_notready_kuberang_testdata.json"
FROZEN = 1_794_000_000.0  # 2026-11-06


class FixedSource:
    def __init__(self, records: list[NodeRecord], context: str = "fixture") -> None:
        self.records = records
        self.context = context
        self.calls = 0

    def list_nodes(self) -> list[NodeRecord]:
        self.calls += 1
        return list(self.records)


class FailingSource:
    context = "broken"

    def list_nodes(self) -> list[NodeRecord]:
        raise KubeError("cannot reach the API server at https://127.0.0.1:1: [Errno 111] "
                        "Connection refused")


def lab_records(nodes: int = 40) -> list[NodeRecord]:
    from lab.cluster import Cluster

    cluster = Cluster(nodes=nodes, seed=3, now=FROZEN)
    return [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]


def real_records() -> list[NodeRecord]:
    if not REAL_NODES.exists():
        pytest.skip("shared/data is not beside this checkout")
    return [node_record(item) for item in json.loads(REAL_NODES.read_text())["items"]]


def app_for(source) -> NodewbApp:
    return NodewbApp(source, title="test", clock=lambda: FROZEN)


def test_snapshot_default_lab_mix(snap_compare):
    assert snap_compare(app_for(FixedSource(lab_records())), terminal_size=(120, 36))


def test_snapshot_real_node_list_at_80x24(snap_compare):
    assert snap_compare(app_for(FixedSource(real_records(), "kuberang")), terminal_size=(80, 24))


def test_snapshot_connection_error(snap_compare):
    assert snap_compare(app_for(FailingSource()), terminal_size=(80, 24))


async def test_not_ready_nodes_come_first_and_counts_are_shown():
    records = lab_records()
    app = app_for(FixedSource(records))
    async with app.run_test(size=(120, 36)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one(DataTable)
        assert table.row_count == len(records)
        bad = {r.name for r in records if r.ready != "True"}
        first = [str(table.get_row_at(i)[0]) for i in range(len(bad))]
        assert set(first) == bad
        summary = str(app.query_one("#summary", Static).render())
        assert f"{len(records)} nodes" in summary and f"{len(bad)} not ready" in summary


async def test_keys_move_refresh_and_quit():
    source = FixedSource(lab_records(10))
    app = app_for(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one(DataTable)
        assert table.cursor_row == 0
        await pilot.press("j")
        await pilot.press("down")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("r")
        await app.workers.wait_for_complete()
        assert source.calls == 2
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("q")
    assert app.return_code == 0


async def test_error_is_shown_as_text_not_a_traceback():
    app = app_for(FailingSource())
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        error = app.query_one("#error", Static)
        assert error.display
        assert "Connection refused" in str(error.render())


@pytest.mark.kubectl
async def test_fleet_from_the_served_lab(served_lab):
    app = app_for(NodeSource(str(served_lab.kubeconfig), None))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one(DataTable)
        assert table.row_count == served_lab.info["nodes"]
        names = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert "node-0004" in names


def test_malformed_kubeconfig_is_a_clear_error(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nclusters: [oops\n")
    with pytest.raises(KubeError) as err:
        NodeSource(str(bad), None).list_nodes()
    assert str(bad) in str(err.value)
    with pytest.raises(KubeError) as err:
        NodeSource(str(tmp_path / "missing"), None).list_nodes()
    assert "no kubeconfig" in str(err.value)
