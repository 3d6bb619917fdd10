"""Node commands of the shell: the runtime (crictl), disks, memory, processes, kernel, network,
time, certificates. Every answer is derived from the machine; every change goes through
`lab.effects`."""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from lab import effects, shell_fs
from lab.machine import GiB, LabPod, Machine, MiB
from lab.shell import Ctx, UsageError, command
from lab.shell_systemd import kernel_entries, kubelet_cmdline
from lab.timefmt import klog_stamp

SOCKET = "/run/containerd/containerd.sock"


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _n(text: str, lo: int, hi: int) -> int:
    return lo + int(_h(text)[:8], 16) % (hi - lo)


def pod_sandbox_id(m: Machine, pod: LabPod) -> str:
    return _h(f"sandbox:{m.name}:{pod.namespace}/{pod.name}:{pod.created}")


def pod_container_id(m: Machine, pod: LabPod, attempt: int) -> str:
    return _h(f"container:{m.name}:{pod.namespace}/{pod.name}:{attempt}:{pod.created}")


def pod_shim_pid(m: Machine, pod: LabPod) -> int:
    return _n(f"shim:{m.name}:{pod.namespace}/{pod.name}", 3000, 60000)


def pod_pid(m: Machine, pod: LabPod) -> int:
    return pod_shim_pid(m, pod) + 21


def image_id(image: str) -> str:
    return _h(f"image:{image}")


def _go_ago(seconds: float) -> str:
    """go-units HumanDuration + ' ago', as crictl prints CREATED."""
    s = int(seconds)
    if s < 1:
        return "Less than a second ago"
    if s == 1:
        return "1 second ago"
    if s < 60:
        return f"{s} seconds ago"
    minutes = s // 60
    if minutes == 1:
        return "About a minute ago"
    if minutes < 60:
        return f"{minutes} minutes ago"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{hours} hours ago"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days ago"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks ago"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months ago"
    return f"{hours // 24 // 365} years ago"


def _table(rows: list[list[str]], minwidth: int = 20, padding: int = 3) -> str:
    """Go's tabwriter(minwidth, tabwidth=1, padding, ' ', 0): what crictl uses."""
    if not rows:
        return ""
    cols = max(len(r) for r in rows)
    widths = [max(minwidth, max(len(r[i]) for r in rows if i < len(r)) + padding)
              for i in range(cols - 1)]
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        out.append("".join(cells))
    return "\n".join(out) + "\n"


def _columns(rows: list[list[str]], right: set[int] = frozenset(), sep: str = " ") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            if i == len(r) - 1 and i not in right:
                cells.append(c)
            else:
                cells.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        out.append(sep.join(cells).rstrip())
    return "\n".join(out) + "\n"


# -- crictl ----------------------------------------------------------------------------------------
def _dial_error(m: Machine) -> str:
    return (f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error '
            f'while dialing: dial unix {SOCKET}: connect: no such file or directory"')


async def _runtime_call(ctx: Ctx, method: str, fatal: str, detail: str = "") -> bool:
    """Wait for the runtime like a CRI client does: True when it answers, False after the
    error crictl prints when it cannot connect."""
    m = ctx.machine
    while True:
        m.catch_up(ctx.now())
        if m.runtime_responsive():
            return True
        if "runtime_hung" in m.faults and m.containerd.active in ("active", "deactivating"):
            await ctx.sleep(0.3)
            continue
        err = _dial_error(m)
        stamp = klog_stamp(m.node_now(ctx.now()))
        await ctx.error(f'E{stamp}    {_n(str(ctx.now()), 4000, 30000)} remote_runtime.go:'
                        f'{_n(method, 200, 700)}] "{method} from runtime service failed" '
                        f'err="{_escape(err)}"{detail}\n')
        await ctx.error(f"FATA[0000] {fatal}: {err} \n")
        return False


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _runtime_ready(m: Machine) -> bool:
    return m.runtime_responsive()


async def _crictl_warn(ctx: Ctx, endpoint_given: bool) -> None:
    if endpoint_given or "/etc/crictl.yaml" in ctx.machine.files:
        return
    await ctx.error("WARN[0000] runtime connect using default endpoints: [unix:///run/containerd/"
                    "containerd.sock unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]."
                    " As the default settings are now deprecated, you should set the endpoint "
                    "instead. \n")
    await ctx.error("WARN[0000] image connect using default endpoints: [unix:///run/containerd/"
                    "containerd.sock unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]."
                    " As the default settings are now deprecated, you should set the endpoint "
                    "instead. \n")


def _containers(m: Machine, include_exited: bool) -> list[tuple[LabPod, int, str]]:
    out = []
    for pod in m.pods:
        if pod.deleting:
            continue
        state = "Running" if pod.phase == "Running" else "Exited"
        if include_exited:
            for attempt in range(max(0, pod.restarts - 1), pod.restarts):
                out.append((pod, attempt, "Exited"))
        if state == "Running" or include_exited:
            out.append((pod, pod.restarts, state))
    return out


@command("crictl")
async def crictl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    endpoint = None
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout",
                 "-c", "--config") and args:
            value = args.pop(0)
            if a in ("-r", "--runtime-endpoint"):
                endpoint = value
        elif a.startswith("--runtime-endpoint="):
            endpoint = a.split("=", 1)[1]
        elif a in ("-D", "--debug"):
            continue
        elif a in ("--version", "-v"):
            await ctx.write("crictl version v1.31.1\n")
            return 0
    if not args:
        await ctx.write("NAME:\n   crictl - client for CRI\n\nUSAGE:\n   crictl [global options]"
                        " command [command options]\n")
        return 0
    sub, rest = args[0], args[1:]
    if not ctx.root:
        await ctx.error(f'FATA[0000] validate service connection: validate CRI v1 runtime API for '
                        f'endpoint "unix://{SOCKET}": rpc error: code = Unavailable desc = '
                        f'connection error: desc = "transport: Error while dialing: dial unix '
                        f'{SOCKET}: connect: permission denied" \n')
        return 1
    if endpoint and endpoint.replace("unix://", "") not in (SOCKET, "/var/run/containerd/"
                                                                    "containerd.sock"):
        path = endpoint.replace("unix://", "")
        await ctx.error(f'FATA[0000] validate service connection: validate CRI v1 runtime API for '
                        f'endpoint "{endpoint}": rpc error: code = Unavailable desc = connection '
                        f'error: desc = "transport: Error while dialing: dial unix {path}: '
                        f'connect: no such file or directory" \n')
        return 1
    await _crictl_warn(ctx, endpoint is not None)
    flags = {a for a in rest if a.startswith("-")}
    now = ctx.now()
    if sub == "version":
        if not await _runtime_call(ctx, "Version", "getting the runtime version"):
            return 1
        await ctx.write(f"Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  "
                        f"{m.containerd_version}\nRuntimeApiVersion:  v1\n")
        return 0
    if sub == "ps":
        if not await _runtime_call(
                ctx, "ListContainers with filter", "listing containers",
                ' filter="&ContainerFilter{Id:,State:&ContainerStateValue{State:CONTAINER_RUNNING,'
                '},PodSandboxId:,LabelSelector:map[string]string{},}"'):
            return 1
        rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]]
        conts = _containers(m, "-a" in flags or "--all" in flags)
        quiet = "-q" in flags or "--quiet" in flags
        name_filter = None
        for i, a in enumerate(rest):
            if a in ("--name",) and i + 1 < len(rest):
                name_filter = rest[i + 1]
        for pod, attempt, state in sorted(conts, key=lambda c: -c[0].created):
            if name_filter and not re.search(name_filter, pod.app):
                continue
            cid = pod_container_id(m, pod, attempt)
            if quiet:
                rows.append([cid])
                continue
            rows.append([cid[:13], image_id(pod.image)[:13],
                         _go_ago(now - pod.created - attempt * 30), state, pod.app,
                         str(attempt), pod_sandbox_id(m, pod)[:13], pod.name])
        if quiet:
            await ctx.write("".join(r[0] + "\n" for r in rows[1:]))
        else:
            await ctx.write(_table(rows))
        return 0
    if sub == "pods":
        if not await _runtime_call(ctx, "ListPodSandbox with filter", "listing pod sandboxes",
                                   ' filter="&PodSandboxFilter{Id:,State:nil,LabelSelector:'
                                   'map[string]string{},}"'):
            return 1
        rows = [["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]]
        for pod in sorted(m.pods, key=lambda p: -p.created):
            rows.append([pod_sandbox_id(m, pod)[:13], _go_ago(now - pod.created),
                         "Ready" if pod.phase == "Running" else "NotReady", pod.name,
                         pod.namespace, "0", "(default)"])
        if "-q" in flags:
            await ctx.write("".join(pod_sandbox_id(m, p) + "\n" for p in m.pods))
        else:
            await ctx.write(_table(rows))
        return 0
    if sub == "images" or sub == "img":
        if not await _runtime_call(ctx, "ListImages with filter", "listing images",
                                   ' filter="&ImageFilter{Image:&ImageSpec{Image:,Annotations:'
                                   'map[string]string{},UserSpecifiedImage:,RuntimeHandler:,},}"'):
            return 1
        rows = [["IMAGE", "TAG", "IMAGE ID", "SIZE"]]
        for image in _images(m):
            repo, _, tag = image.rpartition(":")
            rows.append([repo, tag, image_id(image)[:13], _image_size(image)])
        await ctx.write(_table(rows))
        return 0
    if sub == "rmi":
        if "--prune" in flags or "-p" in flags:
            if not await _runtime_call(ctx, "ListImages with filter", "listing images"):
                return 1
            removed = effects.prune_images(m, ctx.now())
            for digest in removed:
                await ctx.write(f"Deleted: docker.io/library/unused@{digest}\n")
            return 0
        targets = [a for a in rest if not a.startswith("-")]
        if not targets:
            raise UsageError("FATA[0000] No IDs provided or nothing to prune", 1)
        for t in targets:
            await ctx.error(f'ERRO[0000] no such image {t}\nFATA[0000] unable to remove the '
                            f'image(s)\n')
        return 1
    if sub == "info":
        if not await _runtime_call(ctx, "Status", "getting status of runtime"):
            return 1
        net = m.network_ready()
        status = {
            "status": {"conditions": [
                {"type": "RuntimeReady", "status": True, "reason": "", "message": ""},
                {"type": "NetworkReady", "status": net,
                 "reason": "" if net else "NetworkPluginNotReady",
                 "message": "" if net else "Network plugin returns error: cni plugin not "
                                           "initialized"}]},
            "cniconfig": {"PluginDirs": ["/opt/cni/bin"], "PluginConfDir": "/etc/cni/net.d",
                          "PluginMaxConfNum": 1, "Prefix": "eth",
                          "Networks": [{"Config": {"Name": "cni-loopback",
                                                   "CNIVersion": "0.3.1"}, "IFName": "lo"}]
                          + ([{"Config": {"Name": "k8s-pod-network", "CNIVersion": "0.3.1"},
                               "IFName": "eth0"}] if net else [])},
            "config": {"containerd": {"snapshotter": "overlayfs", "defaultRuntimeName": "runc"},
                       "cni": {"binDir": "/opt/cni/bin", "confDir": "/etc/cni/net.d"},
                       "enableSelinux": False, "sandboxImage": "registry.k8s.io/pause:3.10",
                       "systemdCgroup": m.runtime_cgroup_driver == "systemd",
                       "containerdRootDir": "/var/lib/containerd",
                       "stateDir": "/run/containerd/io.containerd.grpc.v1.cri"},
            "golang": "go1.22.7", "lastCNILoadStatus": "OK" if net else
            "cni config load failed: no network config found in /etc/cni/net.d: cni plugin not "
            "initialized: failed to load cni config",
        }
        import json

        await ctx.write(json.dumps(status, indent=2) + "\n")
        return 0
    if sub in ("logs", "inspect", "inspectp", "stats", "exec", "stop", "rm", "stopp", "rmp",
               "pull", "inspecti", "imagefsinfo", "statsp", "port-forward", "attach"):
        if not await _runtime_call(ctx, "ContainerStatus", "getting the status of the container"):
            return 1
        targets = [a for a in rest if not a.startswith("-") and not a.isdigit()]
        if sub == "logs" and targets:
            for pod, attempt, _ in _containers(m, True):
                if pod_container_id(m, pod, attempt).startswith(targets[0]):
                    lines = [e for e in m.journals.get("calico", None).entries] if \
                        pod.app == "calico-node" and "calico" in m.journals else []
                    await ctx.write("".join(f"{e.message}\n" for e in lines))
                    return 0
        if sub in ("stats", "statsp"):
            await ctx.write(_stats(m, now, sub == "statsp", rest))
            return 0
        if sub == "imagefsinfo":
            await ctx.write("CONTAINER           NAME                CPU %               MEM"
                            "                 DISK                INODES\n")
            return 0
        why = ("rpc error: code = NotFound desc = an error occurred when try to find container"
               if targets else "ID cannot be empty")
        await ctx.error(f'FATA[0000] {why} \n')
        return 1
    await ctx.error(f"No help topic for '{sub}'\n")
    return 3


def _human_size(size: float) -> str:
    """go-units HumanSize: decimal units, four significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def _stats(m: Machine, now: float, per_pod: bool, rest: list[str]) -> str:
    """`crictl stats` / `crictl statsp` from the kubelet's cAdvisor figures: CPU % over the
    container's life, working set, and its writable layer."""
    from lab.cadvisor import container_figures

    wanted = [a for a in rest if not a.startswith("-")]
    pod_filter = ""
    for i, a in enumerate(rest):
        if a in ("-p", "--pod") and i + 1 < len(rest):
            pod_filter = rest[i + 1]
            wanted = [w for w in wanted if w != pod_filter]
        elif a.startswith("--pod="):
            pod_filter = a.split("=", 1)[1]
    rows = [["POD", "NAME", "CPU %", "MEM"] if per_pod else
            ["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"]]
    for c in container_figures(m, now):
        sandbox = pod_sandbox_id(m, c.pod)
        own = sandbox if per_pod else c.container_id
        if wanted and not any(own.startswith(w) for w in wanted):
            continue
        if pod_filter and not sandbox.startswith(pod_filter):
            continue
        cpu = 100 * c.cpu_seconds / max(1.0, now - c.started)
        if per_pod:
            rows.append([sandbox[:13], c.pod.name, f"{cpu:.2f}", _human_size(c.working_set)])
            continue
        key = f"{m.name}/{c.pod.namespace}/{c.pod.name}"
        rows.append([c.container_id[:13], c.pod.app, f"{cpu:.2f}", _human_size(c.working_set),
                     _human_size(_n("layer:" + key, 4, 900) * 1000 * (40 if c.pod.io_heavy
                                                                       else 1)),
                     str(_n("inodes:" + key, 4, 60))])
    return _table(rows)


def _images(m: Machine) -> list[str]:
    images = {"registry.k8s.io/pause:3.10"}
    images.update(p.image if ":" in p.image.rsplit("/", 1)[-1] else p.image + ":latest"
                  for p in m.pods)
    return sorted(images)


def _image_size(image: str) -> str:
    if "pause" in image:
        return "320kB"
    size = _n(image, 8, 400)
    return f"{size}MB" if size >= 10 else f"{size}.{_n(image + 'x', 0, 9)}MB"


# -- processes -------------------------------------------------------------------------------------
@dataclass
class Proc:
    pid: int
    ppid: int
    user: str
    cpu: float
    rss: int  # KiB
    vsz: int  # KiB
    stat: str
    start: float
    comm: str
    cmd: str
    tty: str = "?"


def processes(m: Machine, now: float) -> list[Proc]:
    boot = m.boot_time
    procs = [
        Proc(1, 0, "root", 0.0, 12800, 168_000, "Ss", boot, "systemd", "/sbin/init"),
        Proc(2, 0, "root", 0.0, 0, 0, "S", boot, "kthreadd", "[kthreadd]"),
        Proc(311, 1, "root", 0.0, 18_000, 48_000, "Ss", boot + 2, "systemd-journal",
             "/lib/systemd/systemd-journald"),
        Proc(m.chronyd.pid, 1, "_chrony", 0.0, 3_200, 18_000, "S", m.chronyd.since, "chronyd",
             "/usr/sbin/chronyd -F 1"),
        Proc(612, 1, "root", 0.0, 7_600, 15_400, "Ss", boot + 6, "sshd",
             "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
    ]
    if not m.chronyd.running:
        procs = [p for p in procs if p.comm != "chronyd"]
    c = m.containerd
    if c.active in ("active", "deactivating"):
        hung = "runtime_hung" in m.faults
        procs.append(Proc(c.pid, 1, "root", 0.1 if hung else 0.8,
                          (64 * MiB + len(m.pods) * 4 * MiB) // 1024, 2_100_000,
                          "Dsl" if hung else "Ssl", c.since, "containerd", "/usr/bin/containerd"))
    k = m.kubelet
    if k.running:
        procs.append(Proc(k.pid, 1, "root", m.kubelet_cpu, m.kubelet_rss // 1024, 2_400_000,
                          "Ssl", k.since, "kubelet", kubelet_cmdline(m)))
    for pod in m.pods:
        if pod.phase != "Running":
            continue
        shim = pod_shim_pid(m, pod)
        procs.append(Proc(shim, 1, "root", 0.0, 11_000, 1_238_000, "Sl", pod.created,
                          "containerd-shim", f"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io "
                          f"-id {pod_sandbox_id(m, pod)} -address {SOCKET}"))
        procs.append(Proc(shim + 20, shim, "65535", 0.0, 400, 1_020, "Ss", pod.created, "pause",
                          "/pause"))
        comm, cmd = _pod_command(pod)
        procs.append(Proc(pod_pid(m, pod), shim, "root" if pod.daemon else "1000",
                          0.5 + _n(pod.name, 0, 30) / 10, max(1024, pod.memory // 1024),
                          pod.memory // 1024 * 2 + 700_000, "Ssl", pod.created, comm, cmd))
    procs.sort(key=lambda p: p.pid)
    return procs


def _pod_command(pod: LabPod) -> tuple[str, str]:
    app = pod.app
    if app == "calico-node":
        return "calico-node", "calico-node -felix"
    if app == "kube-proxy":
        return "kube-proxy", ("/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf "
                              "--hostname-override=$(NODE_NAME)")
    if "nginx" in pod.image:
        return "nginx", "nginx: master process nginx -g daemon off;"
    return app[:15], f"/usr/local/bin/{app}"


def _fmt_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _fmt_start(ts: float, now: float) -> str:
    if now - ts < 86400:
        return time.strftime("%H:%M", time.localtime(ts))
    return time.strftime("%b%d", time.localtime(ts))


def _etime(seconds: float) -> str:
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    mi, s = divmod(s, 60)
    if d:
        return f"{d}-{h:02d}:{mi:02d}:{s:02d}"
    if h:
        return f"{h:02d}:{mi:02d}:{s:02d}"
    return f"{mi:02d}:{s:02d}"


PS_FIELDS = {
    "pid": ("PID", True), "ppid": ("PPID", True), "user": ("USER", False),
    "uid": ("UID", True), "%cpu": ("%CPU", True), "pcpu": ("%CPU", True),
    "%mem": ("%MEM", True), "pmem": ("%MEM", True), "rss": ("RSS", True),
    "rssize": ("RSS", True), "vsz": ("VSZ", True), "stat": ("STAT", False),
    "state": ("S", False), "s": ("S", False), "start": ("START", False),
    "lstart": ("STARTED", False), "stime": ("STIME", False), "time": ("TIME", True),
    "etime": ("ELAPSED", True), "etimes": ("ELAPSED", True), "comm": ("COMMAND", False),
    "ucomm": ("COMMAND", False), "cmd": ("CMD", False), "args": ("COMMAND", False),
    "command": ("COMMAND", False), "tty": ("TT", False), "nlwp": ("NLWP", True),
}


def _ps_value(m: Machine, p: Proc, key: str, now: float) -> str:
    mem_pct = p.rss * 1024 / m.memory * 100
    age = now - p.start
    return {
        "pid": str(p.pid), "ppid": str(p.ppid), "user": p.user, "uid": "0" if p.user == "root"
        else "1000", "%cpu": f"{p.cpu:.1f}", "pcpu": f"{p.cpu:.1f}", "%mem": f"{mem_pct:.1f}",
        "pmem": f"{mem_pct:.1f}", "rss": str(p.rss), "rssize": str(p.rss), "vsz": str(p.vsz),
        "stat": p.stat, "state": p.stat[0], "s": p.stat[0], "start": _fmt_start(p.start, now),
        "stime": _fmt_start(p.start, now), "lstart": time.strftime("%a %b %e %H:%M:%S %Y",
                                                                    time.localtime(p.start)),
        "time": _fmt_time(age * p.cpu / 100), "etime": _etime(age), "etimes": str(int(age)),
        "comm": p.comm, "ucomm": p.comm, "cmd": p.cmd, "args": p.cmd, "command": p.cmd,
        "tty": p.tty, "nlwp": "1" if p.stat.startswith("S") and "l" not in p.stat else "14",
    }.get(key, "-")


@command("ps")
async def ps(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    args = argv[1:]
    fields: list[tuple[str, str | None]] = []
    pids: list[int] | None = None
    comms: list[str] | None = None
    bsd_aux = False
    no_header = False
    sort_key = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("aux", "-aux", "auxf", "auxww", "-ef", "ax", "-e", "-A", "axu", "-eF", "ef"):
            bsd_aux = a not in ("-e", "-A", "-ef", "-eF") and "u" in a or a in ("aux", "axu")
            if a in ("-ef", "-eF"):
                fields = [("user", "UID"), ("pid", None), ("ppid", None), ("%cpu", "C"),
                          ("stime", None), ("tty", "TTY"), ("time", None), ("cmd", None)]
        elif a in ("-p", "--pid", "p") or a.startswith("-p") and len(a) > 2:
            value = a[2:] if a.startswith("-p") and len(a) > 2 else (
                args[i + 1] if i + 1 < len(args) else None)
            if value is None or not re.fullmatch(r"[\d,\s]+", value):
                raise UsageError("error: list of process IDs must follow -p\n\nUsage:\n ps "
                                 "[options]\n\n Try 'ps --help <simple|list|output|threads|misc"
                                 "|all>'\n  or 'ps --help <s|l|o|t|m|a>'\n for additional help "
                                 "text.\n\nFor more details see ps(1).", 1)
            pids = [int(x) for x in re.split(r"[,\s]+", value.strip()) if x]
            if not (a.startswith("-p") and len(a) > 2):
                i += 1
        elif a in ("-C",) and i + 1 < len(args):
            comms = args[i + 1].split(",")
            i += 1
        elif a in ("-o", "o", "--format") or a.startswith("-o") and len(a) > 2 or \
                a.startswith("--format="):
            if a.startswith("--format="):
                value = a.split("=", 1)[1]
            elif a.startswith("-o") and len(a) > 2:
                value = a[2:]
            else:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            for spec in value.split(","):
                key, eq, header = spec.partition("=")
                key = key.strip().lower()
                if key not in PS_FIELDS:
                    raise UsageError(f"error: unknown user-defined format specifier \"{key}\"\n\n"
                                     "Usage:\n ps [options]", 1)
                fields.append((key, header if eq else None))
        elif a.startswith("--sort"):
            sort_key = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args)
                                                           else "")
            if "=" not in a:
                i += 1
        elif a in ("--no-headers", "--no-header", "h"):
            no_header = True
        elif a.isdigit():
            pids = (pids or []) + [int(a)]
        i += 1
    procs = processes(m, now)
    if pids is not None:
        procs = [p for p in procs if p.pid in pids]
    if comms is not None:
        procs = [p for p in procs if p.comm in comms]
    if sort_key:
        desc = sort_key.startswith("-")
        key = sort_key.lstrip("+-")
        numeric = PS_FIELDS.get(key, ("", True))[1]
        procs.sort(key=lambda p: float(_ps_value(m, p, key, now)) if numeric and
                   re.fullmatch(r"[\d.]+", _ps_value(m, p, key, now)) else
                   _ps_value(m, p, key, now), reverse=desc)
    if not fields:
        if bsd_aux:
            fields = [("user", None), ("pid", None), ("%cpu", None), ("%mem", None),
                      ("vsz", None), ("rss", None), ("tty", "TTY"), ("stat", None),
                      ("start", None), ("time", None), ("command", None)]
        else:
            fields = [("pid", None), ("tty", "TTY"), ("time", None), ("comm", "CMD")]
    rows = [[h if h is not None else PS_FIELDS[k][0] for k, h in fields]]
    for p in procs:
        rows.append([_ps_value(m, p, k, now) for k, _ in fields])
    right = {i for i, (k, _) in enumerate(fields) if PS_FIELDS[k][1]}
    if no_header:
        rows = rows[1:]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(len(fields))]
        out = []
        for r in rows:
            cells = []
            for i, c in enumerate(r):
                if i == len(r) - 1:
                    cells.append(c.rjust(widths[i]) if i in right else c)
                else:
                    cells.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
            out.append(" ".join(cells))
        await ctx.write("\n".join(out) + "\n")
    return 0 if procs else 1


@command("pgrep", "pidof")
async def pgrep(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    args = argv[1:]
    exact = argv[0] == "pidof"
    full = listing = count = False
    pattern = None
    for a in args:
        if a.startswith("-") and len(a) > 1:
            exact = exact or "x" in a
            full = full or "f" in a
            listing = listing or "a" in a or "l" in a
            count = count or "c" in a
        else:
            pattern = a
    if pattern is None:
        if argv[0] == "pidof":
            return 1
        raise UsageError("pgrep: no matching criteria specified\nTry `pgrep --help' for more "
                         "information.", 2)
    hits = []
    for p in processes(m, now):
        subject = p.cmd if full else p.comm
        if exact:
            ok = subject == pattern
        else:
            ok = re.search(pattern, subject) is not None
        if ok:
            hits.append(p)
    if argv[0] == "pidof":
        if hits:
            await ctx.write(" ".join(str(p.pid) for p in reversed(hits)) + "\n")
        return 0 if hits else 1
    if count:
        await ctx.write(f"{len(hits)}\n")
    else:
        await ctx.write("".join(f"{p.pid} {p.cmd if 'a' in ''.join(args) else p.comm}\n"
                                if listing else f"{p.pid}\n" for p in hits))
    return 0 if hits else 1


def kill_unit(m: Machine, name: str, signal: str, now: float) -> str | None:
    """The unit's main process gets a signal; systemd restarts it as its unit file says."""
    return effects.kill_unit(m, name, signal, now)


_SIGNALS = {"9": "KILL", "15": "TERM", "1": "HUP", "2": "INT", "KILL": "KILL", "TERM": "TERM",
            "HUP": "HUP", "INT": "INT", "SIGKILL": "KILL", "SIGTERM": "TERM", "SIGHUP": "HUP",
            "0": "0"}


def _signal_target(m: Machine, pid: int) -> str | None:
    for unit in (m.kubelet, m.containerd, m.chronyd):
        if unit.pid == pid and unit.active in ("active", "deactivating"):
            return unit.name
    return None


@command("kill")
async def kill(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    args = argv[1:]
    sig = "TERM"
    if args and args[0] == "-l":
        await ctx.write(" 1) SIGHUP\t 2) SIGINT\t 3) SIGQUIT\t 9) SIGKILL\t15) SIGTERM\n")
        return 0
    if args and args[0] in ("-s", "-n") and len(args) > 1:
        sig = _SIGNALS.get(args[1].upper(), args[1])
        args = args[2:]
    elif args and args[0].startswith("-"):
        sig = _SIGNALS.get(args[0][1:].upper(), args[0][1:])
        args = args[1:]
    if not args:
        raise UsageError("kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | jobspec ..."
                         " or kill -l [sigspec]", 2)
    status = 0
    pids = {p.pid for p in processes(m, now)}
    for a in args:
        if not a.lstrip("-").isdigit():
            await ctx.error(f"bash: kill: {a}: arguments must be process or job IDs\n")
            status = 1
            continue
        pid = int(a)
        if pid not in pids:
            await ctx.error(f"bash: kill: ({pid}) - No such process\n")
            status = 1
            continue
        if not ctx.root:
            await ctx.error(f"bash: kill: ({pid}) - Operation not permitted\n")
            status = 1
            continue
        if sig == "0":
            continue
        unit = _signal_target(m, pid)
        if pid == 1:
            continue
        if unit is not None:
            if unit == "containerd" and sig == "TERM" and "runtime_hung" in m.faults:
                continue  # a deadlocked containerd does not act on SIGTERM
            err = kill_unit(m, unit, sig, now)
            if err:
                await ctx.error(err + "\n")
                status = 1
    return status


@command("pkill", "killall")
async def pkill(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    sig = "TERM"
    exact = argv[0] == "killall"
    full = False
    pattern = None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a in ("-s", "--signal") and args:
            sig = _SIGNALS.get(args.pop(0).upper(), "TERM")
        elif a.startswith("-") and a[1:].upper() in _SIGNALS:
            sig = _SIGNALS[a[1:].upper()]
        elif a.startswith("-") and len(a) > 1:
            exact = exact or "x" in a
            full = full or "f" in a
        else:
            pattern = a
    if pattern is None:
        raise UsageError(f"{argv[0]}: no matching criteria specified", 2)
    hits = [p for p in processes(m, now)
            if ((p.cmd if full else p.comm) == pattern if exact else
                re.search(pattern, p.cmd if full else p.comm))]
    if not hits:
        if argv[0] == "killall":
            await ctx.error(f"{pattern}: no process found\n")
        return 1
    if not ctx.root:
        for p in hits:
            await ctx.error(f"{argv[0]}: killing pid {p.pid} failed: Operation not permitted\n")
        return 1
    for p in hits:
        unit = _signal_target(m, p.pid)
        if unit is not None:
            if unit == "containerd" and sig == "TERM" and "runtime_hung" in m.faults:
                continue
            kill_unit(m, unit, sig, now)
    return 0


@command("top")
async def top(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    procs = processes(m, now)
    la = shell_fs.loadavg(m, now)
    up = _uptime_text(now - m.boot_time)
    mem = shell_fs._mem_kb(m)
    running = sum(1 for p in procs if p.stat.startswith("R"))
    sleeping = len(procs) - running
    wa = min(95.0, m.io_await_ms / 2) if m.io_await_ms > 50 else 0.1
    us = min(90.0, sum(p.cpu for p in procs) / m.cpus)
    node_now = m.node_now(now)
    lines = [
        f"top - {time.strftime('%H:%M:%S', time.localtime(node_now))} up {up},  0 users,  "
        f"load average: {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f}",
        f"Tasks: {len(procs):>3} total, {running:>3} running, {sleeping:>3} sleeping,   0 stopped,"
        f"   0 zombie",
        f"%Cpu(s): {us:4.1f} us,  0.8 sy,  0.0 ni, {max(0.0, 100 - us - wa - 0.8):4.1f} id, "
        f"{wa:4.1f} wa,  0.0 hi,  0.1 si,  0.0 st",
        f"MiB Mem : {mem['total'] / 1024:8.1f} total, {mem['free'] / 1024:8.1f} free, "
        f"{mem['used'] / 1024:8.1f} used, {mem['cache'] / 1024:8.1f} buff/cache",
        f"MiB Swap: {mem['swap_total'] / 1024:8.1f} total, {mem['swap_free'] / 1024:8.1f} free, "
        f"{mem['swap_used'] / 1024:8.1f} used. {mem['avail'] / 1024:8.1f} avail Mem",
        "",
        "    PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND",
    ]
    for p in sorted(procs, key=lambda p: -p.cpu):
        secs = (now - p.start) * p.cpu / 100
        lines.append(f"{p.pid:>7} {p.user[:8]:<8}  20   0 {p.vsz:>7} {p.rss:>6} {p.rss // 4:>6} "
                     f"{p.stat[0]} {p.cpu:5.1f} {p.rss * 1024 / m.memory * 100:5.1f} "
                     f"{int(secs // 60):>5}:{secs % 60:05.2f} {p.comm}")
    await ctx.write("\n".join(lines) + "\n")
    return 0


# -- memory, load, uptime --------------------------------------------------------------------------
def _human_free(kib: int) -> str:
    """procps' -h: 0B, 512Ki, 3.2Gi, 15Gi."""
    value = kib * 1024.0
    if value < 1024:
        return f"{int(value)}B"
    for suffix in ("Ki", "Mi", "Gi", "Ti"):
        value /= 1024
        if value < 1024 or suffix == "Ti":
            return f"{value:.1f}{suffix}" if value < 10 else f"{round(value)}{suffix}"
    return f"{value:.1f}Ti"


@command("free")
async def free(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    k = shell_fs._mem_kb(m)
    flags = "".join(a.lstrip("-") for a in argv[1:] if a.startswith("-"))
    if "h" in flags or "human" in flags:
        conv = _human_free
    elif "g" in flags or "giga" in flags:
        conv = lambda v: str(v // (1024 * 1024))  # noqa: E731
    elif "m" in flags or "mega" in flags:
        conv = lambda v: str(v // 1024)  # noqa: E731
    elif "b" in flags or "bytes" in flags:
        conv = lambda v: str(v * 1024)  # noqa: E731
    else:
        conv = str
    mem = [k["total"], k["used"], k["free"], k["shared"], k["cache"], k["avail"]]
    swap = [k["swap_total"], k["swap_used"], k["swap_free"]]
    out = "               total        used        free      shared  buff/cache   available\n"
    out += "Mem:    " + "".join(f" {conv(v):>11}" for v in mem) + "\n"
    out += "Swap:   " + "".join(f" {conv(v):>11}" for v in swap) + "\n"
    await ctx.write(out)
    return 0


def _uptime_text(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes = s // 60
    out = ""
    if days:
        out += f"{days} day{'s' if days != 1 else ''}, "
    if hours:
        out += f"{hours:2d}:{minutes:02d}"
    else:
        out += f"{minutes} min"
    return out


@command("uptime")
async def uptime(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    node_now = m.node_now(now)
    if "-p" in argv:
        s = int(now - m.boot_time)
        parts = []
        d, s = divmod(s, 86400)
        h, s = divmod(s, 3600)
        mi = s // 60
        if d:
            parts.append(f"{d} day{'s' if d != 1 else ''}")
        if h:
            parts.append(f"{h} hour{'s' if h != 1 else ''}")
        parts.append(f"{mi} minute{'s' if mi != 1 else ''}")
        await ctx.write("up " + ", ".join(parts) + "\n")
        return 0
    if "-s" in argv:
        await ctx.write(time.strftime("%Y-%m-%d %H:%M:%S\n",
                                      time.localtime(m.boot_time + m.clock_offset)))
        return 0
    la = shell_fs.loadavg(m, now)
    await ctx.write(f" {time.strftime('%H:%M:%S', time.localtime(node_now))} up "
                    f"{_uptime_text(now - m.boot_time)},  0 users,  load average: {la[0]:.2f}, "
                    f"{la[1]:.2f}, {la[2]:.2f}\n")
    return 0


@command("nproc")
async def nproc(ctx: Ctx, argv: list[str]) -> int:
    await ctx.write(f"{ctx.machine.cpus}\n")
    return 0


@command("vmstat")
async def vmstat(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    k = shell_fs._mem_kb(m)
    la = shell_fs.loadavg(m, ctx.now())
    wa = min(95, int(m.io_await_ms / 2)) if m.io_await_ms > 50 else 0
    blocked = int(la[0]) if "runtime_hung" in m.faults or wa else 0
    await ctx.write("procs -----------memory---------- ---swap-- -----io---- -system-- "
                    "------cpu-----\n"
                    " r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id "
                    "wa st\n"
                    f"{1:>2} {blocked:>2} {k['swap_used']:>6} {k['free']:>6} {k['buffers']:>6} "
                    f"{k['cache']:>6}    0    0 {12 + wa * 40:>5} {48 + wa * 90:>5} "
                    f"{900:>4} {1800:>4}  3  1 {max(0, 95 - wa):>2} {wa:>2}  0\n")
    return 0


# -- disks -----------------------------------------------------------------------------------------
def _human_df(n: float) -> str:
    """coreutils' human_readable with -h: ceiling, one decimal under 10."""
    if n < 1024:
        return f"{int(n)}" if n else "0"
    for suffix in "KMGTPE":
        n /= 1024
        if n < 1024 or suffix == "E":
            if n < 10:
                v = math.ceil(n * 10) / 10
                if v >= 10:
                    return f"{math.ceil(v)}{suffix}"
                return f"{v:.1f}{suffix}"
            return f"{math.ceil(n)}{suffix}"
    return str(n)


def _mounts(m: Machine) -> list[dict]:
    fs = m.filesystem()
    mem = m.memory
    return [
        {"dev": "udev", "type": "devtmpfs", "size": mem // 2, "used": 0, "mount": "/dev",
         "inodes": mem // 8192, "iused": 412},
        {"dev": "tmpfs", "type": "tmpfs", "size": mem // 10, "used": 1_200_000, "mount": "/run",
         "inodes": mem // 40960, "iused": 780},
        {"dev": fs.device, "type": fs.fstype, "size": fs.size, "used": fs.used, "mount": "/",
         "inodes": fs.inodes, "iused": fs.iused, "avail": fs.avail},
        {"dev": "tmpfs", "type": "tmpfs", "size": mem // 2, "used": 0, "mount": "/dev/shm",
         "inodes": mem // 8192, "iused": 1},
        {"dev": "tmpfs", "type": "tmpfs", "size": 5 * MiB, "used": 0, "mount": "/run/lock",
         "inodes": mem // 8192, "iused": 3},
        {"dev": fs.device.replace("p1", "p15"), "type": "vfat", "size": 124 * MiB,
         "used": 12 * MiB, "mount": "/boot/efi", "inodes": 0, "iused": 0},
        {"dev": "tmpfs", "type": "tmpfs", "size": mem // 10, "used": 0, "mount": "/run/user/0",
         "inodes": mem // 40960, "iused": 20},
    ]


def _mount_for(mounts: list[dict], path: str) -> dict:
    best = mounts[2]
    for mt in mounts:
        mp = mt["mount"]
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and \
                len(mp) > len(best["mount"]):
            best = mt
    return best


@command("df")
async def df(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    flags = set()
    paths = []
    for a in argv[1:]:
        if a.startswith("--"):
            flags.add({"--human-readable": "h", "--inodes": "i", "--print-type": "T",
                       "--si": "H"}.get(a, a))
        elif a.startswith("-"):
            flags.update(a[1:])
        else:
            paths.append(a)
    mounts = _mounts(m)
    chosen = []
    status = 0
    for p in paths:
        path = ctx.abspath(p)
        if shell_fs.stat(m, path, ctx.now()) is None:
            await ctx.error(f"df: {p}: No such file or directory\n")
            status = 1
            continue
        chosen.append(_mount_for(mounts, path))
    if not paths:
        chosen = mounts
    elif not chosen:
        return status
    inodes = "i" in flags
    human = "h" in flags

    def fmt(v: int) -> str:
        if human:
            return _human_df(v) if not inodes else _human_inodes(v)
        return str(v if inodes else math.ceil(v / 1024))

    if inodes:
        head = ["Filesystem", "Inodes", "IUsed", "IFree", "IUse%", "Mounted on"]
    elif human:
        head = ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"]
    else:
        head = ["Filesystem", "1K-blocks", "Used", "Available", "Use%", "Mounted on"]
    if "T" in flags:
        head.insert(1, "Type")
    rows = [head]
    for mt in chosen:
        if inodes:
            total, used = mt["inodes"], mt["iused"]
            free_ = total - used
            pct = "-" if not total else f"{math.ceil(used * 100 / total)}%"
        else:
            total, used = mt["size"], mt["used"]
            free_ = mt.get("avail", total - used)
            pct = f"{math.ceil(used * 100 / (used + free_))}%" if used + free_ else "-"
        row = [mt["dev"], fmt(total), fmt(used), fmt(free_), pct, mt["mount"]]
        if "T" in flags:
            row.insert(1, mt["type"])
        rows.append(row)
    minimum = {"Filesystem": 14, "Type": 4, "Use%": 4, "IUse%": 5, "Mounted on": 0}
    widths = [max([minimum.get(head[i], 5)] + [len(r[i]) for r in rows])
              for i in range(len(head))]
    out = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            left = i == 0 or i == len(r) - 1 or (head[i] == "Type")
            cells.append(c if i == len(r) - 1 else c.ljust(widths[i]) if left
                         else c.rjust(widths[i]))
        out.append(" ".join(cells))
    await ctx.write("\n".join(out) + "\n")
    return status


def _human_inodes(n: int) -> str:
    if n < 1024:
        return str(n)
    return _human_df(n)


@command("du")
async def du(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and not a.startswith("--"))
    paths = [a for a in argv[1:] if not a.startswith("-")] or ["."]
    status = 0
    for p in paths:
        path = ctx.abspath(p)
        if shell_fs.stat(m, path, ctx.now()) is None:
            await ctx.error(f"du: cannot access '{p}': No such file or directory\n")
            status = 1
            continue
        size = _du_size(m, path)
        text = _human_df(size) if "h" in flags else str(math.ceil(size / 1024))
        await ctx.write(f"{text}\t{p}\n")
    return status


def _du_size(m: Machine, path: str) -> int:
    table = {
        "/var/log/journal": m.journal_bytes,
        "/var/log": m.journal_bytes + m.log_bytes,
        "/var/log/pods": int(m.log_bytes * 0.6),
        "/var/log/containers": 4096 * (len(m.pods) + 1),
        "/var/lib/containerd": m.images_bytes,
        "/var/lib/kubelet": 40 * MiB + len(m.pods) * 2 * MiB,
        "/var/lib": m.images_bytes + 40 * MiB + len(m.pods) * 2 * MiB,
        "/var": m.journal_bytes + m.log_bytes + m.images_bytes + 60 * MiB,
        "/": m.disk_used(),
        "/opt/cni/bin": 4 * MiB * len(m.cni_bin),
        "/swap.img": 4 * GiB,
    }
    for key in sorted(table, key=len, reverse=True):
        if path == key:
            return table[key]
    e = shell_fs.stat(m, path, 0)
    if e is not None and e.kind != "dir":
        return max(4096, e.size)
    return 4096


# -- swap ------------------------------------------------------------------------------------------
@command("swapon")
async def swapon(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    args = argv[1:]
    if "-a" in args or any(not a.startswith("-") for a in args):
        if not ctx.root:
            await ctx.error("swapon: /swap.img: swapon failed: Operation not permitted\n")
            return 1
        effects.swapon(m, ctx.now())
        return 0
    if "-s" in args or "--summary" in args:
        await ctx.write(shell_fs.proc_swaps(m))
        return 0
    if not m.swap_on:
        return 0
    k = shell_fs._mem_kb(m)
    used = _human_df(k["swap_used"] * 1024)
    await ctx.write(f"NAME      TYPE SIZE USED PRIO\n/swap.img file   4G {used:>4}   -2\n")
    return 0


@command("swapoff")
async def swapoff(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    if len(argv) < 2:
        raise UsageError("\nUsage:\n swapoff [options] [<spec>]\n\nDisable devices and files for "
                         "paging and swapping.", 2)
    if not ctx.root:
        await ctx.error("swapoff: /swap.img: swapoff failed: Operation not permitted\n")
        return 1
    effects.swapoff(m, ctx.now())
    return 0


# -- kernel ----------------------------------------------------------------------------------------
MODULE_INFO = {"vxlan": (98304, ["ip6_udp_tunnel", "udp_tunnel"]),
               "overlay": (151552, []), "br_netfilter": (32768, ["bridge"]),
               "bridge": (311296, ["stp", "llc"]), "stp": (16384, ["llc"]), "llc": (16384, []),
               "nf_conntrack": (176128, ["nf_nat", "xt_conntrack"]),
               "ip_tables": (32768, []), "xt_conntrack": (16384, []),
               "nf_nat": (57344, []), "veth": (40960, []), "ip6_udp_tunnel": (16384, []),
               "udp_tunnel": (32768, []), "ipip": (32768, []), "wireguard": (110592, [])}


@command("lsmod")
async def lsmod(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    users: dict[str, list[str]] = {}
    for mod in m.modules:
        for dep in MODULE_INFO.get(mod, (0, []))[1]:
            if dep in m.modules:
                users.setdefault(dep, []).append(mod)
    lines = ["Module                  Size  Used by"]
    for mod in sorted(m.modules, key=lambda x: _n(x, 0, 10**6)):
        size = MODULE_INFO.get(mod, (_n(mod, 16, 200) * 1024, []))[0]
        holders = sorted(users.get(mod, []))
        count = len(holders) + (1 if mod in ("overlay", "nf_conntrack") else 0)
        lines.append(f"{mod:<19} {size:>8}  {count}" + (f" {','.join(holders)}" if holders
                                                         else ""))
    await ctx.write("\n".join(lines) + "\n")
    return 0


@command("modprobe", "insmod")
async def modprobe(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = [a for a in argv[1:] if not a.startswith("-")]
    remove = any(a in ("-r", "--remove") for a in argv[1:])
    if not args:
        raise UsageError("modprobe: ERROR: missing parameters. See -h.", 1)
    module = args[0].removesuffix(".ko")
    if remove:
        if not ctx.root:
            await ctx.error(f"modprobe: ERROR: could not remove '{module}': Operation not "
                            f"permitted\n")
            return 1
        if module in m.modules:
            await ctx.error(f"modprobe: FATAL: Module {module} is in use.\n")
            return 1
        return 0
    if not ctx.root:
        if module in m.modules:
            return 0
        await ctx.error(f"modprobe: ERROR: could not insert '{module}': Operation not "
                        f"permitted\n")
        return 1
    err = effects.modprobe(m, module, ctx.now())
    if err:
        await ctx.error(err + "\n")
        return 1
    return 0


@command("rmmod")
async def rmmod(ctx: Ctx, argv: list[str]) -> int:
    return await modprobe(ctx, ["modprobe", "-r"] + argv[1:])


@command("dmesg")
async def dmesg(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    flags = set()
    level = None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a in ("-l", "--level") and args:
            level = args.pop(0).split(",")
        elif a.startswith("--level="):
            level = a.split("=", 1)[1].split(",")
        elif a.startswith("--"):
            flags.add({"--ctime": "T", "--human": "H", "--follow": "w", "--nopager": "",
                       "--kernel": "k"}.get(a, a))
        elif a.startswith("-"):
            flags.update(a[1:])
    if not ctx.root:
        await ctx.error("dmesg: read kernel buffer failed: Operation not permitted\n")
        return 1
    entries = kernel_entries(m)
    if level:
        wanted = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5,
                  "info": 6, "debug": 7}
        allowed = {wanted.get(x, -1) for x in level}
        entries = [e for e in entries if e.priority in allowed]
    out = []
    for e in entries:
        rel = e.ts - m.boot_time
        if "T" in flags:
            out.append(f"[{time.strftime('%a %b %e %H:%M:%S %Y', time.localtime(e.ts))}] "
                       f"{e.message}\n")
        else:
            out.append(f"[{rel:12.6f}] {e.message}\n")
    await ctx.write("".join(out))
    return 0


@command("uname")
async def uname(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-")) or "s"
    if "a" in flags:
        await ctx.write(f"Linux {m.name} {m.kernel} #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 "
                        f"(2024-09-30) x86_64 GNU/Linux\n")
        return 0
    parts = []
    for f, value in (("s", "Linux"), ("n", m.name), ("r", m.kernel),
                     ("v", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)"),
                     ("m", "x86_64"), ("o", "GNU/Linux")):
        if f in flags:
            parts.append(value)
    await ctx.write(" ".join(parts) + "\n")
    return 0


@command("hostname")
async def hostname(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    if "-I" in argv or "-i" in argv:
        await ctx.write(f"{m.ip} \n")
    else:
        await ctx.write(m.name + "\n")
    return 0


@command("whoami")
async def whoami(ctx: Ctx, argv: list[str]) -> int:
    await ctx.write(ctx.username + "\n")
    return 0


@command("id")
async def id_(ctx: Ctx, argv: list[str]) -> int:
    if ctx.root:
        text = "uid=0(root) gid=0(root) groups=0(root)"
        if "-u" in argv:
            text = "0"
        elif "-un" in argv or ("-u" in argv and "-n" in argv):
            text = "root"
    else:
        u = ctx.session.user
        text = f"uid=1000({u}) gid=1000({u}) groups=1000({u}),4(adm),27(sudo)"
        if "-u" in argv:
            text = "1000"
        elif "-un" in argv:
            text = u
    await ctx.write(text + "\n")
    return 0


@command("date")
async def date(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    node_now = m.node_now(ctx.now())
    args = argv[1:]
    utc = False
    fmt = "%a %b %e %H:%M:%S %Z %Y"
    when = node_now
    while args:
        a = args.pop(0)
        if a in ("-u", "--utc", "--universal"):
            utc = True
        elif a.startswith("+"):
            fmt = a[1:]
        elif a in ("-d", "--date") and args:
            from lab.shell_systemd import parse_time

            text = args.pop(0)
            parsed = parse_time(text, node_now)
            if parsed is None:
                raise UsageError(f"date: invalid date '{text}'", 1)
            when = parsed
        elif a in ("-R", "--rfc-email"):
            fmt = "%a, %d %b %Y %H:%M:%S %z"
        elif a.startswith("-I") or a.startswith("--iso-8601"):
            fmt = "%Y-%m-%dT%H:%M:%S%:z" if "seconds" in a or a == "-Is" else "%Y-%m-%d"
        elif a in ("-s", "--set"):
            await ctx.error("date: cannot set date: Operation not permitted\n")
            return 1
    t = time.gmtime(when) if utc else time.localtime(when)
    fmt = fmt.replace("%N", f"{int((when % 1) * 1e9):09d}").replace("%s", str(int(when)))
    fmt = fmt.replace("%:z", time.strftime("%z", t)[:3] + ":" + time.strftime("%z", t)[3:])
    if utc:
        fmt = fmt.replace("%Z", "UTC")
    await ctx.write(time.strftime(fmt, t) + "\n")
    return 0


# -- files -----------------------------------------------------------------------------------------
def _ls_time(ts: float, now: float) -> str:
    if abs(now - ts) < 180 * 86400:
        return time.strftime("%b %e %H:%M", time.localtime(ts))
    return time.strftime("%b %e  %Y", time.localtime(ts))


@command("ls")
async def ls(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    flags = set()
    paths = []
    for a in argv[1:]:
        if a.startswith("--"):
            flags.add({"--all": "a", "--human-readable": "h"}.get(a, ""))
        elif a.startswith("-") and len(a) > 1:
            flags.update(a[1:])
        else:
            paths.append(a)
    long = "l" in flags or "n" in flags
    show_all = "a" in flags
    status = 0
    targets = paths or ["."]
    files_first = []
    dirs = []
    for p in targets:
        path = ctx.abspath(p)
        e = shell_fs.stat(m, path, now)
        if e is None:
            await ctx.error(f"ls: cannot access '{p}': No such file or directory\n")
            status = 2
            continue
        if e.kind == "dir" and "d" not in flags:
            if not ctx.root and path in ("/root", "/var/lib/kubelet/pki") and \
                    path.startswith("/root"):
                await ctx.error(f"ls: cannot open directory '{p}': Permission denied\n")
                status = 2
                continue
            dirs.append((p, path))
        else:
            files_first.append((p, e))

    def fmt_entries(entries: list[tuple[str, shell_fs.Entry]], total: bool) -> str:
        if not long:
            return "".join(name + "\n" for name, _ in entries) if entries else ""
        rows = []
        for name, e in entries:
            size = e.size
            if e.kind == "dir":
                size = 4096
            size_text = _human_df(size) if "h" in flags else str(size)
            links = "2" if e.kind == "dir" else "1"
            label = name + (f" -> {e.target}" if e.kind == "link" else "")
            owner = "0" if "n" in flags else e.owner
            rows.append([e.mode, links, owner, owner, size_text, _ls_time(e.mtime or now, now),
                         label])
        out = ""
        if total:
            blocks = sum(math.ceil(max(0, e.size) / 4096) * 4 for _, e in entries)
            out += f"total {_human_df(blocks * 1024) if 'h' in flags else blocks}\n"
        if rows:
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                out += " ".join([r[0], r[1].rjust(widths[1]), r[2].ljust(widths[2]),
                                 r[3].ljust(widths[3]), r[4].rjust(widths[4]), r[5], r[6]]) + "\n"
        return out

    out = fmt_entries([(p, e) for p, e in files_first], False)
    for _i, (label, path) in enumerate(dirs):
        listing = shell_fs.entries_in(m, path, now)
        if listing is None:
            continue
        children, self_entry = listing
        entries = [(c.path.rsplit("/", 1)[1], c) for c in children]
        if not show_all:
            entries = [(n, e) for n, e in entries if not n.startswith(".")]
        else:
            parent = shell_fs.stat(m, path.rsplit("/", 1)[0] or "/", now) or self_entry
            entries = [(".", self_entry), ("..", parent)] + entries
        if len(targets) > 1:
            out += ("\n" if out else "") + f"{label}:\n"
        out += fmt_entries(entries, True)
    await ctx.write(out)
    return status


@command("stat")
async def stat_cmd(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    status = 0
    for p in [a for a in argv[1:] if not a.startswith("-")]:
        e = shell_fs.stat(m, ctx.abspath(p), now)
        if e is None:
            await ctx.error(f"stat: cannot statx '{p}': No such file or directory\n")
            status = 1
            continue
        kind = {"file": "regular file", "dir": "directory", "link": "symbolic link",
                "socket": "socket"}[e.kind]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000000 %z", time.localtime(e.mtime or now))
        await ctx.write(f"  File: {p}{' -> ' + e.target if e.kind == 'link' else ''}\n"
                        f"  Size: {e.size:<15} Blocks: {math.ceil(e.size / 512):<10} IO Block: "
                        f"4096   {kind}\nAccess: (0{_octal(e.mode)}/{e.mode})  Uid: (    0/    "
                        f"root)   Gid: (    0/    root)\nModify: {stamp}\nChange: {stamp}\n")
    return status


def _octal(mode: str) -> str:
    bits = mode[1:10]
    out = ""
    for i in range(0, 9, 3):
        chunk = bits[i:i + 3]
        out += str((chunk[0] == "r") * 4 + (chunk[1] == "w") * 2 + (chunk[2] in "xst") * 1)
    return out


@command("rm")
async def rm(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    force = any(a.startswith("-") and "f" in a for a in argv[1:])
    status = 0
    for p in [a for a in argv[1:] if not a.startswith("-")]:
        path = ctx.abspath(p)
        if path not in m.files:
            if shell_fs.stat(m, path, ctx.now()) is not None:
                await ctx.error(f"rm: cannot remove '{p}': Permission denied\n")
                status = 1
            elif not force:
                await ctx.error(f"rm: cannot remove '{p}': No such file or directory\n")
                status = 1
            continue
        if shell_fs.write_problem(m, path, ctx.uid, ctx.now()):
            await ctx.error(f"rm: cannot remove '{p}': Permission denied\n")
            status = 1
            continue
        effects.remove_file(m, path, ctx.now())
    return status


@command("touch")
async def touch(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    status = 0
    for p in [a for a in argv[1:] if not a.startswith("-")]:
        path = ctx.abspath(p)
        if shell_fs.stat(m, path, ctx.now()) is not None:
            continue
        problem = shell_fs.write_problem(m, path, ctx.uid, ctx.now())
        if problem:
            await ctx.error(f"touch: cannot touch '{p}': {problem}\n")
            status = 1
            continue
        shell_fs.write(m, path, "", ctx.now())
    return status


@command("cp")
async def cp(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = [a for a in argv[1:] if not a.startswith("-")]
    if len(args) < 2:
        raise UsageError("cp: missing destination file operand", 1)
    src, dst = ctx.abspath(args[0]), ctx.abspath(args[-1])
    text = shell_fs.read_file(m, src, ctx.now())
    if text is None:
        await ctx.error(f"cp: cannot stat '{args[0]}': No such file or directory\n")
        return 1
    if shell_fs.is_dir(m, dst, ctx.now()):
        dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[1]
    problem = shell_fs.write_problem(m, dst, ctx.uid, ctx.now())
    if problem:
        await ctx.error(f"cp: cannot create regular file '{args[-1]}': {problem}\n")
        return 1
    shell_fs.write(m, dst, text, ctx.now())
    return 0


@command("mkdir")
async def mkdir(ctx: Ctx, argv: list[str]) -> int:
    return 0


@command("find")
async def find(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    root = ctx.abspath(argv[1]) if len(argv) > 1 and not argv[1].startswith("-") else \
        ctx.session.cwd
    name_pat = None
    if "-name" in argv:
        i = argv.index("-name")
        name_pat = argv[i + 1] if i + 1 < len(argv) else None
    import fnmatch

    out = []

    def walk(path: str) -> None:
        if name_pat is None or fnmatch.fnmatch(path.rsplit("/", 1)[-1], name_pat):
            out.append(path)
        children = shell_fs.listdir(m, path, now)
        for c in children or []:
            walk(path.rstrip("/") + "/" + c)

    if shell_fs.stat(m, root, now) is None:
        await ctx.error(f"find: '{argv[1]}': No such file or directory\n")
        return 1
    walk(root)
    await ctx.write("".join(p + "\n" for p in out))
    return 0


# -- certificates ----------------------------------------------------------------------------------
def _openssl_date(dt) -> str:
    return dt.strftime("%b %e %H:%M:%S %Y GMT").replace("  ", "  ")


def _name_text(name) -> str:
    from cryptography.x509.oid import NameOID

    short = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O",
             NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.COUNTRY_NAME: "C",
             NameOID.LOCALITY_NAME: "L", NameOID.STATE_OR_PROVINCE_NAME: "ST"}
    return ", ".join(f"{short.get(a.oid, a.oid.dotted_string)} = {a.value}" for a in name)


@command("openssl")
async def openssl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    if not args:
        return 0
    if args[0] == "version":
        await ctx.write("OpenSSL 3.0.15 3 Sep 2024 (Library: OpenSSL 3.0.15 3 Sep 2024)\n")
        return 0
    if args[0] != "x509":
        await ctx.error(f"Invalid command '{args[0]}'; type \"help\" for a list.\n")
        return 1
    opts = args[1:]
    infile = None
    outputs: list[str] = []
    noout = False
    checkend = None
    i = 0
    while i < len(opts):
        a = opts[i]
        if a == "-in" and i + 1 < len(opts):
            infile = opts[i + 1]
            i += 1
        elif a == "-noout":
            noout = True
        elif a in ("-dates", "-enddate", "-startdate", "-subject", "-issuer", "-text",
                   "-serial", "-fingerprint", "-ext"):
            outputs.append(a)
            if a == "-ext":
                i += 1
        elif a == "-checkend" and i + 1 < len(opts):
            checkend = int(opts[i + 1])
            i += 1
        elif a in ("-nameopt", "-inform", "-outform") and i + 1 < len(opts):
            i += 1
        i += 1
    if infile is None:
        data = await ctx.stdin.read_all()
        label = "stdin"
    else:
        path = ctx.abspath(infile)
        problem = shell_fs.read_error(m, path, ctx.now(), ctx.uid)
        if problem:
            await ctx.error(f"Could not open file or uri for loading certificate from {infile}\n"
                            f"40F7A1B2C37F0000:error:16000069:STORE routines:ossl_store_get0_"
                            f"loader_int:unregistered scheme:../crypto/store/store_register.c:237"
                            f":scheme=file\n40F7A1B2C37F0000:error:80000002:system library:"
                            f"file_open:{problem}:../providers/implementations/storemgmt/"
                            f"file_store.c:267:calling stat({infile})\n"
                            f"Unable to load certificate\n")
            return 1
        data = shell_fs.read_file(m, path, ctx.now()) or ""
        label = infile
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S)
    try:
        cert = x509.load_pem_x509_certificate(match.group(0).encode()) if match else None
    except ValueError:
        cert = None
    if cert is None:
        await ctx.error(f"Could not read certificate from {label}\nUnable to load certificate\n")
        return 1
    out = []
    for o in outputs:
        if o == "-dates":
            out.append(f"notBefore={_openssl_date(cert.not_valid_before_utc)}")
            out.append(f"notAfter={_openssl_date(cert.not_valid_after_utc)}")
        elif o == "-startdate":
            out.append(f"notBefore={_openssl_date(cert.not_valid_before_utc)}")
        elif o == "-enddate":
            out.append(f"notAfter={_openssl_date(cert.not_valid_after_utc)}")
        elif o == "-subject":
            out.append(f"subject={_name_text(cert.subject)}")
        elif o == "-issuer":
            out.append(f"issuer={_name_text(cert.issuer)}")
        elif o == "-serial":
            out.append(f"serial={cert.serial_number:X}")
        elif o == "-fingerprint":
            fp = cert.fingerprint(hashes.SHA1()).hex().upper()
            out.append("SHA1 Fingerprint=" + ":".join(fp[i:i + 2] for i in range(0, 40, 2)))
        elif o == "-text":
            out.append(_cert_text(cert))
    status = 0
    if checkend is not None:
        node_now = m.node_now(ctx.now())
        if cert.not_valid_after_utc.timestamp() < node_now + checkend:
            out.append("Certificate will expire")
            status = 1
        else:
            out.append("Certificate will not expire")
    if not noout and not outputs and checkend is None:
        out.append(match.group(0))
    elif not noout and outputs:
        out.append(match.group(0))
    await ctx.write("".join(line + "\n" for line in out))
    return status


def _cert_text(cert) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_text = (f"            Public Key Algorithm: id-ecPublicKey\n"
                    f"                Public-Key: ({key.curve.key_size} bit)\n"
                    f"                ASN1 OID: prime256v1\n                NIST CURVE: P-256")
    elif isinstance(key, rsa.RSAPublicKey):
        key_text = (f"            Public Key Algorithm: rsaEncryption\n"
                    f"                Public-Key: ({key.key_size} bit)")
    else:
        key_text = "            Public Key Algorithm: unknown"
    serial = f"{cert.serial_number:x}"
    serial = ":".join(serial[i:i + 2] for i in range(0, len(serial), 2))
    lines = [
        "Certificate:", "    Data:", "        Version: 3 (0x2)", "        Serial Number:",
        f"            {serial}",
        f"        Signature Algorithm: {cert.signature_algorithm_oid._name}",
        f"        Issuer: {_name_text(cert.issuer)}", "        Validity",
        f"            Not Before: {_openssl_date(cert.not_valid_before_utc)}",
        f"            Not After : {_openssl_date(cert.not_valid_after_utc)}",
        f"        Subject: {_name_text(cert.subject)}", "        Subject Public Key Info:",
        key_text, "        X509v3 extensions:",
    ]
    for ext in cert.extensions:
        crit = " critical" if ext.critical else ""
        name = ext.oid._name
        value = ext.value
        if isinstance(value, x509.ExtendedKeyUsage):
            text = ", ".join({"clientAuth": "TLS Web Client Authentication",
                              "serverAuth": "TLS Web Server Authentication"}.get(u._name, u._name)
                             for u in value)
        elif isinstance(value, x509.KeyUsage):
            text = "Digital Signature" + (", Key Encipherment" if value.key_encipherment else "")
        elif isinstance(value, x509.BasicConstraints):
            text = f"CA:{'TRUE' if value.ca else 'FALSE'}"
        elif isinstance(value, x509.SubjectAlternativeName):
            text = ", ".join(f"DNS:{v}" for v in value.get_values_for_type(x509.DNSName)) + \
                "".join(f", IP Address:{v}" for v in value.get_values_for_type(x509.IPAddress))
        else:
            text = str(value)[:80]
        label = (name.replace('extendedKeyUsage', 'Extended Key Usage')
                 .replace('keyUsage', 'Key Usage')
                 .replace('basicConstraints', 'Basic Constraints')
                 .replace('subjectAltName', 'Subject Alternative Name'))
        lines.append(f"            X509v3 {label}:{crit}")
        lines.append(f"                {text.strip(', ')}")
    lines.append(f"    Signature Algorithm: {cert.signature_algorithm_oid._name}")
    sig = cert.signature.hex()
    lines.append("    Signature Value:")
    for i in range(0, len(sig), 36):
        lines.append("        " + ":".join(sig[j:j + 2] for j in range(i, min(i + 36, len(sig)),
                                                                      2)))
    return "\n".join(lines)


@command("kubeadm")
async def kubeadm(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    if args[:1] == ["version"]:
        v = m.kubelet_version.lstrip("v")
        await ctx.write(f'kubeadm version: &version.Info{{Major:"1", Minor:"{v.split(".")[1]}", '
                        f'GitVersion:"v{v}", GitTreeState:"clean", GoVersion:"go1.22.7", '
                        f'Compiler:"gc", Platform:"linux/amd64"}}\n')
        return 0
    if args[:1] == ["alpha"] and len(args) > 1:
        await ctx.error(f'unknown command "{args[1]}" for "kubeadm alpha"\nTo see the stack trace '
                        f'of this error execute with --v=5 or higher\n')
        return 1
    if args[:2] == ["certs", "check-expiration"]:
        if not ctx.root:
            await ctx.error("[check-expiration] Reading configuration from the cluster...\n"
                            "error execution phase: user is not running as root\n")
            return 1
        await ctx.write("[check-expiration] Reading configuration from the cluster...\n"
                        "[check-expiration] FYI: You can look at this config file with "
                        "'kubectl -n kube-system get cm kubeadm-config -o yaml'\n"
                        "[check-expiration] Error reading configuration from the Cluster. "
                        "Falling back to default configuration\n\n")
        await ctx.error("error execution phase check-expiration: open /etc/kubernetes/pki/"
                        "ca.key: no such file or directory (this node is not a control-plane "
                        "node; the kubelet's client certificate is rotated by the kubelet: "
                        "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                        "-noout -enddate)\nTo see the stack trace of this error execute with "
                        "--v=5 or higher\n")
        return 1
    if args[:2] == ["certs", "renew"]:
        which = args[2] if len(args) > 2 else ""
        valid = ("all", "admin.conf", "apiserver", "apiserver-etcd-client",
                 "apiserver-kubelet-client", "controller-manager.conf", "etcd-healthcheck-client",
                 "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf",
                 "super-admin.conf")
        if which not in valid:
            await ctx.error(f'unknown command "{which}" for "kubeadm certs renew"\nTo see the '
                            f'stack trace of this error execute with --v=5 or higher\n')
            return 1
        await ctx.error("error execution phase: open /etc/kubernetes/pki/ca.crt... this node is "
                        "not a control-plane node\n")
        return 1
    await ctx.error(f'unknown command "{" ".join(args[:1])}" for "kubeadm"\n')
    return 1


# -- network ---------------------------------------------------------------------------------------
def _listeners(m: Machine) -> list[tuple[str, int, str, int]]:
    out = [("0.0.0.0", 22, "sshd", 612), ("[::]", 22, "sshd", 612),
           ("127.0.0.54", 53, "systemd-resolve", 402)]
    if m.chronyd.running:
        out.append(("127.0.0.1", 323, "chronyd", m.chronyd.pid))
    if m.containerd.active in ("active", "deactivating"):
        out.append(("127.0.0.1", 35000 + m.containerd.pid % 10000, "containerd",
                    m.containerd.pid))
    if m.kubelet.running:
        out.append(("127.0.0.1", 10248, "kubelet", m.kubelet.pid))
        out.append(("*", 10250, "kubelet", m.kubelet.pid))
    for pod in m.pods:
        if pod.phase == "Running" and pod.app == "kube-proxy":
            out.append(("127.0.0.1", 10249, "kube-proxy", pod_pid(m, pod)))
            out.append(("*", 10256, "kube-proxy", pod_pid(m, pod)))
        if pod.phase == "Running" and pod.app == "calico-node":
            out.append(("127.0.0.1", 9099, "calico-node", pod_pid(m, pod)))
    return out


@command("ss", "netstat")
async def ss(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    m.catch_up(ctx.now())
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and not a.startswith("--"))
    show_proc = "p" in flags
    if show_proc and not ctx.root:
        show_proc = False
    rows = [["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"]]
    for addr, port, comm, pid in _listeners(m):
        peer = "[::]:*" if addr.startswith("[") else "0.0.0.0:*"
        proc = f'users:(("{comm}",pid={pid},fd={3 + pid % 20}))' if show_proc else ""
        rows.append(["LISTEN", "0", "4096" if comm != "sshd" else "128",
                     f"{addr}:{port}", peer, proc])
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    out = []
    for r in rows:
        out.append(f"{r[0]:<{w[0]}} {r[1]:<{w[1]}} {r[2]:<{w[2]}} {r[3]:>{w[3]}} "
                   f"{r[4]:<{w[4]}} {r[5]}".rstrip())
    await ctx.write("\n".join(out) + "\n")
    return 0


@command("ip")
async def ip(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = [a for a in argv[1:] if not a.startswith("-")]
    obj = args[0] if args else ""
    mac = ":".join(_h(m.name)[i:i + 2] for i in range(0, 12, 2))
    mac = "02" + mac[2:]
    if obj in ("a", "addr", "address"):
        out = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default "
               "qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet "
               "127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n"
               f"2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP group "
               f"default qlen 1000\n    link/ether {mac} brd ff:ff:ff:ff:ff:ff\n    inet "
               f"{m.ip}/16 metric 100 brd {'.'.join(m.ip.split('.')[:2])}.255.255 scope global "
               f"dynamic eth0\n       valid_lft 3412sec preferred_lft 3412sec\n")
        if m.vxlan_up() and "calico" in m.cni_bin:
            out += ("3: vxlan.calico: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 8951 qdisc noqueue "
                    "state UNKNOWN group default qlen 1000\n    link/ether "
                    f"66:{mac[3:]} brd ff:ff:ff:ff:ff:ff\n    inet 192.168.{m.index % 250}.0/32 "
                    "scope global vxlan.calico\n       valid_lft forever preferred_lft forever\n")
        await ctx.write(out)
        return 0
    if obj in ("r", "route", "ro"):
        gw = ".".join(m.ip.split(".")[:3]) + ".1"
        out = (f"default via {gw} dev eth0 proto dhcp src {m.ip} metric 100\n"
               f"{'.'.join(m.ip.split('.')[:2])}.0.0/16 dev eth0 proto kernel scope link src "
               f"{m.ip} metric 100\n")
        await ctx.write(out)
        return 0
    if obj in ("link", "l"):
        await ctx.write("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode "
                        "DEFAULT group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd "
                        "00:00:00:00:00:00\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 "
                        "qdisc mq state UP mode DEFAULT group default qlen 1000\n    link/ether "
                        f"{mac} brd ff:ff:ff:ff:ff:ff\n")
        return 0
    await ctx.error(f'Object "{obj}" is unknown, try "ip help".\n')
    return 255


def _resolve(m: Machine, host: str) -> str | None:
    api_host, _ = shell_fs.apiserver(m)
    if host in ("localhost", "127.0.0.1", "::1", "ip6-localhost"):
        return "127.0.0.1"
    if host in (m.name, m.ip):
        return m.ip
    if host == api_host:
        return api_host if re.fullmatch(r"[\d.]+", api_host) else "127.0.0.1"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host):
        return host
    if host.startswith("node-") or host.endswith(".svc") or host.endswith(".cluster.local"):
        return None
    return None


@command("ping")
async def ping(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    count = None
    host = None
    interval = 1.0
    deadline = None
    while args:
        a = args.pop(0)
        if a == "-c" and args:
            count = int(args.pop(0))
        elif a.startswith("-c") and a[2:].isdigit():
            count = int(a[2:])
        elif a == "-i" and args:
            interval = float(args.pop(0))
        elif a in ("-W", "-w") and args:
            value = float(args.pop(0))
            if a == "-w":
                deadline = value
        elif a.startswith("-"):
            continue
        else:
            host = a
    if host is None:
        raise UsageError("ping: usage error: Destination address required", 1)
    addr = _resolve(m, host)
    if addr is None:
        await ctx.error(f"ping: {host}: Name or service not known\n")
        return 2
    api_host, _ = shell_fs.apiserver(m)
    reachable = m.api_reachable or host not in (api_host,)
    await ctx.write(f"PING {host} ({addr}) 56(84) bytes of data.\n")
    sent = received = 0
    rtts = []
    started = ctx.now()
    try:
        while count is None or sent < count:
            if deadline is not None and ctx.now() - started >= deadline:
                break
            sent += 1
            if reachable:
                rtt = 0.03 + _n(f"{host}{sent}", 0, 40) / 1000
                rtts.append(rtt)
                received += 1
                await ctx.write(f"64 bytes from {addr}: icmp_seq={sent} ttl=64 time={rtt:.3f} "
                                "ms\n")
            if count is None or sent < count:
                await ctx.sleep(interval)
    finally:
        if rtts or sent:
            pass
    elapsed = int((ctx.now() - started) * 1000)
    loss = int(round((sent - received) * 100 / sent)) if sent else 0
    out = f"\n--- {host} ping statistics ---\n{sent} packets transmitted, {received} received, " \
          f"{loss}% packet loss, time {elapsed}ms\n"
    if rtts:
        avg = sum(rtts) / len(rtts)
        mdev = (sum((r - avg) ** 2 for r in rtts) / len(rtts)) ** 0.5
        out += f"rtt min/avg/max/mdev = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f}/{mdev:.3f} ms\n"
    await ctx.write(out)
    return 0 if received else 1


def goroutine_dump(m: Machine, now: float) -> str:
    count = m.goroutines_base + len(m.pods) * 3
    hung = not m.runtime_responsive()
    stacks = [
        (count // 3, "runtime.gopark", "k8s.io/kubernetes/vendor/google.golang.org/grpc/internal/"
         "transport.(*controlBuffer).get", "transport/controlbuf.go:418"),
        (count // 4, "runtime.gopark", "k8s.io/kubernetes/vendor/k8s.io/apimachinery/pkg/util/"
         "wait.BackoffUntil", "wait/backoff.go:227"),
        (count // 6 if not hung else count // 3, "runtime.gopark",
         "k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist" if hung else
         "k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoop", "pleg/generic.go:240" if hung else
         "kubelet.go:2347"),
    ]
    used = sum(s[0] for s in stacks)
    stacks.append((max(1, count - used), "runtime.gopark", "net/http.(*conn).serve",
                   "net/http/server.go:2039"))
    out = [f"goroutine profile: total {sum(s[0] for s in stacks)}"]
    for n, a, b, where in stacks:
        addr = _h(b)[:6]
        out.append(f"{n} @ 0x43{addr} 0x40{addr[:5]}1 0x{addr}\n#\t0x43{addr}\t{a}+0x{addr[:3]}"
                   f"\t\t/usr/local/go/src/runtime/proc.go:398\n#\t0x{addr}\t{b}+0x{addr[3:6]}\t"
                   f"\t{where}\n")
    return "\n".join(out) + "\n"


def _metrics_text(m: Machine, now: float) -> str:
    render = getattr(m.metrics, "render", None)
    if render is not None:
        text = render(m, now)
        return text.decode() if isinstance(text, bytes) else text
    return (f"# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE "
            f"go_goroutines gauge\ngo_goroutines {m.goroutines_base + len(m.pods) * 3}\n"
            f"# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE "
            f"process_resident_memory_bytes gauge\nprocess_resident_memory_bytes "
            f"{m.kubelet_rss}\n")


@command("curl")
async def curl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    silent = insecure = show_error = fail = head_only = include = False
    outfile = None
    write_out = None
    max_time = connect_timeout = None
    url = None
    while args:
        a = args.pop(0)
        if a in ("-o", "--output") and args:
            outfile = args.pop(0)
        elif a in ("-w", "--write-out") and args:
            write_out = args.pop(0)
        elif a in ("-m", "--max-time") and args:
            max_time = float(args.pop(0))
        elif a == "--connect-timeout" and args:
            connect_timeout = float(args.pop(0))
        elif a in ("-H", "--header", "--cacert", "--cert", "--key", "-X", "--request", "-d",
                   "--data", "-u", "--user", "-A") and args:
            args.pop(0)
        elif a.startswith("--"):
            silent = silent or a == "--silent"
            insecure = insecure or a == "--insecure"
            show_error = show_error or a == "--show-error"
            fail = fail or a == "--fail"
            head_only = head_only or a == "--head"
            include = include or a == "--include"
        elif a.startswith("-") and len(a) > 1:
            for ch in a[1:]:
                silent = silent or ch == "s"
                insecure = insecure or ch == "k"
                show_error = show_error or ch == "S"
                fail = fail or ch == "f"
                head_only = head_only or ch == "I"
                include = include or ch == "i"
            if a[-1] in "owm" and args:
                value = args.pop(0)
                if a[-1] == "o":
                    outfile = value
                elif a[-1] == "w":
                    write_out = value
                else:
                    max_time = float(value)
        else:
            url = a
    quiet_errors = silent and not show_error
    if url is None:
        await ctx.error("curl: try 'curl --help' or 'curl --manual' for more information\n")
        return 2
    match = re.match(r"^(?:(https?)://)?([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?$", url)
    if not match:
        await ctx.error("curl: (3) URL rejected: Malformed input to a URL function\n")
        return 3
    scheme = match.group(1) or "http"
    host = match.group(2)
    port = int(match.group(3) or (443 if scheme == "https" else 80))
    path = match.group(4) or "/"
    now = ctx.now()
    m.catch_up(now)
    api_host, api_port = shell_fs.apiserver(m)
    addr = _resolve(m, host)

    async def finish(code: int, body: str, status: int = 0, err: str = "") -> int:
        if err:
            if not quiet_errors:
                await ctx.error(err + "\n")
            if write_out is not None:
                await ctx.write(_write_out(write_out, 0))
            return status
        if fail and code >= 400:
            if not quiet_errors:
                await ctx.error(f"curl: (22) The requested URL returned error: {code}\n")
            if write_out is not None:
                await ctx.write(_write_out(write_out, code))
            return 22
        if outfile and outfile != "-":
            if outfile != "/dev/null":
                target = ctx.abspath(outfile)
                problem = shell_fs.write_problem(m, target, ctx.uid, ctx.now())
                if problem:
                    await ctx.error("curl: (23) Failure writing output to destination\n")
                    return 23
                shell_fs.write(m, target, body, ctx.now())
        else:
            if include or head_only:
                await ctx.write(f"HTTP/1.1 {code} {_reason(code)}\r\nContent-Type: text/plain; "
                                f"charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n")
            if not head_only:
                await ctx.write(body)
        if write_out is not None:
            await ctx.write(_write_out(write_out, code))
        return 0

    if addr is None:
        return await finish(0, "", 6, f"curl: (6) Could not resolve host: {host}")
    is_api = host == api_host and port == api_port
    if is_api:
        if not m.api_reachable:
            limit = connect_timeout if connect_timeout is not None else max_time
            if limit is None:
                limit = 130.0
                await ctx.sleep(limit)
                return await finish(0, "", 28, f"curl: (28) Failed to connect to {host} port "
                                               f"{port} after {int(limit * 1000) + 1} ms: "
                                               f"Couldn't connect to server")
            await ctx.sleep(limit)
            return await finish(0, "", 28, f"curl: (28) Connection timed out after "
                                           f"{int(limit * 1000) + 1} milliseconds")
        if scheme == "https" and not insecure:
            return await finish(0, "", 60, _ssl_error())
        if path.startswith("/healthz") or path.startswith("/livez") or \
                path.startswith("/readyz"):
            return await finish(200, "ok")
        if path == "/version":
            return await finish(200, '{\n  "major": "1",\n  "minor": "31"\n}')
        return await finish(401, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":'
                                 '"Failure","message":"Unauthorized","reason":"Unauthorized",'
                                 '"code":401}\n')
    local = addr in ("127.0.0.1", m.ip)
    if local and port in (10250, 10248):
        if not m.kubelet.running:
            return await finish(0, "", 7, f"curl: (7) Failed to connect to {host} port {port} "
                                          f"after 0 ms: Couldn't connect to server")
        if port == 10248 and addr != "127.0.0.1":
            return await finish(0, "", 7, f"curl: (7) Failed to connect to {host} port {port} "
                                          f"after 0 ms: Couldn't connect to server")
        if port == 10250 and scheme == "http":
            return await finish(400, "Client sent an HTTP request to an HTTPS server.\n")
        if scheme == "https" and not insecure:
            return await finish(0, "", 60, _ssl_error())
        if path.startswith("/healthz"):
            code, body = m.kubelet_healthz(now)
            return await finish(code, body)
        if path.startswith("/metrics"):
            return await finish(200, _metrics_text(m, now))
        if path.startswith("/debug/pprof/goroutine"):
            return await finish(200, goroutine_dump(m, now))
        if path.startswith("/configz"):
            import json

            return await finish(200, json.dumps({"kubeletconfig": m.kubelet_config}))
        return await finish(404, "404 page not found\n")
    if local and port in (10249, 10256) and any(p.app == "kube-proxy" and p.phase == "Running"
                                                for p in m.pods):
        return await finish(200, "ok" if port == 10256 or path == "/healthz" else "")
    if local and port == 9099 and any(p.app == "calico-node" for p in m.pods):
        return await finish(200 if m.network_ready() else 503, "")
    return await finish(0, "", 7, f"curl: (7) Failed to connect to {host} port {port} after 0 "
                                  f"ms: Couldn't connect to server")


def _reason(code: int) -> str:
    return {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            500: "Internal Server Error", 503: "Service Unavailable", 400: "Bad Request"}.get(
        code, "")


def _ssl_error() -> str:
    return ("curl: (60) SSL certificate problem: unable to get local issuer certificate\n"
            "More details here: https://curl.se/docs/sslcerts.html\n\n"
            "curl failed to verify the legitimacy of the server and therefore could not\n"
            "establish a secure connection to it. To learn more about this situation and\n"
            "how to fix it, please visit the web page mentioned above.")


def _write_out(fmt: str, code: int) -> str:
    text = fmt.replace("%{http_code}", f"{code:03d}").replace("%{response_code}", f"{code:03d}")
    text = text.replace("%{time_total}", "0.004123").replace("%{time_connect}", "0.000321")
    return text.replace("\\n", "\n")


# -- time -----------------------------------------------------------------------------------------
@command("timedatectl")
async def timedatectl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    node_now = m.node_now(now)
    verb = next((a for a in argv[1:] if not a.startswith("-")), "status")
    if verb in ("set-ntp", "set-time", "set-timezone"):
        if not ctx.root:
            await ctx.error("Failed to set ntp: Interactive authentication required.\n")
            return 1
        return 0
    if verb == "show":
        await ctx.write(f"Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\n"
                        f"NTP={'yes' if m.chronyd.running else 'no'}\n"
                        f"NTPSynchronized={'yes' if m.ntp_synced else 'no'}\n"
                        f"TimeUSec="
                        f"{time.strftime('%a %Y-%m-%d %H:%M:%S %Z', time.localtime(node_now))}\n")
        return 0
    local = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(node_now))
    utc = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(node_now))
    rtc = time.strftime("%a %Y-%m-%d %H:%M:%S", time.gmtime(now))
    zone = time.strftime("%Z", time.localtime(node_now))
    offset = time.strftime("%z", time.localtime(node_now))
    tzname = "Etc/UTC" if zone == "UTC" else zone
    await ctx.write(f"               Local time: {local}\n"
                    f"           Universal time: {utc}\n"
                    f"                 RTC time: {rtc}\n"
                    f"                Time zone: {tzname} ({zone}, {offset})\n"
                    f"System clock synchronized: {'yes' if m.ntp_synced else 'no'}\n"
                    f"              NTP service: {'active' if m.chronyd.running else 'inactive'}\n"
                    f"          RTC in local TZ: no\n")
    return 0


def _ntp_source(m: Machine) -> str:
    match = re.search(r"^(?:pool|server)\s+(\S+)", m.files.get("/etc/chrony/chrony.conf", ""),
                      re.M)
    return match.group(1) if match else "169.254.169.123"


@command("chronyc")
async def chronyc(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    args = [a for a in argv[1:] if not a.startswith("-")]
    verb = args[0] if args else "tracking"
    if not m.chronyd.running:
        await ctx.error("506 Cannot talk to daemon\n")
        return 1
    source = _ntp_source(m)
    unreachable = "ntp_unreachable" in m.faults and not m.faults["ntp_unreachable"].detail.get(
        "fixed")
    offset = m.clock_offset
    if verb == "tracking":
        if unreachable or not m.ntp_synced:
            ref = ("Reference ID    : 00000000 ()\nStratum         : 0\n"
                   "Ref time (UTC)  : Thu Jan 01 00:00:00 1970\n")
            leap = "Not synchronised"
        else:
            ref_id = "".join(f"{int(x):02X}" for x in source.split(".")) if re.fullmatch(
                r"[\d.]+", source) else "A9FEA97B"
            ref = (f"Reference ID    : {ref_id} ({source})\nStratum         : 4\n"
                   f"Ref time (UTC)  : "
                   f"{time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(m.node_now(now) - 37))}\n")
            leap = "Normal"
        direction = "fast" if offset >= 0 else "slow"
        system = abs(offset) if offset else 0.000012345
        await ctx.write(ref + f"System time     : {system:.9f} seconds {direction} of NTP time\n"
                        f"Last offset     : -0.000004567 seconds\n"
                        f"RMS offset      : 0.000023456 seconds\n"
                        f"Frequency       : 12.345 ppm slow\n"
                        f"Residual freq   : -0.001 ppm\n"
                        f"Skew            : 0.012 ppm\n"
                        f"Root delay      : 0.000345678 seconds\n"
                        f"Root dispersion : 0.000456789 seconds\n"
                        f"Update interval : 16.2 seconds\n"
                        f"Leap status     : {leap}\n")
        return 0
    if verb in ("sources", "sourcestats"):
        head = ("MS Name/IP address         Stratum Poll Reach LastRx Last sample               \n"
                "===============================================================================\n")
        if unreachable:
            line = f"^? {source:<27}   0   6     0     -     +0ns[   +0ns] +/-    0ns\n"
        else:
            mark = "*" if m.ntp_synced else "?"
            sample = int(-offset * 1e6) if offset else -12
            line = (f"^{mark} {source:<27}   3   4   377     5   {sample:+6d}us"
                    f"[{sample - 3:+6d}us] +/-  345us\n")
        await ctx.write(head + line)
        return 0
    if verb in ("makestep", "burst", "online", "offline"):
        if not ctx.root:
            await ctx.error("501 Not authorised\n")
            return 1
        if verb == "makestep":
            effects.step_clock(m, now)
        await ctx.write("200 OK\n")
        return 0
    await ctx.error("Unrecognized command\n")
    return 1


# -- power -----------------------------------------------------------------------------------------
@command("reboot", "shutdown", "poweroff", "halt")
async def reboot(ctx: Ctx, argv: list[str]) -> int:
    if not ctx.root:
        await ctx.error(f"Call to {'PowerOff' if argv[0] in ('poweroff', 'shutdown') else 'Reboot'}"
                        f" failed: Interactive authentication required.\n")
        return 1
    await ctx.error(f"Failed to {'reboot' if argv[0] == 'reboot' else 'power off'} system via "
                    f"logind: Access denied\nFailed to start "
                    f"{'reboot' if argv[0] == 'reboot' else 'poweroff'}.target: Access denied\n")
    return 1


@command("watch")
async def watch(ctx: Ctx, argv: list[str]) -> int:
    args = argv[1:]
    interval = 2.0
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-n", "--interval") and args:
            interval = float(args.pop(0))
    line = " ".join(args)
    from lab.shell import run_script

    while True:
        await ctx.write("\x1b[H\x1b[2J" + f"Every {interval:.1f}s: {line}\n\n")
        await run_script(ctx, line)
        await ctx.sleep(interval)


__all__ = ["processes", "kill_unit", "pod_shim_pid", "pod_sandbox_id", "goroutine_dump"]
