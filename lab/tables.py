"""Server-side printing: the `meta.k8s.io/v1` Table the API server returns to `kubectl get`.

Columns and cell values follow the API server's printers (pkg/printers/internalversion). The
server always prints the wide cells; kubectl hides priority-1 columns unless `-o wide`.

Rows are cached per object and resourceVersion as pre-encoded JSON pieces; only the cells that
depend on the clock (AGE, LAST SEEN, "5 (3m ago)" restarts) are rendered per request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from lab.store import Stored, dumps
from lab.timefmt import kube_age, parse_rfc3339

_NAME_DESC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/"
    "sig-architecture/api-conventions.md#metadata"
)


def col(name: str, desc: str = "", priority: int = 0, fmt: str = "", type_: str = "string") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": desc, "priority": priority}


class Since:
    """A cell showing how long ago `ts` was (kubectl's HumanDuration), or `<unknown>`."""

    __slots__ = ("ts", "template")

    def __init__(self, ts: float | None, template: str = "{}") -> None:
        self.ts = ts
        self.template = template

    def render(self, now: float) -> str:
        if self.ts is None:
            return "<unknown>"
        return self.template.format(kube_age(now - self.ts))


def _ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return parse_rfc3339(str(value))
    except ValueError:
        return None


def _created(obj: dict) -> Since:
    return Since(_ts(obj.get("metadata", {}).get("creationTimestamp")))


# -- printers: obj -> cells ----------------------------------------------------------------------

NODE_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Status", "The status of the node"),
    col("Roles", "The roles of the node"),
    col("Age", _AGE_DESC),
    col("Version", "Kubelet Version reported by the node."),
    col("Internal-IP", "List of internal IPs of the node.", 1),
    col("External-IP", "List of external IPs of the node.", 1),
    col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
        "(wheezy)).", 1),
    col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. "
        "3.16.0-0.bpo.4-amd64).", 1),
    col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime "
        "remote API (e.g. containerd://1.4.2).", 1),
]


def node_status(obj: dict) -> str:
    status = []
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if obj.get("spec", {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(labels: dict[str, str]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else "<none>"


def _address(obj: dict, kind: str) -> str:
    for addr in obj.get("status", {}).get("addresses") or []:
        if addr.get("type") == kind:
            return addr.get("address", "")
    return "<none>"


def print_node(obj: dict) -> list:
    info = obj.get("status", {}).get("nodeInfo") or {}
    return [
        obj["metadata"]["name"],
        node_status(obj),
        node_roles(obj["metadata"].get("labels") or {}),
        _created(obj),
        info.get("kubeletVersion", ""),
        _address(obj, "InternalIP"),
        _address(obj, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


LEASE_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Holder", "holderIdentity contains the identity of the holder of a current lease. If "
        "Coordinated Leader Election is used, the holder identity must be equal to the elected "
        "LeaseCandidate.metadata.name field."),
    col("Age", _AGE_DESC),
]


def print_lease(obj: dict) -> list:
    return [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity") or "",
            _created(obj)]


POD_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "The aggregate status of the containers in this pod."),
    col("Restarts", "The number of times the containers in this pod have been restarted and when "
        "the last container in this pod has restarted."),
    col("Age", _AGE_DESC),
    col("IP", "IP address allocated to the pod. Routable at least within the cluster. Empty if "
        "not yet allocated.", 1),
    col("Node", "NodeName is a request to schedule this pod onto a specific node. If it is "
        "non-empty, the scheduler simply schedules this pod onto that node, assuming that it "
        "fits resource requirements.", 1),
    col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on "
        "the node, but it cannot be scheduled right away as preemption victims receive their "
        "graceful termination periods.", 1),
    col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
        "readiness.", 1),
]


def _pod_ready_condition(status: dict) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return True
    return False


def print_pod(obj: dict) -> list:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj["metadata"]
    restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: float | None = None
    reason = status.get("phase") or ""
    if status.get("reason"):
        reason = status["reason"]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    init_count = len(spec.get("initContainers") or [])
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        last = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if last:
            last_restart = max(last_restart or 0, _ts(last) or 0) or None
        state = cs.get("state") or {}
        term = state.get("terminated")
        wait = state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        if term:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{init_count}"
        initializing = True
        break

    if not initializing:
        restarts = 0
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            if last:
                last_restart = max(last_restart or 0, _ts(last) or 0) or None
            state = cs.get("state") or {}
            wait = state.get("waiting")
            term = state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                if term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _pod_ready_condition(status) else "NotReady"

    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"

    restarts_cell: Any = str(restarts)
    if restarts and last_restart:
        restarts_cell = Since(last_restart, f"{restarts} ({{}} ago)")

    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        true_types = {c.get("type") for c in status.get("conditions") or []
                      if c.get("status") == "True"}
        n_ready = sum(1 for g in gates if g.get("conditionType") in true_types)
        gates_cell = f"{n_ready}/{len(gates)}"
    return [
        meta["name"],
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _created(obj),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


EVENT_COLUMNS = [
    col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "This should be a short, machine understandable string that gives the reason "
        "for the transition into the object's current status."),
    col("Object", "The object that this event is about."),
    col("Subobject", "If referring to a piece of an object instead of an entire object, this "
        "string should contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2].", 1),
    col("Source", "The component reporting this event. Should be a short machine understandable "
        "string.", 1),
    col("Message", "A human-readable description of the status of this operation."),
    col("First Seen", "The time at which the event was first recorded. (Time of server receipt "
        "is in TypeMeta.)", 1),
    col("Count", "The number of times this event has occurred.", 1),
    col("Name", _NAME_DESC, 1, fmt="name"),
]


def print_event(obj: dict) -> list:
    first = _ts(obj.get("firstTimestamp")) or _ts(obj.get("eventTime"))
    last = _ts(obj.get("lastTimestamp")) or first
    count = obj.get("count") or 0
    series = obj.get("series")
    if series:
        last = _ts(series.get("lastObservedTime"))
        count = series.get("count") or 0
    elif not count:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [
        Since(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        (obj.get("message") or "").strip(),
        Since(first),
        int(count),
        obj["metadata"]["name"],
    ]


NAMESPACE_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Status", "The status of the namespace"),
    col("Age", _AGE_DESC),
]


def print_namespace(obj: dict) -> list:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", ""), _created(obj)]


CSR_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Age", _AGE_DESC),
    col("SignerName", "Name of the signer that will sign the certificate"),
    col("Requestor", "Name of the user that requested the certificate"),
    col("RequestedDuration", "Requested duration of the certificate"),
    col("Condition", "Condition of the certificate signing request"),
]


def csr_condition(obj: dict) -> str:
    status = obj.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    if "Denied" in types:
        text = "Denied"
    elif "Approved" in types:
        text = "Approved"
    else:
        text = "Pending"
    if "Failed" in types:
        text += ",Failed"
    if status.get("certificate"):
        text += ",Issued"
    return text


def _human_seconds(seconds: int) -> str:
    return kube_age(seconds)


def print_csr(obj: dict) -> list:
    spec = obj.get("spec") or {}
    expiration = spec.get("expirationSeconds")
    return [
        obj["metadata"]["name"],
        _created(obj),
        spec.get("signerName") or "<none>",
        spec.get("username", ""),
        _human_seconds(int(expiration)) if expiration else "<none>",
        csr_condition(obj),
    ]


DEFAULT_COLUMNS = [col("Name", _NAME_DESC, fmt="name"), col("Age", _AGE_DESC)]


def print_default(obj: dict) -> list:
    return [obj["metadata"]["name"], _created(obj)]


def _pod_template_cells(obj: dict) -> list:
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers") or []
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers), selector]


DAEMONSET_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Desired", "The desired number of nodes that should be running the daemon pod.",
        type_="integer"),
    col("Current", "The number of nodes running at least one daemon pod.", type_="integer"),
    col("Ready", "The number of nodes that should be running the daemon pod and have one or "
        "more of the daemon pod running and ready.", type_="integer"),
    col("Up-to-date", "The total number of nodes that are running updated daemon pod",
        type_="integer"),
    col("Available", "The number of nodes that should be running the daemon pod and have one "
        "or more of the daemon pod running and available.", type_="integer"),
    col("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on "
        "a node."),
    col("Age", _AGE_DESC),
    col("Containers", "Names of each container in the template.", 1),
    col("Images", "Images referenced by each container in the template.", 1),
    col("Selector", "A label query over pods that are managed by the daemon set.", 1),
]


def print_daemonset(obj: dict) -> list:
    st = obj.get("status") or {}
    node_selector = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "nodeSelector") or {}
    return [obj["metadata"]["name"], st.get("desiredNumberScheduled", 0),
            st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
            _created(obj), *_pod_template_cells(obj)]


REPLICASET_COLUMNS = [
    col("Name", _NAME_DESC, fmt="name"),
    col("Desired", "Number of desired pods.", type_="integer"),
    col("Current", "Number of actual replicas.", type_="integer"),
    col("Ready", "The number of ready replicas for this replica set.", type_="integer"),
    col("Age", _AGE_DESC),
    col("Containers", "Names of each container in the template.", 1),
    col("Images", "Images referenced by each container in the template.", 1),
    col("Selector", "Selector is a label query over pods that should match the replica count.",
        1),
]


def print_replicaset(obj: dict) -> list:
    st = obj.get("status") or {}
    return [obj["metadata"]["name"], (obj.get("spec") or {}).get("replicas", 0),
            st.get("replicas", 0), st.get("readyReplicas", 0), _created(obj),
            *_pod_template_cells(obj)]


PRINTERS: dict[str, tuple[list[dict], Callable[[dict], list]]] = {
    "daemonsets": (DAEMONSET_COLUMNS, print_daemonset),
    "replicasets": (REPLICASET_COLUMNS, print_replicaset),
    "nodes": (NODE_COLUMNS, print_node),
    "leases": (LEASE_COLUMNS, print_lease),
    "pods": (POD_COLUMNS, print_pod),
    "events": (EVENT_COLUMNS, print_event),
    "namespaces": (NAMESPACE_COLUMNS, print_namespace),
    "certificatesigningrequests": (CSR_COLUMNS, print_csr),
}


# -- encoding --------------------------------------------------------------------------------

Segments = list  # bytes and Since, alternating


def _encode_cells(cells: list) -> Segments:
    segments: Segments = []
    buf = bytearray(b'{"cells":[')
    for i, cell in enumerate(cells):
        if i:
            buf += b","
        if isinstance(cell, Since):
            segments.append(bytes(buf))
            segments.append(cell)
            buf = bytearray()
        else:
            buf += dumps(cell)
    buf += b"]"
    segments.append(bytes(buf))
    return segments


def partial_metadata(obj: dict) -> bytes:
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return (b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":'
            + dumps(meta) + b"}")


class _Row:
    __slots__ = ("rv", "segments", "meta")

    def __init__(self, rv: int, segments: Segments, meta: bytes) -> None:
        self.rv = rv
        self.segments = segments
        self.meta = meta


class TableCache:
    """Per-resource cache of encoded rows keyed by object and resourceVersion."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[tuple[str, str], _Row]] = {}

    def columns(self, resource: str) -> list[dict]:
        return PRINTERS.get(resource, (DEFAULT_COLUMNS, print_default))[0]

    def _row(self, resource: str, stored: Stored) -> _Row:
        rows = self._rows.setdefault(resource, {})
        key = (stored.namespace, stored.name)
        row = rows.get(key)
        if row is not None and row.rv == stored.rv:
            return row
        obj = stored.obj if stored.obj is not None else json.loads(stored.raw)
        printer = PRINTERS.get(resource, (DEFAULT_COLUMNS, print_default))[1]
        row = _Row(stored.rv, _encode_cells(printer(obj)), partial_metadata(obj))
        rows[key] = row
        return row

    def prune(self, resource: str, live: Iterable[tuple[str, str]]) -> None:
        rows = self._rows.get(resource)
        if rows:
            keep = set(live)
            for key in [k for k in rows if k not in keep]:
                del rows[key]

    def row_bytes(self, resource: str, stored: Stored, now: float, include: str) -> bytes:
        row = self._row(resource, stored)
        parts = []
        for seg in row.segments:
            if isinstance(seg, Since):
                parts.append(dumps(seg.render(now)))
            else:
                parts.append(seg)
        if include == "None":
            parts.append(b"}")
        elif include == "Object":
            parts.append(b',"object":' + stored.raw + b"}")
        else:
            parts.append(b',"object":' + row.meta + b"}")
        return b"".join(parts)

    def table(self, resource: str, items: Iterable[Stored], rv: int, include: str = "Metadata",
              cont: str = "", remaining: int | None = None, now: float | None = None,
              columns: bool = True, live: int = 0) -> bytes:
        """A Table of `items`; `live` is how many objects the collection holds, so rows of
        deleted objects can be dropped once they outnumber the living."""
        now = time.time() if now is None else now
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        rows = b",".join(self.row_bytes(resource, s, now, include) for s in items)
        cols = dumps(self.columns(resource)) if columns else b"[]"
        rows_map = self._rows.get(resource)
        if rows_map is not None and len(rows_map) > 2 * live + 1000:
            rows_map.clear()
        return (b'{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":' + dumps(meta)
                + b',"columnDefinitions":' + cols + b',"rows":[' + rows + b"]}")
