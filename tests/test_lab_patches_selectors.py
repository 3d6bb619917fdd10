"""Pure pieces of the lab API server: selectors, the three patch formats, table printers."""

from __future__ import annotations

import pytest

from lab.apiserver import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_patch,
    apply_strategic_merge_patch,
)
from lab.selectors import SelectorError, make_predicate, parse_field_selector, parse_label_selector
from lab.store import Stored
from lab.tables import csr_condition, node_roles, node_status, print_event, print_pod

# -- label selectors -----------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "zone": "a", "empty": ""}


@pytest.mark.parametrize("selector, expected", [
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("tier in (front,back)", True),
    ("tier in (back)", False),
    ("tier notin (back)", True),
    ("missing notin (back)", True),
    ("tier notin (front, back)", False),
    ("missing in (x)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web,tier=front,!missing", True),
    ("app=web, tier=back", False),
    ("empty=", True),
    ("empty", True),
    ("zone in (a,b),app", True),
])
def test_label_selector(selector, expected):
    match = parse_label_selector(selector)
    assert match is not None
    assert match(LABELS) is expected


@pytest.mark.parametrize("selector", ["a b", "=x", "app in x", "app in (a", "app=web,",
                                      "app=(x)", "app = !x", "a=b c"])
def test_label_selector_errors(selector):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_empty_selectors_select_everything():
    assert parse_label_selector("") is None
    assert parse_label_selector(None) is None
    assert parse_field_selector("  ") is None
    assert make_predicate("", "") is None


def test_field_selector_parsing_and_fallback_to_object():
    assert parse_field_selector("a=b,c!=d,e==f") == [("a", "b", True), ("c", "d", False),
                                                     ("e", "f", True)]
    assert parse_field_selector(r"metadata.name=a\,b") == [("metadata.name", "a,b", True)]
    assert parse_field_selector("involvedObject.namespace=") == [
        ("involvedObject.namespace", "", True)]
    with pytest.raises(SelectorError):
        parse_field_selector("nonsense")
    stored = Stored("n1", "", 5, b"{}", {"app": "x"}, {"spec.nodeName": "node-1"},
                    obj={"spec": {"unschedulable": True, "nodeName": "node-1"}})
    assert make_predicate(None, "spec.nodeName=node-1")(stored)
    assert make_predicate(None, "spec.unschedulable=true")(stored)
    assert not make_predicate(None, "spec.unschedulable!=true")(stored)
    assert make_predicate("app=x", "metadata.name=n1,metadata.namespace=")(stored)
    assert not make_predicate("app=y", "metadata.name=n1")(stored)


# -- patches -----------------------------------------------------------------------------------

NODE = {
    "metadata": {"name": "n", "labels": {"a": "1", "b": "2"}},
    "spec": {"podCIDR": "10.0.0.0/24", "taints": [
        {"key": "k1", "effect": "NoSchedule"}, {"key": "k2", "effect": "NoExecute"}]},
    "status": {
        "conditions": [{"type": "MemoryPressure", "status": "False"},
                       {"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                      {"type": "Hostname", "address": "n"}],
    },
}


def test_merge_patch():
    out = apply_merge_patch(NODE, {"spec": {"unschedulable": True},
                                   "metadata": {"labels": {"a": None, "c": "3"}}})
    assert out["spec"]["unschedulable"] is True and out["spec"]["podCIDR"] == "10.0.0.0/24"
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    out = apply_merge_patch(NODE, {"status": {"conditions": [{"type": "Ready"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready"}]  # lists replace
    assert NODE["spec"].get("unschedulable") is None  # input untouched


def test_strategic_merge_patch_merges_conditions_and_addresses_by_type():
    out = apply_strategic_merge_patch(NODE, {"status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
                       {"type": "DiskPressure", "status": "False"}],
        "addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}})
    conds = {c["type"]: c for c in out["status"]["conditions"]}
    assert set(conds) == {"MemoryPressure", "Ready", "DiskPressure"}
    assert conds["Ready"] == {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}
    assert [a["type"] for a in out["status"]["addresses"]] == ["InternalIP", "Hostname",
                                                               "ExternalIP"]
    assert NODE["status"]["conditions"][1]["status"] == "True"


def test_strategic_merge_patch_directives():
    out = apply_strategic_merge_patch(NODE, {"status": {"conditions": [
        {"type": "MemoryPressure", "$patch": "delete"}]}})
    assert [c["type"] for c in out["status"]["conditions"]] == ["Ready"]
    out = apply_strategic_merge_patch(NODE, {"status": {"conditions": [
        {"$patch": "replace"}, {"type": "Ready", "status": "Unknown"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "Unknown"}]
    out = apply_strategic_merge_patch(NODE, {"status": {
        "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "MemoryPressure"}],
        "conditions": [{"type": "Ready", "status": "False"}]}})
    assert [c["type"] for c in out["status"]["conditions"]] == ["Ready", "MemoryPressure"]
    out = apply_strategic_merge_patch(NODE, {"spec": {"$patch": "delete"}})
    assert "spec" not in out
    out = apply_strategic_merge_patch({"metadata": {"finalizers": ["a", "b"]}},
                                      {"metadata": {"finalizers": ["c"],
                                                    "$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b", "c"]


def test_strategic_merge_patch_taints_replace_like_the_api():
    # What kubectl taint / cordon send: the whole new list, or null for none.
    out = apply_strategic_merge_patch(NODE, {"spec": {"taints": [
        {"key": "k2", "effect": "NoExecute"}]}})
    assert out["spec"]["taints"] == [{"key": "k2", "effect": "NoExecute"}]
    out = apply_strategic_merge_patch(NODE, {"spec": {"taints": None}})
    assert "taints" not in out["spec"]
    out = apply_strategic_merge_patch(NODE, {"spec": {"taints": [
        {"key": "k1", "effect": "NoSchedule", "value": "v"}]}},
        merge_keys={"taints": ("key", "effect")})
    assert out["spec"]["taints"] == [{"key": "k1", "effect": "NoSchedule", "value": "v"},
                                     {"key": "k2", "effect": "NoExecute"}]


def test_json_patch():
    out = apply_json_patch(NODE, [
        {"op": "add", "path": "/spec/unschedulable", "value": True},
        {"op": "remove", "path": "/spec/taints/0"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
        {"op": "add", "path": "/spec/taints/-", "value": {"key": "k3", "effect": "NoSchedule"}},
        {"op": "copy", "from": "/metadata/labels/b", "path": "/metadata/labels/c"},
        {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/d"},
        {"op": "add", "path": "/metadata/annotations", "value": {"x~y/z": "1"}},
        {"op": "test", "path": "/metadata/annotations/x~0y~1z", "value": "1"},
    ])
    assert out["spec"]["unschedulable"] is True
    assert [t["key"] for t in out["spec"]["taints"]] == ["k2", "k3"]
    assert out["metadata"]["labels"] == {"a": "9", "c": "2", "d": "2"}
    with pytest.raises(PatchError):
        apply_json_patch(NODE, [{"op": "test", "path": "/metadata/name", "value": "other"}])
    with pytest.raises(PatchError):
        apply_json_patch(NODE, [{"op": "remove", "path": "/spec/nothing"}])
    with pytest.raises(PatchError):
        apply_json_patch(NODE, [{"op": "replace", "path": "/spec/taints/9", "value": 1}])
    with pytest.raises(PatchError):
        apply_json_patch(NODE, {"op": "add"})


def test_apply_patch_by_content_type():
    patch = {"spec": {"unschedulable": True}}
    for ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                  "application/strategic-merge-patch+json; charset=utf-8"):
        assert apply_patch(NODE, patch, ctype)["spec"]["unschedulable"] is True
    ops = [{"op": "add", "path": "/spec/unschedulable", "value": True}]
    assert apply_patch(NODE, ops, "application/json-patch+json")["spec"]["unschedulable"]
    with pytest.raises(PatchError):
        apply_patch(NODE, patch, "text/plain")


# -- printers ------------------------------------------------------------------------------------

def test_node_status_and_roles():
    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == \
        "Ready"
    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}) \
        == "NotReady"
    assert node_status({"status": {}}) == "Unknown"
    assert node_status({"spec": {"unschedulable": True},
                        "status": {"conditions": [{"type": "Ready", "status": "False"}]}}) == \
        "NotReady,SchedulingDisabled"
    assert node_roles({"node-role.kubernetes.io/worker": "",
                       "node-role.kubernetes.io/control-plane": "",
                       "kubernetes.io/role": "infra"}) == "control-plane,infra,worker"
    assert node_roles({"other": "x"}) == "<none>"


def test_pod_status_reasons():
    base = {"metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}, {"name": "d"}]}}
    pod = dict(base, status={"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": "2024-01-01T00:00:00Z"}}},
        {"name": "d", "ready": False, "restartCount": 1,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})
    cells = print_pod(pod)
    assert cells[1:3] == ["1/2", "CrashLoopBackOff"]
    assert cells[3].render(1704067200 + 300) == "3 (5m ago)"
    terminating = dict(base, metadata=dict(base["metadata"],
                                           deletionTimestamp="2024-01-01T00:00:00Z"),
                       status={"phase": "Running"})
    assert print_pod(terminating)[2] == "Terminating"
    init = dict(base, spec=dict(base["spec"], initContainers=[{"name": "i"}]),
                status={"phase": "Pending", "initContainerStatuses": [
                    {"name": "i", "restartCount": 0, "state": {"running": {}}}]})
    assert print_pod(init)[2] == "Init:0/1"


def test_event_and_csr_printers():
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node", "name": "n1"},
          "reason": "NodeNotReady", "type": "Normal", "message": " msg ",
          "source": {"component": "node-controller"},
          "firstTimestamp": "2024-01-01T00:00:00Z", "count": 3}
    cells = print_event(ev)
    assert cells[0].render(1704067200 + 90) == "90s"
    assert cells[1:7] == ["Normal", "NodeNotReady", "node/n1", "", "node-controller", "msg"]
    assert cells[8:] == [3, "e"]
    assert csr_condition({"status": {}}) == "Pending"
    assert csr_condition({"status": {"conditions": [{"type": "Approved"}],
                                     "certificate": "x"}}) == "Approved,Issued"
    assert csr_condition({"status": {"conditions": [{"type": "Denied"}, {"type": "Failed"}]}}) \
        == "Denied,Failed"
