"""The lab's control plane: node, lease, event, pod and CSR objects kept from the machines.

It plays the kubelets' side (status posts, lease renewals, node events) and the controllers'
(node lifecycle: Unknown after the grace period and its taints; the CSR signer; a DaemonSet
controller for the CNI pods; a tiny scheduler for a canary pod).
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, field
from typing import Any

from lab import effects
from lab.cadvisor import pod_uid
from lab.machine import GiB, LabPod, Machine
from lab.machine_files import default_files
from lab.pki import CA, make_csr
from lab.scenarios import DEFAULT_MIX, SCENARIOS, Scenario, parse_spec
from lab.shell_node import pod_container_id
from lab.store import Collection, Store
from lab.timefmt import rfc3339, rfc3339_micro, stable_hash

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
POOLS = (
    # name, instance type, cpus, memory
    ("general", "m6i.2xlarge", 8, 32 * GiB),
    ("general", "m6i.2xlarge", 8, 32 * GiB),
    ("compute", "c6i.4xlarge", 16, 32 * GiB),
    ("memory", "r6i.2xlarge", 8, 64 * GiB),
)
KERNEL = "5.15.0-1072-aws"
OS_IMAGE = "Ubuntu 22.04.4 LTS"
AMI = "ami-0a3c14e1ddbe7f23c"
KUBELET_VERSION = "v1.31.4"
CONTAINERD_VERSION = "1.7.24"
LEASE_SECONDS = 40
LEASE_RENEW = 10.0
GRACE = 40.0
STATUS_REPORT = 60.0
ZONE_STORY_SIZE = 12
WORKLOADS = (
    ("apps", "web-frontend", "registry.example.com/shop/web:3.8.2", 350),
    ("apps", "checkout-api", "registry.example.com/shop/checkout:1.22.0", 500),
    ("apps", "cart-redis", "redis:7.2.5", 256),
    ("apps", "search-indexer", "registry.example.com/shop/indexer:5.1.3", 900),
    ("monitoring", "node-exporter-sidecar", "quay.io/prometheus/node-exporter:v1.8.2", 64),
    ("batch", "nightly-report", "registry.example.com/data/report:0.9.3", 700),
    ("kube-system", "coredns", "registry.k8s.io/coredns/coredns:v1.11.3", 70),
)
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "apps", "batch",
              "logging", "monitoring", "ci")


def _suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=n))


@dataclass
class NodeState:
    """The control plane's view of one node (what the API server holds), beside its machine."""

    machine: Machine
    created: float
    conditions: dict[str, list] = field(default_factory=dict)  # type -> [st, reason, msg, hb, tr]
    last_post: float = 0.0
    lease_renew: float = 0.0
    next_status: float = 0.0
    unknown: bool = False
    unschedulable: bool = False
    user_taints: list[dict] = field(default_factory=list)
    extra_labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    dirty: bool = True
    # what clients wrote to the status the kubelet does not own: extended resources
    # (capacity / allocatable) and condition types of their own (node-problem-detector's)
    extra_capacity: dict[str, str] = field(default_factory=dict)
    extra_allocatable: dict[str, str] = field(default_factory=dict)
    extra_conditions: list[dict] = field(default_factory=list)
    pod_names: set[tuple[str, str]] = field(default_factory=set)
    not_ready_since: float | None = None


class Cluster:
    def __init__(
        self,
        nodes: int = 40,
        scenarios: list[str] | None = None,
        seed: int = 1,
        ip_block: int = 2,
        now: float | None = None,
        server: str = "https://127.0.0.1:6443",
    ) -> None:
        self.now = now or time.time()
        self.started = self.now
        self.rng = random.Random(seed)
        self.seed = seed
        self.ip_block = ip_block
        self.server = server
        self.bookmark_interval = 5.0
        self.ca = CA("nodewb-lab-ca", self.now)
        self.api_cert_not_before = self.now - 6 * 3600
        self.tokens: dict[str, tuple[str, list[str]]] = {}
        self.store = Store()
        self._collections()
        self.nodes: dict[str, NodeState] = {}
        self.events_by_key: dict[tuple, str] = {}
        self.pods: dict[tuple[str, str], tuple[LabPod, str]] = {}  # (ns, name) -> (pod, node)
        self.extra_pods: dict[tuple[str, str], dict] = {}  # pods the API created (canaries)
        self.csr_for_node: dict[str, str] = {}
        self.kubelet_proxy = None  # async callable (machine, method, path, query, headers)
        from lab.control import LabControl
        from lab.faults import FaultSet

        self.faults = FaultSet()
        self.control = LabControl(self)
        self.assignments: dict[str, Scenario] = {}
        self._build(nodes, scenarios)

    # -- construction ------------------------------------------------------------------------------
    def _collections(self) -> None:
        s = self.store
        s.add(Collection(s, "nodes", "Node", "v1", False))
        s.add(Collection(s, "leases", "Lease", "coordination.k8s.io/v1", True))
        s.add(Collection(s, "namespaces", "Namespace", "v1", False,
                         fields=lambda o: {"status.phase": "Active"}))
        s.add(Collection(s, "events", "Event", "v1", True, keep_objects=False, fields=lambda o: {
            "involvedObject.kind": o["involvedObject"].get("kind", ""),
            "involvedObject.name": o["involvedObject"].get("name", ""),
            "involvedObject.namespace": o["involvedObject"].get("namespace", ""),
            "involvedObject.uid": o["involvedObject"].get("uid", ""),
            "reason": o.get("reason", ""), "type": o.get("type", ""),
            "source": o.get("source", {}).get("component", ""),
        }))
        s.add(Collection(s, "pods", "Pod", "v1", True, keep_objects=False, fields=lambda o: {
            "spec.nodeName": o["spec"].get("nodeName", ""),
            "status.phase": o["status"].get("phase", ""),
            "spec.restartPolicy": o["spec"].get("restartPolicy", "Always"),
            "spec.schedulerName": "default-scheduler",
            "spec.serviceAccountName": "default",
            "status.podIP": o["status"].get("podIP", ""),
            "status.nominatedNodeName": "",
        }))
        s.add(Collection(s, "certificatesigningrequests", "CertificateSigningRequest",
                         "certificates.k8s.io/v1", False, fields=lambda o: {
                             "spec.signerName": o["spec"].get("signerName", "")}))

    def node_ip(self, index: int) -> str:
        return f"127.{self.ip_block}.{index // 250}.{index % 250 + 1}"

    def _build(self, count: int, specs: list[str] | None) -> None:
        now = self.now
        ca_b64 = base64.b64encode(self.ca.cert_pem).decode()
        for ns in NAMESPACES:
            self.store["namespaces"].put({"metadata": {
                "name": ns, "labels": {"kubernetes.io/metadata.name": ns},
                "creationTimestamp": rfc3339(now - 200 * 86400)},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        for i in range(1, count + 1):
            rng = random.Random(self.seed * 1_000_003 + i)
            pool, itype, cpus, mem = POOLS[(i - 1) // len(ZONES) % len(POOLS)]
            zone = ZONES[(i - 1) % len(ZONES)]
            created = now - rng.uniform(20, 120) * 86400
            m = Machine(
                name=f"node-{i:04d}", index=i, ip=self.node_ip(i), zone=zone, pool=pool,
                instance_type=itype, cpus=cpus, memory=mem, kernel=KERNEL, os_image=OS_IMAGE,
                kubelet_version=KUBELET_VERSION, containerd_version=CONTAINERD_VERSION,
                boot_time=now - rng.uniform(3, 19) * 86400, rng=rng,
            )
            m.files = default_files(m.ip, self.server, ca_b64)
            m.client_cert_not_before = now - rng.uniform(30, 200) * 86400
            m.client_cert_not_after = m.client_cert_not_before + 365 * 86400
            m.cert_issuer = self._issue_client_cert
            m.journal_upto = now - 900
            m.pleg_last_relist = m.journal_upto
            self._daemon_pods(m, created)
            for _ in range(rng.randint(2, 8)):
                ns, app, image, mib = rng.choice(WORKLOADS)
                name = f"{app}-{_suffix(rng, 9)}-{_suffix(rng)}"
                m.pods.append(LabPod(ns, name, app, image, "ReplicaSet", f"{app}-{_suffix(rng, 9)}",
                                     int(mib * 1024 * 1024 * rng.uniform(0.6, 1.2)),
                                     now - rng.uniform(1, 20) * 86400,
                                     pod_ip=f"10.244.{i % 250}.{len(m.pods) + 10}"))
            state = NodeState(m, created)
            self.nodes[m.name] = state
        self._assign(specs)
        for state in self.nodes.values():
            self._start_history(state)
            state.machine.listeners.append(self._machine_changed)

    def _daemon_pods(self, m: Machine, created: float) -> None:
        rng = m.rng
        for ns, app, image, mib in (
            ("kube-system", "kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4", 40),
            ("kube-system", "calico-node", "docker.io/calico/node:v3.28.2", 160),
            ("kube-system", "ebs-csi-node", "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:"
                                            "v1.35.0", 30),
        ):
            m.pods.append(LabPod(ns, f"{app}-{_suffix(rng)}", app, image, "DaemonSet", app,
                                 mib * 1024 * 1024, created, pod_ip=m.ip, daemon=True, pids=12))

    def _assign(self, specs: list[str] | None) -> None:
        names = list(self.nodes)
        if specs:
            cursor = 0
            for spec in specs:
                scenario, node = parse_spec(spec)
                if node:
                    if node not in self.nodes:
                        raise ValueError(f"--scenario {spec}: no node {node!r} in this lab "
                                         f"(node-0001..node-{len(names):04d})")
                    self.assignments[node] = scenario
                    continue
                if scenario.zone_wide:
                    for name in self._zone_story_nodes():
                        self.assignments.setdefault(name, scenario)
                    continue
                while cursor < len(names) and names[cursor] in self.assignments:
                    cursor += 1
                if cursor >= len(names):
                    raise ValueError(f"--scenario {spec}: every node already has a scenario")
                self.assignments[names[cursor]] = scenario
        else:
            for name in self._zone_story_nodes():
                self.assignments[name] = SCENARIOS["vxlan-missing"]
            free = [n for n in names if n not in self.assignments]
            rng = random.Random(self.seed)
            picks = rng.sample(free, min(len(DEFAULT_MIX), len(free)))
            for name, scenario in zip(sorted(picks), DEFAULT_MIX, strict=False):
                self.assignments[name] = SCENARIOS[scenario]
        for name, scenario in self.assignments.items():
            m = self.nodes[name].machine
            at = self.now - scenario.ago * (0.8 + 0.4 * m.rng.random())
            m.catch_up(at)
            m.scenario = scenario.name
            m.story = scenario.story
            scenario.apply(m, at)
            if scenario.name == "vxlan-missing":
                self.nodes[name].extra_labels["eks.amazonaws.com/nodegroup-image"] = (
                    "ami-0c7f4e2a9b81d3e65")
            if "clock_skew" in m.faults:
                m.faults["clock_skew"].detail["error"] = m.tls_to_apiserver_ok(
                    self.now, self.api_cert_not_before)
            self.nodes[name].fail_at = at  # type: ignore[attr-defined]

    def _zone_story_nodes(self) -> list[str]:
        zone = ZONES[1] if len(self.nodes) > 1 else ZONES[0]
        picked = [n for n, s in self.nodes.items()
                  if s.machine.zone == zone and s.machine.pool == "general"]
        return picked[:ZONE_STORY_SIZE]

    def _issue_client_cert(self, m: Machine) -> None:
        issued = self.ca.issue(f"system:node:{m.name}", orgs=("system:nodes",),
                               not_before=m.client_cert_not_before,
                               not_after=m.client_cert_not_after, client=True)
        m.client_cert_pem = issued.cert_pem
        m.client_key_pem = issued.key_pem

    def _start_history(self, state: NodeState) -> None:
        """Reconstruct what the API server would hold now: last posts, transitions, events."""
        m = state.machine
        now = self.now
        fail_at = getattr(state, "fail_at", None)
        self._boot_journal(m)
        m.catch_up(now)
        healthy_conds = {
            "MemoryPressure": ("False", "KubeletHasSufficientMemory",
                               "kubelet has sufficient memory available"),
            "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            "PIDPressure": ("False", "KubeletHasSufficientPID",
                            "kubelet has sufficient PID available"),
            "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
        }
        since = m.boot_time + 40
        for ctype, (st, reason, msg) in healthy_conds.items():
            state.conditions[ctype] = [st, reason, msg, now, since]
        state.conditions["NetworkUnavailable"] = ["False", "CalicoIsUp",
                                                  "Calico is running on this node", since, since]
        jitter = m.rng.uniform(0, LEASE_RENEW)
        if m.posts_status(now, self.api_cert_not_before):
            state.last_post = now - jitter
            state.lease_renew = now - jitter
            self._post(state, now, transition_at=(fail_at + 20) if fail_at else None)
            if state.conditions["Ready"][0] == "True":
                posted = now - m.rng.uniform(0, STATUS_REPORT)
                for cond in state.conditions.values():
                    cond[3] = posted
        else:
            last = (fail_at or now) + 3
            for cond in state.conditions.values():
                cond[3] = last
            state.last_post = last
            state.lease_renew = last
            self._node_controller(state, last + GRACE + 2)
        state.next_status = min(state.conditions["Ready"][3] + STATUS_REPORT,
                                now + m.rng.uniform(0, 10) if not fail_at else now + 10)
        if fail_at:
            self._history_events(state, fail_at)
        self._sync_pods(state, now)
        self._put_node(state, now)
        self._put_lease(state)
        if m.pending_csr == "needed":
            self._create_csr(state, m.faults["cert_expired"].detail["csr_created"])

    @staticmethod
    def _boot_journal(m: Machine) -> None:
        """containerd's start-up lines from when it started at boot, before anything since."""
        from collections import deque

        from lab.journal import containerd_startup

        c = m.containerd
        j = m.journal("containerd")
        logged = len(j.entries)
        containerd_startup(m, c.since if c.running else m.boot_time + 12)
        if logged:  # a scenario's lines came first: put them back after the start-up
            j.entries = deque(sorted(j.entries, key=lambda e: e.ts), maxlen=j.entries.maxlen)

    # -- the kubelet's side ---------------------------------------------------------------------
    def _post(self, state: NodeState, now: float, transition_at: float | None = None) -> bool:
        """The kubelet posts its node status: returns whether any condition's status changed."""
        m = state.machine
        changed = False
        reported = dict(m.conditions(now))
        reported["NetworkUnavailable"] = m.network_unavailable()
        for ctype, (st, reason, msg) in reported.items():
            cond = state.conditions.get(ctype)
            if cond is None or cond[0] != st:
                at = transition_at if transition_at is not None else now
                old = cond[0] if cond else None
                state.conditions[ctype] = [st, reason, msg, now, at]
                changed = True
                self._condition_event(state, ctype, old, st, at)
            else:
                cond[1], cond[2], cond[3] = reason, msg, now
        state.last_post = now
        state.unknown = False
        return changed

    def _condition_event(self, state: NodeState, ctype: str, old: str | None, new: str,
                         at: float) -> None:
        name = state.machine.name
        if ctype == "Ready":
            if new == "True" and old is not None:
                self.event(state, "NodeReady", f"Node {name} status is now: NodeReady", at=at)
            elif new == "False":
                self.event(state, "NodeNotReady", f"Node {name} status is now: NodeNotReady",
                           at=at)
        elif ctype == "DiskPressure" and new == "True":
            self.event(state, "NodeHasDiskPressure",
                       f"Node {name} status is now: NodeHasDiskPressure", at=at)
        elif ctype == "MemoryPressure" and new == "True":
            self.event(state, "NodeHasInsufficientMemory",
                       f"Node {name} status is now: NodeHasInsufficientMemory", at=at)
        elif ctype == "PIDPressure" and new == "True":
            self.event(state, "NodeHasInsufficientPID",
                       f"Node {name} status is now: NodeHasInsufficientPID", at=at)

    def _history_events(self, state: NodeState, fail_at: float) -> None:
        m = state.machine
        if m.boot_time > fail_at - 600:
            self.event(state, "Rebooted", f"Node {m.name} has been rebooted, boot id: "
                       f"{m.boot_id}", type_="Warning", at=m.boot_time + 30)
            self.event(state, "Starting", "Starting kubelet.", at=m.boot_time + 26)
        if "kubelet_oom" in m.faults:
            for ts, proc, pid, _ in m.oom_kills[-20:]:
                self.event(state, "SystemOOM", f"System OOM encountered, victim process: {proc}, "
                           f"pid: {pid}", type_="Warning", at=ts)
        fs = m.filesystem()
        if fs.ifree < fs.inodes * 0.05:
            self.event(state, "EvictionThresholdMet", "Attempting to reclaim inodes",
                       type_="Warning", at=fail_at + 15)
            self.event(state, "FreeDiskSpaceFailed", "Failed to garbage collect required amount "
                       "of images. Attempted to free 0 bytes, but only found 0 bytes eligible "
                       "to free.", type_="Warning", at=fail_at + 30)
        elif fs.avail < fs.size * 0.10:
            self.event(state, "EvictionThresholdMet", "Attempting to reclaim ephemeral-storage",
                       type_="Warning", at=fail_at + 15)
            self.event(state, "ImageGCFailed", "Failed to garbage collect required amount of "
                       f"images. Attempted to free {int(fs.size * 0.06)} bytes, but only found "
                       "0 bytes eligible to free.", type_="Warning", at=fail_at + 30)
        if not m.network_ready():
            for pod in m.pods[:3]:
                if pod.daemon:
                    continue
                self.event(state, "FailedCreatePodSandBox", "Failed to create pod sandbox: rpc "
                           "error: code = Unknown desc = failed to setup network for sandbox: "
                           "plugin type=\"calico\" failed (add): "
                           + ("failed to find plugin \"calico\" in path [/opt/cni/bin]"
                              if "calico" not in m.cni_bin else
                              "failed to create vxlan tunnel device: operation not supported"),
                           type_="Warning", at=fail_at + 40, pod=pod)
        if "kubelet_config" in (SCENARIOS.get(m.scenario or "healthy").domain,):
            self.event(state, "Starting", "Starting kubelet.", at=fail_at)

    def event(self, state: NodeState, reason: str, message: str, *, type_: str = "Normal",
              at: float | None = None, source: str = "kubelet", pod: LabPod | None = None) -> None:
        """Record an event, folding repeats into a count as the event recorder does."""
        at = at if at is not None else time.time()
        m = state.machine
        if pod is not None:
            involved = {"kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                        "uid": f"{stable_hash((pod.namespace, pod.name)):032x}"[:32],
                        "apiVersion": "v1"}
            namespace = pod.namespace
        else:
            involved = {"kind": "Node", "name": m.name, "uid": m.name, "apiVersion": "v1"}
            namespace = "default"
        key = (namespace, involved["name"], reason, message if pod is None else reason, source)
        events = self.store["events"]
        name = self.events_by_key.get(key)
        old = events.get(namespace, name) if name else None
        if old is not None:
            obj = old.object()
            obj["count"] = obj.get("count", 1) + 1
            obj["lastTimestamp"] = rfc3339(at)
            obj["message"] = message
            obj["metadata"].pop("resourceVersion", None)
        else:
            name = f"{involved['name']}.{int(at * 1e9):x}"[:63]
            self.events_by_key[key] = name
            obj = {
                "metadata": {"name": name, "namespace": namespace,
                             "creationTimestamp": rfc3339(at)},
                "involvedObject": involved, "reason": reason, "message": message,
                "source": {"component": source, **({"host": m.name} if source == "kubelet"
                                                   else {})},
                "firstTimestamp": rfc3339(at), "lastTimestamp": rfc3339(at), "count": 1,
                "type": type_, "eventTime": None, "reportingComponent": source,
                "reportingInstance": m.name if source == "kubelet" else "",
            }
        events.put(obj)

    # -- the node lifecycle controller ------------------------------------------------------------
    def _node_controller(self, state: NodeState, now: float) -> None:
        if state.unknown:
            return
        state.unknown = True
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready"):
            cond = state.conditions[ctype]
            cond[0], cond[1], cond[2], cond[4] = ("Unknown", "NodeStatusUnknown",
                                                  "Kubelet stopped posting node status.", now)
        self.event(state, "NodeNotReady", "Node is not ready", at=now, source="node-controller",
                   type_="Normal")

    # -- the clock ---------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Advance the control plane by one step (called about once a second)."""
        now = now or time.time()
        self.now = now
        nb = self.api_cert_not_before
        for state in self.nodes.values():
            m = state.machine
            if m.timers and m.timers[0][0] <= now:
                m.catch_up(now)
            if m.posts_status(now, nb):
                if now - state.lease_renew >= LEASE_RENEW:
                    state.lease_renew = now
                    self._put_lease(state)
                if state.unknown:
                    for pod in [p for p in m.pods if p.deleting]:
                        effects.remove_pod(m, pod.namespace, pod.name, now)
                if now >= state.next_status or state.unknown:
                    was_unknown = state.unknown
                    changed = self._post(state, now)
                    ready = state.conditions["Ready"][0] == "True"
                    state.next_status = now + (STATUS_REPORT if ready and not changed else 10.0)
                    self._put_node(state, now)
                    if changed or was_unknown:
                        self._sync_pods(state, now)
                if state.dirty:
                    self._sync_pods(state, now)
                    state.dirty = False
            else:
                if not state.unknown and now - state.lease_renew > GRACE:
                    self._node_controller(state, now)
                    self._put_node(state, now)
                    self._sync_pods(state, now)
                elif state.dirty:
                    self._sync_pods(state, now)
                    state.dirty = False
        self._progress_pods(now)

    def _machine_changed(self, m: Machine) -> None:
        """A fact changed: the kubelet reports it at its next status update (every 10 s)."""
        state = self.nodes[m.name]
        state.dirty = True
        state.next_status = min(state.next_status, time.time() + m.rng.uniform(1.0, 10.0))

    # -- objects -----------------------------------------------------------------------------------
    def node_object(self, state: NodeState) -> dict:
        m = state.machine
        labels = {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type":
            m.instance_type, "beta.kubernetes.io/os": "linux",
            "eks.amazonaws.com/nodegroup": m.pool, "eks.amazonaws.com/nodegroup-image": AMI,
            "failure-domain.beta.kubernetes.io/region": "us-east-1",
            "failure-domain.beta.kubernetes.io/zone": m.zone, "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": m.name, "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/worker": "", "node.kubernetes.io/instance-type":
            m.instance_type, "topology.kubernetes.io/region": "us-east-1",
            "topology.kubernetes.io/zone": m.zone,
        }
        labels.update(state.extra_labels)
        conds = []
        for ctype in ("NetworkUnavailable", "MemoryPressure", "DiskPressure", "PIDPressure",
                      "Ready"):
            st, reason, msg, hb, tr = state.conditions[ctype]
            conds.append({"type": ctype, "status": st, "lastHeartbeatTime": rfc3339(hb),
                          "lastTransitionTime": rfc3339(tr), "reason": reason, "message": msg})
        conds.extend(dict(c) for c in state.extra_conditions)
        taints = list(state.user_taints)
        ready = state.conditions["Ready"][0]
        added = rfc3339(state.conditions["Ready"][4])
        if ready == "Unknown":
            taints += [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                        "timeAdded": added},
                       {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                        "timeAdded": added}]
        elif ready == "False":
            taints += [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule",
                        "timeAdded": added},
                       {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute",
                        "timeAdded": added}]
        for ctype, key in (("DiskPressure", "disk-pressure"), ("MemoryPressure", "memory-pressure"),
                           ("PIDPressure", "pid-pressure"),
                           ("NetworkUnavailable", "network-unavailable")):
            if state.conditions[ctype][0] == "True":
                taints.append({"key": f"node.kubernetes.io/{key}", "effect": "NoSchedule",
                               "timeAdded": rfc3339(state.conditions[ctype][4])})
        if state.unschedulable:
            taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                           "timeAdded": rfc3339(self.now)})
        mem_ki = m.memory // 1024
        max_pods = m.max_pods
        images = [{"names": [p.image],
                   "sizeBytes": 30_000_000 + (stable_hash(p.image) % 400_000_000)}
                  for p in {p.image: p for p in m.pods}.values()][:12]
        spec: dict[str, Any] = {"podCIDR": f"10.244.{m.index % 250}.0/24",
                                "podCIDRs": [f"10.244.{m.index % 250}.0/24"],
                                "providerID": f"aws:///{m.zone}/i-0{m.index:016x}"}
        if state.unschedulable:
            spec["unschedulable"] = True
        if taints:
            spec["taints"] = taints
        return {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {
                "name": m.name, "uid": f"{stable_hash((self.seed, m.name)):032x}"[:8] + "-"
                + f"{m.index:04x}-4d1e-9c3b-{m.index:012x}",
                "creationTimestamp": rfc3339(state.created), "labels": labels,
                "annotations": {
                    "alpha.kubernetes.io/provided-node-ip": m.ip,
                    "node.alpha.kubernetes.io/ttl": "0",
                    "projectcalico.org/IPv4Address": f"{m.ip}/32",
                    "projectcalico.org/IPv4VXLANTunnelAddr": f"10.244.{m.index % 250}.0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    **state.annotations,
                },
            },
            "spec": spec,
            "status": {
                "capacity": {"cpu": str(m.cpus), "ephemeral-storage": "104845292Ki",
                             "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                             "memory": f"{mem_ki}Ki", "pods": str(max_pods),
                             **state.extra_capacity},
                "allocatable": {"cpu": f"{m.cpus * 1000 - 90}m",
                                "ephemeral-storage": "95551679785",
                                "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                                "memory": f"{mem_ki - 1_000_000}Ki", "pods": str(max_pods),
                                **{**state.extra_capacity, **state.extra_allocatable}},
                "conditions": conds,
                "addresses": [{"type": "InternalIP", "address": m.ip},
                              {"type": "InternalDNS", "address": f"{m.name}.ec2.internal"},
                              {"type": "Hostname", "address": m.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": m.machine_id,
                    "systemUUID": m.system_uuid,
                    "bootID": m.boot_id, "kernelVersion": m.kernel, "osImage": m.os_image,
                    "containerRuntimeVersion": f"containerd://{m.containerd_version}",
                    "kubeletVersion": m.kubelet_version, "kubeProxyVersion": m.kubelet_version,
                    "operatingSystem": "linux", "architecture": "amd64",
                },
                "images": images,
            },
        }

    def _put_node(self, state: NodeState, now: float) -> None:
        self.store["nodes"].put(self.node_object(state))

    def _put_lease(self, state: NodeState) -> None:
        m = state.machine
        self.store["leases"].put({
            "metadata": {"name": m.name, "namespace": "kube-node-lease",
                         "creationTimestamp": rfc3339(state.created),
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": m.name,
                                              "uid": m.name}]},
            "spec": {"holderIdentity": m.name, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": rfc3339_micro(state.lease_renew)},
        })

    def pod_object(self, pod: LabPod, node: str, state: NodeState | None) -> dict:
        ready = state is not None and state.conditions["Ready"][0] == "True"
        running = pod.phase == "Running"
        ready_st = "True" if ready and running else "False"
        started = rfc3339(pod.created + 3)
        owner = {"apiVersion": "apps/v1", "kind": pod.owner_kind, "name": pod.owner_name,
                 "uid": f"{stable_hash(pod.owner_name):032x}"[:32], "controller": True,
                 "blockOwnerDeletion": True}
        cstatus: dict[str, Any] = {"name": pod.app, "image": pod.image, "imageID": "",
                                   "ready": ready_st == "True", "restartCount": pod.restarts,
                                   "started": running}
        if running:
            cstatus["state"] = {"running": {"startedAt": started}}
            cid = pod_container_id(state.machine, pod, pod.restarts) if state is not None \
                else f"{stable_hash(pod.name):064x}"[:64]
            cstatus["containerID"] = f"containerd://{cid}"
        else:
            cstatus["state"] = {"waiting": {"reason": "ContainerCreating"}}
        meta: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace,
                                "creationTimestamp": rfc3339(pod.created),
                                "labels": {"app": pod.app}, "ownerReferences": [owner]}
        if state is not None:  # the UID the kubelet reports and names the pod's cgroup by
            meta["uid"] = pod_uid(state.machine, pod)
        if pod.deleting:
            meta["deletionTimestamp"] = rfc3339(self.now)
            meta["deletionGracePeriodSeconds"] = 30
        return {
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{
                "name": pod.app, "image": pod.image,
                "resources": {"requests": {"cpu": "100m", "memory": f"{pod.memory // 2**20}Mi"}}}],
                "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}]},
            "status": {
                "phase": "Running" if running else "Pending",
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True" if running else "False"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": ready_st},
                    {"type": "ContainersReady", "status": ready_st},
                    {"type": "PodScheduled", "status": "True"}],
                "hostIP": state.machine.ip if state else "", "podIP": pod.pod_ip,
                "startTime": started, "qosClass": "Burstable",
                "containerStatuses": [cstatus],
            },
        }

    def _sync_pods(self, state: NodeState, now: float) -> None:
        m = state.machine
        pods = self.store["pods"]
        current = {(p.namespace, p.name): p for p in m.pods}
        for key in state.pod_names - set(current):
            self.pods.pop(key, None)
            pods.delete(*key)
        for key, pod in current.items():
            self.pods[key] = (pod, m.name)
            pods.put(self.pod_object(pod, m.name, state))
        state.pod_names = set(current)

    # -- writes the API accepts ------------------------------------------------------------------
    def patch_node(self, name: str, patch: Any, patch_type: str, status: bool = False):
        from lab.apiserver import apply_patch

        state = self.nodes[name]
        current = self.node_object(state)
        new = apply_patch(current, patch, patch_type)
        if status:  # nodes/status: only the status is written, the rest of the patch is dropped
            self._keep_client_status(state, new.get("status") or {})
            self.store["nodes"].put(self.node_object(state))
            return self.store["nodes"].get("", name)
        spec = new.get("spec") or {}
        was_unschedulable = state.unschedulable
        state.unschedulable = bool(spec.get("unschedulable"))
        system = {"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready",
                  "node.kubernetes.io/unschedulable", "node.kubernetes.io/disk-pressure",
                  "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure",
                  "node.kubernetes.io/network-unavailable"}
        state.user_taints = [t for t in spec.get("taints") or [] if t.get("key") not in system]
        meta = new.get("metadata") or {}
        base = self._kubelet_node_object(state)["metadata"]
        state.extra_labels = {k: v for k, v in (meta.get("labels") or {}).items()
                              if base["labels"].get(k) != v}
        state.annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                             if base["annotations"].get(k) != v}
        self.store["nodes"].put(self.node_object(state))
        if state.unschedulable != was_unschedulable:
            kind = "NodeNotSchedulable" if state.unschedulable else "NodeSchedulable"
            self.event(state, kind, f"Node {name} status is now: {kind}", at=time.time())
        return self.store["nodes"].get("", name)

    def _kubelet_node_object(self, state: NodeState) -> dict:
        """The node as the kubelet alone reports it: nothing any client wrote."""
        return self.node_object(NodeState(state.machine, state.created,
                                          conditions=state.conditions))

    def _keep_client_status(self, state: NodeState, written: dict) -> None:
        """Keep what a status write set that the kubelet does not own; the kubelet's own
        resources and condition types are re-reported by it and so stay as it says."""
        own = self._kubelet_node_object(state)["status"]

        def extra(key: str) -> dict[str, str]:
            given = written.get(key)
            if not isinstance(given, dict):
                return {}
            return {str(k): str(v) for k, v in given.items()
                    if k not in own[key] and v is not None}

        state.extra_capacity = extra("capacity")
        allocatable = extra("allocatable")
        # as the kubelet does: an extended resource is allocatable in full unless the client
        # said otherwise, and is no longer allocatable once it is gone from the capacity
        state.extra_allocatable = {k: v for k, v in allocatable.items()
                                   if k in state.extra_capacity and state.extra_capacity[k] != v}
        owned = {c["type"] for c in own["conditions"]}
        conditions = written.get("conditions")
        state.extra_conditions = [
            dict(c) for c in (conditions if isinstance(conditions, list) else [])
            if isinstance(c, dict) and isinstance(c.get("type"), str) and c["type"]
            and c["type"] not in owned]

    def create_pod(self, namespace: str, obj: dict, dry_run: bool = False):
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        name = meta.get("name") or (meta.get("generateName", "pod-") + _suffix(self.rng))
        meta["name"] = name
        if (namespace, name) in self.pods or (namespace, name) in self.extra_pods:
            raise FileExistsError(f'pods "{name}" already exists')
        spec = obj.setdefault("spec", {})
        node = spec.get("nodeName")
        if node and node not in self.nodes:
            raise ValueError(f'spec.nodeName: node "{node}" not found')
        status = obj.setdefault("status", {})
        status.update({"phase": "Pending", "qosClass": "BestEffort", "conditions": []})
        meta.setdefault("labels", {}).setdefault("run", name)
        if dry_run:
            return obj
        obj["_created"] = time.time()
        self.extra_pods[(namespace, name)] = obj
        return self.store["pods"].put(self._canary_view(obj))

    def _canary_view(self, obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _progress_pods(self, now: float) -> None:
        """The scheduler and the kubelets move API-created pods along."""
        for key, obj in list(self.extra_pods.items()):
            spec, status = obj["spec"], obj["status"]
            node = spec.get("nodeName")
            if obj["metadata"].get("deletionTimestamp"):
                state = self.nodes.get(node) if node else None
                if state is None or (state.machine.kubelet.running
                                     and state.conditions["Ready"][0] != "Unknown"):
                    del self.extra_pods[key]
                    self.store["pods"].delete(*key)
                continue
            if not node:
                ready = [n for n, s in self.nodes.items() if s.conditions["Ready"][0] == "True"
                         and not s.unschedulable]
                if not ready:
                    continue
                spec["nodeName"] = node = ready[stable_hash(key) % len(ready)]
                status["conditions"] = [{"type": "PodScheduled", "status": "True",
                                         "lastTransitionTime": rfc3339(now)}]
                self.store["pods"].put(self._canary_view(obj))
                continue
            state = self.nodes[node]
            m = state.machine
            if status.get("phase") == "Pending" and now - obj["_created"] >= 2:
                if m.kubelet.running and m.runtime_responsive() and m.network_ready() and \
                        state.conditions["Ready"][0] == "True":
                    c = spec["containers"][0]
                    status.update({
                        "phase": "Running", "hostIP": m.ip, "podIP": f"10.244.{m.index % 250}.99",
                        "startTime": rfc3339(now),
                        "conditions": [{"type": t, "status": "True",
                                        "lastTransitionTime": rfc3339(now)} for t in
                                       ("PodReadyToStartContainers", "Initialized", "Ready",
                                        "ContainersReady", "PodScheduled")],
                        "containerStatuses": [{"name": c["name"], "image": c["image"],
                                               "ready": True, "restartCount": 0, "started": True,
                                               "state": {"running": {"startedAt": rfc3339(now)}}}],
                    })
                    self.store["pods"].put(self._canary_view(obj))
                elif not status.get("_reported"):
                    status["_reported"] = True
                    c = spec["containers"][0]
                    status["containerStatuses"] = [{"name": c["name"], "image": c["image"],
                                                    "ready": False, "restartCount": 0,
                                                    "state": {"waiting": {
                                                        "reason": "ContainerCreating"}}}]
                    self.store["pods"].put(self._canary_view(
                        {**obj, "status": {k: v for k, v in status.items()
                                           if not k.startswith("_")}}))

    def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None):
        key = (namespace, name)
        if key in self.extra_pods:
            obj = self.extra_pods[key]
            obj["metadata"]["deletionTimestamp"] = rfc3339(time.time())
            obj["metadata"]["deletionGracePeriodSeconds"] = grace_seconds or 0
            stored = self.store["pods"].put(self._canary_view(obj))
            self._progress_pods(time.time())
            return stored
        if key not in self.pods:
            raise KeyError(f'pods "{name}" not found')
        pod, node = self.pods[key]
        state = self.nodes[node]
        m = state.machine
        now = time.time()
        pod.deleting = True
        stored = self.store["pods"].put(self.pod_object(pod, node, state))
        if m.posts_status(now, self.api_cert_not_before):
            m.at(now + 1.0, f"kill-{name}", lambda t: effects.remove_pod(m, namespace, name, t))
        # otherwise the kubelet learns of the deletion when it next reaches the API server
        if pod.daemon:
            self._daemonset_replace(state, pod, now)
        return stored

    def evict_pod(self, namespace: str, name: str):
        return self.delete_pod(namespace, name)

    def _daemonset_replace(self, state: NodeState, pod: LabPod, now: float) -> None:
        m = state.machine

        def recreate(t: float) -> None:
            new = LabPod(pod.namespace, f"{pod.app}-{_suffix(m.rng)}", pod.app, pod.image,
                         "DaemonSet", pod.owner_name, pod.memory, t, pod_ip=m.ip, daemon=True,
                         pids=pod.pids)
            m.pods.append(new)
            if pod.app == "calico-node" and m.runtime_responsive():
                effects.install_cni(m, t + 1.5)
            m.changed()

        m.at(now + 2.0, f"ds-{pod.name}", recreate)

    def pod_log(self, namespace: str, name: str) -> str:
        entry = self.pods.get((namespace, name))
        if entry is None:
            if (namespace, name) in self.extra_pods:
                return ""
            raise KeyError(f'pods "{name}" not found')
        pod, node = entry
        m = self.nodes[node].machine
        if pod.app == "calico-node":
            m.catch_up(time.time())
            j = m.journal("calico")
            return "".join(f"{rfc3339(e.ts)[:-1].replace('T', ' ')}.000 {e.message}\n"
                           for e in list(j.entries)[-200:])
        return ""

    # -- CSRs --------------------------------------------------------------------------------------
    def _create_csr(self, state: NodeState, created: float) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        m = state.machine
        key = ec.generate_private_key(ec.SECP256R1())
        request = make_csr(f"system:node:{m.name}", ("system:nodes",), key)
        name = f"csr-{_suffix(m.rng)}"
        self.csr_for_node[name] = m.name
        m.pending_csr = name
        state.csr_key = key  # type: ignore[attr-defined]
        self.store["certificatesigningrequests"].put({
            "metadata": {"name": name, "creationTimestamp": rfc3339(created)},
            "spec": {"request": base64.b64encode(request).decode(),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"],
                     "username": f"system:node:{m.name}",
                     "groups": ["system:nodes", "system:authenticated"]},
            "status": {},
        })

    def approve_csr(self, name: str, body: dict):
        csrs = self.store["certificatesigningrequests"]
        stored = csrs.get("", name)
        if stored is None:
            raise KeyError(f'certificatesigningrequests.certificates.k8s.io "{name}" not found')
        obj = stored.object()
        conditions = (body.get("status") or {}).get("conditions") or []
        now = time.time()
        for c in conditions:
            c.setdefault("lastUpdateTime", rfc3339(now))
            c.setdefault("lastTransitionTime", rfc3339(now))
        obj["status"] = {**obj.get("status", {}), "conditions": conditions}
        obj["metadata"].pop("resourceVersion", None)
        result = csrs.put(obj)
        if any(c.get("type") == "Approved" and c.get("status", "True") == "True"
               for c in conditions):
            node = self.csr_for_node.get(name)
            if node:
                m = self.nodes[node].machine
                m.at(now + 1.0, f"sign-{name}", lambda t: self._sign(name, t))
        return result

    def _sign(self, name: str, now: float) -> None:
        csrs = self.store["certificatesigningrequests"]
        stored = csrs.get("", name)
        if stored is None:
            return
        obj = stored.object()
        request = base64.b64decode(obj["spec"]["request"])
        pem = self.ca.sign_csr(request, not_before=now - 300, not_after=now + 365 * 86400)
        obj["status"]["certificate"] = base64.b64encode(pem).decode()
        obj["metadata"].pop("resourceVersion", None)
        csrs.put(obj)
        node = self.csr_for_node[name]
        state = self.nodes[node]
        m = state.machine
        from lab.pki import key_pem

        m.client_key_pem = key_pem(state.csr_key)  # type: ignore[attr-defined]
        m.at(now + 2.0, "rotate-cert",
             lambda t: effects.approve_client_certificate(m, pem, now - 300, now + 365 * 86400, t))

    # -- the kubelets behind the proxy ------------------------------------------------------------
    async def kubelet_request(self, name: str, method: str, path: str, query: str,
                              headers: dict[str, str]):
        if name not in self.nodes:
            raise KeyError(f'nodes "{name}" not found')
        if self.kubelet_proxy is None:
            raise RuntimeError("no kubelet endpoints in this lab")
        return await self.kubelet_proxy(self.nodes[name].machine, method, path, query, headers)

    def apiserver_ssl_context(self):
        from lab.pki import server_context

        issued = self.ca.issue("kube-apiserver", dns=("kubernetes", "kubernetes.default",
                                                      "kubernetes.default.svc", "localhost"),
                               ips=("127.0.0.1",), not_before=self.api_cert_not_before,
                               not_after=self.now + 365 * 86400, server=True)
        return server_context(self.ca, issued)

    # -- lab control ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {name: s.conditions["Ready"][0] for name, s in self.nodes.items()}
