"""The runbooks' quick checks on a node, over SSH, each returning a typed Observation.

    async with SshClient(ssh_config="~/.ssh/config") as ssh:
        obs = await crictl(ssh, "node-0004", "ps")     # HUNG when the runtime does not answer
        obs = await df(ssh, "node-0010", inodes=True)  # BAD above 85 % (says which mount)

Every check builds one command (two for the API server), runs it through an SshClient with a
time limit, parses what came back into `data` (JSON-safe) and judges it: OK or BAD with a
one-line `summary` and the output it decided on in `raw`. A command that does not finish in its
limit is HUNG with what it printed so far (a `crictl ps` that does not return in 10 s says the
runtime is hung); SSH failures and output that cannot be read are ERROR with the reason. No
check raises.

`CHECKS` lists them all (probe id, title, time limit, how to call it) for `probes.node_probes`.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from probes import certs
from probes.command_result import CommandResult
from probes.observation import Observation, Status
from probes.ssh_errors import SshError

__all__ = [
    "CheckSpec", "CHECKS", "JOURNAL_PATTERNS", "DEFAULT_RUNTIME_ENDPOINT", "ssh_runner",
    "skipped", "systemd_unit", "journal_scan", "crictl", "df", "kernel_modules", "cni",
    "kubelet_healthz", "apiserver_reachability", "client_cert", "dmesg_oom", "kubelet_process",
    "ntp", "swap", "pods",
    "parse_systemctl_show", "scan_journal", "parse_df", "parse_lsmod", "parse_ps_rss_cpu",
    "parse_ntp", "parse_swap", "parse_max_pods", "cni_plugin_types", "kubeconfig_server",
]

DEFAULT_RUNTIME_ENDPOINT = "unix:///run/containerd/containerd.sock"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
CLIENT_CERT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
DF_PATHS = ("/var/lib/kubelet", "/var/lib/containerd", "/var/log")
DF_LIMIT = 85  # percent; the eviction manager's default threshold
MODULES = ("vxlan", "overlay", "br_netfilter")
CNI_BIN = "/opt/cni/bin"
CNI_CONF = "/etc/cni/net.d"
OVERLAY_PLUGINS = ("calico", "flannel")
MAX_RESTARTS = 3
RSS_LIMIT_MB = 500
CLOCK_OFFSET_LIMIT = 5.0  # seconds
DEFAULT_MAX_PODS = 110
RAW_LIMIT = 64_000
SECTION = "##nodewb## "  # separates the parts of a compound command's output


def _then(head: str, tail: str) -> str:
    """A line holding `head` and later `tail`, matched in time linear in the line: the atomic
    group commits to the first `head`, so a line of many heads and no tail is not retried from
    each of them."""
    return rf"(?:\A|(?<=\n))(?>[^\n]*?(?:{head}))[^\n]*(?:{tail})"


# The error strings the runbooks name, as (label, regex). Matched case-insensitively.
JOURNAL_PATTERNS: tuple[tuple[str, str], ...] = (
    ("PLEG is not healthy", r"PLEG is not healthy"),
    ("pleg was last seen active", r"pleg was last seen active"),
    ("failed to connect to containerd", r"failed to connect to containerd"),
    ("transport: Error while dialing",
     r'connection error: desc = \\?"transport: Error while dialing'),
    ("container runtime is down", r"container runtime is down"),
    ("cni plugin not initialized", r"cni plugin not initialized"),
    ("NetworkPluginNotReady", r"NetworkPluginNotReady"),
    ("failed to find plugin", r"failed to find plugin"),
    ("x509: certificate has expired or is not yet valid",
     r"x509: certificate has expired or is not yet valid"),
    ("Unauthorized", r"Unauthorized"),
    ("certificate request was not signed", r"certificate request was not signed"),
    ("misconfiguration: kubelet cgroup driver", r"misconfiguration: kubelet cgroup driver"),
    ("running with swap on is not supported", r"running with swap on is not supported"),
    ("eviction manager: attempting to reclaim", r"eviction manager: attempting to reclaim"),
    ("no space left on device", r"no space left on device"),
    ("Failed to ensure lease exists", r"Failed to ensure lease exists"),
    ("Failed to update lease", r"Failed to update lease"),
    ("i/o timeout", r"i/o timeout"),
    ("resource temporarily unavailable", r"resource temporarily unavailable"),
    ("failed to create vxlan tunnel", r"failed to create vxlan tunnel"),
    ("oom", r"\boom(?!_score)|out of memory"),
    # the finer leaves: which way the runtime fails, the CNI config, certificates, config, API
    ("runtime call deadline exceeded",
     _then(r"ListPodSandbox|ListContainers|PodSandboxStatus|ContainerStatus|GenericPLEG: "
           r"Unable to retrieve pods|(Status|Version) from runtime service failed",
           r"DeadlineExceeded|context deadline exceeded")),
    # only the kubelet's CRI calls (gRPC), not cAdvisor probing for runtimes the node lacks
    ("runtime socket missing",
     _then(r"Error while dialing|rpc error", r"dial unix [^ ]*(containerd|crio|cri-dockerd|"
           r"docker|dockershim)\.sock: connect: no such file or directory")),
    ("runtime socket refused",
     _then(r"Error while dialing|rpc error", r"dial unix [^ ]*(containerd|crio|cri-dockerd|"
           r"docker|dockershim)\.sock: connect: connection refused")),
    ("Container runtime sanity check failed", r"Container runtime sanity check failed"),
    ("Cannot connect to the Docker daemon", r"Cannot connect to the Docker daemon"),
    ("cni config uninitialized",
     r"cni config uninitiali[sz]ed|no networks found in /etc/cni/net\.d|failed to load cni "
     r"config|no valid networks found in"),
    ("Relisting took longer than expected", r"Relisting took longer than expected"),
    ("bootstrap client certificate expired",
     r"bootstrap client certificate in \S+ is expired|client certificate \S* ?is expired|"
     r"current client certificate is expired"),
    ("certificate not yet valid", r"certificate has expired or is not yet valid: current time "
                                  r"\S+ is before"),
    ("no serving certificate available", r"no serving certificate available for the kubelet"),
    ("kubelet config invalid",
     r"failed to load Kubelet config file|failed to validate kubelet (flags|configuration)|"
     r"unknown flag: --|failed to parse kubelet flag|unable to load bootstrap kubeconfig|"
     r"failed to construct kubelet dependencies"),
    # the kubelet falling back to its bootstrap kubeconfig, which kubeadm deletes after joining
    ("bootstrap kubeconfig missing", r"unable to load bootstrap kubeconfig"),
    ("kubelet API calls unauthorized",
     _then(r"Error updating node status|Unable to register node|ensure (node )?lease exists|"
           r"update (node )?lease|Failed to (list|watch) \*v1\.\w+|error getting node",
           r"Unauthorized")),
    ("node status update failed",
     _then(r"Error updating node status|Unable to register node|Failed to ensure lease exists|"
           r"Failed to update lease|Error getting node|Failed to get node",
           r"i/o timeout|connection refused|no route to host|TLS handshake timeout|"
           r"Client\.Timeout|context deadline exceeded|connection reset by peer|"
           r"http2: client connection lost|EOF")),
    ("image filesystem over the threshold",
     r"Disk usage on image filesystem is at \d+% which is over the high threshold|failed to "
     r"garbage collect required amount of images|Image garbage collection failed"),
    ("low on resource", r"(The node (was|had condition)|node was) low on resource"),
    ("eviction manager observed pressure",
     r"eviction manager: node conditions - observed\W+(pressures=)?\[[^\]]*(Memory|Disk|PID)"
     r"Pressure"),
    ("System OOM encountered", r"System OOM encountered|invoked oom-killer|Memory cgroup out "
                               r"of memory"),
)
_COMPILED = tuple((label, re.compile(rx, re.I)) for label, rx in JOURNAL_PATTERNS)

Runner = Callable[[str, str, float], Awaitable[tuple[int | None, str, str, bool]]]


class _Unreadable(Exception):
    """The output is not what the command prints: the check is ERROR with this reason."""


@dataclass(frozen=True, slots=True)
class _Verdict:
    status: Status
    summary: str
    data: dict[str, Any]
    raw: str = ""
    reason: str = ""


# -- plumbing ------------------------------------------------------------------------------------
def ssh_runner(ssh: Any) -> Runner:
    """An SshClient as the `(node, command, timeout) -> (exit, stdout, stderr, timed_out)` runner
    that probes.kubelet and probes.certs take."""
    async def run(node: str, command: str, timeout: float) -> tuple[int | None, str, str, bool]:
        r = await ssh.run(node, command, timeout)
        return r.exit_status, r.stdout, r.stderr, r.timed_out
    return run


def skipped(probe: str, node: str | None, reason: str, via: str = "ssh") -> Observation:
    return Observation(probe, node, Status.SKIPPED, time.time(), 0.0, f"skipped: {reason}",
                       via=via, reason=reason)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _tail(text: str, limit: int = RAW_LIMIT) -> str:
    return text[-limit:]


def _sections(text: str) -> dict[str, str]:
    """Output of `echo '##nodewb## NAME'; cmd; ...` split by section name ('' before the first)."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith(SECTION):
            current = line[len(SECTION):].strip()
            out.setdefault(current, [])
            continue
        out.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _marker(name: str) -> str:
    return f"echo {shlex.quote(SECTION + name)}"


async def _execute(ssh: Any, node: str, probe: str, command: str, timeout: float,
                   judge: Callable[[CommandResult], _Verdict], *,
                   hung: Callable[[CommandResult], str] | None = None) -> Observation:
    """Run `command`, hand the result to `judge`; HUNG / ERROR handled here."""
    started = time.time()
    t0 = time.monotonic()
    base: dict[str, Any] = {"command": command}
    if ssh is None:
        return skipped(probe, node, "no SSH configured for the node checks")
    try:
        r = await ssh.run(node, command, timeout)
    except SshError as exc:
        reason = str(exc)
        return Observation(probe, node, Status.ERROR, started, time.monotonic() - t0,
                           f"{probe}: could not run it over SSH ({_first_line(reason)})",
                           dict(base, error=type(exc).__name__), "ssh", "", reason)
    except Exception as exc:  # the transport itself failed in an unexpected way
        reason = f"{type(exc).__name__}: {exc}"
        return Observation(probe, node, Status.ERROR, started, time.monotonic() - t0,
                           f"{probe}: could not run it over SSH ({reason})", base, "ssh", "",
                           reason)
    duration = time.monotonic() - t0
    base.update(exit_status=r.exit_status, duration=round(r.duration, 3), timed_out=r.timed_out)
    raw = _tail(r.stdout + (("\n" + r.stderr) if r.stderr.strip() else ""))
    if r.timed_out:
        words = hung(r) if hung else (f"`{command}` did not finish in {timeout:g} s")
        return Observation(probe, node, Status.HUNG, started, duration,
                           f"{words} (printed {len(r.stdout) + len(r.stderr)} characters "
                           f"before it was stopped)", base, "ssh", raw,
                           f"timed out after {timeout:g} s")
    try:
        v = judge(r)
    except _Unreadable as exc:
        return Observation(probe, node, Status.ERROR, started, duration,
                           f"{probe}: {exc}", base, "ssh",
                           raw, str(exc))
    except Exception as exc:  # a parser surprise is an ERROR observation, never an exception
        reason = f"{type(exc).__name__}: {exc}"
        return Observation(probe, node, Status.ERROR, started, duration,
                           f"{probe}: could not read the output ({reason})",
                           base, "ssh", raw, reason)
    data = dict(base)
    data.update(v.data)
    return Observation(probe, node, v.status, started, duration, v.summary, data, "ssh",
                       v.raw if v.raw else raw, v.reason)


def _require_output(r: CommandResult, what: str) -> str:
    if not r.stdout.strip():
        err = _first_line(r.stderr)
        raise _Unreadable(f"{what} printed nothing" + (f" ({err})" if err else
                                                        f" (exit status {r.exit_status})"))
    return r.stdout


# -- systemd ---------------------------------------------------------------------------------------
SYSTEMD_PROPS = "ActiveState,SubState,NRestarts,MainPID,ExecMainStartTimestamp,Result"


def parse_systemctl_show(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            props[key.strip()] = value.strip()
    return props


async def systemd_unit(ssh: Any, node: str, unit: str = "kubelet", *,
                       timeout: float = 10.0, max_restarts: int = MAX_RESTARTS) -> Observation:
    """`systemctl show` of a unit: bad when not active/running or restarted more than 3 times."""
    probe = f"node.systemd.{unit}"
    command = f"systemctl show -p {SYSTEMD_PROPS} {shlex.quote(unit)}"

    def judge(r: CommandResult) -> _Verdict:
        props = parse_systemctl_show(_require_output(r, "systemctl show"))
        if "ActiveState" not in props:
            raise _Unreadable("no ActiveState= line")
        active, sub = props.get("ActiveState", ""), props.get("SubState", "")
        try:
            restarts: int | None = int(props.get("NRestarts", ""))
        except ValueError:
            restarts = None
        try:
            pid: int | None = int(props.get("MainPID", ""))
        except ValueError:
            pid = None
        result = props.get("Result", "")
        data = {"unit": unit, "active_state": active, "sub_state": sub, "restarts": restarts,
                "main_pid": pid, "started_at": props.get("ExecMainStartTimestamp", ""),
                "result": result, "properties": props}
        problems = []
        if active != "active" or sub != "running":
            problems.append(f"{active or '?'}/{sub or '?'}"
                            + (f" (Result={result})" if result and result != "success" else ""))
        if restarts is not None and restarts > max_restarts:
            problems.append(f"restarted {restarts} times (more than {max_restarts})")
        since = props.get("ExecMainStartTimestamp") or "?"
        if problems:
            return _Verdict(Status.BAD, f"{unit}: " + "; ".join(problems)
                            + f"; last start {since}", data, r.stdout.strip())
        return _Verdict(Status.OK, f"{unit} active/running, {restarts} restarts, "
                                   f"since {since}", data, r.stdout.strip())

    return await _execute(ssh, node, probe, command, timeout, judge)


# -- journal ---------------------------------------------------------------------------------------
def scan_journal(lines: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """Every known pattern with its count and the last line that matched; total lines read."""
    counts = {label: 0 for label, _ in _COMPILED}
    last: dict[str, str | None] = {label: None for label, _ in _COMPILED}
    n = 0
    for line in lines:
        n += 1
        for label, rx in _COMPILED:
            if rx.search(line):
                counts[label] += 1
                last[label] = line.strip()
    return [{"pattern": label, "count": counts[label], "last": last[label]}
            for label, _ in _COMPILED], n


async def journal_scan(ssh: Any, node: str, unit: str = "kubelet", *, lines: int = 300,
                       timeout: float = 15.0) -> Observation:
    """The last `lines` journal lines of a unit, scanned for the runbooks' error strings."""
    probe = f"node.journal.{unit}"
    command = f"journalctl -u {shlex.quote(unit)} -n {int(lines)} --no-pager"

    def judge(r: CommandResult) -> _Verdict:
        text = _require_output(r, "journalctl")
        body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("-- ")]
        if r.exit_status not in (0, None) and not body:
            raise _Unreadable(f"journalctl exited {r.exit_status}: "
                              f"{_first_line(r.stderr) or _first_line(text)}")
        found, n = scan_journal(body)
        hits = [f for f in found if f["count"]]
        data = {"unit": unit, "lines": n, "patterns": found,
                "matched": {f["pattern"]: f["count"] for f in hits}}
        if not body:
            return _Verdict(Status.OK, f"{unit} journal: no entries", data, text.strip())
        if not hits:
            return _Verdict(Status.OK, f"{unit} journal: none of the known error strings in "
                                       f"the last {n} lines", data, "\n".join(body[-5:]))
        hits.sort(key=lambda f: -f["count"])
        words = ", ".join(f"'{f['pattern']}' x{f['count']}" for f in hits[:4])
        more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
        evidence = "\n".join(dict.fromkeys(f["last"] for f in hits if f["last"]))
        return _Verdict(Status.BAD, f"{unit} journal ({n} lines): {words}{more}", data,
                        evidence)

    return await _execute(ssh, node, probe, command, timeout, judge)


# -- crictl ----------------------------------------------------------------------------------------
_SOCKET_WORDS = re.compile(r"\.sock|socket|transport: Error while dialing|connection refused|"
                           r"no such file or directory|permission denied", re.I)


async def crictl(ssh: Any, node: str, what: str = "ps", *, timeout: float = 10.0,
                 endpoint: str = DEFAULT_RUNTIME_ENDPOINT) -> Observation:
    """`crictl ps|pods|info`, timed: HUNG when the runtime does not answer in `timeout`, BAD
    when it errors (the socket missing or refusing), OK with what it listed."""
    if what not in ("ps", "pods", "info"):
        raise ValueError(f"crictl {what!r}: ps, pods or info")
    probe = f"node.crictl.{what}"
    command = f"crictl --runtime-endpoint {shlex.quote(endpoint)} {what}"

    def hung(r: CommandResult) -> str:
        return (f"crictl {what} did not return in {timeout:g} s: the container runtime is hung "
                f"(deadlocked or starved)")

    def judge(r: CommandResult) -> _Verdict:
        data: dict[str, Any] = {"endpoint": endpoint, "seconds": round(r.duration, 3)}
        errors = "\n".join(ln for ln in (r.stderr + "\n" + r.stdout).splitlines()
                           if re.search(r"FATA|level=fatal|rpc error|E\d{4} ", ln))
        if r.exit_status != 0:
            text = (errors or r.stderr.strip() or r.stdout.strip())
            data["socket_error"] = bool(_SOCKET_WORDS.search(text))
            last = _first_line("\n".join(reversed(text.splitlines()))) or \
                f"exit status {r.exit_status}"
            why = "the runtime socket does not answer: " if data["socket_error"] else ""
            return _Verdict(Status.BAD, f"crictl {what} failed after {r.duration:.1f} s: "
                                        f"{why}{last[:240]}", data, text[-RAW_LIMIT:])
        if what == "info":
            text = _require_output(r, "crictl info")
            try:
                info = json.loads(text)
            except ValueError:
                raise _Unreadable("crictl info did not print JSON") from None
            if not isinstance(info, dict):
                raise _Unreadable("crictl info did not print a JSON object")
            conds = ((info.get("status") or {}).get("conditions")) or []
            state = {str(c.get("type")): {"status": bool(c.get("status")),
                                          "reason": c.get("reason") or "",
                                          "message": c.get("message") or ""}
                     for c in conds if isinstance(c, dict)}
            data["conditions"] = state
            down = [f"{k}=false" + (f" ({v['reason']}: {v['message']})" if v["reason"] else "")
                    for k, v in state.items() if not v["status"]]
            if down:
                return _Verdict(Status.BAD, f"crictl info in {r.duration:.1f} s: "
                                            + "; ".join(down)[:300], data, text)
            if not state:
                raise _Unreadable("crictl info has no status.conditions")
            return _Verdict(Status.OK, f"crictl info in {r.duration:.1f} s: "
                                       + ", ".join(f"{k}=true" for k in state), data, text)
        rows = [ln for ln in r.stdout.splitlines() if ln.strip()]
        if not rows:
            raise _Unreadable(f"crictl {what} printed nothing, not even its table header")
        if rows and (rows[0].startswith("CONTAINER") or rows[0].startswith("POD ID")):
            rows = rows[1:]
        elif rows:
            raise _Unreadable(f"crictl {what} printed no table header: {rows[0][:80]!r}")
        data["count"] = len(rows)
        noun = "containers" if what == "ps" else "pod sandboxes"
        return _Verdict(Status.OK, f"crictl {what} answered in {r.duration:.2f} s: "
                                   f"{len(rows)} {noun}", data, r.stdout)

    return await _execute(ssh, node, probe, command, timeout, judge, hung=hung)


# -- df --------------------------------------------------------------------------------------------
def parse_df(text: str) -> list[dict[str, Any]]:
    """`df -h` / `df -i` rows (a long device name wrapped onto its own line is joined)."""
    rows: list[dict[str, Any]] = []
    pending = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("Filesystem"):
            continue
        parts = (pending + " " + line).split() if pending else line.split()
        if len(parts) == 1:
            pending = parts[0]
            continue
        pending = ""
        if len(parts) < 6 or not parts[4].endswith("%"):
            raise _Unreadable(f"not a df row: {line.strip()[:80]!r}")
        pct = parts[4].rstrip("%")
        rows.append({"filesystem": parts[0], "size": parts[1], "used": parts[2],
                     "avail": parts[3], "use_pct": None if pct == "-" else int(pct),
                     "mount": " ".join(parts[5:])})
    return rows


async def df(ssh: Any, node: str, *, inodes: bool = False, paths: Iterable[str] = DF_PATHS,
             limit: int = DF_LIMIT, timeout: float = 10.0) -> Observation:
    """`df -h` (or `df -i`) of the kubelet, containerd and log directories: bad above 85 %."""
    probe = "node.df.inodes" if inodes else "node.df.space"
    flag = "-i" if inodes else "-h"
    paths = tuple(paths)
    command = "; ".join(f"{_marker(p)}; df {flag} {shlex.quote(p)}" for p in paths)
    what = "inodes" if inodes else "space"

    def judge(r: CommandResult) -> _Verdict:
        secs = _sections(_require_output(r, "df"))
        per: dict[str, Any] = {}
        for p in paths:
            rows = parse_df(secs.get(p, ""))
            if not rows:
                per[p] = None  # the directory is not there (e.g. a CRI-O node)
                continue
            row = rows[-1]
            per[p] = row
        present = {p: row for p, row in per.items() if row}
        if not present:
            raise _Unreadable(f"df printed no row for {', '.join(paths)}"
                              + (f" ({_first_line(r.stderr)})" if r.stderr.strip() else ""))
        full = [(p, row) for p, row in present.items()
                if row["use_pct"] is not None and row["use_pct"] > limit]
        data = {"paths": per, "limit_pct": limit, "kind": what,
                "over": [p for p, _ in full], "missing": [p for p, row in per.items() if not row]}
        shown = ", ".join(f"{p} {row['use_pct']}% ({row['mount']})"
                          for p, row in present.items())
        raw = "\n".join(f"{p}: {row['filesystem']} {row['size']} {row['used']} {row['avail']} "
                        f"{row['use_pct']}% {row['mount']}" for p, row in present.items())
        if full:
            mounts = dict.fromkeys(row["mount"] for _, row in full)
            worst = max(row["use_pct"] for _, row in full)
            return _Verdict(Status.BAD, f"{what} {worst}% used on {', '.join(mounts)} (holding "
                                        f"{', '.join(p for p, _ in full)}; above {limit}%)",
                            data, raw)
        return _Verdict(Status.OK, f"{what}: {shown}", data, raw)

    return await _execute(ssh, node, probe, command, timeout, judge)


# -- kernel modules and CNI ------------------------------------------------------------------------
def parse_lsmod(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] == "Module":
            continue
        names.append(parts[0])
    return names


async def kernel_modules(ssh: Any, node: str, modules: Iterable[str] = MODULES, *,
                         timeout: float = 10.0) -> Observation:
    """`lsmod` (and /sys/module for built-ins): bad when vxlan, overlay or br_netfilter is not
    loaded."""
    probe = "node.kmod"
    modules = tuple(modules)
    sys_paths = " ".join(shlex.quote(f"/sys/module/{m}") for m in modules)
    command = f"lsmod; {_marker('sys')}; ls -d {sys_paths} 2>/dev/null; true"

    def judge(r: CommandResult) -> _Verdict:
        secs = _sections(r.stdout)
        text = secs.get("", "")
        if not re.search(r"^Module\s+Size", text, re.M):
            raise _Unreadable("lsmod printed no module table"
                              + (f" ({_first_line(r.stderr)})" if r.stderr.strip() else ""))
        loaded = set(parse_lsmod(text))
        builtin = {ln.strip().rsplit("/", 1)[-1] for ln in secs.get("sys", "").splitlines()
                   if ln.strip().startswith("/sys/module/")}
        state = {m: ("loaded" if m in loaded else "built-in" if m in builtin else "missing")
                 for m in modules}
        missing = [m for m, s in state.items() if s == "missing"]
        lines = [ln for ln in text.splitlines() if ln.split()[:1] and
                 ln.split()[0] in modules]
        data = {"modules": state, "missing": missing, "loaded_count": len(loaded)}
        if missing:
            return _Verdict(Status.BAD, f"kernel module{'s' if len(missing) > 1 else ''} not "
                                        f"loaded: {', '.join(missing)} (modprobe it and add it to "
                                        f"/etc/modules-load.d/)", data,
                            "\n".join(lines) or text)
        return _Verdict(Status.OK, "kernel modules loaded: " + ", ".join(modules), data,
                        "\n".join(lines))

    return await _execute(ssh, node, probe, command, timeout, judge)


def cni_plugin_types(text: str) -> list[str]:
    """The plugin binaries CNI configs name (`type`, and ipam `type`), in order."""
    out: list[str] = []
    dec = json.JSONDecoder()
    i = 0
    text = text.strip()
    while i < len(text):
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            nxt = text.find("{", i + 1)
            if nxt < 0:
                break
            i = nxt
            continue
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
        if not isinstance(obj, dict):
            continue
        plugins = obj["plugins"] if isinstance(obj.get("plugins"), list) else [obj]
        for p in plugins:
            if not isinstance(p, dict):
                continue
            for t in (p.get("type"), (p.get("ipam") or {}).get("type")
                      if isinstance(p.get("ipam"), dict) else None):
                if isinstance(t, str) and t and t not in out:
                    out.append(t)
    return out


async def cni(ssh: Any, node: str, *, bin_dir: str = CNI_BIN, conf_dir: str = CNI_CONF,
              timeout: float = 10.0) -> Observation:
    """/opt/cni/bin and /etc/cni/net.d: bad when there is no config, or a plugin a config names
    (calico, flannel, ...) has no binary."""
    probe = "node.cni"
    b, c = shlex.quote(bin_dir), shlex.quote(conf_dir)
    command = (f"{_marker('bin')}; ls -1 {b}; {_marker('conf')}; ls -1 {c}; "
               f"{_marker('content')}; cat {c}/*.conflist {c}/*.conf {c}/*.json 2>/dev/null; true")

    def judge(r: CommandResult) -> _Verdict:
        secs = _sections(r.stdout)
        if "bin" not in secs or "conf" not in secs:
            raise _Unreadable("the listing did not come back"
                              + (f" ({_first_line(r.stderr)})" if r.stderr.strip() else ""))
        bins = [ln.strip() for ln in secs["bin"].splitlines() if ln.strip()]
        confs = [ln.strip() for ln in secs["conf"].splitlines() if ln.strip()]
        configs = [f for f in confs if f.endswith((".conflist", ".conf", ".json"))]
        types = cni_plugin_types(secs.get("content", ""))
        if not types:  # configs unreadable: go by their names
            types = [p for p in OVERLAY_PLUGINS if any(p in f for f in configs)]
        overlay = [t for t in types if t in OVERLAY_PLUGINS]
        missing = [t for t in types if t not in bins]
        problems = []
        if not bins:
            problems.append(f"{bin_dir} is empty or missing")
        if not configs:
            problems.append(f"no CNI config (.conflist/.conf) in {conf_dir}")
        if missing:
            problems.append(f"plugin binar{'ies' if len(missing) > 1 else 'y'} missing from "
                            f"{bin_dir}: {', '.join(missing)} (named in "
                            f"{', '.join(configs) or 'the config'})")
        if configs and not types and not any(p in bins for p in OVERLAY_PLUGINS):
            problems.append(f"neither {' nor '.join(OVERLAY_PLUGINS)} is in {bin_dir}")
        data = {"binaries": bins, "configs": configs, "plugins": types, "overlay": overlay,
                "missing": missing}
        raw = f"{bin_dir}: {' '.join(bins)}\n{conf_dir}: {' '.join(confs)}"
        if problems:
            return _Verdict(Status.BAD, "CNI: " + "; ".join(problems), data, raw)
        return _Verdict(Status.OK, f"CNI: {', '.join(configs)} with {', '.join(types) or '?'} "
                                   f"present in {bin_dir}", data, raw)

    return await _execute(ssh, node, probe, command, timeout, judge)


# -- kubelet healthz and the API server, from the node ---------------------------------------------
def _http_code(text: str) -> tuple[str, int | None]:
    body, _, last = text.rstrip("\n").rpartition("\n")
    code = last.strip()
    if not re.fullmatch(r"\d{3}", code):
        # `-w '%{http_code}'` without a newline before it: the code ends the output
        m = re.search(r"(\d{3})\s*$", text)
        if not m:
            raise _Unreadable("no HTTP code at the end of curl's output")
        return text[:m.start()], int(m.group(1))
    return body, int(code)


async def kubelet_healthz(ssh: Any, node: str, *, port: int = 10250,
                          timeout: float = 10.0) -> Observation:
    """`curl -sk https://localhost:10250/healthz` on the node: 200 ok is ok."""
    probe = "node.healthz"
    url = f"https://localhost:{int(port)}/healthz"
    command = f"curl -sk -m 5 -w '\\n%{{http_code}}' {url}"

    def judge(r: CommandResult) -> _Verdict:
        body, code = _http_code(r.stdout)
        data: dict[str, Any] = {"url": url, "http_code": code, "curl_exit": r.exit_status,
                                "body": body[:500]}
        if code == 200:
            return _Verdict(Status.OK, f"kubelet healthz 200 {body.strip()[:60]}", data,
                            r.stdout)
        if code == 0:
            why = {7: "connection refused: nothing listens on the kubelet port",
                   28: "no answer in 5 s", 35: "TLS handshake failed"}.get(
                       r.exit_status or -1, f"curl exited {r.exit_status}")
            return _Verdict(Status.BAD, f"kubelet healthz: no answer ({why})", data, r.stdout)
        if code in (401, 403):
            return _Verdict(Status.ERROR, f"kubelet healthz {code}: the kubelet answers but "
                                          f"refuses anonymous requests", data, r.stdout,
                            f"HTTP {code} from {url}")
        failing = re.findall(r"^\[-\]([\w.\-/]+) failed", body, re.M)
        data["failed_checks"] = failing
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        why = ", ".join(f"{n} failed" for n in failing) or (lines[-1][:200] if lines else
                                                            "no body")
        return _Verdict(Status.BAD, f"kubelet healthz {code}: {why}", data, r.stdout)

    return await _execute(ssh, node, probe, command, timeout, judge)


def kubeconfig_server(text: str) -> str | None:
    m = re.search(r"^\s*server:\s*['\"]?(https?://[^\s'\"]+)", text, re.M)
    return m.group(1).rstrip("/") if m else None


async def apiserver_reachability(ssh: Any, node: str, *, kubeconfig: str = KUBELET_CONF,
                                 timeout: float = 10.0) -> Observation:
    """The API server named in the kubelet's kubeconfig, curled from the node: 200/401/403 mean
    it answers; 000 or no answer is the partition signature."""
    probe = "node.apiserver"
    read = f"grep -E '^[[:space:]]*server:' {shlex.quote(kubeconfig)}"
    started = time.time()
    t0 = time.monotonic()
    server: dict[str, str | None] = {}

    def find(r: CommandResult) -> _Verdict:
        s = kubeconfig_server(r.stdout)
        if not s:
            raise _Unreadable(f"no server: line in {kubeconfig}"
                              + (f" ({_first_line(r.stderr)})" if r.stderr.strip() else ""))
        server["url"] = s
        return _Verdict(Status.OK, s, {"server": s}, r.stdout)

    first = await _execute(ssh, node, probe, read, min(timeout, 5.0), find)
    if first.status is not Status.OK:
        return first
    url = server["url"] or ""
    command = f"curl -k -s -m 5 -o /dev/null -w '%{{http_code}}' {shlex.quote(url + '/healthz')}"

    def judge(r: CommandResult) -> _Verdict:
        _, code = _http_code(r.stdout)
        data = {"server": url, "http_code": code, "curl_exit": r.exit_status,
                "kubeconfig": kubeconfig}
        if code in (200, 401, 403):
            return _Verdict(Status.OK, f"API server {url} reachable from the node "
                                       f"(HTTP {code})", data, r.stdout)
        if code == 0:
            why = {28: "no answer in 5 s", 7: "connection refused", 6: "name does not resolve",
                   35: "TLS handshake failed"}.get(r.exit_status or -1,
                                                   f"curl exited {r.exit_status}")
            return _Verdict(Status.BAD, f"API server {url} unreachable from the node (000, "
                                        f"{why}): the partition signature", data, r.stdout)
        return _Verdict(Status.BAD, f"API server {url} answered HTTP {code} from the node",
                        data, r.stdout)

    def hung(r: CommandResult) -> str:
        return f"curl to the API server {url} from the node did not finish in {timeout:g} s"

    obs = await _execute(ssh, node, probe, command, timeout, judge, hung=hung)
    data = dict(obs.data, read_command=read)
    if obs.status is Status.HUNG:
        data["server"] = url
        return Observation(probe, node, Status.BAD, started, time.monotonic() - t0,
                           f"API server {url} unreachable from the node (no answer in "
                           f"{timeout:g} s): the partition signature", data, "ssh", obs.raw,
                           obs.reason)
    return Observation(obs.probe, node, obs.status, started, time.monotonic() - t0, obs.summary,
                       data, obs.via, obs.raw, obs.reason)


# -- the client certificate ------------------------------------------------------------------------
async def client_cert(ssh: Any, node: str, *, path: str = CLIENT_CERT,
                      timeout: float = 10.0) -> Observation:
    """`openssl x509 -noout -dates` of the kubelet client certificate, judged on the node's
    clock (`date -u +%s`): expired, not yet valid, expiring in under 7 days, valid."""
    probe = "node.cert.client"
    q = shlex.quote(path)
    command = (f"date -u +%s; openssl x509 -in {q} -noout -dates -subject -issuer -serial")

    def judge(r: CommandResult) -> _Verdict:
        text = _require_output(r, "date; openssl")
        first, _, rest = text.partition("\n")
        try:
            node_now: float | None = float(first.strip())
        except ValueError:
            node_now, rest = None, text
        if "notAfter" not in rest:
            err = _first_line(r.stderr) or _first_line(rest)
            if re.search(r"no such file|could not open|unable to load|can't open", err, re.I):
                return _Verdict(Status.BAD, f"client certificate {path} cannot be read: {err}",
                                {"path": path, "node_time": node_now}, r.stderr or rest, err)
            raise _Unreadable(f"openssl printed no notAfter ({err or 'no output'})")
        obs = certs.client_certificate(node, rest, node_now=node_now, via="ssh",
                                       probe=probe)
        data = dict(obs.data, path=path, node_time=node_now)
        if obs.status is Status.ERROR:
            raise _Unreadable(obs.reason or obs.summary)
        return _Verdict(obs.status, obs.summary, data, obs.raw, obs.reason)

    return await _execute(ssh, node, probe, command, timeout, judge)


# -- kernel OOM kills, the kubelet process, clock, swap, pods --------------------------------------
_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")


async def dmesg_oom(ssh: Any, node: str, *, timeout: float = 10.0) -> Observation:
    """OOM kills in the kernel log (`dmesg -T`, else `journalctl -k`): how many, of what."""
    probe = "node.dmesg.oom"
    command = "dmesg -T 2>/dev/null || journalctl -k --no-pager"

    def judge(r: CommandResult) -> _Verdict:
        text = _require_output(r, "dmesg / journalctl -k")
        kills = [(m.group(2), int(m.group(1)), ln.strip())
                 for ln in text.splitlines() for m in [_KILLED.search(ln)] if m]
        by: dict[str, int] = {}
        for name, _, _ in kills:
            by[name] = by.get(name, 0) + 1
        oom_lines = [ln.strip() for ln in text.splitlines()
                     if re.search(r"Killed process|Out of memory|oom-kill|invoked oom-killer",
                                  ln, re.I)]
        data = {"kills": len(kills), "by_process": by, "kubelet_kills": by.get("kubelet", 0),
                "last": kills[-1][2] if kills else None,
                "lines": len(text.splitlines())}
        if not kills:
            return _Verdict(Status.OK, f"no OOM kills in the kernel log "
                                       f"({data['lines']} lines)", data, "\n".join(oom_lines[-20:]))
        top = ", ".join(f"{n} x{c}" for n, c in sorted(by.items(), key=lambda kv: -kv[1]))
        who = " (the kubelet was OOM-killed)" if by.get("kubelet") else ""
        return _Verdict(Status.BAD, f"{len(kills)} OOM kills in the kernel log: {top}{who}",
                        data, "\n".join(oom_lines[-40:]))

    return await _execute(ssh, node, probe, command, timeout, judge)


def parse_ps_rss_cpu(text: str) -> list[tuple[int, float]]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise _Unreadable(f"not an `rss pcpu` row: {line.strip()[:80]!r}")
        try:
            rows.append((int(parts[0]), float(parts[1])))
        except ValueError:
            raise _Unreadable(f"not an `rss pcpu` row: {line.strip()[:80]!r}") from None
    return rows


async def kubelet_process(ssh: Any, node: str, *, rss_limit_mb: float = RSS_LIMIT_MB,
                          timeout: float = 10.0) -> Observation:
    """The kubelet's RSS and CPU (`ps -o rss=,pcpu= -C kubelet`): bad when it is not running
    or its RSS is above 500 MB."""
    probe = "node.kubelet.process"
    command = "ps -o rss=,pcpu= -C kubelet"

    def judge(r: CommandResult) -> _Verdict:
        rows = parse_ps_rss_cpu(r.stdout)
        if not rows:
            if r.exit_status == 1 or r.exit_status == 0:
                return _Verdict(Status.BAD, "no kubelet process running", {"running": False},
                                r.stdout + r.stderr)
            raise _Unreadable(f"ps exited {r.exit_status}: {_first_line(r.stderr)}")
        rss_kb = max(rss for rss, _ in rows)
        cpu = max(c for _, c in rows)
        rss_mb = rss_kb / 1024
        data = {"running": True, "processes": len(rows), "rss_kb": rss_kb,
                "rss_mb": round(rss_mb, 1), "cpu_pct": cpu, "rss_limit_mb": rss_limit_mb}
        words = f"kubelet RSS {rss_mb:.0f} MB, CPU {cpu:.1f}%"
        if rss_mb > rss_limit_mb:
            return _Verdict(Status.BAD, f"{words} (above {rss_limit_mb:g} MB)", data, r.stdout)
        return _Verdict(Status.OK, words, data, r.stdout)

    return await _execute(ssh, node, probe, command, timeout, judge)


def parse_ntp(text: str) -> bool | None:
    """NTP synchronised, from `timedatectl show` (key or bare value) or `timedatectl`."""
    for rx in (r"^NTPSynchronized=(yes|no)\s*$", r"^\s*System clock synchronized:\s*(yes|no)",
               r"^\s*NTP synchronized:\s*(yes|no)", r"^(yes|no)\s*$"):
        m = re.search(rx, text, re.M | re.I)
        if m:
            return m.group(1).lower() == "yes"
    return None


async def ntp(ssh: Any, node: str, *, max_offset: float = CLOCK_OFFSET_LIMIT,
              timeout: float = 10.0) -> Observation:
    """NTP synchronisation (`timedatectl`) and the node clock against ours (`date -u +%s`):
    bad when unsynchronised or more than 5 s off."""
    probe = "node.ntp"
    command = ("date -u +%s; timedatectl show -p NTPSynchronized --value 2>/dev/null; "
               f"{_marker('status')}; timedatectl 2>/dev/null; true")

    def judge(r: CommandResult) -> _Verdict:
        text = _require_output(r, "date; timedatectl")
        first, _, rest = text.partition("\n")
        try:
            node_now = float(first.strip())
        except ValueError:
            raise _Unreadable(f"`date -u +%s` printed {first.strip()[:40]!r}") from None
        ours = r.started + r.duration / 2 if r.started else time.time()
        offset = node_now + 0.5 - ours  # `date +%s` drops the fraction: take the middle
        secs = _sections(rest)
        synced = parse_ntp(secs.get("", ""))
        if synced is None:
            synced = parse_ntp(secs.get("status", ""))
        data = {"node_time": node_now, "local_time": round(ours, 3),
                "offset_seconds": round(offset, 1), "ntp_synchronized": synced,
                "max_offset": max_offset}
        problems = []
        if synced is False:
            problems.append("NTP not synchronised")
        if abs(offset) > max_offset:
            ahead = "ahead of" if offset > 0 else "behind"
            problems.append(f"node clock {abs(offset):.0f} s {ahead} ours (limit "
                            f"{max_offset:g} s)")
        raw = "\n".join(ln for ln in text.splitlines()
                        if re.search(r"synchroni|NTP|Universal|^\d+$|^(yes|no)$", ln))
        sync_word = {True: "NTP synchronised", False: "NTP not synchronised",
                     None: "NTP state unknown"}[synced]
        if problems:
            return _Verdict(Status.BAD, "clock: " + "; ".join(problems), data, raw)
        return _Verdict(Status.OK, f"clock: {sync_word}, offset {offset:+.0f} s", data, raw)

    return await _execute(ssh, node, probe, command, timeout, judge)


def parse_swap(swapon: str, free: str) -> tuple[list[dict[str, str]], int | None]:
    devices = []
    for line in swapon.splitlines():
        parts = line.split()
        if not parts or parts[0] in ("NAME", "Filename"):
            continue
        devices.append({"name": parts[0], "type": parts[1] if len(parts) > 1 else "",
                        "size": parts[2] if len(parts) > 2 else "",
                        "used": parts[3] if len(parts) > 3 else ""})
    total = None
    m = re.search(r"^Swap:\s+(\d+)", free, re.M)
    if m:
        total = int(m.group(1))
    return devices, total


async def swap(ssh: Any, node: str, *, config: str = KUBELET_CONFIG,
               timeout: float = 10.0) -> Observation:
    """`swapon --show` and `free`: bad when swap is on and the kubelet refuses it (failSwapOn,
    true unless the config says false)."""
    probe = "node.swap"
    command = (f"swapon --show; {_marker('free')}; free; {_marker('config')}; "
               f"grep -i failSwapOn {shlex.quote(config)} 2>/dev/null; true")

    def judge(r: CommandResult) -> _Verdict:
        secs = _sections(r.stdout)
        if "free" not in secs:
            raise _Unreadable("the output did not come back"
                              + (f" ({_first_line(r.stderr)})" if r.stderr.strip() else ""))
        devices, total = parse_swap(secs.get("", ""), secs.get("free", ""))
        if total is None and not devices and "Mem:" not in secs.get("free", ""):
            raise _Unreadable("free printed no Swap: line")
        fail_on = not re.search(r"failSwapOn:\s*false", secs.get("config", ""), re.I)
        on = bool(devices) or bool(total)
        data = {"swap_on": on, "devices": devices, "swap_total_kb": total,
                "fail_swap_on": fail_on}
        raw = "\n".join([secs.get("", "").strip(), *(ln for ln in secs["free"].splitlines()
                                                     if ln.startswith("Swap"))]).strip()
        if on and fail_on:
            names = ", ".join(d["name"] for d in devices) or f"{total} kB"
            return _Verdict(Status.BAD, f"swap is on ({names}) and the kubelet refuses to run "
                                        f"with swap (failSwapOn)", data, raw)
        if on:
            return _Verdict(Status.OK, "swap is on; the kubelet config allows it "
                                       "(failSwapOn: false)", data, raw)
        return _Verdict(Status.OK, "swap is off", data, raw)

    return await _execute(ssh, node, probe, command, timeout, judge)


def parse_max_pods(text: str) -> int | None:
    m = re.search(r"^maxPods:\s*['\"]?(\d+)", text, re.M)
    return int(m.group(1)) if m else None


async def pods(ssh: Any, node: str, *, api_pod_count: int | None = None,
               config: str = KUBELET_CONFIG, endpoint: str = DEFAULT_RUNTIME_ENDPOINT,
               default_max: int = DEFAULT_MAX_PODS, timeout: float = 10.0) -> Observation:
    """Pods on the node (`crictl pods -q`, or the API's count when given) against maxPods from
    the kubelet config: bad at maxPods, or above the default 110 (the density the runbook ties
    to kubelet memory pressure)."""
    probe = "node.pods"
    command = f"grep -E '^maxPods:' {shlex.quote(config)}; true"
    if api_pod_count is None:
        command += (f"; {_marker('pods')}; crictl --runtime-endpoint {shlex.quote(endpoint)} "
                    f"pods -q --state ready")

    def hung(r: CommandResult) -> str:
        return f"counting pods with crictl did not finish in {timeout:g} s (the runtime is hung)"

    def judge(r: CommandResult) -> _Verdict:
        secs = _sections(r.stdout)
        max_pods = parse_max_pods(secs.get("", ""))
        source = "config" if max_pods is not None else "default"
        limit = max_pods if max_pods is not None else default_max
        if api_pod_count is not None:
            count, counted_by = int(api_pod_count), "api"
        else:
            if "pods" not in secs or r.exit_status != 0:
                err = _first_line("\n".join(reversed(r.stderr.strip().splitlines())))
                raise _Unreadable(f"crictl pods failed ({err or f'exit {r.exit_status}'})")
            ids = [ln for ln in secs["pods"].splitlines() if ln.strip()]
            if any(not re.fullmatch(r"[0-9a-f]{6,}", i.strip()) for i in ids):
                raise _Unreadable("crictl pods -q printed something other than pod ids")
            count, counted_by = len(ids), "crictl"
        data = {"pods": count, "max_pods": limit, "max_pods_from": source,
                "counted_by": counted_by, "default_max_pods": default_max}
        words = f"{count} pods of maxPods {limit}" + (" (default)" if source == "default" else "")
        raw = f"maxPods: {limit} ({source})\npods: {count} ({counted_by})"
        if count >= limit:
            return _Verdict(Status.BAD, f"{words}: the node is full", data, raw)
        if count > default_max:
            return _Verdict(Status.BAD, f"{words}: more than the default {default_max} per node, "
                                        f"the density that starves the kubelet", data, raw)
        return _Verdict(Status.OK, words, data, raw)

    return await _execute(ssh, node, probe, command, timeout, judge, hung=hung)


# -- the list --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    title: str
    timeout: float
    run: Callable[..., Awaitable[Observation]]  # (ssh, node) -> Observation


def _bind(fn: Callable[..., Awaitable[Observation]], *args: Any, **kw: Any):
    async def call(ssh: Any, node: str) -> Observation:
        return await fn(ssh, node, *args, **kw)
    return call


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("node.systemd.kubelet", "kubelet unit state and restarts", 10.0,
              _bind(systemd_unit, "kubelet")),
    CheckSpec("node.systemd.containerd", "containerd unit state and restarts", 10.0,
              _bind(systemd_unit, "containerd")),
    CheckSpec("node.journal.kubelet", "kubelet journal: known errors", 15.0,
              _bind(journal_scan, "kubelet")),
    CheckSpec("node.journal.containerd", "containerd journal: known errors", 15.0,
              _bind(journal_scan, "containerd")),
    CheckSpec("node.crictl.ps", "crictl ps (timed)", 10.0, _bind(crictl, "ps")),
    CheckSpec("node.crictl.pods", "crictl pods (timed)", 10.0, _bind(crictl, "pods")),
    CheckSpec("node.crictl.info", "crictl info (timed)", 10.0, _bind(crictl, "info")),
    CheckSpec("node.df.space", "disk space (df -h)", 10.0, _bind(df, inodes=False)),
    CheckSpec("node.df.inodes", "inodes (df -i)", 10.0, _bind(df, inodes=True)),
    CheckSpec("node.kmod", "kernel modules vxlan, overlay, br_netfilter", 10.0,
              _bind(kernel_modules)),
    CheckSpec("node.cni", "CNI binaries and config", 10.0, _bind(cni)),
    CheckSpec("node.healthz", "kubelet healthz from the node", 10.0, _bind(kubelet_healthz)),
    CheckSpec("node.apiserver", "API server reachable from the node", 10.0,
              _bind(apiserver_reachability)),
    CheckSpec("node.cert.client", "kubelet client certificate dates", 10.0, _bind(client_cert)),
    CheckSpec("node.dmesg.oom", "OOM kills in the kernel log", 10.0, _bind(dmesg_oom)),
    CheckSpec("node.kubelet.process", "kubelet RSS and CPU", 10.0, _bind(kubelet_process)),
    CheckSpec("node.ntp", "NTP sync and clock offset", 10.0, _bind(ntp)),
    CheckSpec("node.swap", "swap", 10.0, _bind(swap)),
    CheckSpec("node.pods", "pods against maxPods", 10.0, _bind(pods)),
)
