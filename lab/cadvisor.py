"""What the kubelet's embedded cAdvisor measures for each running container, and its
/metrics/cadvisor page.

The figures follow from the machine's pods: memory is the pod's working set, its PID count is
threads (the kernel counts threads against pid_max), processes beyond the usual handful are the
ones the pod forked, and an I/O-heavy pod writes at disk speed. Counters start with the container,
so two scrapes a few seconds apart show the rate. `crictl stats` reads the same figures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lab.machine import LabPod, Machine
from lab.metrics import gofloat

KiB = 1024
MiB = 1024 ** 2
DEVICE = "/dev/nvme0n1"
IO_HEAVY_WRITE = 190 * MiB  # bytes/s: a compaction saturating the volume
IO_HEAVY_READ = 48 * MiB
BASELINE_PIDS = 30  # a LabPod's PIDs when it forks nothing: its threads


@dataclass
class ContainerFigures:
    pod: LabPod
    container_id: str
    cgroup: str
    started: float
    cpu_seconds: float
    working_set: int
    processes: int
    threads: int
    fs_reads: int
    fs_writes: int


def _n(text: str, lo: int, hi: int) -> int:
    return lo + int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % (hi - lo)


def pod_uid(m: Machine, pod: LabPod) -> str:
    """The pod's UID as the kubelet reports it (/pods) and names its cgroup."""
    h = hashlib.sha1("/".join((m.name, pod.namespace, pod.name)).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pod_cgroup(m: Machine, pod: LabPod) -> str:
    """The pod's cgroup (every lab pod requests CPU and memory below its limit: Burstable)."""
    uid = pod_uid(m, pod)
    if m.runtime_cgroup_driver == "systemd":
        return (f"/kubepods.slice/kubepods-burstable.slice/"
                f"kubepods-burstable-pod{uid.replace('-', '_')}.slice")
    return f"/kubepods/burstable/pod{uid}"


def container_cgroup(m: Machine, pod: LabPod, container_id: str) -> str:
    if m.runtime_cgroup_driver == "systemd":
        return f"{pod_cgroup(m, pod)}/cri-containerd-{container_id}.scope"
    return f"{pod_cgroup(m, pod)}/{container_id}"


def container_figures(m: Machine, now: float) -> list[ContainerFigures]:
    from lab.shell_node import pod_container_id

    out = []
    for pod in sorted(m.pods, key=lambda p: (p.namespace, p.name)):
        if pod.phase != "Running":
            continue
        key = f"{m.name}/{pod.namespace}/{pod.name}"
        started = pod.created + 2.0
        up = max(1.0, now - started)
        threads = max(1, pod.pids - 1)  # the pause process is the sandbox's, not the container's
        processes = min(threads, _n("procs:" + key, 1, 5) + max(0, pod.pids - BASELINE_PIDS))
        if pod.io_heavy:
            write_rate, read_rate = IO_HEAVY_WRITE, IO_HEAVY_READ
        else:
            write_rate = _n("w:" + key, 2, 300) * KiB
            read_rate = _n("r:" + key, 1, 60) * KiB
        cid = pod_container_id(m, pod, pod.restarts)
        out.append(ContainerFigures(
            pod, cid, container_cgroup(m, pod, cid), started,
            cpu_seconds=up * (0.002 + _n("cpu:" + key, 0, 50) / 1000),
            working_set=pod.memory, processes=processes, threads=threads,
            fs_reads=int(read_rate * up), fs_writes=int(write_rate * up)))
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(c: ContainerFigures | None, pod_level: bool = False, **extra: str) -> str:
    if c is None:  # the root cgroup
        pairs = {"container": "", **extra, "id": "/", "image": "", "name": "", "namespace": "",
                 "pod": ""}
    elif pod_level:
        pairs = {"container": "", **extra, "id": c.cgroup.rsplit("/", 1)[0], "image": "",
                 "name": "", "namespace": c.pod.namespace, "pod": c.pod.name}
    else:
        pairs = {"container": c.pod.app, **extra, "id": c.cgroup, "image": c.pod.image,
                 "name": c.container_id, "namespace": c.pod.namespace, "pod": c.pod.name}
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(pairs.items())) + "}"


_FAMILIES = (
    ("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "counter",
     lambda c: c.cpu_seconds, {"cpu": "total"}),
    ("container_fs_reads_bytes_total", "Cumulative count of bytes read", "counter",
     lambda c: c.fs_reads, {"device": DEVICE}),
    ("container_fs_writes_bytes_total", "Cumulative count of bytes written", "counter",
     lambda c: c.fs_writes, {"device": DEVICE}),
    ("container_memory_working_set_bytes", "Current working set in bytes.", "gauge",
     lambda c: c.working_set, {}),
    ("container_processes", "Number of processes running inside the container.", "gauge",
     lambda c: c.processes, {}),
    ("container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
     "gauge", lambda c: c.started, {}),
    ("container_threads", "Number of threads running inside the container", "gauge",
     lambda c: c.threads, {}),
)


def _value(v: float) -> str:
    return gofloat(round(v, 6) if isinstance(v, float) else v)


def render_cadvisor(m: Machine, now: float) -> bytes:
    """/metrics/cadvisor: the root cgroup, each pod's cgroup and each running container."""
    ts = int(m.node_now(now) * 1000)
    figures = container_figures(m, now)
    root_up = max(1.0, now - m.boot_time)
    out = [
        "# HELP cadvisor_version_info A metric with a constant '1' value labeled by kernel "
        "version, OS version, docker version, cadvisor version & cadvisor revision.\n",
        "# TYPE cadvisor_version_info gauge\n",
        f'cadvisor_version_info{{cadvisorRevision="",cadvisorVersion="",dockerVersion="",'
        f'kernelVersion="{_esc(m.kernel)}",osVersion="{_esc(m.os_image)}"}} 1\n',
    ]
    for name, help_text, kind, get, extra in _FAMILIES:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        if name == "container_start_time_seconds":
            out.append(f"{name}{_labels(None)} {_value(m.boot_time)} {ts}\n")
        elif name == "container_processes":
            out.append(f"{name}{_labels(None)} {m.pids_used()} {ts}\n")
        elif name == "container_memory_working_set_bytes":
            out.append(f"{name}{_labels(None)} {_value(m.memory_used())} {ts}\n")
        elif name == "container_cpu_usage_seconds_total":
            total = sum(c.cpu_seconds for c in figures) + root_up * 0.15
            out.append(f"{name}{_labels(None, **extra)} {_value(total)} {ts}\n")
        for c in figures:
            pod_value = get(c) + (1 if name in ("container_processes", "container_threads")
                                  else 0)
            if name != "container_start_time_seconds":
                out.append(f"{name}{_labels(c, True, **extra)} {_value(pod_value)} {ts}\n")
            out.append(f"{name}{_labels(c, **extra)} {_value(get(c))} {ts}\n")
    out.append("# HELP container_scrape_error 1 if there was an error while getting container "
               "metrics, 0 otherwise\n# TYPE container_scrape_error gauge\n"
               "container_scrape_error 0\n")
    machine = f'{{boot_id="{m.boot_id}",machine_id="{m.machine_id}",system_uuid="{m.system_uuid}"}}'
    out.append("# HELP machine_cpu_cores Number of logical CPU cores.\n"
               "# TYPE machine_cpu_cores gauge\n"
               f"machine_cpu_cores{machine} {m.cpus}\n")
    out.append("# HELP machine_memory_bytes Amount of memory installed on the machine.\n"
               "# TYPE machine_memory_bytes gauge\n"
               f"machine_memory_bytes{machine} {gofloat(m.memory)}\n")
    return "".join(out).encode()


__all__ = ["ContainerFigures", "container_figures", "render_cadvisor", "pod_uid", "pod_cgroup"]
