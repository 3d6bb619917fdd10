"""Evidence bundles: a .tar.gz of command outputs and API objects with a manifest, written
atomically with mode 0600 and verified by reading it back before it counts as captured.

    bundle = write_bundle({"kubelet.log": text, ...}, node="node-0004", captured_at=t0,
                          out=None, tool_version="0.1.0", verdict=verdict_dict)
    bundle.path, bundle.sha256, bundle.files          # name -> sha256
    verify_bundle(bundle.path, bundle.sha256)         # EvidenceError on any mismatch

Layout (DESIGN.md, "Evidence layout"): one top directory named after the bundle, holding
manifest.json and one file per command or object. Every file is redacted (triage.redact)
before it is hashed and written; the manifest records each file's sha256 and size, the node,
the capture's start and end, the tool version, the capturing host and user, and what could not
be collected.
"""

from __future__ import annotations

import getpass
import gzip
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from triage.redact import redact_bytes, redact_text

__all__ = ["EvidenceError", "Bundle", "default_dir", "bundle_path", "write_bundle",
           "member_problem", "verify_bundle", "current_version", "MANIFEST", "FORMAT"]

MANIFEST = "manifest.json"
FORMAT = "nodewb-evidence/1"
MAX_MEMBER = 512 * 1024 * 1024  # bytes read back from one member
MAX_MEMBERS = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class EvidenceError(Exception):
    """A bundle could not be written or does not verify; the message is one line."""


@dataclass
class Bundle:
    path: Path
    sha256: str  # hex digest of the bundle file
    node: str
    captured_at: float  # epoch seconds, when the capture started
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 (manifest excluded)
    problems: list[str] = field(default_factory=list)  # what could not be collected, and why
    finished_at: float | None = None
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "node": self.node,
                "captured_at": self.captured_at, "finished_at": self.finished_at,
                "files": dict(self.files), "problems": list(self.problems)}


def default_dir() -> Path:
    """$NODEWB_EVIDENCE_DIR, else ${XDG_DATA_HOME:-~/.local/share}/nodewb/evidence."""
    configured = os.environ.get("NODEWB_EVIDENCE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return Path(base) / "nodewb" / "evidence"


def current_version() -> str:
    """The installed nodewb version."""
    try:
        from importlib.metadata import version
        return version("node-workbench")
    except Exception:
        return "unknown"


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _safe_node(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", node)[:100] or "node"


def bundle_path(node: str, captured_at: float, directory: Path | None = None) -> Path:
    """A new file name under `directory` (default_dir()): NODE-YYYYmmddTHHMMSSZ.tar.gz, with a
    counter when that name is taken."""
    d = directory if directory is not None else default_dir()
    stem = f"{_safe_node(node)}-{_stamp(captured_at)}"
    p = d / f"{stem}.tar.gz"
    n = 1
    while p.exists():
        n += 1
        p = d / f"{stem}-{n}.tar.gz"
    return p


def _make_dirs(d: Path) -> None:
    """Create `d` and missing parents with mode 0700 (existing directories are left alone)."""
    missing = []
    p = d
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for m in reversed(missing):
        try:
            m.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chmod(m, 0o700)


class _HashingWriter(io.RawIOBase):
    """Writes through to a file, hashing every byte that goes to it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.fh.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def _as_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise EvidenceError(f"{name}: the content is {type(value).__name__}, not text or bytes")


def _add(tf: tarfile.TarFile, arcname: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o600
    info.type = tarfile.REGTYPE
    info.uname = info.gname = ""
    tf.addfile(info, io.BytesIO(data))


def write_bundle(files: Mapping[str, bytes | str], *, node: str, captured_at: float,
                 out: Path | str | None = None, tool_version: str | None = None,
                 verdict: dict | None = None, problems: list[str] | None = None,
                 details: Mapping[str, Mapping[str, Any]] | None = None,
                 finished_at: float | None = None) -> Bundle:
    """Redact, write and verify a bundle; return it. `details` adds facts per file to the
    manifest (command, exit status, timed_out, seconds, source); `problems` lists what could not
    be collected. `out` is the bundle file (refused when it exists); default: a new name under
    default_dir(). Raises EvidenceError, leaving neither a partial bundle nor a temp file."""
    if not node:
        raise EvidenceError("no node name given for the bundle")
    finished = time.time() if finished_at is None else finished_at
    contents: dict[str, bytes] = {}
    for name, value in files.items():
        if not _NAME.fullmatch(name) or name == MANIFEST:
            raise EvidenceError(f"{name!r} is not a file name a bundle can hold")
        contents[name] = _as_bytes(name, value)
    if verdict is not None:
        try:
            contents["verdict.json"] = (json.dumps(verdict, indent=2, sort_keys=False,
                                                   default=str) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise EvidenceError(f"verdict.json: the verdict is not JSON ({exc})") from None

    entries: dict[str, dict[str, Any]] = {}
    redacted: dict[str, bytes] = {}
    for name in sorted(contents):
        data, count = redact_bytes(contents[name])
        redacted[name] = data
        entry: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        if count:
            entry["redactions"] = count
        extra = dict((details or {}).get(name) or {})
        for key, value in extra.items():
            if isinstance(value, str):
                value = redact_bytes(value.encode("utf-8", "surrogateescape"))[0] \
                    .decode("utf-8", "surrogateescape")
            entry.setdefault(key, value)
        entries[name] = entry

    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    manifest = {
        "format": FORMAT,
        "node": node,
        "tool": "nodewb",
        "tool_version": tool_version or current_version(),
        "captured_by": {"host": socket.gethostname(), "user": user, "pid": os.getpid()},
        "times": {"started": captured_at, "finished": finished,
                  "started_utc": _iso(captured_at), "finished_utc": _iso(finished)},
        "files": entries,
        "problems": [redact_text(str(p))[0] for p in problems or []],
    }
    try:
        manifest_bytes = (json.dumps(manifest, indent=2, allow_nan=False, default=str)
                          + "\n").encode()
    except ValueError as exc:
        raise EvidenceError(f"{MANIFEST}: the details are not JSON ({exc})") from None

    target = Path(out) if out is not None else bundle_path(node, captured_at)
    target = target.expanduser()
    if target.is_dir():
        raise EvidenceError(f"{target}: is a directory; give a file name for the bundle")
    if target.exists() or target.is_symlink():
        raise EvidenceError(f"{target}: already exists (evidence is never overwritten)")
    try:
        _make_dirs(target.parent)
    except OSError as exc:
        raise EvidenceError(f"{target.parent}: cannot create the directory "
                            f"({exc.strerror or exc})") from None
    top = target.name[:-7] if target.name.endswith(".tar.gz") else target.stem
    top = re.sub(r"[^A-Za-z0-9._-]", "_", top) or "evidence"
    tmp: Path | None = None
    fd = -1
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
        tmp = Path(tmp_name)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            writer = _HashingWriter(fh)
            with gzip.GzipFile(filename="", mode="wb", fileobj=writer, mtime=int(captured_at)) \
                    as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
                    _add(tf, f"{top}/{MANIFEST}", manifest_bytes, finished)
                    for name in sorted(redacted):
                        _add(tf, f"{top}/{name}", redacted[name], finished)
            fh.flush()
            os.fsync(fh.fileno())
        digest = writer.hash.hexdigest()
        if target.exists() or target.is_symlink():
            raise EvidenceError(f"{target}: appeared while the bundle was written; not "
                                f"overwritten")
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except BaseException as exc:  # an interrupt too: never leave a temp file behind
        _cleanup(fd, tmp)
        if isinstance(exc, EvidenceError) or not isinstance(exc, Exception):
            raise
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else \
            f"{type(exc).__name__}: {exc}"
        raise EvidenceError(f"{target}: the bundle could not be written ({why})") from None
    try:
        return verify_bundle(target, digest)
    except EvidenceError as exc:
        try:
            target.unlink()
        except OSError:
            pass
        raise EvidenceError(f"the bundle written did not verify, removed: {exc}") from None


def _cleanup(fd: int, tmp: Path | None) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
    if tmp is not None:
        try:
            tmp.unlink()
        except OSError:
            pass


def _fsync_dir(d: Path) -> None:
    try:
        dfd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# -- reading back -------------------------------------------------------------------------------
def member_problem(m: tarfile.TarInfo, limit: int = MAX_MEMBER) -> str | None:
    """Why a tar member must not be extracted (None when it may): only plain files and
    folders under the target, by relative names without '..', NULs or links, up to `limit`."""
    name = m.name
    if "\x00" in name or "\x00" in (m.linkname or ""):
        return "a NUL in the path"
    pp = PurePosixPath(name)
    if name.startswith(("/", "\\")) or pp.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' in the path"
    if m.issym() or m.islnk():
        return "a link"
    if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
        return "a device or fifo"
    if not (m.isfile() or m.isdir()):
        return "not a regular file"
    if m.isfile() and m.size > limit:
        return f"too large ({m.size} bytes)"
    return None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_bundle(path: Path | str, expected_sha256: str | None = None) -> Bundle:
    """Read a bundle back and check it: the whole file's sha256 (when given), every member safe
    (no absolute paths, '..', links or devices), every file listed in the manifest with the
    same sha256 and size, nothing missing and nothing extra. Raises EvidenceError."""
    p = Path(path)
    try:
        if not p.is_file():
            raise EvidenceError(f"{p}: not a file" if p.exists() else f"{p}: no such file")
        digest = _file_sha256(p)
    except OSError as exc:
        raise EvidenceError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise EvidenceError(f"{p}: sha256 {digest[:16]}… is not the {expected_sha256[:16]}… "
                            f"recorded (the file changed)")
    found: dict[str, tuple[str, int]] = {}
    manifest_raw: bytes | None = None
    top: str | None = None
    try:
        with tarfile.open(p, "r:gz") as tf:
            count = 0
            for m in tf:
                count += 1
                if count > MAX_MEMBERS:
                    raise EvidenceError(f"{p}: more than {MAX_MEMBERS} members")
                problem = member_problem(m)
                if problem:
                    raise EvidenceError(f"{p}: refused member {m.name!r} ({problem})")
                parts = PurePosixPath(m.name).parts
                if m.isdir():
                    if len(parts) != 1:
                        raise EvidenceError(f"{p}: unexpected directory {m.name!r}")
                    continue
                if len(parts) == 2:
                    here, name = parts
                elif len(parts) == 1:
                    here, name = "", parts[0]
                else:
                    raise EvidenceError(f"{p}: unexpected nested member {m.name!r}")
                if top is None:
                    top = here
                elif here != top:
                    raise EvidenceError(f"{p}: members in more than one directory "
                                        f"({top!r}, {here!r})")
                if name in found or (name == MANIFEST and manifest_raw is not None):
                    raise EvidenceError(f"{p}: member {m.name!r} appears twice")
                src = tf.extractfile(m)
                if src is None:
                    raise EvidenceError(f"{p}: member {m.name!r} cannot be read")
                with src:
                    data = src.read(MAX_MEMBER + 1)
                if name == MANIFEST:
                    manifest_raw = data
                else:
                    found[name] = (hashlib.sha256(data).hexdigest(), len(data))
    except EvidenceError:
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise EvidenceError(f"{p}: not a readable bundle ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
    if manifest_raw is None:
        raise EvidenceError(f"{p}: no {MANIFEST} in the bundle")
    try:
        manifest = json.loads(manifest_raw)
    except ValueError as exc:
        raise EvidenceError(f"{p}: {MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise EvidenceError(f"{p}: {MANIFEST} has no files table")
    listed: dict[str, Any] = manifest["files"]
    for name, entry in listed.items():
        if name not in found:
            raise EvidenceError(f"{p}: {name} is in the manifest but not in the bundle")
        if not isinstance(entry, dict):
            raise EvidenceError(f"{p}: {MANIFEST} entry for {name} is not an object")
        sha, size = found[name]
        if entry.get("sha256") != sha:
            raise EvidenceError(f"{p}: {name} does not match its sha256 in the manifest "
                                f"(the file changed)")
        if entry.get("size") != size:
            raise EvidenceError(f"{p}: {name} is {size} bytes, the manifest says "
                                f"{entry.get('size')}")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise EvidenceError(f"{p}: {', '.join(extra)} not listed in the manifest")
    times = manifest["times"] if isinstance(manifest.get("times"), dict) else {}
    started = times.get("started")
    finished = times.get("finished")
    node = manifest.get("node")
    if not isinstance(node, str) or not node:
        raise EvidenceError(f"{p}: {MANIFEST} names no node")
    if not isinstance(started, (int, float)):
        raise EvidenceError(f"{p}: {MANIFEST} has no capture start time")
    problems = [str(x) for x in manifest.get("problems") or []]
    return Bundle(p, digest, node, float(started),
                  {name: found[name][0] for name in sorted(listed)}, problems,
                  float(finished) if isinstance(finished, (int, float)) else None, manifest)
