"""The journal lines a machine's state produces, in the kubelet's and containerd's real wording.

`emit(m, t0, t1)` appends what the units would have logged between t0 and t1 given the machine's
current state. Lines recur on their own periods (the kubelet's sync loops, lease renewals, GC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from lab.machine import PLEG_THRESHOLD, JournalEntry, Machine
from lab.timefmt import go_duration, klog_stamp, rfc3339, rfc3339_micro, stable_hash

MAX_BACKFILL = 400  # per rule per catch-up: a long idle gap keeps only its recent lines

SOCK = "/run/containerd/containerd.sock"
DIAL_ERR = (f'rpc error: code = Unavailable desc = connection error: desc = \\"transport: Error '
            f'while dialing: dial unix {SOCK}: connect: no such file or directory\\"')
DEADLINE = "rpc error: code = DeadlineExceeded desc = context deadline exceeded"


def klog(m: Machine, ts: float, sev: str, source: str, text: str) -> None:
    m.log("kubelet", ts, f"{sev}{klog_stamp(ts)} {m.kubelet.pid:>7} {source}] {text}",
          priority={"E": 3, "W": 4}.get(sev, 6))


def logrus(m: Machine, ts: float, level: str, text: str) -> None:
    stamp = rfc3339_micro(ts)[:-1] + "000Z"
    m.log("containerd", ts, f'time="{stamp}" level={level} msg={text}',
          priority={"error": 3, "warning": 4}.get(level, 6))


def _pod_ref(m: Machine) -> str:
    pods = [p for p in m.pods if not p.daemon] or m.pods
    if not pods:
        return 'pod="kube-system/kube-proxy"'
    p = pods[int(m.journal_upto) % len(pods)]
    return (f'pod="{p.namespace}/{p.name}" '
            f'podUID="{stable_hash(p.name) % 10**8:08x}-5c1e-4f7a-9d2b-3e4f5a6b7c8d"')


def _api(m: Machine) -> str:
    return (m.files.get("/etc/kubernetes/kubelet.conf", "")
            .split("server: ", 1)[-1].split("\n", 1)[0])


def rules(m: Machine, now: float) -> list[tuple[float, Callable[[float], None]]]:
    """(period, emitter) for the current state. Emitters get the timestamp of each occurrence."""
    out: list[tuple[float, Callable[[float], None]]] = []
    if not m.kubelet.running:
        return out
    name = m.name
    out.append((60.0, lambda t: klog(m, t, "I", "container_gc.go:88",
                                     '"Attempting to delete unused containers"')))
    out.append((300.0, lambda t: klog(m, t, "I", "image_gc_manager.go:391",
                                      '"Attempting to delete unused images"')))
    if "runtime_hung" in m.faults or (not m.runtime_responsive() and m.containerd.running):
        out.append((120.0, lambda t: klog(
            m, t, "E", "remote_runtime.go:407",
            f'"ListPodSandbox with filter from runtime service failed" err="{DEADLINE}" '
            'filter="nil"')))
        out.append((120.0, lambda t: klog(
            m, t + 0.01, "E", "generic.go:238",
            f'"GenericPLEG: Unable to retrieve pods" err="{DEADLINE}"')))
    if not m.containerd.running or "socket_missing" in m.faults:
        out.append((5.0, lambda t: klog(
            m, t, "E", "remote_runtime.go:633",
            f'"Status from runtime service failed" err="{DIAL_ERR}"')))
        out.append((5.0, lambda t: klog(
            m, t + 0.001, "E", "kubelet.go:2882",
            f'"Container runtime sanity check failed" err="{DIAL_ERR}"')))
        out.append((10.0, lambda t: klog(
            m, t + 0.002, "E", "kubelet.go:2412",
            '"Skipping pod synchronization" err="container runtime is down"')))
    relist = m.relist_seconds()
    if math.isfinite(relist) and relist > 2:
        out.append((max(relist, 5.0), lambda t: klog(
            m, t, "I", "generic.go:224",
            f'"GenericPLEG: Relisting took longer than expected" duration="'
            f'{go_duration(round(relist * (0.8 + 0.4 * ((t * 7919) % 1)), 3))}"')))
        out.append((45.0, lambda t: klog(
            m, t, "E", "pod_workers.go:1301",
            f'"Error syncing pod, skipping" err="failed to \\"KillPodSandbox\\" for '
            f'\\"{(m.pods[0].name if m.pods else "pod")}\\" with KillPodSandboxError: '
            f'\\"{DEADLINE}\\"" {_pod_ref(m)}')))
        out.append((30.0, lambda t: logrus(
            m, t, "warning", f'"StopPodSandbox for \\"{stable_hash(t) % 16**12:012x}\\" failed" '
            f'error="failed to stop container: context deadline exceeded: unknown"')))
    if not math.isfinite(relist) or relist + 1 >= PLEG_THRESHOLD:
        # PLEG turns unhealthy three minutes after the last relist: decided per line, not per
        # catch-up, so a long first catch-up shows the moment it crossed the threshold.
        def pleg_unhealthy(t: float) -> None:
            age = m.pleg_age(t)
            if age >= PLEG_THRESHOLD:
                klog(m, t, "E", "kubelet.go:2412",
                     f'"Skipping pod synchronization" err="PLEG is not healthy: pleg was last '
                     f'seen active {go_duration(round(age, 6))} ago; threshold is 3m0s"')

        out.append((5.0, pleg_unhealthy))
    if not m.network_ready():
        if "calico" not in m.cni_bin:
            out.append((10.0, lambda t: klog(
                m, t, "E", "pod_workers.go:1301",
                '"Error syncing pod, skipping" err="failed to \\"CreatePodSandbox\\" for '
                '\\"coredns-7db6d8ff4d-x2k9q_kube-system\\" with CreatePodSandboxError: '
                '\\"Failed to create sandbox for pod: rpc error: code = Unknown desc = failed to '
                'setup network for sandbox: plugin type=\\\\\\"calico\\\\\\" failed (add): failed '
                'to find plugin \\\\\\"calico\\\\\\" in path [/opt/cni/bin]\\""')))
            out.append((30.0, lambda t: logrus(
                m, t, "error", '"failed to reload cni configuration after receiving fs change '
                'event(WRITE \\"/etc/cni/net.d/10-calico.conflist\\")" error="cni config load '
                'failed: failed to find plugin \\"calico\\" in path [/opt/cni/bin]: cni plugin '
                'not initialized: failed to load cni config"')))
        out.append((5.0, lambda t: klog(
            m, t, "E", "kubelet.go:3002",
            '"Container runtime network not ready" networkReady="NetworkReady=false '
            'reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not '
            'initialized"')))
    if "vxlan" not in m.modules:
        out.append((15.0, lambda t: m.log(
            "calico", t, "[ERROR][86] felix/vxlan_mgr.go 1016: failed to create vxlan tunnel "
            "device error=failed to create VXLAN device vxlan.calico: operation not supported "
            'ifaceName="vxlan.calico"', ident="calico-node", pid=86)))
        # The decoy of the runbook's vxlan story: pods stuck without a network keep the pod
        # workers busy and the kubelet's sync loop reports PLEG, though relists stay fast and
        # the Ready condition names the CNI.
        out.append((10.0, lambda t: klog(
            m, t, "E", "kubelet.go:2412",
            '"Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active '
            f'{go_duration(round(_decoy_pleg_age(m, t), 3))} ago; threshold is 3m0s"')))
    if not m.api_reachable:
        api = _api(m)
        out.append((10.0, lambda t: klog(
            m, t, "E", "kubelet_node_status.go:549",
            f'"Error updating node status, will retry" err="error getting node \\"{name}\\": '
            f'Get \\"{api}/api/v1/nodes/{name}?resourceVersion=0&timeout=10s\\": dial tcp '
            f'{api.split("//")[-1]}: i/o timeout"')))
        out.append((7.0, lambda t: klog(
            m, t + 0.2, "E", "controller.go:145",
            f'"Failed to ensure lease exists, will retry" err="Get \\"{api}/apis/'
            f'coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}?timeout=10s\\": '
            f'context deadline exceeded" interval="7s"')))
    elif "clock_skew" in m.faults:
        api = _api(m)
        err = m.faults["clock_skew"].detail.get("error", "")
        out.append((10.0, lambda t: klog(
            m, t, "E", "kubelet_node_status.go:549",
            f'"Error updating node status, will retry" err="error getting node \\"{name}\\": '
            f'Get \\"{api}/api/v1/nodes/{name}?resourceVersion=0&timeout=10s\\": {err}"')))
        out.append((10.0, lambda t: klog(
            m, t + 0.3, "E", "controller.go:145",
            f'"Failed to ensure lease exists, will retry" err="Get \\"{api}/apis/'
            f'coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}?timeout=10s\\": '
            f'{err}" interval="7s"')))
    elif now >= m.client_cert_not_after > 0:
        out.append((10.0, lambda t: klog(
            m, t, "E", "kubelet_node_status.go:549",
            f'"Error updating node status, will retry" err="error getting node \\"{name}\\": '
            f'Unauthorized"')))
        out.append((7.0, lambda t: klog(
            m, t + 0.4, "E", "controller.go:145",
            '"Failed to ensure lease exists, will retry" err="Unauthorized" interval="7s"')))
        out.append((60.0, lambda t: klog(
            m, t + 0.5, "E", "certificate_manager.go:562",
            '"Unhandled Error" err="kubernetes.io/kube-apiserver-client-kubelet: certificate '
            'request was not signed: timed out waiting for the condition" '
            'logger="UnhandledError"')))
        out.append((60.0, lambda t: klog(
            m, t + 0.6, "E", "transport.go:131",
            f'"Failed to refresh client certificate" err="x509: certificate has expired or is '
            f'not yet valid: current time {rfc3339(t)} is after '
            f'{rfc3339(m.client_cert_not_after)}"')))
    conds = m.conditions(now)
    fs = m.filesystem()
    if conds["DiskPressure"][0] == "True":
        resource = "nodefs.inodesFree" if fs.ifree < fs.inodes * 0.05 else "ephemeral-storage"
        out.append((10.0, lambda t: klog(
            m, t, "W", "eviction_manager.go:377",
            f'"Eviction manager: attempting to reclaim" resourceName="{resource}"')))
        out.append((10.0, lambda t: klog(
            m, t + 0.1, "I", "eviction_manager.go:395",
            f'"Eviction manager: must evict pod(s) to reclaim" resourceName="{resource}"')))
        out.append((300.0, lambda t: klog(
            m, t + 0.2, "E", "kubelet.go:1513",
            f'"Image garbage collection failed multiple times in a row" err="failed to garbage '
            f'collect required amount of images. Attempted to free {int(fs.size * 0.06)} bytes, '
            f'but only found 0 bytes eligible to free."')))
        out.append((20.0, lambda t: logrus(
            m, t, "error", '"failed to write log" error="write /var/log/pods/app_writer/0.log: '
            'no space left on device"')))
    if conds["MemoryPressure"][0] == "True":
        out.append((10.0, lambda t: klog(
            m, t, "W", "eviction_manager.go:377",
            '"Eviction manager: attempting to reclaim" resourceName="memory"')))
    if conds["PIDPressure"][0] == "True":
        out.append((10.0, lambda t: klog(
            m, t, "W", "eviction_manager.go:377",
            '"Eviction manager: attempting to reclaim" resourceName="pid"')))
        out.append((8.0, lambda t: logrus(
            m, t, "error", '"RunPodSandbox for &PodSandboxMetadata{Name:worker,Namespace:batch,} '
            'failed, error" error="failed to create containerd task: failed to create shim task: '
            'OCI runtime create failed: runc create failed: unable to start container process: '
            'error during container init: fork/exec /proc/self/exe: resource temporarily '
            'unavailable: unknown"')))
    return out


def _decoy_pleg_age(m: Machine, t: float) -> float:
    """A PLEG age just past the threshold that creeps up and falls back (the vxlan decoy)."""
    return PLEG_THRESHOLD + (t - m.boot_time) % 47.0 + ((t * 7919) % 1) * 0.9


def emit(m: Machine, t0: float, t1: float) -> None:
    for period, fn in rules(m, t0):
        phase = (m.index * 0.6180339) % 1.0 * period
        k_first = math.ceil((t0 - phase) / period)
        k_last = math.floor((t1 - phase - 1e-9) / period)
        if k_last < k_first:
            continue
        k_first = max(k_first, k_last - MAX_BACKFILL + 1)
        for k in range(k_first, k_last + 1):
            fn(k * period + phase)
    _sort_tail(m)


def _sort_tail(m: Machine) -> None:
    for j in m.journals.values():
        entries = j.entries
        n = min(len(entries), 64)
        if n < 2:
            continue
        tail = [entries.pop() for _ in range(n)]
        tail.reverse()
        tail.sort(key=lambda e: e.ts)
        entries.extend(tail)


CONTAINERD_STARTUP = (  # (seconds after the start, logrus message)
    (0.08, '"starting containerd" revision=88bf19b2105c8b17560993bee28a01ddc2f97182 '
           'version={version}'),
    (0.1, '"loading plugin \\"io.containerd.grpc.v1.cri\\"..." type=io.containerd.grpc.v1'),
    (0.25, '"Start recovering state"'),
    (0.31, '"Start cni network conf syncer for default"'),
    (0.4, f"serving... address={SOCK}.ttrpc"),
    (0.4, f"serving... address={SOCK}"),
    (0.5, '"containerd successfully booted in 0.412s"'),
)


def containerd_startup(m: Machine, ts: float) -> None:
    """What containerd logs as it starts, up to systemd's "Started" (cheap: every node of a
    large lab logs it once at start-up)."""
    j = m.journal("containerd")
    pid = m.containerd.pid
    second = int(ts)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    j.append(JournalEntry(ts, "containerd", "systemd", 1,
                          "Starting containerd.service - containerd container runtime..."))
    for dt, text in CONTAINERD_STARTUP:
        t = ts + dt
        micros = round((t - second) * 1e6)
        stamp = (f"{prefix}.{micros:06d}000Z" if micros < 1_000_000
                 else rfc3339_micro(t)[:-1] + "000Z")
        message = text.format(version=m.containerd_version) if "{" in text else text
        j.append(JournalEntry(t, "containerd", "containerd", pid,
                              f'time="{stamp}" level=info msg={message}'))
    j.append(JournalEntry(ts + 0.5, "containerd", "systemd", 1,
                          "Started containerd.service - containerd container runtime."))


def kubelet_startup(m: Machine, ts: float) -> None:
    """What a starting kubelet logs before it either runs or exits."""
    klog(m, ts + 0.05, "I", "server.go:484",
         f'"Kubelet version" kubeletVersion="{m.kubelet_version}"')
    klog(m, ts + 0.06, "I", "server.go:486",
         '"Golang settings" GOGC="" GOMAXPROCS="" GOTRACEBACK=""')
    klog(m, ts + 0.2, "I", "server.go:925", '"Client rotation is on, will bootstrap in background"')
    if not m.containerd.running or "socket_missing" in m.faults:
        klog(m, ts + 0.3, "W", "logging.go:55",
             f'[core] [Channel #1 SubChannel #2] grpc: addrConn.createTransport failed to connect '
             f'to {{Addr: "{SOCK}", ServerName: "localhost", }}. Err: connection error: desc = '
             f'"transport: Error while dialing: dial unix {SOCK}: connect: no such file or '
             f'directory"')
    klog(m, ts + 0.4, "I", "kubelet.go:408", '"Attempting to sync node with API server"')
