"""The node's file tree as the shell sees it: the machine's files plus what a node derives.

Regular files come from `machine.files`; everything else (/proc, the kubelet's certificates,
the CNI binaries, the containerd socket, the journal directory) is computed from the machine on
each read, so a fix shows up at once. Writes go through `lab.effects.write_file`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from lab import effects
from lab.machine import GiB, Machine, MiB

ROOT_ONLY_WRITE = ("/etc/", "/var/", "/opt/", "/usr/", "/root/", "/boot/", "/lib/", "/run/",
                   "/swap.img")


@dataclass
class Entry:
    path: str
    kind: str  # file | dir | link | socket
    size: int = 0
    mode: str = "-rw-r--r--"
    mtime: float = 0.0
    content: Callable[[], str] | None = None
    target: str = ""
    owner: str = "root"


def machine_id(m: Machine) -> str:
    return m.machine_id


def boot_id(m: Machine) -> str:
    """The boot id as journalctl prints it (no dashes)."""
    return m.boot_id.replace("-", "")


def _stable(text: str, lo: int, hi: int) -> int:
    h = int(hashlib.md5(text.encode()).hexdigest()[:8], 16)
    return lo + h % (hi - lo)


STANDARD_DIRS = (
    "/", "/bin", "/boot", "/boot/efi", "/dev", "/etc", "/etc/cni", "/etc/cni/net.d",
    "/etc/containerd", "/etc/kubernetes", "/etc/kubernetes/manifests", "/etc/kubernetes/pki",
    "/etc/modules-load.d", "/etc/systemd", "/etc/systemd/system",
    "/etc/systemd/system/kubelet.service.d", "/etc/chrony", "/etc/default", "/home", "/lib",
    "/lib/modules", "/opt", "/opt/cni", "/opt/cni/bin", "/proc", "/proc/sys", "/proc/sys/kernel",
    "/proc/sys/kernel/random",
    "/root", "/run", "/run/containerd", "/sbin", "/sys", "/tmp", "/usr", "/usr/bin",
    "/usr/local", "/usr/local/bin", "/usr/sbin", "/var", "/var/lib", "/var/lib/containerd",
    "/var/lib/kubelet", "/var/lib/kubelet/pki", "/var/lib/kubelet/pods", "/var/log",
    "/var/log/containers", "/var/log/pods", "/var/log/journal", "/var/lib/calico",
)


def os_release(m: Machine) -> str:
    image = m.os_image
    low = image.lower()
    if "ubuntu" in low:
        ver = re.search(r"(\d+\.\d+(?:\.\d+)?)", image)
        version = ver.group(1) if ver else "22.04"
        vid = ".".join(version.split(".")[:2])
        code = {"20.04": "focal", "22.04": "jammy", "24.04": "noble"}.get(vid, "jammy")
        animal = "Jellyfish" if code == "jammy" else "Numbat" if code == "noble" else "Fossa"
        return (f'PRETTY_NAME="{image}"\nNAME="Ubuntu"\nVERSION_ID="{vid}"\n'
                f'VERSION="{version} LTS ({code.title()} {animal})"\n'
                f'VERSION_CODENAME={code}\nID=ubuntu\nID_LIKE=debian\n'
                f'HOME_URL="https://www.ubuntu.com/"\nSUPPORT_URL="https://help.ubuntu.com/"\n'
                f'BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"\nUBUNTU_CODENAME={code}\n')
    if "amazon" in low:
        ver = re.search(r"(\d+)", image)
        vid = ver.group(1) if ver else "2023"
        return (f'NAME="Amazon Linux"\nVERSION="{vid}"\nID="amzn"\nID_LIKE="fedora"\n'
                f'VERSION_ID="{vid}"\nPLATFORM_ID="platform:al{vid}"\nPRETTY_NAME="{image}"\n'
                f'ANSI_COLOR="0;33"\nHOME_URL="https://aws.amazon.com/linux/amazon-linux-{vid}/"\n')
    ver = re.search(r"(\d+)", image)
    vid = ver.group(1) if ver else "12"
    code = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}.get(vid, "bookworm")
    return (f'PRETTY_NAME="{image}"\nNAME="Debian GNU/Linux"\nVERSION_ID="{vid}"\n'
            f'VERSION="{vid} ({code})"\nVERSION_CODENAME={code}\nID=debian\n'
            f'HOME_URL="https://www.debian.org/"\nSUPPORT_URL="https://www.debian.org/support"\n'
            f'BUG_REPORT_URL="https://bugs.debian.org/"\n')


def ca_pem(m: Machine) -> str | None:
    conf = m.files.get("/etc/kubernetes/kubelet.conf", "")
    match = re.search(r"certificate-authority-data:\s*(\S+)", conf)
    if not match:
        return None
    try:
        return base64.b64decode(match.group(1)).decode()
    except Exception:
        return None


def client_cert_name(m: Machine) -> str:
    return "kubelet-client-" + time.strftime(
        "%Y-%m-%d-%H-%M-%S", time.localtime(m.client_cert_not_before or m.boot_time)) + ".pem"


def apiserver(m: Machine) -> tuple[str, int]:
    conf = m.files.get("/etc/kubernetes/kubelet.conf", "")
    match = re.search(r"server:\s*https?://([^:/\s]+)(?::(\d+))?", conf)
    if not match:
        return "", 6443
    return match.group(1), int(match.group(2) or 443)


def _mem_kb(m: Machine) -> dict[str, int]:
    total = m.memory // 1024
    used = m.memory_used() // 1024
    avail = total - used
    # Page cache is what the kernel gives back first: under pressure it shrinks to nothing
    # and free memory sits at the OOM killer's floor.
    free_floor = min(avail, 40 * 1024)
    cache = max(0, min(avail - free_floor, int(total * 0.18)))
    free = avail - cache
    swap_total = 4194300 if m.swap_on else 0
    return {"total": total, "used": used, "free": free, "avail": avail, "cache": cache,
            "buffers": min(cache // 8, 262144), "shared": 12000, "swap_total": swap_total,
            "swap_used": int(swap_total * 0.03), "swap_free": swap_total - int(swap_total * 0.03)}


def meminfo(m: Machine) -> str:
    k = _mem_kb(m)
    rows = [("MemTotal", k["total"]), ("MemFree", k["free"]), ("MemAvailable", k["avail"]),
            ("Buffers", k["buffers"]), ("Cached", k["cache"] - k["buffers"]), ("SwapCached", 0),
            ("Active", k["used"] // 2), ("Inactive", k["cache"] // 2),
            ("SwapTotal", k["swap_total"]), ("SwapFree", k["swap_free"]),
            ("Dirty", 132), ("Writeback", 0),
            ("AnonPages", k["used"] - 200000 if k["used"] > 400000 else k["used"] // 2),
            ("Mapped", 180224), ("Shmem", k["shared"]), ("Slab", 210432),
            ("SReclaimable", 120000), ("SUnreclaim", 90432), ("KernelStack", 12000),
            ("PageTables", 9800), ("CommitLimit", k["total"] // 2 + k["swap_total"]),
            ("Committed_AS", k["used"] * 2), ("VmallocTotal", 34359738367), ("VmallocUsed", 42000),
            ("HugePages_Total", -1), ("HugePages_Free", -1), ("Hugepagesize", 2048)]
    out = []
    for name, value in rows:
        if value == -1:
            out.append(f"{name + ':':<16}{0:>8}")
        else:
            out.append(f"{name + ':':<16}{value:>8} kB")
    return "\n".join(out) + "\n"


def loadavg(m: Machine, now: float) -> tuple[float, float, float]:
    """1, 5 and 15 minute load: D-state waits when the runtime hangs or I/O is slow."""
    base = 0.15 + len([p for p in m.pods if p.phase == "Running"]) * 0.02
    if m.io_await_ms > 50:
        base += m.io_await_ms / 25
    if "runtime_hung" in m.faults:
        base += 6.0
    if "kubelet_oom" in m.faults:
        base += 1.5
    jitter = (_stable(f"{m.name}:{int(now // 5)}", 0, 100) - 50) / 500
    return (max(0.0, base + jitter), max(0.0, base * 0.95), max(0.0, base * 0.9))


def proc_loadavg(m: Machine, now: float) -> str:
    a, b, c = loadavg(m, now)
    procs = m.pids_used()
    return f"{a:.2f} {b:.2f} {c:.2f} {1 + int(a)}/{procs} {m.pids_base * 20 + int(now) % 997}\n"


def proc_swaps(m: Machine) -> str:
    head = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    if not m.swap_on:
        return head
    k = _mem_kb(m)
    return head + ("/swap.img                               file\t\t4194300\t\t"
                   f"{k['swap_used']}\t\t-2\n")


def _files(m: Machine, now: float) -> dict[str, Entry]:
    boot = m.boot_time
    entries: dict[str, Entry] = {}

    def add(path: str, content: Callable[[], str] | str | None = None, **kw) -> None:
        fn = (lambda c=content: c) if isinstance(content, str) else content
        entries[path] = Entry(path, kw.pop("kind", "file"), content=fn,
                              mtime=kw.pop("mtime", boot - 86400 * 20), **kw)

    for path, text in m.files.items():
        add(path, text, mtime=boot - 86400 * 20, size=len(text.encode()))
    add("/etc/os-release", os_release(m))
    add("/etc/hostname", m.name + "\n")
    add("/etc/machine-id", machine_id(m) + "\n")
    add("/etc/hosts", f"127.0.0.1 localhost\n{m.ip} {m.name}\n")
    add("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    add("/proc/loadavg", lambda: proc_loadavg(m, now), size=0, mtime=now)
    add("/proc/meminfo", lambda: meminfo(m), size=0, mtime=now)
    add("/proc/swaps", lambda: proc_swaps(m), size=0, mtime=now)
    add("/proc/uptime", lambda: f"{now - boot:.2f} {(now - boot) * m.cpus * 0.9:.2f}\n", size=0,
        mtime=now)
    add("/proc/version", f"Linux version {m.kernel} (debian-kernel@lists.debian.org) (gcc-12 "
        f"(Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP "
        f"PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)\n", size=0, mtime=now)
    add("/proc/sys/kernel/random/boot_id", lambda: m.boot_id + "\n", size=0, mtime=now)
    add("/proc/sys/kernel/pid_max", f"{m.pids_max}\n", size=0, mtime=now)
    add("/proc/sys/kernel/hostname", m.name + "\n", size=0, mtime=now)
    add("/proc/sys/vm/swappiness", "60\n", size=0, mtime=now)
    add("/proc/sys/net/ipv4/ip_forward", "1\n", size=0, mtime=now)
    add("/proc/modules", lambda: "".join(f"{mod} 16384 0 - Live 0x0000000000000000\n"
                                         for mod in sorted(m.modules)), size=0, mtime=now)
    add("/proc/cpuinfo", "".join(f"processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Platinum "
                                 f"8259CL CPU @ 2.50GHz\ncpu cores\t: {m.cpus}\n\n"
                                 for i in range(m.cpus)), size=0, mtime=now)
    ca = ca_pem(m)
    if ca:
        add("/etc/kubernetes/pki/ca.crt", ca, size=len(ca))
    if m.client_cert_pem:
        pem = (m.client_cert_pem + m.client_key_pem).decode()
        name = client_cert_name(m)
        add(f"/var/lib/kubelet/pki/{name}", pem, size=len(pem), mode="-rw-------",
            mtime=m.client_cert_not_before or boot)
        entries["/var/lib/kubelet/pki/kubelet-client-current.pem"] = Entry(
            "/var/lib/kubelet/pki/kubelet-client-current.pem", "link", mode="lrwxrwxrwx",
            size=len(f"/var/lib/kubelet/pki/{name}"), mtime=m.client_cert_not_before or boot,
            target=f"/var/lib/kubelet/pki/{name}", content=lambda p=pem: p)
    if m.serving_cert_pem:
        pem = m.serving_cert_pem.decode()
        add("/var/lib/kubelet/pki/kubelet-server-current.pem", pem, size=len(pem),
            mode="-rw-------")
    for name in m.cni_bin:
        add(f"/opt/cni/bin/{name}", "\x7fELF\x02\x01\x01" + "\x00" * 9, mode="-rwxr-xr-x",
            size=_stable(name, 3_000_000, 60_000_000) if name.startswith("calico")
            else _stable(name, 2_400_000, 4_800_000), mtime=boot - 86400 * 30)
    for name in ("kubelet", "kubeadm", "crictl", "containerd",
                 "containerd-shim-runc-v2", "runc", "ctr"):
        add(f"/usr/bin/{name}", "\x7fELF\x02\x01\x01", mode="-rwxr-xr-x",
            size=_stable(name, 20_000_000, 90_000_000))
    add("/usr/bin/bash", "\x7fELF\x02\x01\x01", mode="-rwxr-xr-x", size=1_265_648)
    sock_ok = "socket_missing" not in m.faults and (m.containerd.running or
                                                     m.containerd.active in ("deactivating",
                                                                             "failed"))
    if sock_ok:
        entries["/run/containerd/containerd.sock"] = Entry(
            "/run/containerd/containerd.sock", "socket", mode="srw-rw----",
            mtime=m.containerd.since)
        entries["/run/containerd/containerd.sock.ttrpc"] = Entry(
            "/run/containerd/containerd.sock.ttrpc", "socket", mode="srw-rw----",
            mtime=m.containerd.since)
    if m.containerd.running or sock_ok:
        for d in ("io.containerd.grpc.v1.cri", "io.containerd.runtime.v2.task",
                  "io.containerd.sandbox.controller.v1.shim", "runc"):
            entries[f"/run/containerd/{d}"] = Entry(f"/run/containerd/{d}", "dir",
                                                     mode="drwx--x--x", mtime=m.containerd.since,
                                                     size=4096)
    jdir = f"/var/log/journal/{machine_id(m)}"
    entries[jdir] = Entry(jdir, "dir", mode="drwxr-sr-x+", size=4096, mtime=now)
    archived = max(0, m.journal_bytes - 64 * MiB)
    chunk = 128 * MiB
    count = archived // chunk
    for i in range(int(count)):
        name = f"system@{machine_id(m)[:16]}-{i + 1:016x}-{int(boot * 1e6) + i:016x}.journal"
        add(f"{jdir}/{name}", None, size=chunk, mode="-rw-r-----")
    add(f"{jdir}/system.journal", None, size=min(64 * MiB, m.journal_bytes), mode="-rw-r-----",
        mtime=now)
    if m.swap_configured or m.swap_on:
        add("/swap.img", None, size=4 * GiB, mode="-rw-------")
    return entries


def _tree(m: Machine, now: float) -> tuple[dict[str, Entry], dict[str, set[str]]]:
    entries = _files(m, now)
    dirs: dict[str, set[str]] = {d: set() for d in STANDARD_DIRS}
    for path, entry in entries.items():
        if entry.kind == "dir":
            dirs.setdefault(path, set())
    for path in list(entries) + list(dirs):
        child = path
        while child != "/":
            parent = child.rsplit("/", 1)[0] or "/"
            dirs.setdefault(parent, set()).add(child.rsplit("/", 1)[1])
            child = parent
    for d in dirs:
        if d not in entries:
            entries[d] = Entry(d, "dir", size=4096, mode="drwxr-xr-x", mtime=m.boot_time - 86400)
    entries["/tmp"].mode = "drwxrwxrwt"
    entries["/root"].mode = "drwx------"
    return entries, dirs


def stat(m: Machine, path: str, now: float) -> Entry | None:
    entries, _ = _tree(m, now)
    return entries.get(path.rstrip("/") or "/")


def is_dir(m: Machine, path: str, now: float) -> bool:
    e = stat(m, path, now)
    return e is not None and e.kind == "dir"


def listdir(m: Machine, path: str, now: float) -> list[str] | None:
    entries, dirs = _tree(m, now)
    path = path.rstrip("/") or "/"
    if path not in dirs:
        return None
    return sorted(dirs[path])


def entries_in(m: Machine, path: str, now: float) -> tuple[list[Entry], Entry] | None:
    entries, dirs = _tree(m, now)
    path = path.rstrip("/") or "/"
    if path not in dirs:
        return None
    base = path.rstrip("/")
    return [entries[f"{base}/{name}"] for name in sorted(dirs[path])], entries[path]


def read_file(m: Machine, path: str, now: float) -> str | None:
    e = stat(m, path, now)
    if e is None or e.kind in ("dir", "socket"):
        return None
    if e.content is None:
        return ""
    return e.content()


def read_error(m: Machine, path: str, now: float, uid: int) -> str | None:
    """Why `cat PATH` fails, in coreutils' words, or None."""
    e = stat(m, path, now)
    if e is None:
        return "No such file or directory"
    if e.kind == "dir":
        return "Is a directory"
    if e.kind == "socket":
        return "No such device or address"
    if uid != 0 and (e.mode.startswith("-rw-------") or e.mode == "-rw-r-----" or
                     path.startswith("/root/")):
        return "Permission denied"
    if uid != 0 and e.kind == "link" and "pki" in path:
        return "Permission denied"
    return None


def write_problem(m: Machine, path: str, uid: int, now: float) -> str | None:
    e = stat(m, path, now)
    if e is not None and e.kind == "dir":
        return "Is a directory"
    parent = path.rsplit("/", 1)[0] or "/"
    if not is_dir(m, parent, now):
        return "No such file or directory"
    if path.startswith("/proc/") or path.startswith("/sys/"):
        return "Permission denied" if uid != 0 else None
    if uid != 0 and (any(path.startswith(p) for p in ROOT_ONLY_WRITE) or parent == "/"):
        return "Permission denied"
    return None


def write(m: Machine, path: str, content: str, now: float, *, append: bool = False) -> str | None:
    return effects.write_file(m, path, content, now, append=append)
