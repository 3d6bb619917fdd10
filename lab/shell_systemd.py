"""systemctl and journalctl as systemd 252 prints them, read from (and acting on) the machine."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from lab import effects, shell_fs
from lab.machine import JournalEntry, Machine, Unit
from lab.shell import Ctx, UsageError, command
from lab.timefmt import journal_stamp

UNIT_FILES = {
    "kubelet": ("/lib/systemd/system/kubelet.service", "https://kubernetes.io/docs/",
                "/etc/systemd/system/kubelet.service.d", "10-kubeadm.conf"),
    "containerd": ("/lib/systemd/system/containerd.service", "https://containerd.io", None, None),
    "chronyd": ("/lib/systemd/system/chrony.service", "man:chronyd(8) man:chronyc(1) "
                "man:chrony.conf(5)", None, None),
}
JOURNAL_UNITS = ("kubelet", "containerd", "chronyd")


# -- formatting helpers ----------------------------------------------------------------------------
def systemd_timestamp(ts: float) -> str:
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def relative(seconds: float) -> str:
    """systemd's format_timestamp_relative()."""
    us = int(seconds * 1e6)
    if us <= 0:
        return "now"
    sec, minute, hour, day = 10**6, 60 * 10**6, 3600 * 10**6, 86400 * 10**6
    week, month, year = 7 * day, 2629800 * 10**6, 31557600 * 10**6
    if us >= year:
        y = us // year
        mo = (us % year) // month
        return f"{y} {'year' if y == 1 else 'years'} {mo} {'month' if mo == 1 else 'months'} ago"
    if us >= month:
        return f"{us // month} months {(us % month) // day} days ago"
    if us >= week:
        return f"{us // week} weeks {(us % week) // day} days ago"
    if us >= 2 * day:
        return f"{us // day} days ago"
    if us >= 25 * hour:
        return f"1 day {(us - day) // hour}h ago"
    if us >= 6 * hour:
        return f"{us // hour}h ago"
    if us >= hour:
        return f"{us // hour}h {(us % hour) // minute}min ago"
    if us >= 5 * minute:
        return f"{us // minute}min ago"
    if us >= minute:
        return f"{us // minute}min {(us % minute) // sec}s ago"
    if us >= sec:
        return f"{us // sec}s ago"
    if us >= 1000:
        return f"{us // 1000}ms ago"
    return f"{us}us ago"


def format_bytes(n: float) -> str:
    """systemd's format_bytes(): 4.1G, 128.0M, 512B."""
    for suffix, factor in (("E", 1024**6), ("P", 1024**5), ("T", 1024**4), ("G", 1024**3),
                           ("M", 1024**2), ("K", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}{suffix}"
    return f"{int(n)}B"


def format_timespan(seconds: float) -> str:
    """systemd's format_timespan() with millisecond accuracy: 1min 2.345s."""
    parts = []
    ms_total = int(round(seconds * 1000))
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    if h:
        parts.append(f"{h}h")
    if m:
        parts.append(f"{m}min")
    s, ms = divmod(rem, 1000)
    if ms:
        parts.append(f"{s}.{ms:03d}".rstrip("0") + "s")
    elif s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)


def kubelet_cmdline(m: Machine) -> str:
    flags = m.files.get("/var/lib/kubelet/kubeadm-flags.env", "")
    match = re.search(r'KUBELET_KUBEADM_ARGS="([^"]*)"', flags)
    extra = (" " + match.group(1)) if match else ""
    return ("/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
            "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml"
            + extra)


def unit_cmdline(m: Machine, unit: Unit) -> str:
    if unit.name == "kubelet":
        return kubelet_cmdline(m)
    if unit.name == "containerd":
        return "/usr/bin/containerd"
    return "/usr/sbin/chronyd -F 1"


def journal_line(m: Machine, e: JournalEntry, fmt: str = "short") -> str:
    ident = e.ident
    tag = f"{ident}[{e.pid}]" if e.pid else ident
    if fmt == "cat":
        return e.message + "\n"
    if fmt == "short-iso":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.ts))
        stamp = stamp[:-2] + ":" + stamp[-2:]
    elif fmt == "short-precise":
        stamp = journal_stamp(e.ts) + f".{int((e.ts % 1) * 1e6):06d}"
    elif fmt == "short-unix":
        stamp = f"{e.ts:.6f}"
    else:
        stamp = journal_stamp(e.ts)
    return f"{stamp} {m.name} {tag}: {e.message}\n"


def journal_json(m: Machine, e: JournalEntry) -> str:
    def field(value: str):
        if all(ch.isprintable() or ch in "\n\t" for ch in value):
            return value
        return list(value.encode("utf-8", "surrogateescape"))

    unit = {"kubelet": "kubelet.service", "containerd": "containerd.service",
            "chronyd": "chrony.service"}.get(e.unit)
    obj = {"__REALTIME_TIMESTAMP": str(int(e.ts * 1e6)),
           "__MONOTONIC_TIMESTAMP": str(int((e.ts - m.boot_time) * 1e6)),
           "_BOOT_ID": shell_fs.boot_id(m), "_MACHINE_ID": shell_fs.machine_id(m),
           "_HOSTNAME": m.name, "PRIORITY": str(e.priority), "SYSLOG_FACILITY": "3",
           "SYSLOG_IDENTIFIER": e.ident, "_TRANSPORT": "kernel" if e.unit == "kernel" else
           "stdout", "MESSAGE": field(e.message)}
    if e.pid:
        obj["_PID"] = str(e.pid)
    if unit:
        obj["_SYSTEMD_UNIT"] = unit if e.ident != "systemd" else "init.scope"
        if e.ident == "systemd":
            obj["UNIT"] = unit
    return json.dumps(obj, ensure_ascii=False) + "\n"


BOOT_PREAMBLE = (
    (0.000000, "Linux version {kernel} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
               "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC"),
    (0.000000, "Command line: BOOT_IMAGE=/boot/vmlinuz-{kernel} root=PARTUUID=5b8e2f7a-01 ro "
               "console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 "
               "consoleblank=0 nvme_core.io_timeout=4294967295"),
    (0.000000, "BIOS-provided physical RAM map:"),
    (0.004120, "DMI: Amazon EC2 {instance_type}/, BIOS 1.0 10/16/2017"),
    (0.010233, "Hypervisor detected: KVM"),
    (0.152877, "Memory: {mem_k}K/{mem_total_k}K available (14336K kernel code, 2351K rwdata)"),
    (0.201304, "smpboot: Allowing {cpus} CPUs, 0 hotplug CPUs"),
    (0.921332, "nvme nvme0: pci function 0000:00:04.0"),
    (0.937100, "nvme nvme0: 2/0/0 default/read/poll queues"),
    (0.940512, " nvme0n1: p1 p14 p15"),
    (1.602331, "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none."),
    (2.845671, "systemd[1]: systemd 252.30-1~deb12u2 running in system mode (+PAM +AUDIT +SELINUX "
               "+APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL)"),
    (2.911023, "systemd[1]: Hostname set to <{name}>."),
    (4.201733, "ena 0000:00:05.0 eth0: Elastic Network Adapter (ENA) found at mem febf4000"),
    (6.873410, "Bridge firewalling registered"),
    (7.002101, "Initializing XFRM netlink socket"),
)


def kernel_entries(m: Machine) -> list[JournalEntry]:
    out = []
    values = {"kernel": m.kernel, "instance_type": m.instance_type, "cpus": m.cpus,
              "mem_k": m.memory // 1024 - 180_000, "mem_total_k": m.memory // 1024,
              "name": m.name}
    for offset, text in BOOT_PREAMBLE:
        out.append(JournalEntry(m.boot_time + offset, "kernel", "kernel", 0,
                                text.format(**values), 6))
    for ts, text in m.kernel_messages:
        prio = 3 if ("Out of memory" in text or "error" in text.lower()) else 6
        out.append(JournalEntry(ts, "kernel", "kernel", 0, text, prio))
    out.sort(key=lambda e: e.ts)
    return out


# -- systemctl -----------------------------------------------------------------------------------
def _unit_or_error(m: Machine, name: str) -> Unit | None:
    return m.unit(name)


def _unit_name(name: str) -> str:
    base = name.removesuffix(".service")
    return "chrony" if base in ("chronyd", "chrony") else base


def unit_properties(m: Machine, unit: Unit, now: float) -> dict[str, str]:
    node_since = unit.since + m.clock_offset
    running = unit.running
    main_pid = unit.pid if unit.active in ("active", "deactivating") else 0
    rss = {"kubelet": m.kubelet_rss, "containerd": 64 * 1024**2 + len(m.pods) * 4 * 1024**2,
           "chronyd": 2 * 1024**2}.get(unit.name, 0)
    cpu_ns = int(max(0.0, now - unit.since) * (m.kubelet_cpu if unit.name == "kubelet" else 0.5)
                 / 100 * 1e9) if running else 0
    props = {
        "Type": "simple" if unit.name != "containerd" else "notify",
        "Restart": "always" if unit.name != "chronyd" else "on-failure",
        "RestartUSec": "10s" if unit.name == "kubelet" else "5s",
        "MainPID": str(main_pid),
        "ExecMainStartTimestamp": systemd_timestamp(node_since) if unit.pid else "",
        "ExecMainPID": str(unit.pid),
        "ExecMainCode": "0" if running else "1",
        "ExecMainStatus": str(unit.exec_main_status),
        "ExecStart": f"{{ path={unit_cmdline(m, unit).split()[0]} ; argv[]={unit_cmdline(m, unit)} "
                     f"; ignore_errors=no ; start_time=[{systemd_timestamp(node_since)}] ; "
                     f"stop_time=[n/a] ; pid={unit.pid} ; code=(null) ; status=0/0 }}",
        "Result": unit.result,
        "NRestarts": str(unit.restarts),
        "MemoryCurrent": str(rss) if running else "[not set]",
        "TasksCurrent": str(_tasks(m, unit)) if running else "[not set]",
        "CPUUsageNSec": str(cpu_ns) if running else "[not set]",
        "Id": f"{_unit_name(unit.name)}.service",
        "Names": f"{_unit_name(unit.name)}.service" + (" chronyd.service" if unit.name == "chronyd"
                                                       else ""),
        "Description": unit.description,
        "LoadState": "loaded",
        "ActiveState": unit.active,
        "SubState": unit.sub,
        "FragmentPath": UNIT_FILES.get(unit.name, ("",))[0],
        "UnitFileState": "enabled",
        "UnitFilePreset": "enabled",
        "StateChangeTimestamp": systemd_timestamp(node_since),
        "ActiveEnterTimestamp": systemd_timestamp(node_since) if unit.active in (
            "active", "deactivating") else "",
        "ActiveExitTimestamp": "" if unit.active == "active" else systemd_timestamp(node_since),
        "InactiveEnterTimestamp": "" if unit.active == "active" else systemd_timestamp(node_since),
        "ControlGroup": f"/system.slice/{_unit_name(unit.name)}.service",
        "TimeoutStopUSec": "1min 30s",
        "KillMode": "process" if unit.name == "containerd" else "control-group",
        "Delegate": "yes" if unit.name == "containerd" else "no",
    }
    return props


def _tasks(m: Machine, unit: Unit) -> int:
    if unit.name == "kubelet":
        return 14 + min(40, len(m.pods) // 4)
    if unit.name == "containerd":
        return 12 + len([p for p in m.pods if p.phase == "Running"]) * 11
    return 1


def _state_line(m: Machine, unit: Unit, now: float) -> str:
    node_since = unit.since + m.clock_offset
    when = f"since {systemd_timestamp(node_since)}; {relative(now - unit.since)}"
    if unit.active == "active":
        return f"active ({unit.sub}) {when}"
    if unit.active == "activating":
        extra = f" (Result: {unit.result})" if unit.result != "success" else ""
        return f"activating ({unit.sub}){extra} {when}"
    if unit.active == "failed":
        return f"failed (Result: {unit.result}) {when}"
    if unit.active == "deactivating":
        return f"deactivating ({unit.sub}) {when}"
    return f"inactive (dead) {when}"


def _exit_desc(unit: Unit) -> str:
    if unit.result == "oom-kill":
        return "code=killed, status=9/KILL"
    if unit.result in ("signal", "timeout"):
        return "code=killed, status=9/KILL"
    if unit.exec_main_status:
        return f"code=exited, status={unit.exec_main_status}/FAILURE"
    return "code=exited, status=0/SUCCESS"


def _containers_running(m: Machine):
    return [p for p in m.pods if p.phase == "Running"]


async def systemctl_status(ctx: Ctx, names: list[str], lines: int = 10) -> int:
    m = ctx.machine
    now = ctx.now()
    m.catch_up(now)
    status = 0
    first = True
    for name in names:
        unit = m.unit(name)
        if unit is None:
            await ctx.error(f"Unit {name if '.' in name else name + '.service'} could not be "
                            f"found.\n")
            status = 4
            continue
        if not first:
            await ctx.write("\n")
        first = False
        path, docs, dropin_dir, dropin = UNIT_FILES[unit.name]
        bullet = "●" if unit.active in ("active", "activating", "deactivating") else (
            "×" if unit.active == "failed" else "○")
        out = [f"{bullet} {_unit_name(unit.name)}.service - {unit.description}",
               f"     Loaded: loaded ({path}; enabled; preset: enabled)"]
        if dropin_dir:
            out.append(f"    Drop-In: {dropin_dir}")
            out.append(f"             └─{dropin}")
        out.append(f"     Active: {_state_line(m, unit, now)}")
        for i, doc in enumerate(docs.split(" ")):
            out.append(("       Docs: " if i == 0 else "             ") + doc)
        cmd = unit_cmdline(m, unit)
        if unit.running or unit.active == "deactivating":
            out.append(f"   Main PID: {unit.pid} ({cmd.split()[0].rsplit('/', 1)[-1]})")
            out.append(f"      Tasks: {_tasks(m, unit)} (limit: {m.pids_max // 27})")
            props = unit_properties(m, unit, now)
            out.append(f"     Memory: {format_bytes(int(props['MemoryCurrent']))}")
            out.append(f"        CPU: {format_timespan(int(props['CPUUsageNSec']) / 1e9)}")
            cgroup = f"/system.slice/{_unit_name(unit.name)}.service"
            out.append(f"     CGroup: {cgroup}")
            procs = [(unit.pid, cmd)]
            if unit.name == "containerd":
                from lab.shell_node import pod_sandbox_id, pod_shim_pid

                for pod in _containers_running(m):
                    procs.append((pod_shim_pid(m, pod), "/usr/bin/containerd-shim-runc-v2 "
                                  f"-namespace k8s.io -id {pod_sandbox_id(m, pod)} "
                                  "-address /run/containerd/containerd.sock"))
            for i, (pid, line) in enumerate(procs):
                branch = "└─" if i == len(procs) - 1 else "├─"
                out.append(f"             {branch}{pid} {line}")
        elif unit.pid:
            out.append(f"    Process: {unit.pid} ExecStart={cmd.split()[0]} "
                       f"$KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS "
                       f"$KUBELET_EXTRA_ARGS ({_exit_desc(unit)})" if unit.name == "kubelet" else
                       f"    Process: {unit.pid} ExecStart={cmd} ({_exit_desc(unit)})")
            out.append(f"   Main PID: {unit.pid} ({_exit_desc(unit)})")
            out.append("        CPU: " + format_timespan(0.4 + (unit.pid % 97) / 100))
        await ctx.write("\n".join(out) + "\n")
        if lines:
            entries = list(m.journal(unit.name).entries)[-lines:]
            if entries:
                await ctx.write("\n" + "".join(journal_line(m, e) for e in entries))
        if not unit.running:
            status = max(status, 3)
    return status


async def _wait_jobs(ctx: Ctx, labels: tuple[str, ...], limit: float = 120.0) -> bool:
    m = ctx.machine
    start = ctx.now()
    while True:
        m.catch_up(ctx.now())
        if not any(t[1] in labels for t in m.timers):
            return True
        if ctx.now() - start > limit:
            return False
        await ctx.sleep(0.1)


def _access_denied(verb: str, name: str) -> str:
    unit = name if "." in name else f"{name}.service"
    return (f"Failed to {verb} {unit}: Interactive authentication required.\n"
            f"See system logs and 'systemctl status {unit}' for details.\n")


@command("systemctl")
async def systemctl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    props: list[str] = []
    value_only = False
    lines = 10
    flags: set[str] = set()
    positional: list[str] = []
    signal = "SIGTERM"
    while args:
        a = args.pop(0)
        if a in ("-p", "--property") and args:
            props.extend(args.pop(0).split(","))
        elif a.startswith("--property="):
            props.extend(a.split("=", 1)[1].split(","))
        elif a.startswith("-p") and len(a) > 2:
            props.extend(a[2:].split(","))
        elif a == "--value":
            value_only = True
        elif a in ("-n", "--lines") and args:
            lines = int(args.pop(0))
        elif a.startswith("--lines="):
            lines = int(a.split("=", 1)[1])
        elif a.startswith("-n") and a[2:].isdigit():
            lines = int(a[2:])
        elif a in ("-s", "--signal") and args:
            signal = args.pop(0)
        elif a.startswith("--signal="):
            signal = a.split("=", 1)[1]
        elif a in ("--failed",):
            flags.add("failed")
        elif a.startswith("--state="):
            if "failed" in a:
                flags.add("failed")
        elif a.startswith("-") and a not in ("-l", "--full", "--no-pager", "--no-legend",
                                             "-a", "--all", "-q", "--quiet", "--plain",
                                             "--now", "--type=service", "-t", "--no-ask-password",
                                             "--system"):
            if a.startswith("--type="):
                continue
            raise UsageError(f"systemctl: unrecognized option '{a}'", 1)
        else:
            if a in ("-q", "--quiet"):
                flags.add("quiet")
            elif a in ("--no-legend",):
                flags.add("nolegend")
            elif not a.startswith("-"):
                positional.append(a)
    verb = positional[0] if positional else "list-units"
    names = positional[1:]
    now = ctx.now()
    m.catch_up(now)
    if verb == "status":
        if not names:
            await ctx.write(f"● {m.name}\n    State: {'degraded' if _failed(m) else 'running'}\n"
                            f"    Units: 247 loaded (incl. loaded aliases)\n     Jobs: 0 queued\n"
                            f"   Failed: {len(_failed(m))} units\n    Since: "
                            f"{systemd_timestamp(m.boot_time + m.clock_offset)}; "
                            f"{relative(now - m.boot_time)}\n  systemd: 252.30-1~deb12u2\n"
                            f"   CGroup: /\n")
            return 0
        return await systemctl_status(ctx, names, lines)
    if verb in ("is-active", "is-failed", "is-enabled"):
        if not names:
            raise UsageError("Too few arguments.", 1)
        status = 0 if verb != "is-failed" else 1
        results = []
        for name in names:
            unit = m.unit(name)
            if verb == "is-enabled":
                if unit is None:
                    await ctx.error(f"Failed to get unit file state for "
                                    f"{name if '.' in name else name + '.service'}: No such file "
                                    f"or directory\n")
                    status = 1
                    continue
                results.append("enabled")
                continue
            state = unit.active if unit else "inactive"
            results.append(state)
            if verb == "is-active" and state != "active":
                status = 3
            if verb == "is-failed" and state == "failed":
                status = 0
        if "quiet" not in flags:
            await ctx.write("".join(r + "\n" for r in results))
        return status
    if verb == "show":
        if not names:
            names = []
        status = 0
        for i, name in enumerate(names):
            unit = m.unit(name)
            if unit is None:
                values = {"Id": name if "." in name else name + ".service",
                          "LoadState": "not-found", "ActiveState": "inactive",
                          "SubState": "dead", "MainPID": "0", "NRestarts": "0",
                          "Result": "success"}
            else:
                values = unit_properties(m, unit, now)
            keys = props or list(values)
            if i:
                await ctx.write("\n")
            out = []
            for key in keys:
                value = values.get(key, "")
                out.append(value if value_only else f"{key}={value}")
            await ctx.write("".join(line + "\n" for line in out))
        return status
    if verb in ("restart", "start", "stop", "try-restart", "reload-or-restart", "kill",
                "reload", "enable", "disable", "daemon-reload", "reset-failed", "mask",
                "unmask"):
        if verb != "daemon-reload" and not names and verb != "reset-failed":
            raise UsageError("Too few arguments.", 1)
        if not ctx.root:
            if verb == "daemon-reload":
                await ctx.error("Failed to reload daemon: Interactive authentication required.\n")
                return 1
            await ctx.error(_access_denied(verb, names[0] if names else ""))
            return 1
        if verb in ("daemon-reload", "reset-failed", "enable", "disable", "mask", "unmask"):
            if verb in ("enable", "disable", "mask", "unmask"):
                for name in names:
                    if m.unit(name) is None:
                        await ctx.error(f"Failed to {verb} unit: Unit file "
                                        f"{name if '.' in name else name + '.service'} does not "
                                        f"exist.\n")
                        return 1
            return 0
        for name in names:
            unit = m.unit(name)
            if unit is None:
                unit_name = name if "." in name else name + ".service"
                word = {"stop": "stop", "kill": "kill"}.get(verb, verb)
                await ctx.error(f"Failed to {word} {unit_name}: Unit {unit_name} "
                                f"{'not loaded' if verb in ('stop', 'kill') else 'not found'}.\n")
                return 5
            if verb in ("restart", "try-restart", "reload-or-restart", "reload"):
                err = effects.restart_unit(m, unit.name, ctx.now())
                labels = ("start-kubelet", "stop-containerd", "start-containerd", "chrony-sync")
            elif verb == "start":
                err = effects.start_unit(m, unit.name, ctx.now())
                labels = ("start-kubelet", "start-containerd")
            elif verb == "stop":
                err = effects.stop_unit(m, unit.name, ctx.now())
                labels = ("stop-containerd",)
            else:
                from lab.shell_node import kill_unit

                err = kill_unit(m, unit.name, signal, ctx.now())
                labels = ()
            if err:
                await ctx.error(err + "\n")
                return 1
            await _wait_jobs(ctx, labels)
        return 0
    if verb in ("list-units", "list-unit-files", "--failed"):
        units = [m.kubelet, m.containerd, m.chronyd]
        if "failed" in flags:
            units = [u for u in units if u.active == "failed"]
        rows = [(("● " if u.active == "failed" else "  ") + f"{_unit_name(u.name)}.service",
                 "loaded", u.active, u.sub, u.description) for u in units]
        head = ("  UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
        out = []
        if "nolegend" not in flags:
            out.append(" ".join(h.ljust(w) for h, w in zip(head[:4], widths, strict=False))
                       + " " + head[4])
        for r in rows:
            out.append(" ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False))
                       + " " + r[4])
        if "nolegend" not in flags:
            if rows:
                out.append("")
                out.append("LOAD   = Reflects whether the unit definition was properly loaded.")
                out.append("ACTIVE = The high-level unit activation state, i.e. generalization "
                           "of SUB.")
                out.append("SUB    = The low-level unit activation state, values depend on unit "
                           "type.")
            out.append(f"{len(rows)} loaded units listed.")
        await ctx.write("\n".join(out) + "\n")
        return 0
    if verb in ("reboot", "poweroff", "halt"):
        await ctx.error(f"Call to {verb.title()} failed: Access denied\n")
        return 1
    raise UsageError(f"Unknown command verb {verb}.", 1)


def _failed(m: Machine) -> list[Unit]:
    return [u for u in (m.kubelet, m.containerd, m.chronyd) if u.active == "failed"]


# -- journalctl ------------------------------------------------------------------------------------
_UNITS_RE = re.compile(r"^(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hour|"
                       r"hours|d|day|days|w|week|weeks)?$")


def parse_time(text: str, node_now: float) -> float | None:
    """journalctl's --since/--until syntax, in node time."""
    text = text.strip()
    low = text.lower()
    day_start = datetime.fromtimestamp(node_now).replace(hour=0, minute=0, second=0,
                                                          microsecond=0).timestamp()
    if low == "now":
        return node_now
    if low == "today":
        return day_start
    if low == "yesterday":
        return day_start - 86400
    if low == "tomorrow":
        return day_start + 86400
    mult = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
            "mins": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600,
            "hours": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800,
            "week": 604800, "weeks": 604800, None: 1}
    m = re.match(r"^(\d+(?:\.\d+)?)\s*([a-z]+)?\s+ago$", low)
    if m and m.group(2) in mult:
        return node_now - float(m.group(1)) * mult[m.group(2)]
    m = re.match(r"^([-+])\s*((?:\d+\s*[a-z]*\s*)+)$", low)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+)\s*([a-z]*)", m.group(2)):
            if (unit or None) not in mult:
                return None
            total += int(num) * mult[unit or None]
        return node_now - total if m.group(1) == "-" else node_now + total
    if low.startswith("@"):
        try:
            return float(low[1:])
        except ValueError:
            return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S",
                "%H:%M:%S", "%H:%M"):
        try:
            parsed = datetime.strptime(text.replace(" UTC", ""), fmt)
        except ValueError:
            continue
        if fmt.startswith("%H"):
            base = datetime.fromtimestamp(day_start)
            parsed = base.replace(hour=parsed.hour, minute=parsed.minute, second=parsed.second)
        return parsed.timestamp()
    return None


PRIORITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6,
              "debug": 7}


def _priority(text: str) -> tuple[int, int] | None:
    def one(t: str) -> int | None:
        if t.isdigit() and 0 <= int(t) <= 7:
            return int(t)
        return PRIORITIES.get(t.lower())
    if ".." in text:
        a, b = text.split("..", 1)
        lo, hi = one(a) if a else 0, one(b) if b else 7
        if lo is None or hi is None:
            return None
        return (min(lo, hi), max(lo, hi))
    p = one(text)
    return None if p is None else (0, p)


def parse_size(text: str) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)(?:i?B)?", text.strip(), re.I)
    if not m:
        return None
    return int(float(m.group(1)) * 1024 ** (" KMGT".index(m.group(2).upper() or " ")))


@command("journalctl")
async def journalctl(ctx: Ctx, argv: list[str]) -> int:
    m = ctx.machine
    args = argv[1:]
    units: list[str] = []
    lines: int | None = None
    lines_given = False
    follow = kernel = reverse = False
    since = until = None
    fmt = "short"
    prio = None
    grep_pat = None
    vacuum = None
    disk_usage = list_boots = False
    identifiers: list[str] = []

    def need(opt: str) -> str:
        if not args:
            raise UsageError(f"journalctl: option '{opt}' requires an argument", 1)
        return args.pop(0)

    while args:
        a = args.pop(0)
        val = None
        if a.startswith("--") and "=" in a:
            a, val = a.split("=", 1)
        elif len(a) > 2 and a[0] == "-" and a[1] != "-" and a[1] in "unpoS" and a[1:2] != "":
            a, val = a[:2], a[2:]
        if a in ("-u", "--unit"):
            units.append(val if val is not None else need(a))
        elif a in ("-n", "--lines"):
            v = val if val is not None else (args.pop(0) if args and re.fullmatch(
                r"\+?\d+|all", args[0]) else "10")
            lines = None if v == "all" else int(v.lstrip("+"))
            lines_given = True
        elif a in ("-f", "--follow"):
            follow = True
        elif a in ("-e", "--pager-end"):
            lines = lines if lines is not None else 1000
        elif a in ("-k", "--dmesg"):
            kernel = True
        elif a in ("-r", "--reverse"):
            reverse = True
        elif a in ("-S", "--since"):
            since = val if val is not None else need(a)
        elif a in ("-U", "--until"):
            until = val if val is not None else need(a)
        elif a in ("-o", "--output"):
            fmt = val if val is not None else need(a)
            if fmt not in ("short", "short-iso", "short-precise", "short-unix", "cat", "json",
                           "json-pretty", "verbose", "with-unit", "short-full"):
                raise UsageError(f'Unknown output format "{fmt}".', 1)
        elif a in ("-p", "--priority"):
            prio = _priority(val if val is not None else need(a))
            if prio is None:
                raise UsageError("Failed to parse priority value.", 1)
        elif a in ("-g", "--grep"):
            grep_pat = val if val is not None else need(a)
        elif a in ("-t", "--identifier"):
            identifiers.append(val if val is not None else need(a))
        elif a == "--vacuum-size":
            vacuum = val if val is not None else need(a)
        elif a == "--disk-usage":
            disk_usage = True
        elif a == "--list-boots":
            list_boots = True
        elif a in ("-b", "--boot"):
            if args and re.fullmatch(r"-?\d+|[0-9a-f]{32}", args[0]):
                which = args.pop(0)
                if which not in ("0", shell_fs.boot_id(m)):
                    raise UsageError("Data from the specified boot (" + which +
                                     ") is not available: No such boot ID in journal", 1)
        elif a in ("--no-pager", "-q", "--quiet", "-a", "--all", "-x", "--catalog", "-l",
                   "--full", "--no-hostname", "--utc", "--merge", "-m", "--system"):
            if a == "--no-hostname":
                fmt = fmt + "+nohost" if "+nohost" not in fmt else fmt
        elif a.startswith("-"):
            raise UsageError(f"journalctl: unrecognized option '{a}'", 1)
        elif a.startswith("_SYSTEMD_UNIT="):
            units.append(a.split("=", 1)[1])
        elif a.startswith("SYSLOG_IDENTIFIER="):
            identifiers.append(a.split("=", 1)[1])
        else:
            raise UsageError(f"Failed to add match '{a}': Invalid argument", 1)
    now = ctx.now()
    m.catch_up(now)
    node_now = m.node_now(now)
    if vacuum is not None or disk_usage:
        if vacuum is not None:
            size = parse_size(vacuum)
            if size is None:
                raise UsageError(f"Failed to parse size value: {vacuum}", 1)
            if not ctx.root:
                await ctx.error("Vacuuming done, freed 0B of archived journals from "
                                "/var/log/journal.\nVacuuming done, freed 0B of archived "
                                "journals from /run/log/journal.\n")
                return 0
            before = m.journal_bytes
            freed = effects.vacuum_journal(m, size, now)
            jdir = f"/var/log/journal/{shell_fs.machine_id(m)}"
            chunk = 128 * 1024**2
            n = int(freed // chunk)
            for i in range(min(n, 200)):
                await ctx.error(f"Deleted archived journal {jdir}/system@"
                                f"{shell_fs.machine_id(m)[:16]}-{i + 1:016x}-"
                                f"{int(m.boot_time * 1e6) + i:016x}.journal "
                                f"({format_bytes(chunk)}).\n")
            await ctx.error(f"Vacuuming done, freed {format_bytes(freed)} of archived journals "
                            f"from {jdir}.\n")
            await ctx.error("Vacuuming done, freed 0B of archived journals from "
                            "/run/log/journal.\n")
            del before
            return 0
        await ctx.write(f"Archived and active journals take up {format_bytes(m.journal_bytes)} "
                        f"in the file system.\n")
        return 0
    if list_boots:
        first = m.boot_time + m.clock_offset
        await ctx.write(f"IDX BOOT ID                          FIRST ENTRY                 "
                        f"LAST ENTRY\n  0 {shell_fs.boot_id(m)} {systemd_timestamp(first)} "
                        f"{systemd_timestamp(node_now)}\n")
        return 0
    unit_keys: list[str] = []
    for u in units:
        base = u.removesuffix(".service")
        base = "chronyd" if base in ("chrony", "chronyd") else base
        unit_keys.append(base)
    since_ts = until_ts = None
    if since is not None:
        since_ts = parse_time(since, node_now)
        if since_ts is None:
            raise UsageError(f'Failed to parse timestamp: {since}', 1)
    if until is not None:
        until_ts = parse_time(until, node_now)
        if until_ts is None:
            raise UsageError(f'Failed to parse timestamp: {until}', 1)

    sources = _sources(m, unit_keys, kernel, bool(units) or bool(identifiers))
    entries = _gather(m, sources, kernel, unit_keys)

    def keep(e: JournalEntry) -> bool:
        if since_ts is not None and e.ts < since_ts:
            return False
        if until_ts is not None and e.ts > until_ts:
            return False
        if prio is not None and not (prio[0] <= e.priority <= prio[1]):
            return False
        if identifiers and e.ident not in identifiers:
            return False
        if grep_pat is not None and not re.search(grep_pat, e.message,
                                                  0 if any(c.isupper() for c in grep_pat)
                                                  else re.I):
            return False
        return True

    selected = [e for e in entries if keep(e)]
    if lines is not None:
        selected = selected[-lines:] if lines else []
    elif follow and not lines_given and since is None:
        selected = selected[-10:]  # -f alone shows the last ten lines, as -n 10 would
    if reverse:
        selected.reverse()

    def render(e: JournalEntry) -> str:
        if fmt.startswith("json"):
            return journal_json(m, e)
        base = fmt.split("+")[0]
        line = journal_line(m, e, base if base != "with-unit" else "short")
        if "+nohost" in fmt:
            line = line.replace(f" {m.name} ", " ", 1)
        return line

    if not selected and not follow:
        await ctx.write("-- No entries --\n")
        return 0
    batch: list[str] = []
    size = 0
    for e in selected:
        text = render(e)
        batch.append(text)
        size += len(text)
        if size >= 65536:
            await ctx.write("".join(batch))
            batch, size = [], 0
    if batch:
        await ctx.write("".join(batch))
    if not follow:
        return 0
    # follow: stream what the journals gain, merged by time
    seqs = {key: m.journal(key).seq for key in sources}
    kernel_seen = len(m.kernel_messages)
    while True:
        await ctx.sleep(0.3)
        now = ctx.now()
        m.catch_up(now)
        fresh: list[JournalEntry] = []
        for key in sources:
            j = m.journal(key)
            fresh.extend(j.since_seq(seqs[key]))
            seqs[key] = j.seq
        if kernel or (not units and not identifiers):
            for ts, text in m.kernel_messages[kernel_seen:]:
                fresh.append(JournalEntry(ts, "kernel", "kernel", 0, text, 6))
            kernel_seen = len(m.kernel_messages)
        fresh = [e for e in fresh if keep(e) and (until_ts is None or e.ts <= until_ts)]
        fresh.sort(key=lambda e: e.ts)
        if fresh:
            await ctx.write("".join(render(e) for e in fresh))


def _sources(m: Machine, unit_keys: list[str], kernel: bool, filtered: bool) -> list[str]:
    if kernel and not unit_keys:
        return []
    if unit_keys:
        return [k for k in unit_keys if k in JOURNAL_UNITS or k in m.journals]
    return [k for k in m.journals if k != "calico"] or list(JOURNAL_UNITS)


def _gather(m: Machine, sources: list[str], kernel: bool, unit_keys: list[str]
            ) -> list[JournalEntry]:
    entries: list[JournalEntry] = []
    for key in sources:
        entries.extend(m.journal(key).entries)
    if kernel or not unit_keys:
        entries.extend(kernel_entries(m))
    entries.sort(key=lambda e: e.ts)
    return entries
