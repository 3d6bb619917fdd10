"""The runbooks' fixes as actions: each plans the exact commands it will run before it runs any.

    ctx = ActionContext(kube, ssh, kubelet, "node-0004", verdict=verdict)
    plan = await plan_action("restart-containerd", ctx)
    plan.commands()          # ["[node-0004] sudo -n systemctl restart containerd", ...]
    plan.needs, plan.sudo    # what the guard checks (RBAC, sudo)
    cleared = await guard.clear(plan, report, bundle)   # triage.guards: the only way to a token
    result = await run_plan(plan, cleared, ctx, on_step=print)

Node commands run over the app's SSH client (`sudo -n`, never prompting); API writes go through
triage.api_write with the kubeconfig's credentials. `run_plan` refuses a plan that the guard has
not cleared (a single-use token bound to that plan and its commands).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from triage import api_write
from triage.pod_target import NoTarget, choose_pod

if TYPE_CHECKING:
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.ssh import SshClient
    from triage.verdict import Verdict

__all__ = ["Action", "ActionContext", "Plan", "Step", "StepResult", "RunResult", "Need",
           "PlanError", "StepFailed", "NotCleared", "ACTIONS", "FORBIDDEN", "plan_action",
           "run_plan", "action_ids", "listing"]

CONFIG_YAML = "/var/lib/kubelet/config.yaml"
FSTAB = "/etc/fstab"
CNI_APPS = ("calico-node", "kube-flannel", "flannel", "cilium", "weave-net", "canal",
            "kube-router", "aws-node", "antrea-agent")
DRAIN_TIMEOUT = 120.0
MAX_PODS_CEILING = 250
CANARY_IMAGE = "nginx"

_NOT_READY_TAINT = ("Never use kubectl edit node to remove the taint — that only hides the "
                    "problem.")
# Asked for, and refused in the runbooks' words.
FORBIDDEN: dict[str, str] = {
    "remove-taint": _NOT_READY_TAINT,
    "untaint": _NOT_READY_TAINT,
    "remove-not-ready-taint": _NOT_READY_TAINT,
}


class PlanError(Exception):
    """The action cannot be planned on this node (nothing to act on); the message says why."""


class StepFailed(Exception):
    pass


class NotCleared(Exception):
    """run_plan was handed no token, a spent one, or one minted for another plan."""


@dataclass(frozen=True)
class Need:
    """One RBAC permission an action needs (a SelfSubjectAccessReview's resourceAttributes)."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def attributes(self) -> dict[str, str]:
        out = {"verb": self.verb, "resource": self.resource, "group": self.group,
               "subresource": self.subresource, "namespace": self.namespace, "name": self.name}
        return {k: v for k, v in out.items() if v}

    def text(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            res += f".{self.group}"
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.verb} {res}{f' {self.name}' if self.name else ''}{where}"


StepFn = Callable[[], Awaitable[str]]


@dataclass
class Step:
    where: str  # "node" (SSH) | "api"
    command: str  # exactly what runs: the shell line, or "METHOD /path"
    run: StepFn = field(repr=False, compare=False)
    equivalent: str = ""  # the kubectl line that does the same, for API steps
    detail: str = ""  # e.g. the pods a drain evicts

    @property
    def text(self) -> str:
        if self.where == "api":
            eq = f"{self.equivalent}  ({self.command})" if self.equivalent else self.command
            return f"[api] {eq}"
        return f"[{self.where}] {self.command}"


@dataclass
class Plan:
    action: Action
    node: str
    steps: list[Step]
    needs: list[Need]
    sudo: bool
    restarts_kubelet: bool
    target: str = ""  # what was chosen to act on, and why
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)  # extra verification (unschedulable)
    canary: bool = False  # the action is the canary itself

    def commands(self) -> list[str]:
        return [s.text for s in self.steps]

    def fingerprint(self) -> str:
        import hashlib

        text = "\n".join([self.action.id, self.node, *self.commands()])
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        lines = [f"{self.action.id} on {self.node}: {self.action.title}"]
        if self.target:
            lines.append(f"target: {self.target}")
        lines += [f"  evidence: {e}" for e in self.evidence]
        lines += [f"  {i}. {c}" for i, c in enumerate(self.commands(), 1)]
        return "\n".join(lines)


@dataclass
class ActionContext:
    kube: Kube
    ssh: SshClient | None
    kubelet: KubeletClient | None
    node: str
    verdict: Verdict | None = None
    node_object: dict | None = None
    params: dict[str, Any] = field(default_factory=dict)


Planner = Callable[[ActionContext], Awaitable[Plan]]


@dataclass(frozen=True)
class Action:
    id: str
    title: str
    runbook: str  # the runbook's line it implements
    template: tuple[str, ...]  # the commands, with placeholders, for listings
    planner: Planner = field(repr=False, compare=False)
    sudo: bool = False
    restarts_kubelet: bool = False


@dataclass
class StepResult:
    text: str
    ok: bool
    output: str
    duration: float


@dataclass
class RunResult:
    plan: Plan
    ok: bool
    steps: list[StepResult]
    error: str = ""
    started: float = 0.0
    finished: float = 0.0


# -- step builders ------------------------------------------------------------------------------
def _node_step(ctx: ActionContext, command: str, timeout: float = 30.0) -> Step:
    async def run() -> str:
        if ctx.ssh is None:
            raise StepFailed(f"no SSH to {ctx.node} (give --ssh-config or a bastion)")
        r = await ctx.ssh.run(ctx.node, command, timeout, sudo=False)
        out = (r.stdout + r.stderr).strip()
        if r.timed_out:
            raise StepFailed(f"`{command}` did not finish in {timeout:g} s on {ctx.node}")
        if r.exit_status != 0:
            raise StepFailed(f"`{command}` exited {r.exit_status} on {ctx.node}: "
                             f"{out.splitlines()[-1] if out else 'no output'}")
        return out
    return Step("node", command, run)


def _api_step(ctx: ActionContext, method: str, path: str, body: Any, equivalent: str, *,
              content_type: str = api_write.JSON, ok_missing: bool = False) -> Step:
    async def run() -> str:
        try:
            answer = await api_write.send(ctx.kube, method, path, body,
                                          content_type=content_type, doing=equivalent)
        except api_write.KubeError as err:
            if ok_missing and getattr(err, "status", 0) == 404:
                return "already gone (404)"
            raise StepFailed(str(err)) from None
        kind = answer.get("kind", "")
        name = (answer.get("metadata") or {}).get("name", "")
        return f"{method} {path}: {kind} {name}".strip()
    return Step("api", f"{method} {path}", run, equivalent)


def _plan(action_id: str, ctx: ActionContext, steps: list[Step], needs: list[Need],
          **kw: Any) -> Plan:
    action = ACTIONS[action_id]
    return Plan(action, ctx.node, steps, needs, action.sudo, action.restarts_kubelet, **kw)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


async def _get(ctx: ActionContext, path: str, params: dict | None = None, doing: str = "") -> dict:
    return await asyncio.to_thread(ctx.kube.get_json, path, params, doing=doing)


def _pods_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "")


# -- planners -----------------------------------------------------------------------------------
async def _restart_containerd(ctx: ActionContext) -> Plan:
    return _plan("restart-containerd", ctx, [
        _node_step(ctx, "sudo -n systemctl reset-failed containerd", 20),
        _node_step(ctx, "sudo -n systemctl restart containerd", 120),
        _node_step(ctx, "sudo -n systemctl restart kubelet", 60),
    ], [])


async def _restart_kubelet(ctx: ActionContext) -> Plan:
    return _plan("restart-kubelet", ctx, [_node_step(ctx, "sudo -n systemctl restart kubelet", 60)],
                 [])


def _cordon_step(ctx: ActionContext, on: bool) -> Step:
    return _api_step(ctx, "PATCH", f"/api/v1/nodes/{ctx.node}", {"spec": {"unschedulable": on}},
                     f"kubectl {'cordon' if on else 'uncordon'} {ctx.node}",
                     content_type=api_write.MERGE_PATCH)


async def _cordon(ctx: ActionContext) -> Plan:
    return _plan("cordon", ctx, [_cordon_step(ctx, True)], [Need("patch", "nodes")],
                 expect={"unschedulable": True})


async def _uncordon(ctx: ActionContext) -> Plan:
    return _plan("uncordon", ctx, [_cordon_step(ctx, False)], [Need("patch", "nodes")],
                 expect={"unschedulable": False})


def _evictable(pods: list[dict]) -> list[tuple[str, str]]:
    out = []
    for p in pods:
        meta = p.get("metadata") or {}
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if any(r.get("kind") == "DaemonSet" for r in meta.get("ownerReferences") or []):
            continue
        out.append((meta.get("namespace", ""), meta.get("name", "")))
    return out


async def _drain(ctx: ActionContext) -> Plan:
    timeout = float(ctx.params.get("drain_timeout", DRAIN_TIMEOUT))
    body = await _get(ctx, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={ctx.node}"},
                      f"list pods on {ctx.node}")
    victims = _evictable(body.get("items") or [])
    node = ctx.node_object or await _get(ctx, f"/api/v1/nodes/{ctx.node}", doing="get node")
    ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    warnings = []
    if ready != "True":
        warnings.append(
            f"{ctx.node} is NotReady (Ready={ready}): Don't drain the node without understanding "
            f"why it's NotReady — you might make the node unschedulable permanently"
            + (". Its kubelet is not reporting (Ready=Unknown), so evicted pods stay "
               "Terminating until it returns; the drain gives up after "
               f"{timeout:.0f} s" if ready == "Unknown" else ""))

    async def run() -> str:
        await _cordon_step(ctx, True).run()
        sem = asyncio.Semaphore(8)
        pending = list(victims)
        deadline = time.monotonic() + timeout

        async def evict(ns: str, name: str) -> str | None:
            path = _pods_path(ns, name) + "/eviction"
            eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": name, "namespace": ns}}
            while True:
                async with sem:
                    try:
                        await api_write.send(ctx.kube, "POST", path, eviction,
                                             doing=f"evict pod {ns}/{name}")
                        return None
                    except api_write.KubeError as err:
                        status = getattr(err, "status", 0)
                        if status == 404:
                            return None
                        if status != 429 or time.monotonic() > deadline:
                            return f"{ns}/{name}: {err}"
                await asyncio.sleep(2.0)  # a disruption budget said not yet

        errors = [e for e in await asyncio.gather(*(evict(ns, n) for ns, n in pending)) if e]
        if errors:
            raise StepFailed(f"{len(errors)} evictions failed: {errors[0]}")
        left: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            now = await _get(ctx, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={ctx.node}"},
                             f"list pods on {ctx.node}")
            names = set(victims)
            left = [ref for ref in _evictable(now.get("items") or []) if ref in names]
            if not left:
                return f"cordoned; evicted {len(victims)} pods"
            await asyncio.sleep(2.0)
        raise StepFailed(f"drain timed out after {timeout:.0f} s: {len(left)} pods still on "
                         f"{ctx.node} ({', '.join(f'{a}/{b}' for a, b in left[:3])}"
                         f"{' ...' if len(left) > 3 else ''}); the node stays cordoned")

    shown = ", ".join(f"{a}/{b}" for a, b in victims[:3]) + (" ..." if len(victims) > 3 else "")
    step = Step("api", f"PATCH /api/v1/nodes/{ctx.node} (unschedulable); POST .../eviction for "
                       f"{len(victims)} pods", run,
                f"kubectl drain {ctx.node} --ignore-daemonsets --delete-emptydir-data --force "
                f"--timeout={timeout:.0f}s", detail=f"evicts {len(victims)} pods: {shown}")
    return _plan("drain", ctx, [step],
                 [Need("patch", "nodes"), Need("list", "pods"),
                  Need("create", "pods", subresource="eviction")],
                 warnings=warnings, expect={"unschedulable": True},
                 target=f"{len(victims)} pods (DaemonSet and static pods stay): {shown}")


async def _approve_csr(ctx: ActionContext) -> Plan:
    body = await _get(ctx, "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                      doing="list certificatesigningrequests")
    user = f"system:node:{ctx.node}"
    pending = []
    for c in body.get("items") or []:
        spec, status = c.get("spec") or {}, c.get("status") or {}
        if spec.get("username") != user or status.get("certificate"):
            continue
        if any(k.get("type") in ("Approved", "Denied", "Failed")
               for k in status.get("conditions") or []):
            continue
        pending.append(c)
    if not pending:
        raise PlanError(f"no pending CSR from {user}: nothing to approve (the kubelet asks for a "
                        f"new certificate when it rotates; see `kubectl get csr`)")
    pending.sort(key=lambda c: (c.get("metadata") or {}).get("creationTimestamp") or "")
    csr = pending[-1]
    name = csr["metadata"]["name"]
    signer = (csr.get("spec") or {}).get("signerName", "")
    approval = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": name},
                "status": {"conditions": [{
                    "type": "Approved", "status": "True", "reason": "NodewbApprove",
                    "message": f"approved by nodewb for the kubelet of {ctx.node}"}]}}
    step = _api_step(ctx, "PUT",
                     f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
                     approval, f"kubectl certificate approve {name}")
    needs = [Need("update", "certificatesigningrequests", "certificates.k8s.io", "approval")]
    if signer:
        needs.append(Need("approve", "signers", "certificates.k8s.io", name=signer))
    created = (csr.get("metadata") or {}).get("creationTimestamp", "?")
    return _plan("approve-csr", ctx, [step], needs,
                 target=f"CSR {name} from {user} (signer {signer or '?'}, pending since "
                        f"{created})"
                        + (f"; {len(pending) - 1} older pending ones left alone"
                           if len(pending) > 1 else ""))


async def _reapply_cni(ctx: ActionContext) -> Plan:
    body = await _get(ctx, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={ctx.node}"},
                      f"list pods on {ctx.node}")
    found = []
    for p in body.get("items") or []:
        meta = p.get("metadata") or {}
        owner = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "DaemonSet"]
        if owner and any(meta.get("name", "").startswith(app + "-") or
                         owner[0].get("name") == app for app in CNI_APPS):
            found.append((meta.get("namespace", ""), meta.get("name", ""), owner[0].get("name")))
    if not found:
        raise PlanError(f"no CNI DaemonSet pod ({', '.join(CNI_APPS[:4])}, ...) runs on "
                        f"{ctx.node}; apply the CNI manifest by hand (kubectl apply -f <cni.yaml>)")
    ns, name, ds = found[0]
    step = _api_step(ctx, "DELETE", _pods_path(ns, name), None,
                     f"kubectl delete pod -n {ns} {name}", ok_missing=True)
    return _plan("reapply-cni", ctx, [step], [Need("delete", "pods", namespace=ns)],
                 target=f"pod {ns}/{name} of DaemonSet {ds}: the DaemonSet recreates it and its "
                        f"install step puts the CNI binaries and config back")


async def _modprobe_vxlan(ctx: ActionContext) -> Plan:
    return _plan("modprobe-vxlan", ctx, [
        _node_step(ctx, "sudo -n modprobe vxlan"),
        _node_step(ctx, "echo vxlan | sudo -n tee /etc/modules-load.d/vxlan.conf"),
    ], [])


async def _prune_images(ctx: ActionContext) -> Plan:
    return _plan("prune-images", ctx, [_node_step(ctx, "sudo -n crictl rmi --prune", 120)], [])


async def _vacuum_journal(ctx: ActionContext) -> Plan:
    return _plan("vacuum-journal", ctx,
                 [_node_step(ctx, "sudo -n journalctl --vacuum-size=500M", 120)], [])


async def _sync_clock(ctx: ActionContext) -> Plan:
    return _plan("sync-clock", ctx, [_node_step(ctx, "sudo -n chronyc makestep")], [])


def _backup_step(ctx: ActionContext, path: str, stamp: str) -> Step:
    return _node_step(ctx, f"sudo -n cp -p {path} {path}.nodewb-{stamp}.bak")


async def _fix_cgroup_driver(ctx: ActionContext) -> Plan:
    driver = "systemd"
    if ctx.ssh is not None:
        try:
            r = await ctx.ssh.run(ctx.node, "sudo -n crictl info", 10.0, sudo=False)
            if r.exit_status == 0 and '"systemdCgroup": false' in r.stdout:
                driver = "cgroupfs"
        except Exception:
            pass
    stamp = _stamp()
    return _plan("fix-cgroup-driver", ctx, [
        _backup_step(ctx, CONFIG_YAML, stamp),
        _node_step(ctx, f"sudo -n sed -i 's/^cgroupDriver: .*/cgroupDriver: {driver}/' "
                        f"{CONFIG_YAML}"),
        _node_step(ctx, "sudo -n systemctl restart kubelet", 60),
    ], [], target=f"cgroupDriver: {driver} (the runtime's driver, from crictl info)")


async def _disable_swap(ctx: ActionContext) -> Plan:
    stamp = _stamp()
    return _plan("disable-swap", ctx, [
        _node_step(ctx, "sudo -n swapoff -a", 60),
        _backup_step(ctx, FSTAB, stamp),
        _node_step(ctx, f"sudo -n sed -i '/ swap / s/^/#/' {FSTAB}"),
        _node_step(ctx, "sudo -n systemctl restart kubelet", 60),
    ], [])


async def _raise_max_pods(ctx: ActionContext) -> Plan:
    current, present = 110, False
    if ctx.ssh is not None:
        r = await ctx.ssh.run(ctx.node, f"grep -E '^maxPods:' {CONFIG_YAML}", 10.0, sudo=False)
        text = r.stdout.strip()
        if r.exit_status == 0 and text.split(":")[-1].strip().isdigit():
            current, present = int(text.split(":")[-1].strip()), True
    wanted = int(ctx.params.get("max_pods")
                 or min(MAX_PODS_CEILING, -(-current * 3 // 2 // 10) * 10))
    if wanted <= current:
        raise PlanError(f"maxPods is already {current} (the ceiling nodewb raises it to is "
                        f"{MAX_PODS_CEILING}); scale out pods across more nodes instead")
    stamp = _stamp()
    edit = (f"sudo -n sed -i 's/^maxPods: .*/maxPods: {wanted}/' {CONFIG_YAML}" if present
            else f"echo 'maxPods: {wanted}' | sudo -n tee -a {CONFIG_YAML}")
    return _plan("raise-max-pods", ctx, [
        _backup_step(ctx, CONFIG_YAML, stamp),
        _node_step(ctx, edit),
        _node_step(ctx, "sudo -n systemctl restart kubelet", 60),
    ], [], target=f"maxPods {current} -> {wanted}",
        warnings=["more pods per node means more kubelet memory and longer PLEG relists; "
                  "Increase --kube-reserved or --system-reserved to protect kubelet resources."])


async def _canary(ctx: ActionContext) -> Plan:
    name = f"nodewb-canary-{secrets.token_hex(3)}"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default",
                        "labels": {"app.kubernetes.io/managed-by": "nodewb"}},
           "spec": {"nodeName": ctx.node, "restartPolicy": "Never",
                    "containers": [{"name": "canary", "image": CANARY_IMAGE}]}}
    return _plan("canary-pod", ctx, [
        _api_step(ctx, "POST", _pods_path("default"), pod,
                  f"kubectl run {name} --image={CANARY_IMAGE} --restart=Never "
                  f"--overrides='{{\"spec\":{{\"nodeName\":\"{ctx.node}\"}}}}'"),
    ], [Need("create", "pods", namespace="default"), Need("delete", "pods", namespace="default")],
        canary=True, expect={"canary_pod": name},
        target=f"pod default/{name} pinned to {ctx.node}; verification waits for it to run, "
               f"then deletes it")


async def _delete_pod(ctx: ActionContext) -> Plan:
    try:
        choice = await choose_pod(ctx.kube, ctx.ssh, ctx.kubelet, ctx.node, ctx.verdict,
                                  ctx.node_object)
    except NoTarget as err:
        raise PlanError(str(err)) from None
    step = _api_step(ctx, "DELETE", _pods_path(choice.namespace, choice.name), None,
                     f"kubectl delete pod -n {choice.namespace} {choice.name}", ok_missing=True)
    return _plan("delete-pod", ctx, [step], [Need("delete", "pods", namespace=choice.namespace)],
                 target=f"pod {choice.ref}: {choice.why}", evidence=choice.evidence)


def _a(id: str, title: str, runbook: str, template: tuple[str, ...], planner: Planner, *,
       sudo: bool = False, restarts_kubelet: bool = False) -> Action:
    return Action(id, title, runbook, template, planner, sudo, restarts_kubelet)


ACTIONS: dict[str, Action] = {a.id: a for a in [
    _a("restart-containerd", "restart containerd, then the kubelet",
       "If containerd deadlocked: restart containerd (systemctl restart containerd) then kubelet",
       ("sudo -n systemctl reset-failed containerd", "sudo -n systemctl restart containerd",
        "sudo -n systemctl restart kubelet"), _restart_containerd, sudo=True,
       restarts_kubelet=True),
    _a("restart-kubelet", "restart the kubelet",
       "you can restart kubelet (systemctl restart kubelet) which may trigger a re-registration",
       ("sudo -n systemctl restart kubelet",), _restart_kubelet, sudo=True,
       restarts_kubelet=True),
    _a("cordon", "mark the node unschedulable",
       "Cordon the node to prevent new scheduling", ("kubectl cordon {node}",), _cordon),
    _a("uncordon", "mark the node schedulable again", "kubectl uncordon <node>",
       ("kubectl uncordon {node}",), _uncordon),
    _a("drain", "cordon and evict the node's pods (NotReady-aware, with a timeout)",
       "Cordon the node to prevent new scheduling, then drain or delete excess pods to relieve "
       "pressure.",
       (f"kubectl drain {{node}} --ignore-daemonsets --delete-emptydir-data --force "
        f"--timeout={DRAIN_TIMEOUT:.0f}s",), _drain),
    _a("delete-pod", "delete the pod causing the I/O, memory or PID trouble (chosen from evidence)",
       "drain or delete excess pods to relieve pressure",
       ("kubectl delete pod -n <namespace> <pod chosen from the evidence>",), _delete_pod),
    _a("approve-csr", "approve the node's pending kubelet CSR",
       "Check for pending CSRs with kubectl get csr and approve them manually if necessary: "
       "kubectl certificate approve <csr-name>.",
       ("kubectl certificate approve <the pending CSR of system:node:{node}>",), _approve_csr),
    _a("reapply-cni", "recreate the node's CNI DaemonSet pod (reinstalls the plugin)",
       "If CNI plugin failed: reapply CNI manifests (kubectl apply -f <cni.yaml>) and restart "
       "kubelet",
       ("kubectl delete pod -n kube-system <the CNI DaemonSet pod on {node}>",), _reapply_cni),
    _a("modprobe-vxlan", "load vxlan and persist it in /etc/modules-load.d",
       "Load module: modprobe vxlan, and add vxlan to /etc/modules-load.d/ to survive reboot.",
       ("sudo -n modprobe vxlan", "echo vxlan | sudo -n tee /etc/modules-load.d/vxlan.conf"),
       _modprobe_vxlan, sudo=True),
    _a("prune-images", "delete unused container images",
       "If disk pressure: delete unused container images (crictl rmi --prune)",
       ("sudo -n crictl rmi --prune",), _prune_images, sudo=True),
    _a("vacuum-journal", "shrink the journal to 500M",
       "clean up journal logs (journalctl --vacuum-size=500M)",
       ("sudo -n journalctl --vacuum-size=500M",), _vacuum_journal, sudo=True),
    _a("sync-clock", "step the clock now (chrony)",
       "Resync the clock (chronyc makestep / systemctl restart chronyd) and fix the NTP source",
       ("sudo -n chronyc makestep",), _sync_clock, sudo=True),
    _a("fix-cgroup-driver", "set the kubelet's cgroupDriver to the runtime's (config backed up)",
       "Make cgroupDriver in /var/lib/kubelet/config.yaml match the runtime's (systemd)",
       (f"sudo -n cp -p {CONFIG_YAML} {CONFIG_YAML}.nodewb-<time>.bak",
        f"sudo -n sed -i 's/^cgroupDriver: .*/cgroupDriver: <runtime's>/' {CONFIG_YAML}",
        "sudo -n systemctl restart kubelet"), _fix_cgroup_driver, sudo=True,
       restarts_kubelet=True),
    _a("disable-swap", "turn swap off and comment it out of /etc/fstab (backed up)",
       "swapoff -a and remove swap from /etc/fstab (or set failSwapOn: false deliberately)",
       ("sudo -n swapoff -a", f"sudo -n cp -p {FSTAB} {FSTAB}.nodewb-<time>.bak",
        f"sudo -n sed -i '/ swap / s/^/#/' {FSTAB}", "sudo -n systemctl restart kubelet"),
       _disable_swap, sudo=True, restarts_kubelet=True),
    _a("raise-max-pods", "raise maxPods in the kubelet config (backed up), restart the kubelet",
       "If too many pods: increase node maxPods in kubelet config or scale out pods across more "
       "nodes",
       (f"sudo -n cp -p {CONFIG_YAML} {CONFIG_YAML}.nodewb-<time>.bak",
        f"sudo -n sed -i 's/^maxPods: .*/maxPods: <new>/' {CONFIG_YAML}",
        "sudo -n systemctl restart kubelet"), _raise_max_pods, sudo=True,
       restarts_kubelet=True),
    _a("canary-pod", "run a canary pod on the node, wait for it to run, delete it",
       "Run a canary pod on the node: kubectl run test --image=nginx --restart=Never "
       "--node-name=<node>; kubectl delete pod test",
       (f"kubectl run nodewb-canary-<id> --image={CANARY_IMAGE} --restart=Never "
        f"(nodeName {{node}})", "kubectl delete pod nodewb-canary-<id>"), _canary),
]}


def action_ids() -> list[str]:
    return list(ACTIONS)


def listing(node: str) -> list[tuple[Action, list[str]]]:
    """Every action with its command templates for `node`."""
    return [(a, [t.replace("{node}", node) for t in a.template]) for a in ACTIONS.values()]


async def plan_action(action_id: str, ctx: ActionContext) -> Plan:
    """The exact commands of `action_id` on ctx.node. KeyError for an unknown id (check
    FORBIDDEN first for the refusals); PlanError when there is nothing to act on."""
    action = ACTIONS[action_id]
    return await action.planner(ctx)


async def run_plan(plan: Plan, cleared: Any, on_step: Callable[[str], None] | None = None
                   ) -> RunResult:
    """Run the plan's steps in order, stopping at the first failure. `cleared` must be the
    token triage.guards minted for this very plan; it is spent here."""
    from triage.guards import redeem

    problem = redeem(cleared, plan)
    if problem:
        raise NotCleared(problem)
    results: list[StepResult] = []
    started = time.time()
    for step in plan.steps:
        if on_step:
            on_step(f"running: {step.text}")
        t0 = time.monotonic()
        try:
            out = await step.run()
        except StepFailed as err:
            results.append(StepResult(step.text, False, str(err), time.monotonic() - t0))
            if on_step:
                on_step(f"failed: {err}")
            return RunResult(plan, False, results, str(err), started, time.time())
        except Exception as err:  # a transport failure: said once, plainly
            why = f"{step.text}: {type(err).__name__}: {err}"
            results.append(StepResult(step.text, False, why, time.monotonic() - t0))
            if on_step:
                on_step(f"failed: {why}")
            return RunResult(plan, False, results, why, started, time.time())
        results.append(StepResult(step.text, True, out, time.monotonic() - t0))
        if on_step:
            on_step(f"done ({time.monotonic() - t0:.1f} s): {step.text}")
    return RunResult(plan, True, results, "", started, time.time())

