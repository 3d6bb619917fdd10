"""The fleet model without a screen: events, ghosts, filter, sort, grouping, layout, speed."""

from __future__ import annotations

import copy
import random
import time

import pytest

from probes.kube import NodeRecord, node_record
from tui.feed import FeedEvent as E
from tui.fleet_model import (
    COLUMNS,
    Entry,
    FleetModel,
    Group,
    compile_filter,
    layout,
    short_message,
    static_cells,
)

FROZEN = 1_794_000_000.0


def lab_records(nodes: int = 40, scenarios: list[str] | None = None) -> list[NodeRecord]:
    from lab.cluster import Cluster

    cluster = Cluster(nodes=nodes, seed=3, now=FROZEN, scenarios=scenarios)
    return [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]


def names(rows) -> list[str]:
    return [r.rec.name for r in rows if isinstance(r, Entry)]


def loaded(records: list[NodeRecord]) -> FleetModel:
    model = FleetModel()
    model.apply([E("reset"), E("chunk", nodes=records), E("synced")])
    return model


def test_not_ready_first_then_unknown_then_ready():
    records = lab_records()
    model = loaded(records)
    rows = model.view()
    ranks = [r.rank for r in rows]
    assert ranks == sorted(ranks)
    assert rows[0].rec.ready == "False"
    counts = model.counts
    assert counts.total == 40
    assert counts.not_ready == sum(r.ready == "False" for r in records)
    assert counts.unknown == sum(r.ready == "Unknown" for r in records)


def test_first_chunk_is_visible_before_synced_and_ghosts_go_at_synced():
    records = lab_records(10)
    model = FleetModel()
    model.apply([E("reset"), E("chunk", nodes=records[:4])])
    assert len(model.view()) == 4 and not model.synced
    model.apply([E("chunk", nodes=records[4:]), E("synced")])
    assert len(model.view()) == 10 and model.synced
    # a relist that no longer has node 1: it stays until synced, then goes
    model.apply([E("reset"), E("chunk", nodes=records[1:])])
    assert records[0].name in names(model.view())
    model.apply([E("synced")])
    assert records[0].name not in names(model.view())


def test_upsert_delete_leases_pods_and_connection():
    records = lab_records(6)
    model = loaded(records)
    changed = copy.copy(records[-1])
    changed.ready = "False"
    changed.ready_message = "PLEG is not healthy"
    model.apply([E("upsert", nodes=[changed]), E("delete", names=[records[0].name]),
                 E("leases", leases={records[1].name: FROZEN - 30}),
                 E("pods", pods={records[1].name: 17})])
    rows = model.view()
    assert records[0].name not in names(rows)
    assert changed.name in [r.rec.name for r in rows if r.rank == 0]
    assert model.get(changed.name).cells["reason"] == "PLEG is not healthy"
    live = model.live_cells(model.get(records[1].name), FROZEN)
    assert live["lease"] == "30s" and live["pods"] == "17/110"
    # pods is a complete count: a node absent from the next one runs none
    model.apply([E("pods", pods={records[2].name: 3})])
    assert model.live_cells(model.get(records[1].name), FROZEN)["pods"] == "0/110"
    model.apply([E("connection", connected=False, error="dial tcp: refused", at=FROZEN - 12)])
    assert not model.connected and model.stale_since == FROZEN - 12
    model.apply([E("connection", connected=False, error="again", at=FROZEN - 2)])
    assert model.stale_since == FROZEN - 12  # the outage started at the first failure
    model.apply([E("connection", connected=True, at=FROZEN)])
    assert model.connected and not model.stale_since


@pytest.mark.parametrize("text,expected", [
    ("notready", lambda r: r.ready == "False"),
    ("unknown", lambda r: r.ready == "Unknown"),
    ("net", lambda r: r.conditions.get("NetworkUnavailable") == "True"),
    ("DiskPressure", lambda r: r.conditions.get("DiskPressure") == "True"),
    ("pressure", lambda r: any(r.conditions.get(c) == "True"
                               for c in ("MemoryPressure", "DiskPressure", "PIDPressure"))),
    ("node-001", lambda r: "node-001" in r.name),
    ("zone=us-east-1b", lambda r: r.zone == "us-east-1b"),
    ("topology.kubernetes.io/zone=us-east-1b", lambda r: r.zone == "us-east-1b"),
    ("node-role.kubernetes.io/worker", lambda r: True),
    ("notready zone=us-east-1b", lambda r: r.ready == "False" and r.zone == "us-east-1b"),
    ("!ready", lambda r: r.ready != "True"),
    ("cordoned", lambda r: r.unschedulable),
])
def test_filter_terms(text, expected):
    records = lab_records(40, ["vxlan-missing", "runtime-dead", "inode-exhaustion",
                               "api-partition"])
    if "/" in text and not getattr(records[0], "labels", None):
        pytest.skip("NodeRecord carries no labels yet")
    model = loaded(records)
    model.set_filter(text)
    want = sorted(r.name for r in records if expected(r))
    assert sorted(names(model.view())) == want
    assert model.counts.shown == len(want)
    model.set_filter("")
    assert len(names(model.view())) == len(records)


def test_compile_filter_empty_is_none():
    assert compile_filter("   ") is None


def test_group_by_zone_puts_the_blast_radius_first():
    model = loaded(lab_records(40, ["vxlan-missing"]))
    model.set_group("zone")
    rows = model.view()
    assert isinstance(rows[0], Group) and rows[0].key == "us-east-1b"
    assert rows[0].not_ready >= 5 and rows[0].total == 13
    groups = [r for r in rows if isinstance(r, Group)]
    assert sum(g.total for g in groups) == 40
    assert [g.label for g in groups] == ["zone"] * 3
    for key in ("pool", "kernel", "os", "version", None):
        model.set_group(key)
        assert len(names(model.view())) == 40


# -- six nodes that differ in every column, so no order is left to the names ------------------

def six_nodes() -> tuple[list[NodeRecord], dict[str, float], dict[str, int]]:
    """Nodes node-a .. node-f, each column giving a different order (see SORTED below)."""
    def rec(name: str, **fields) -> NodeRecord:
        base = dict(name=name, ready="True", ready_reason="KubeletReady", ready_message="",
                    ready_by="kubelet", heartbeat=FROZEN, roles="worker", unschedulable=False,
                    kubelet_version="", runtime="", kernel="", os_image="",
                    internal_ip="10.0.0.1", zone="", pool="", created=FROZEN - 86400,
                    pods_capacity=110, conditions={}, taints=[], ready_since=FROZEN)
        base.update(fields)
        base["conditions"] = {"Ready": base["ready"], **base["conditions"]}
        return NodeRecord(**base)

    ok = {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
          "NetworkUnavailable": "False"}
    records = [
        rec("node-a", ready_since=FROZEN - 100, heartbeat=FROZEN - 10, roles="worker",
            kubelet_version="v1.31.4", runtime="containerd://1.7.22", kernel="6.1.0-18-amd64",
            os_image="Ubuntu 22.04.4 LTS", zone="us-east-1c", pool="batch",
            conditions={**ok, "MemoryPressure": "True"},
            taints=["dedicated:NoSchedule"]),
        rec("node-b", ready_by="", ready_since=FROZEN - 5000, heartbeat=FROZEN - 3,
            roles="control-plane", kubelet_version="v1.29.10", runtime="cri-o://1.30.1",
            kernel="5.15.0-105-generic", os_image="Bottlerocket OS 1.20.0", zone="us-east-1a",
            pool="system", conditions={"MemoryPressure": "False", "DiskPressure": "False",
                                       "PIDPressure": "False"}),
        rec("node-c", ready="False", ready_reason="KubeletNotReady",
            ready_message="PLEG is not healthy: pleg was last seen active 4m0s ago",
            ready_since=FROZEN - 50, heartbeat=FROZEN - 40, roles="worker",
            kubelet_version="v1.30.2", runtime="containerd://1.6.31", kernel="6.8.0-1015-aws",
            os_image="Amazon Linux 2", zone="", pool="gpu",
            conditions={**ok, "DiskPressure": "True", "PIDPressure": "True"},
            taints=["node.kubernetes.io/not-ready:NoSchedule", "gpu:NoSchedule"]),
        rec("node-d", ready="Unknown", ready_reason="NodeStatusUnknown",
            ready_message="Kubelet stopped posting node status.", ready_by="node-controller",
            ready_since=FROZEN - 300, heartbeat=FROZEN - 400, roles="infra",
            kubelet_version="v1.28.15", runtime="docker://24.0.7",
            kernel="5.10.223-212.873.amzn2.x86_64",
            os_image="Container-Optimized OS from Google", zone="us-east-1b", pool="",
            conditions={"MemoryPressure": "Unknown", "DiskPressure": "Unknown",
                        "PIDPressure": "Unknown", "NetworkUnavailable": "Unknown"},
            taints=["node.kubernetes.io/unreachable:NoSchedule",
                    "node.kubernetes.io/unreachable:NoExecute", "a:NoSchedule", "b:NoSchedule"]),
        rec("node-e", unschedulable=True, ready_since=FROZEN - 20, heartbeat=FROZEN - 7,
            roles="<none>", kubelet_version="v1.31.1", runtime="containerd://2.0.0",
            kernel="6.5.0-1025-gcp", os_image="Flatcar Container Linux by Kinvolk 3815.2.2",
            zone="eu-west-1a", pool="web", conditions={**ok, "NetworkUnavailable": "True"},
            taints=["node.kubernetes.io/unschedulable:NoSchedule"]),
        rec("node-f", ready="False", ready_reason="KubeletNotReady",
            ready_message="container runtime is down", unschedulable=True,
            ready_since=FROZEN - 1000, heartbeat=FROZEN - 25, roles="gpu,worker",
            kubelet_version="v1.30.0", runtime="cri-o://1.29.4",
            kernel="4.18.0-553.el8_10.x86_64", os_image="Debian GNU/Linux 12 (bookworm)",
            zone="us-east-1a", pool="arm", conditions={**ok, "DiskPressure": "True"},
            taints=["node.kubernetes.io/unschedulable:NoSchedule", "x:NoExecute"]),
    ]
    leases = {"node-a": FROZEN - 8, "node-b": FROZEN - 2, "node-c": FROZEN - 30,
              "node-e": FROZEN - 1, "node-f": FROZEN - 60}  # node-d holds no lease
    pods = {"node-a": 12, "node-b": 3, "node-c": 40, "node-e": 0, "node-f": 7}  # node-d: none
    return records, leases, pods


# The order each column sorts the six nodes in (forward; `S` reverses it).
SORTED = {
    "name": "abcdef",
    "status": "fcdeab",  # NotReady, Unknown, Ready; cordoned first within each
    "by": "bdcfae",  # "-" < "controller" < "kubelet", then status, then name
    "reason": "abedcf",  # no reason (Ready) first, then the message text
    "since": "ecadfb",  # the most recent Ready transition first
    "heartbeat": "dcfaeb",  # the oldest heartbeat first
    "lease": "fcabed",  # the oldest renewal first; a node without a lease last
    "pressure": "dcfabe",  # the most flags first (? counts as a flag)
    "net": "ecfdab",  # down first, then status
    "taints": "dfceab",  # the most taints (cordon counting as one) first
    "roles": "ebfdca",
    "version": "dbfcea",
    "runtime": "caefbd",
    "kernel": "fdbaec",
    "os": "cbdfea",
    "zone": "cefbda",  # "-" (no zone) first
    "pool": "dfacbe",  # "-" (no pool) first
    "pods": "cafbde",  # the most pods first (a node the count leaves out runs none)
}


def test_sort_on_every_column_and_reverse():
    records, leases, pods = six_nodes()
    model = loaded(records)
    model.apply([E("leases", leases=leases), E("pods", pods=pods)])
    assert set(SORTED) == {c.id for c in COLUMNS}
    for col in COLUMNS:
        want = [f"node-{x}" for x in SORTED[col.id]]
        model.set_sort(col.id, reverse=False)
        assert names(model.view()) == want, col.id
        model.toggle_reverse()
        reverse = names(model.view())
        assert (reverse[0], reverse[-1]) == (want[-1], want[0]), col.id
        assert reverse == want[::-1], col.id
    # every column is reached by cycling, in order, and cycling starts forward again
    model.set_sort("name", reverse=True)
    seen = [model.cycle_sort() for _ in COLUMNS]
    assert seen == [c.id for c in COLUMNS[1:]] + ["name"] and not model.reverse
    # a lease renewal moves its node when sorting by lease
    model.set_sort("lease", reverse=False)
    model.apply([E("leases", leases={"node-b": FROZEN - 90})])
    assert names(model.view())[0] == "node-b"


def test_every_column_shows_what_its_record_holds():
    records, leases, pods = six_nodes()
    model = loaded(records)
    model.apply([E("leases", leases=leases), E("pods", pods=pods)])
    want = {
        "node-c": {"name": "node-c", "status": "NotReady", "by": "kubelet",
                   "reason": "PLEG is not healthy: pleg was last seen active 4m0s ago",
                   "since": "50s", "heartbeat": "40s", "lease": "30s", "pressure": "-DP",
                   "net": "ok", "taints": "not-ready,gpu", "roles": "worker",
                   "version": "v1.30.2", "runtime": "containerd://1.6.31",
                   "kernel": "6.8.0-1015-aws", "os": "Amazon Linux 2", "zone": "-",
                   "pool": "gpu", "pods": "40/110"},
        "node-d": {"name": "node-d", "status": "Unknown", "by": "controller",
                   "reason": "Kubelet stopped posting node status.", "since": "5m",
                   "heartbeat": "6m", "lease": "-", "pressure": "???", "net": "?",
                   "taints": "unreachable,a,b", "roles": "infra", "version": "v1.28.15",
                   "runtime": "docker://24.0.7", "kernel": "5.10.223-212.873.amzn2.x86_64",
                   "os": "Container-Optimized OS from Google", "zone": "us-east-1b",
                   "pool": "-", "pods": "0/110"},
        "node-e": {"name": "node-e", "status": "Ready,SchedulingDisabled", "by": "kubelet",
                   "reason": "", "since": "20s", "heartbeat": "7s", "lease": "1s",
                   "pressure": "---", "net": "down", "taints": "cordon", "roles": "<none>",
                   "version": "v1.31.1", "runtime": "containerd://2.0.0",
                   "kernel": "6.5.0-1025-gcp",
                   "os": "Flatcar Container Linux by Kinvolk 3815.2.2", "zone": "eu-west-1a",
                   "pool": "web", "pods": "0/110"},
        "node-f": {"name": "node-f", "status": "NotReady,SchedulingDisabled", "by": "kubelet",
                   "reason": "container runtime is down", "since": "16m", "heartbeat": "25s",
                   "lease": "60s", "pressure": "-D-", "net": "ok", "taints": "cordon,x",
                   "roles": "gpu,worker", "version": "v1.30.0", "runtime": "cri-o://1.29.4",
                   "kernel": "4.18.0-553.el8_10.x86_64",
                   "os": "Debian GNU/Linux 12 (bookworm)", "zone": "us-east-1a",
                   "pool": "arm", "pods": "7/110"},
    }
    for name, cells in want.items():
        entry = model.get(name)
        shown = {**static_cells(entry.rec), **model.live_cells(entry, FROZEN)}
        assert set(shown) == {c.id for c in COLUMNS}
        assert shown == cells, name
        assert entry.cells == static_cells(entry.rec)  # what the table draws from
    # node-d has no pod count: "?" until the first count, then 0
    fresh = loaded(records)
    assert fresh.live_cells(fresh.get("node-d"), FROZEN)["pods"] == "?/110"


def varied_lab_records() -> list[NodeRecord]:
    """Lab nodes with some failing, re-versioned and without a pool, so every grouping has
    several groups of different health."""
    records = lab_records(40, ["vxlan-missing", "runtime-dead", "inode-exhaustion",
                               "api-partition", "cert-expired"])
    out = []
    for i, r in enumerate(records):
        r = copy.copy(r)
        if i % 4 == 1:
            r.kubelet_version = "v1.30.8"
        if i % 9 == 0:
            r.pool = ""
        out.append(r)
    return out


@pytest.mark.parametrize("key,field", [("zone", "zone"), ("pool", "pool"),
                                       ("kernel", "kernel"), ("os", "os_image"),
                                       ("version", "kubelet_version")])
def test_group_keys_and_counts_match_the_records(key, field):
    records = varied_lab_records()
    model = loaded(records)
    model.set_group(key)
    rows = model.view()
    want: dict[str, list[NodeRecord]] = {}
    for r in records:
        want.setdefault(getattr(r, field) or "(none)", []).append(r)
    assert len(want) >= 2, f"the records have one {field} only: the test would prove nothing"
    groups = [r for r in rows if isinstance(r, Group)]
    assert sorted(g.key for g in groups) == sorted(want)
    label = {"os": "OS image", "version": "kubelet version"}.get(key, key)
    for g in groups:
        members = want[g.key]
        assert g.label == label
        assert g.total == len(members), g.key
        assert g.not_ready == sum(r.ready == "False" for r in members), g.key
        assert g.unknown == sum(r.ready == "Unknown" for r in members), g.key
        assert g.cordoned == sum(r.unschedulable for r in members), g.key
    # each header is followed by exactly its own nodes; the least healthy group comes first
    current = None
    for row in rows:
        if isinstance(row, Group):
            current = row.key
        else:
            assert (getattr(row.rec, field) or "(none)") == current
    bad = [g.not_ready + g.unknown for g in groups]
    assert bad == sorted(bad, reverse=True)
    assert any(bad) and len(names(rows)) == len(records)


def test_view_is_only_recomputed_when_needed():
    model = loaded(lab_records(10))
    first = model.view()
    assert model.view() is first
    model.apply([E("leases", leases={"node-0001": FROZEN})])  # content, not order
    assert model.view() is first
    model.set_sort("lease")
    assert model.view() is not first


def test_message_is_shortened_and_control_characters_are_dropped():
    assert short_message("container runtime network not ready: NetworkReady=false "
                         "reason:NetworkPluginNotReady message:Network plugin returns error: "
                         "cni plugin not initialized") == \
        "container runtime network not ready: cni plugin not initialized"
    rec = lab_records(1)[0]
    rec.name = "evil\x1b[31mnode"
    rec.ready = "False"
    rec.ready_message = "boom\x07\n[bold]not markup[/]"
    model = loaded([rec])
    entry = model.view()[0]
    assert "\x1b" not in entry.cells["name"] and "\x07" not in entry.cells["reason"]
    assert "[bold]not markup[/]" in entry.cells["reason"]


def test_layout_fits_and_keeps_the_essentials_at_80_columns():
    model = loaded(lab_records())
    for width in (60, 80, 100, 120, 160, 240):
        cols = layout(width, model.widths)
        total = sum(w for _, w in cols) + len(cols) - 1
        ids = [c.id for c, _ in cols]
        assert total <= width or width < 60
        assert {"name", "status", "reason", "lease", "pressure", "zone"} <= set(ids)
    assert len(layout(240, model.widths)) == len(COLUMNS)
    assert len(layout(80, model.widths)) == 6


def test_fifty_thousand_upserts_in_batches():
    """5,000 nodes, 50,000 upserts in batches of 500, one view per batch (one per frame)."""
    base = lab_records(50)
    rng = random.Random(5)
    nodes = []
    for i in range(5000):
        rec = copy.copy(base[i % len(base)])
        rec.name = f"node-{i + 1:05d}"
        nodes.append(rec)
    model = FleetModel()
    model.apply([E("reset"), E("chunk", nodes=nodes), E("synced")])
    model.view()
    truth: dict[str, str] = {r.name: r.ready for r in nodes}
    batches = []
    for _ in range(100):
        batch = []
        for _ in range(500):
            rec = copy.copy(nodes[rng.randrange(5000)])
            rec.ready = rng.choice(("True", "True", "True", "False", "Unknown"))
            truth[rec.name] = rec.ready
            batch.append(rec)
        batches.append([E("upsert", nodes=batch)])
    started = time.perf_counter()
    for batch in batches:
        model.apply(batch)
        model.view()
    elapsed = time.perf_counter() - started
    print(f"\n50,000 upserts over 5,000 nodes in 100 batches with a view each: "
          f"{elapsed * 1000:.0f} ms ({elapsed * 10:.1f} ms per frame)")
    rows = model.view()
    assert len(rows) == 5000
    assert {e.rec.name: e.rec.ready for e in rows} == truth
    ranks = [e.rank for e in rows]
    assert ranks == sorted(ranks)
    counts = model.counts
    assert counts.not_ready == sum(v == "False" for v in truth.values())
    assert counts.unknown == sum(v == "Unknown" for v in truth.values())
    model.set_group("zone")
    started = time.perf_counter()
    model.set_filter("notready")
    grouped = model.view()
    print(f"filter+group over 5,000 nodes: {(time.perf_counter() - started) * 1000:.1f} ms")
    assert len(names(grouped)) == counts.not_ready
