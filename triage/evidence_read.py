"""Captured evidence read back as observations, for the decision tree offline.

    ev = read_evidence(path)          # a directory, a lone file, or a .tar.gz bundle
    ev.observations, ev.node, ev.notes
    observations_from(path)           # just the observations

Each file is the output of one command; it is handed to the same parser the live check uses
(probes.node_checks, probes.metrics, probes.kube), so a file and a live probe decide the same.
A bundle's manifest.json entry for a file (as `nodewb capture` writes it: exit status, timed_out,
started, seconds) is replayed with it: a command that timed out is a HUNG observation, a failing
one is judged by its exit status, and clocks, leases and heartbeats are judged at the moment the
file was collected. Unknown or unreadable files are skipped with a note, never an exception.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Any

from probes import metrics as metrics_mod
from probes import node_checks as nc
from probes.command_result import CommandResult
from probes.kube import node_record, parse_time
from probes.node_probes import LEASE_DURATION, conditions_text, ready_words
from probes.observation import Observation, Status
from triage.capture import HANG_MARK
from triage.evidence import member_problem

__all__ = ["Evidence", "read_evidence", "observations_from", "guess_kind", "KINDS"]

VIA = "evidence"
MAX_FILE = 256 * 1024 * 1024  # bytes read from one file
MAX_BUNDLE_MEMBER = 512 * 1024 * 1024
GOROUTINE_WARN = 500

# kind -> the probe id it becomes
KINDS: dict[str, str] = {
    "kubelet-journal": "node.journal.kubelet",
    "runtime-journal": "node.journal.containerd",
    "dmesg": "node.dmesg.oom",
    "node-json": "api.node",
    "describe-node": "api.node",
    "events-text": "api.events",
    "events-json": "api.events",
    "clock": "node.ntp",
    "metrics": "kubelet.metrics",
    "goroutines": "kubelet.goroutines",
    "df-space": "node.df.space",
    "df-inodes": "node.df.inodes",
    "crictl-ps": "node.crictl.ps",
    "crictl-pods": "node.crictl.pods",
    "crictl-info": "node.crictl.info",
    "cert-dates": "node.cert.client",
    "lsmod": "node.kmod",
    "systemd-kubelet": "node.systemd.kubelet",
    "systemd-containerd": "node.systemd.containerd",
    "kubelet-ps": "node.kubelet.process",
    "apiserver-from-node": "node.apiserver",
    "lease": "api.lease",
}

# file names (lower case, without directories) -> kind; checked before the content is sniffed
_NAMES: tuple[tuple[str, str], ...] = (
    (r"(journal[-_.])?kubelet([-_.]journal)?\.(log|txt)", "kubelet-journal"),
    (r"(journal[-_.])?(runtime|containerd|crio|cri-o)([-_.]journal)?\.(log|txt)",
     "runtime-journal"),
    (r"(dmesg|kern|kernel|journal-k)\.(log|txt)", "dmesg"),
    (r"node\.json", "node-json"),
    (r"(kubectl[-_])?describe[-_]node(s)?([-_][\w.-]+)?\.txt", "describe-node"),
    (r"(kubectl[-_](get[-_])?)?events(\.txt|\.log)", "events-text"),
    (r"metrics(\.txt|\.prom)?", "metrics"),
    (r"goroutines?(\.txt)?", "goroutines"),
    (r"df(-h)?\.txt", "df-space"),
    (r"df-i\.txt", "df-inodes"),
    (r"crictl-ps\.txt", "crictl-ps"),
    (r"crictl-pods\.txt", "crictl-pods"),
    (r"crictl-info\.(txt|json)", "crictl-info"),
    (r"(openssl-dates|cert-dates|client-cert|openssl)\.txt", "cert-dates"),
    (r"lsmod\.txt", "lsmod"),
    (r"(systemctl|systemd)[-_]((show|status)[-_])?kubelet\.txt", "systemd-kubelet"),
    (r"(systemctl|systemd)[-_]((show|status)[-_])?containerd\.txt", "systemd-containerd"),
    (r"events\.json", "events-json"),
    (r"(clock|timedatectl|ntp)\.txt", "clock"),
    (r"ps[-_]kubelet\.txt", "kubelet-ps"),
    (r"apiserver[-_]from[-_]node\.txt", "apiserver-from-node"),
    (r"(node[-_])?lease\.json", "lease"),
)
# read by a person, not by the tree
_PEOPLE = {"manifest.json"}

_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.\-]+:\d+\]", re.M)
_JOURNAL_PREFIX = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ([\w.\-]+)(\[\d+\])?:", re.M)
_DMESG = re.compile(r"^(\[\s*\d+\.\d+\]|\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]|"
                    r"\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ kernel:)", re.M)


@dataclass(slots=True)
class Evidence:
    observations: list[Observation] = field(default_factory=list)
    node: str | None = None
    notes: list[str] = field(default_factory=list)
    captured: float | None = None  # epoch seconds, from manifest.json
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifest.json "files"


# -- the entry points -----------------------------------------------------------------------------
def observations_from(path: str | os.PathLike[str]) -> list[Observation]:
    return read_evidence(path).observations


def read_evidence(path: str | os.PathLike[str]) -> Evidence:
    """Observations from a directory of the evidence layout, a lone file, or a tar bundle.
    Raises FileNotFoundError / PermissionError / NotADirectoryError when `path` itself cannot
    be read; anything wrong inside it becomes a note."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(path))
    if p.is_dir():
        os.listdir(p)  # PermissionError when it cannot be read
        return _read_dir(p)
    with open(p, "rb"):
        pass
    if _is_tar(p):
        return _read_bundle(p)
    ev = Evidence()
    _read_file(p, ev, lone=True)
    _finish(ev)
    return ev


# -- bundles --------------------------------------------------------------------------------------
def _is_tar(p: Path) -> bool:
    name = p.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return True
    try:
        return tarfile.is_tarfile(p)
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        return False


def _extract(tf: tarfile.TarFile, m: tarfile.TarInfo, root: Path) -> None:
    """One checked member under `root`, never outside it, never over an earlier one."""
    dest = (root / m.name).resolve()
    if dest != root and root not in dest.parents:
        raise ValueError("outside the bundle")
    if m.isdir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = tf.extractfile(m)
    if src is None:
        return
    with src, open(dest, "xb") as out:
        shutil.copyfileobj(src, out)


def _read_bundle(p: Path) -> Evidence:
    notes: list[str] = []
    tmp = tempfile.mkdtemp(prefix="nodewb-evidence-")
    root = Path(tmp).resolve()
    try:
        try:
            with tarfile.open(p, "r:*") as tf:
                for m in tf:
                    problem = member_problem(m, MAX_BUNDLE_MEMBER)
                    if problem:
                        notes.append(f"{p.name}: refused member {m.name!r} ({problem})")
                        continue
                    try:
                        _extract(tf, m, root)
                    except FileExistsError:
                        notes.append(f"{p.name}: duplicate member {m.name!r} skipped")
                    except (OSError, ValueError) as exc:
                        notes.append(f"{p.name}: member {m.name!r} skipped "
                                     f"({type(exc).__name__}: {exc})")
        except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
            notes.append(f"{p.name}: the bundle could not be read completely "
                         f"({type(exc).__name__}: {exc})")
        base = root
        entries = [e for e in base.iterdir()]
        while len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            base = entries[0]
            entries = list(base.iterdir())
        ev = _read_dir(base)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ev.notes[:0] = notes
    return ev


# -- directories ----------------------------------------------------------------------------------
def _read_dir(d: Path) -> Evidence:
    ev = Evidence()
    manifest = d / "manifest.json"
    if manifest.is_file() and not manifest.is_symlink():
        _read_manifest(manifest, ev)
    for f in sorted(d.iterdir()):
        if f.name == "manifest.json":
            continue
        if f.is_symlink():
            ev.notes.append(f"{f.name}: skipped (a symbolic link)")
            continue
        if f.is_dir():
            ev.notes.append(f"{f.name}/: skipped (a directory)")
            continue
        if not f.is_file():
            ev.notes.append(f"{f.name}: skipped (not a regular file)")
            continue
        _read_file(f, ev, lone=False)
    _finish(ev)
    return ev


def _read_manifest(f: Path, ev: Evidence) -> None:
    try:
        obj = json.loads(f.read_text("utf-8", "replace"))
    except (OSError, ValueError, RecursionError) as exc:
        ev.notes.append(f"manifest.json: skipped ({type(exc).__name__}: {exc})")
        return
    if not isinstance(obj, dict):
        ev.notes.append("manifest.json: skipped (not a JSON object)")
        return
    node = obj.get("node")
    if isinstance(node, dict):
        node = node.get("name")
    if isinstance(node, str) and node:
        ev.node = node
    files = obj.get("files")
    if isinstance(files, dict):
        ev.entries = {str(k): v for k, v in files.items() if isinstance(v, dict)}
    times = obj["times"] if isinstance(obj.get("times"), dict) else {}
    for key in ("captured", "captured_at", "finished", "end", "started", "start", "time"):
        v = times.get(key, obj.get(key))
        ts = _epoch(v)
        if ts:
            ev.captured = ts
            break


def _epoch(v: Any) -> float | None:
    """Seconds since the epoch from a number or a string (a number or a time stamp); None for
    anything else, including NaN, infinities and values out of range."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:
            return None
    elif isinstance(v, str) and v:
        try:
            f = float(v)
        except (ValueError, OverflowError):
            return parse_time(v) or None
    else:
        return None
    return f if math.isfinite(f) and 0 < f < 1e11 else None


def _finish(ev: Evidence) -> None:
    node = ev.node
    out = []
    primary = {o.probe for o in ev.observations if "derived_from" not in o.data}
    # a probe read from a file of its own wins over the same probe read out of describe-node.txt
    ev.observations = [o for o in ev.observations
                       if "derived_from" not in o.data or o.probe not in primary]
    for o in ev.observations:
        out.append(o if o.node == node else replace(o, node=node))
    ev.observations = out
    seen: dict[str, str] = {}
    for o in ev.observations:
        f = o.data.get("file", "?")
        if o.probe in seen:
            ev.notes.append(f"{f}: {o.probe} also read from {seen[o.probe]}; the later one counts")
        seen[o.probe] = f


# -- one file -------------------------------------------------------------------------------------
def guess_kind(name: str, text: str) -> str | None:
    """The kind of a captured file, from its name first and then its content; None: unknown."""
    low = name.lower()
    for rx, kind in _NAMES:
        if re.fullmatch(rx, low):
            return kind
    return _sniff(text, low)


def _sniff(text: str, low: str = "") -> str | None:
    head = text[:200_000]
    stripped = head.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            if obj.get("kind") in ("Node", "NodeList") or (obj.get("kind") == "List" and any(
                    isinstance(i, dict) and i.get("kind") == "Node"
                    for i in obj.get("items") or [])) or \
                    ("status" in obj and "conditions" in (obj.get("status") or {})
                     and "metadata" in obj):
                return "node-json"
            if obj.get("kind") == "Lease" or (isinstance(obj.get("spec"), dict) and
                                              "renewTime" in obj["spec"] and
                                              "holderIdentity" in obj["spec"]):
                return "lease"
            if isinstance((obj.get("status") or {}).get("conditions"), list) and \
                    any(isinstance(c, dict) and c.get("type") == "RuntimeReady"
                        for c in obj["status"]["conditions"]):
                return "crictl-info"
        if obj is not None:
            return None
    if re.search(r"^Conditions:\s*$", head, re.M) and _CONDITION_HEADER.search(head):
        return "describe-node"
    if _EVENTS_HEADER.search(head):
        return "events-text"
    if _APISERVER_FROM_NODE.fullmatch(head.strip()):
        return "apiserver-from-node"
    if re.search(r"^goroutine profile: total \d+", head, re.M):
        return "goroutines"
    if re.search(r"^# (TYPE|HELP) \w+", head, re.M) or \
            re.search(r"^(kubelet|go|process|rest_client|apiserver|storage_operation)_\w+"
                      r"(\{[^}]*\})? [-+0-9.eE]+(NaN|Inf)?\s*$", head, re.M):
        return "metrics"
    if re.search(r"^Module\s+Size\s+Used by", head, re.M):
        return "lsmod"
    if re.search(r"^Filesystem\s+Inodes\s+IUsed", head, re.M):
        return "df-inodes"
    if re.search(r"^Filesystem\s+(Size|1K-blocks|1024-blocks)\s+Used", head, re.M):
        return "df-space"
    if re.search(r"^CONTAINER\s+IMAGE", head, re.M):
        return "crictl-ps"
    if re.search(r"^POD ID\s+CREATED", head, re.M):
        return "crictl-pods"
    if re.search(r"^notAfter=", head, re.M):
        return "cert-dates"
    if re.search(r"^ActiveState=", head, re.M):
        m = re.search(r"^(Id|Names)=(\S+)", head, re.M)
        unit = m.group(2) if m else low
        if "containerd" in unit:
            return "systemd-containerd"
        if "kubelet" in unit:
            return "systemd-kubelet"
        return None
    units = [m.group(1).lower() for m in _JOURNAL_PREFIX.finditer(head)]
    if units and units.count("kernel") * 2 > len(units):
        return "dmesg"
    if any(u in ("kubelet",) for u in units):
        return "kubelet-journal"
    if any(u in ("containerd", "crio", "dockerd") for u in units):
        return "runtime-journal"
    if _DMESG.search(head):
        return "dmesg"
    if _KLOG.search(head) or re.search(r"kubelet\.go:\d+\]|Kubernetes Kubelet", head):
        return "kubelet-journal"
    if re.search(r'level=\w+ msg="', head) and re.search(r"containerd|cri|snapshotter|shim",
                                                          head, re.I):
        return "runtime-journal"
    if "kubelet" in low:
        return "kubelet-journal"
    if "containerd" in low or "crio" in low:
        return "runtime-journal"
    return None


def _read_file(f: Path, ev: Evidence, *, lone: bool) -> None:
    name = f.name
    if not lone and name.lower() in _PEOPLE:
        ev.notes.append(f"{name}: kept for a person to read; the tree does not read it")
        return
    try:
        with open(f, "rb") as fh:
            payload = fh.read(MAX_FILE + 1)
    except OSError as exc:
        ev.notes.append(f"{name}: skipped, it cannot be read ({exc.strerror or exc})")
        return
    if len(payload) > MAX_FILE:
        ev.notes.append(f"{name}: skipped (larger than {MAX_FILE} bytes)")
        return
    if payload[:2] == b"\x1f\x8b":
        ev.notes.append(f"{name}: skipped (compressed; unpack it first)")
        return
    if b"\x00" in payload[:65536]:
        ev.notes.append(f"{name}: skipped (binary, not command output)")
        return
    text = payload.decode("utf-8", "replace")
    entry = {} if lone else ev.entries.get(name, {})
    ran = "command" in entry and (entry.get("exit_status") is not None
                                  or entry.get("timed_out") is True)
    if not text.strip() and not ran:
        # a command that ran and printed nothing is still its output (`ps -C kubelet`, none)
        ev.notes.append(f"{name}: skipped (empty)")
        return
    kind = guess_kind(name, text)
    if kind is None:
        ev.notes.append(f"{name}: skipped (not a kind of output the tree reads)")
        return
    try:
        mtime = f.stat().st_mtime
    except OSError:
        mtime = time.time()
    run = _run_of(entry, ev, mtime)
    if entry.get("timed_out") is True or text.startswith(HANG_MARK):
        ev.observations.append(_hung(kind, name, text, ev, run))
        return
    try:
        got = _READERS[kind](text, ev, run)
    except Exception as exc:  # a parser surprise skips the file, never the whole read
        ev.notes.append(f"{name}: skipped as {kind}, it could not be read "
                        f"({type(exc).__name__}: {exc})")
        return
    for obs in ([] if got is None else [got] if isinstance(got, Observation) else got):
        if obs.status in (Status.ERROR, Status.SKIPPED):
            ev.notes.append(f"{name}: skipped as {kind}: {obs.reason or obs.summary}")
            continue
        data = dict(obs.data)
        data["file"] = name
        data.pop("command", None)
        ev.observations.append(replace(obs, via=VIA, data=data, started=run.started,
                                       duration=run.seconds,
                                       summary=f"{obs.summary} [{name}]"))


@dataclass(frozen=True, slots=True)
class _Run:
    """How a file's command went, from its manifest entry (or the capture time, or the file's
    modification time when there is no entry)."""

    started: float
    seconds: float = 0.0
    exit_status: int | None = 0
    known: bool = False  # the time comes from the capture, not from the file's mtime

    @property
    def at(self) -> float:
        """When the output was complete: the moment it is judged at."""
        return self.started + self.seconds


def _run_of(entry: dict[str, Any], ev: Evidence, mtime: float) -> _Run:
    started = entry.get("started")
    started = float(started) if isinstance(started, (int, float)) and \
        not isinstance(started, bool) and 0 < started < 1e11 else None
    seconds = entry.get("seconds")
    seconds = float(seconds) if isinstance(seconds, (int, float)) and 0 <= seconds < 1e6 else 0.0
    status = entry.get("exit_status", 0)
    status = status if isinstance(status, int) and not isinstance(status, bool) else 0
    if started is not None:
        return _Run(started, seconds, status, True)
    if ev.captured is not None:
        return _Run(ev.captured, 0.0, status, True)
    return _Run(mtime, 0.0, status, False)


def _hung(kind: str, name: str, text: str, ev: Evidence, run: _Run) -> Observation:
    """A command that did not finish in its limit: HUNG, as the live check says it."""
    first, _, rest = text.partition("\n")
    first = first.strip() or f"{name}: the command did not finish in its time limit"
    data = {"timed_out": True, "seconds": run.seconds, "file": name}
    return Observation(KINDS[kind], ev.node, Status.HUNG, run.started, run.seconds,
                       f"{first} [{name}]", data, VIA, rest.strip()[-nc.RAW_LIMIT:],
                       f"timed out after {run.seconds:g} s")


# -- replaying a file through the live check's parser ----------------------------------------------
class _Replay:
    """Stands in for the SSH client: every command "prints" the captured text, with the exit
    status, start and duration the capture recorded."""

    def __init__(self, stdout: str, run: _Run) -> None:
        self.stdout, self.run_ = stdout, run

    async def run(self, node: str, command: str, timeout: float) -> CommandResult:
        r = self.run_
        return CommandResult(r.exit_status, self.stdout, "", r.seconds, False, node=node or "",
                             command=command, started=r.started, timeout=timeout)


def _drive(coro: Any) -> Any:
    """Run a coroutine that never really waits (the replayed command answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the replayed check waited on something")


def _replay(check: Callable[..., Any], text: str, ev: Evidence, run: _Run, *args: Any,
            **kw: Any) -> Observation:
    return _drive(check(_Replay(text, run), ev.node or "", *args, **kw))


def _journal(unit: str) -> Callable[[str, Evidence, _Run], Observation]:
    def read(text: str, ev: Evidence, run: _Run) -> Observation:
        return _replay(nc.journal_scan, text, ev, run, unit)
    return read


def _df(inodes: bool) -> Callable[[str, Evidence, _Run], Observation]:
    def read(text: str, ev: Evidence, run: _Run) -> Observation:
        rows = nc.parse_df(text)
        if not rows:
            raise ValueError("no df rows")
        mounts = list(dict.fromkeys(r["mount"] for r in rows))
        header = "Filesystem Size Used Avail Use% Mounted on"
        parts = []
        for mnt in mounts:
            row = [r for r in rows if r["mount"] == mnt][-1]
            pct = "-" if row["use_pct"] is None else f"{row['use_pct']}%"
            parts.append(f"{nc.SECTION}{mnt}\n{header}\n{row['filesystem']} {row['size']} "
                         f"{row['used']} {row['avail']} {pct} {row['mount']}")
        return _replay(nc.df, "\n".join(parts) + "\n", ev, run, inodes=inodes, paths=mounts)
    return read


def _crictl(what: str) -> Callable[[str, Evidence, _Run], Observation]:
    def read(text: str, ev: Evidence, run: _Run) -> Observation:
        return _replay(nc.crictl, text, ev, run, what)
    return read


def _systemd(unit: str) -> Callable[[str, Evidence, _Run], Observation]:
    """`systemctl show` (judged) then, after a section mark, `systemctl status` (kept as raw)."""
    def read(text: str, ev: Evidence, run: _Run) -> Observation:
        show, mark, status = text.partition(f"{nc.SECTION}status")
        obs = _replay(nc.systemd_unit, show, ev, run, unit)
        if mark and status.strip() and obs.status in (Status.OK, Status.BAD):
            obs = replace(obs, raw=f"{obs.raw}\n{status.strip()}"[:nc.RAW_LIMIT])
        return obs
    return read


def _dmesg(text: str, ev: Evidence, run: _Run) -> Observation:
    return _replay(nc.dmesg_oom, text, ev, run)


def _lsmod(text: str, ev: Evidence, run: _Run) -> Observation:
    return _replay(nc.kernel_modules, text, ev, run)


def _cert(text: str, ev: Evidence, run: _Run) -> Observation:
    first = text.lstrip().split("\n", 1)[0].strip()
    if run.known and not re.fullmatch(r"\d+(\.\d+)?", first):
        text = f"{int(run.at)}\n{text.lstrip()}"  # judged on the capture's clock
    return _replay(nc.client_cert, text, ev, run)


def _kubelet_ps(text: str, ev: Evidence, run: _Run) -> Observation:
    return _replay(nc.kubelet_process, text, ev, run)


def _metrics(text: str, ev: Evidence, run: _Run) -> Observation:
    at = run.at
    s = metrics_mod.parse(text, at=at)
    if not s.ok:
        raise ValueError(s.error or "not a /metrics payload")
    signals = metrics_mod.reduce(None, s)
    if not run.known:
        # Figures that are a timestamp in the scrape minus the scrape's time: without a capture
        # time in manifest.json the scrape's time is not known, so neither are they.
        why = "not measured: the capture time is unknown (no time in manifest.json)"
        if signals.pleg_last_relist_age.value is not None:
            signals.pleg_last_relist_age = metrics_mod.Figure(
                None, "s", "kubelet_pleg_last_seen_seconds", why)
        if signals.cert_ttl.value is not None and "expiration_seconds" in signals.cert_ttl.source:
            signals.cert_ttl = metrics_mod.Figure(
                None, "s", "kubelet_certificate_manager_client_expiration_seconds", why)
    breaches = signals.breaches()
    summary = f"metrics (one scrape): {signals.summary()}"
    data = {"size": s.size, "kept_lines": s.kept, "bad_lines": s.bad_lines,
            "signals": signals.as_dict(), "single_scrape": True}
    raw = "\n".join(line.decode("utf-8", "replace")
                    for line in metrics_mod.prefilter(text.encode()))[:4 * nc.RAW_LIMIT]
    return Observation("kubelet.metrics", ev.node, Status.BAD if breaches else Status.OK, at,
                       0.0, summary, data, VIA, raw)


def _goroutines(text: str, ev: Evidence, run: _Run) -> Observation:
    from probes.kubelet import parse_goroutines
    dump = parse_goroutines(text)
    if dump["total"] is None:
        raise ValueError("no 'goroutine profile: total N' line (not a debug=1 profile)")
    total = dump["total"]
    status = Status.BAD if total > GOROUTINE_WARN else Status.OK
    return Observation("kubelet.goroutines", ev.node, status, run.at, 0.0,
                       f"{total} goroutines", dict(dump), VIA, text[:nc.RAW_LIMIT])


def _node_json(text: str, ev: Evidence, run: _Run) -> Observation | None:
    obj = json.loads(text)
    if isinstance(obj, dict) and obj.get("kind") in ("NodeList", "List"):
        items = [i for i in obj.get("items") or [] if isinstance(i, dict)]
        wanted = [i for i in items if (i.get("metadata") or {}).get("name") == ev.node] \
            if ev.node else []
        if wanted:
            obj = wanted[0]
        elif len(items) == 1:
            obj = items[0]
        else:
            raise ValueError(f"a NodeList of {len(items)} nodes; say which one (node.json "
                             f"holds one Node)")
    if not isinstance(obj, dict) or obj.get("kind") not in (None, "Node"):
        raise ValueError("not a Node object")
    rec = node_record(obj)
    if not ev.node and rec.name:
        ev.node = rec.name
    age = (run.at - rec.heartbeat) if (run.known and rec.heartbeat) else None
    pressures = [k for k in ("MemoryPressure", "DiskPressure", "PIDPressure",
                             "NetworkUnavailable") if rec.conditions.get(k) == "True"]
    has_ready = "Ready" in rec.conditions  # an excerpt may hold only some conditions
    data = {"ready": rec.ready if has_ready else None, "reason": rec.ready_reason,
            "message": rec.ready_message, "set_by": rec.ready_by if has_ready else None,
            "heartbeat_age": None if age is None else round(age, 1),
            "ready_since": rec.ready_since, "conditions": rec.conditions,
            "pressures": pressures, "taints": rec.taints, "unschedulable": rec.unschedulable,
            "kubelet_version": rec.kubelet_version, "runtime": rec.runtime,
            "kernel": rec.kernel, "os_image": rec.os_image, "internal_ip": rec.internal_ip,
            "zone": rec.zone, "pods_capacity": rec.pods_capacity}
    words = ready_words(rec, pressures,
                        f", heartbeat {age:.0f} s before capture" if age is not None else "",
                        has_ready=has_ready)
    raw = conditions_text(obj)
    bad = rec.ready != "True" or bool(pressures)
    return Observation("api.node", ev.node, Status.BAD if bad else Status.OK, run.at, 0.0, words,
                       data, VIA, raw)


# `kubectl describe node`: the Conditions table, read back into a Node object
_CONDITION_HEADER = re.compile(r"^\s*Type\s+Status\s+LastHeartbeatTime\s+LastTransitionTime\s+"
                               r"Reason\s+Message", re.M)
_DESCRIBE_DATE = r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"
_CONDITION_ROW = re.compile(
    rf"^\s*(?P<type>[A-Za-z]+)\s+(?P<status>True|False|Unknown)\s+"
    rf"(?P<hb>{_DESCRIBE_DATE}|\S+)\s+(?P<tr>{_DESCRIBE_DATE}|\S+)\s+"
    rf"(?P<reason>[A-Za-z]+)\s*(?P<message>.*)$")


def _describe_time(text: str) -> str | None:
    from datetime import datetime
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text):
        return text  # already RFC 3339 (nodewb's own describe-node.txt)
    try:
        when = datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z")
    except ValueError:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_node_object(text: str) -> dict[str, Any]:
    """The Node object a `kubectl describe node` printout stands for (name, zone/pool labels,
    conditions with reason, message and heartbeat). Raises ValueError without a Conditions
    table."""
    name = re.search(r"^Name:\s+(\S+)", text, re.M)
    labels: dict[str, str] = {}
    block = re.search(r"^Labels:\s+(.*?)(?=^\S)", text, re.M | re.S)
    for ln in (block.group(1).splitlines() if block else []):
        key, sep, value = ln.strip().partition("=")
        if sep and key:
            labels[key] = value
    conditions = []
    table = _CONDITION_HEADER.search(text)
    if table is None:
        raise ValueError("no Conditions table (Type Status LastHeartbeatTime ...)")
    for ln in text[table.end():].splitlines()[1:]:
        if not ln.strip() or re.match(r"^\s*-+\s", ln):
            continue
        if re.match(r"^\S", ln):
            break  # the next section (Addresses:, Capacity:, ...)
        m = _CONDITION_ROW.match(ln.replace("\t", " "))
        if m is None:
            continue
        conditions.append({"type": m["type"], "status": m["status"], "reason": m["reason"],
                           "message": m["message"].strip(),
                           "lastHeartbeatTime": _describe_time(m["hb"]),
                           "lastTransitionTime": _describe_time(m["tr"])})
    if not conditions:
        raise ValueError("the Conditions table has no rows that can be read")
    return {"kind": "Node", "metadata": {"name": name.group(1) if name else "",
                                         "labels": labels},
            "status": {"conditions": conditions}}


# the Events of `kubectl describe node` (Type Reason Age From Message)
_EVENTS_HEADER = re.compile(r"^\s*Type\s+Reason\s+Age\s+From\s+Message\s*$", re.M)
_EVENT_ROW = re.compile(r"^\s*(?P<type>Normal|Warning)\s+(?P<reason>[A-Za-z]+)\s+(?P<rest>.*)$")
_EVENT_REST = re.compile(r"^(?P<age>\S+(?: \(x\d+ over \S+\))?)\s{2,}(?P<source>.+?)\s{2,}"
                         r"(?P<message>.*)$")


def _events_text(text: str, ev: Evidence, run: _Run) -> Observation:
    events = []
    for ln in text.splitlines():
        m = _EVENT_ROW.match(ln)
        if m is None:
            continue
        rest = _EVENT_REST.match(m["rest"].strip())
        message = rest["message"] if rest else m["rest"].strip()
        events.append({"type": m["type"], "reason": m["reason"], "message": message[:300]})
    if not events:
        raise ValueError("no event rows (Normal|Warning Reason Age From Message)")
    warnings = [e for e in events if e["type"] == "Warning"]
    reasons: dict[str, int] = {}
    for e in warnings:
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    data = {"total": len(events), "warnings": len(warnings), "warning_reasons": reasons,
            "events": events}
    summary = (f"{len(warnings)} warning events: " + ", ".join(reasons)) if warnings else \
        f"{len(events)} events, no warnings"
    return Observation("api.events", ev.node, Status.BAD if warnings else Status.OK, run.at, 0.0,
                       summary, data, VIA, "\n".join(ln for ln in text.splitlines()
                                                     if _EVENT_ROW.match(ln))[:nc.RAW_LIMIT])


def _events_json(text: str, ev: Evidence, run: _Run) -> Observation:
    """`kubectl get events -o json` (an EventList) as the events of the node."""
    obj = json.loads(text)
    items = obj.get("items") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise ValueError("not an event list")
    if not items:  # the node has no events: nothing wrong to report, as live
        return Observation("api.events", ev.node, Status.OK, run.at, 0.0,
                           "0 events, no warnings",
                           {"total": 0, "warnings": 0, "warning_reasons": {}, "events": []},
                           VIA, "")
    rows = []
    for e in items:
        if isinstance(e, dict) and e.get("reason"):
            rows.append(f"  {e.get('type') or 'Normal'}  {e['reason']}  "
                        f"{e.get('lastTimestamp') or e.get('eventTime') or '-'}  "
                        f"{(e.get('source') or {}).get('component') or '-'}  "
                        f"{' '.join(str(e.get('message') or '').split())}")
    return _events_text("\n".join(rows), ev, run)


def _clock(text: str, ev: Evidence, run: _Run) -> Observation:
    """`date -u +%s; timedatectl ...` as the live NTP check reads it. The offset is only judged
    against the time the command ran (manifest.json); without one, only NTP sync is."""
    limit = nc.CLOCK_OFFSET_LIMIT if run.known else 1e9  # 1e9 s: never
    return _replay(nc.ntp, text, ev, run, max_offset=limit)


def _describe_node(text: str, ev: Evidence, run: _Run) -> list[Observation]:
    """The Node (Conditions table) and, when it lists any, the Events section; both yield to
    node.json and events.json when the bundle holds those."""
    derived = {"derived_from": "describe-node.txt"}
    node = _node_json(json.dumps(describe_node_object(text)), ev, run)
    out = [replace(node, data=dict(node.data, **derived))] if node is not None else []
    section = _describe_section(text, "Events")
    if any(_EVENT_ROW.match(ln) for ln in section.splitlines()):
        events = _events_text(section, ev, run)
        out.append(replace(events, data=dict(events.data, **derived)))
    return out


def _describe_section(text: str, title: str) -> str:
    """The indented lines under `Title:` in a describe printout."""
    m = re.search(rf"^{re.escape(title)}:[ \t]*\n((?:[ \t]+.*(?:\n|$)|\n)*)", text, re.M)
    return m.group(1) if m else ""


_APISERVER_FROM_NODE = re.compile(r"server:[ \t]*\S*[ \t]*\n(\d{3})")


def _apiserver_from_node(text: str, ev: Evidence, run: _Run) -> Observation:
    """`echo "server: URL"; curl -w '%{http_code}' URL/healthz` as the live check reads it."""
    return _replay(nc.apiserver_reachability, text, ev, run)


def _lease(text: str, ev: Evidence, run: _Run) -> Observation:
    """The node's Lease, its renewTime judged at the time it was read (as api.lease live)."""
    obj = json.loads(text)
    if isinstance(obj, dict) and obj.get("kind") == "Status" and obj.get("code") == 404:
        return Observation("api.lease", ev.node, Status.BAD, run.at, 0.0,
                           "no lease in kube-node-lease: the kubelet has never renewed one",
                           {"http_status": 404}, VIA, str(obj.get("message") or "NotFound"))
    if not isinstance(obj, dict) or obj.get("kind") not in (None, "Lease") or \
            not isinstance(obj.get("spec"), dict):
        raise ValueError("not a Lease object")
    name = (obj.get("metadata") or {}).get("name")
    if ev.node and name and name != ev.node:
        raise ValueError(f"the lease of {name}, not of {ev.node}")
    spec = obj["spec"]
    renew = parse_time(spec.get("renewTime"))
    try:
        duration = float(spec.get("leaseDurationSeconds") or LEASE_DURATION)
    except (TypeError, ValueError):
        duration = LEASE_DURATION
    data: dict[str, Any] = {"renew_time": spec.get("renewTime"), "lease_duration": duration,
                            "holder": spec.get("holderIdentity") or "", "renew_age": None}
    raw = f"renewTime={spec.get('renewTime')} leaseDurationSeconds={duration:g}"
    if not renew:
        return Observation("api.lease", ev.node, Status.BAD, run.at, 0.0,
                           "the node lease has no renewTime", data, VIA, raw)
    if not run.known:
        raise ValueError("the capture time is unknown (no time in manifest.json), so the "
                         "renewTime cannot be judged")
    age = run.at - renew
    data["renew_age"] = round(age, 1)
    if age > duration:
        return Observation("api.lease", ev.node, Status.BAD, run.at, 0.0,
                           f"lease last renewed {age:.0f} s before capture (more than its "
                           f"{duration:g} s): the kubelet's heartbeats are not reaching the API "
                           f"server", data, VIA, raw)
    return Observation("api.lease", ev.node, Status.OK, run.at, 0.0,
                       f"lease renewed {age:.0f} s before capture", data, VIA, raw)


_READERS: dict[str, Callable[[str, Evidence, _Run], Observation | list[Observation] | None]] = {
    "kubelet-journal": _journal("kubelet"),
    "runtime-journal": _journal("containerd"),
    "dmesg": _dmesg,
    "node-json": _node_json,
    "describe-node": _describe_node,
    "events-text": _events_text,
    "events-json": _events_json,
    "clock": _clock,
    "metrics": _metrics,
    "goroutines": _goroutines,
    "df-space": _df(False),
    "df-inodes": _df(True),
    "crictl-ps": _crictl("ps"),
    "crictl-pods": _crictl("pods"),
    "crictl-info": _crictl("info"),
    "cert-dates": _cert,
    "lsmod": _lsmod,
    "systemd-kubelet": _systemd("kubelet"),
    "systemd-containerd": _systemd("containerd"),
    "kubelet-ps": _kubelet_ps,
    "apiserver-from-node": _apiserver_from_node,
    "lease": _lease,
}
