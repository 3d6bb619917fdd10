"""Where an SSH connection goes and how: node -> target host, the ssh config's answer for a host
(HostName, Port, User, IdentityFile, IdentitiesOnly, UserKnownHostsFile, ProxyJump, HostKeyAlias,
ConnectTimeout), the jump hosts in front of it, the known_hosts files that vouch for it, and the
messages that say what to do when a host key does not match.

The config is read with asyncssh's own parser (`asyncssh.config.SSHClientConfig`), so what nodewb
reads is what asyncssh connects with. It does not implement `StrictHostKeyChecking`: nodewb never
accepts an unknown or changed key whatever the config says.
"""

from __future__ import annotations

import fnmatch
import getpass
import glob
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from probes.quiet_asyncssh import ConfigParseError, SSHClientConfig, WildcardPatternList, asyncssh
from probes.ssh_errors import HostKeyChanged, HostKeyUnknown, SshError

DEFAULT_PORT = 22
MAX_JUMPS = 8
MAX_LOADED = 100_000  # hosts whose config reading is remembered
KEY_TYPES = {  # OpenSSH's names for key types, as `ssh-keygen -l` prints them
    "ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA", "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK", "ssh-ed448": "ED448",
}


def option(cfg: SSHClientConfig, name: str, default: Any = None) -> Any:
    """An option of the ssh config as asyncssh read it (its type depends on the option)."""
    return cfg.get(name, default)


def local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry and no LOGNAME: what OpenSSH would also stumble on
        return "root"


@dataclass(frozen=True, slots=True)
class Hop:
    """One SSH server and how to reach it, as the ssh config resolves it."""

    alias: str  # the name the config was asked about ("nodewb-bastion", "node-0003", "10.0.0.5")
    host: str  # HostName
    port: int
    user: str
    host_key_alias: str | None
    known_hosts: tuple[str, ...]  # files consulted, in order (user files first)
    identity_files: tuple[str, ...]
    identities_only: bool
    connect_timeout: float | None
    via: tuple[Hop, ...] = ()  # jump hosts in front of it, outermost first
    explicit_port: bool = False  # the port came from a jump spec, not the config
    explicit_user: bool = False
    ciphers: bool = False  # the config names its Ciphers (then they are used as given)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def known_name(self) -> str:
        """The name OpenSSH looks this host up under in known_hosts."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"

    @property
    def key(self) -> tuple:
        """Identity of a connection to this hop: equal keys share one connection."""
        return (self.alias, self.host, self.port, self.user, tuple(h.key for h in self.via))

    def describe(self) -> str:
        where = f"{self.user}@{self.host}:{self.port}"
        if self.alias not in (self.host, f"{self.host}:{self.port}"):
            where = f"{self.alias} ({where})"
        if self.via:
            where += " via " + " -> ".join(h.alias for h in self.via)
        return where


@dataclass
class SshConfig:
    """An OpenSSH client config file (or none) and what it says about hosts."""

    path: Path | None
    user: str | None = None  # overrides User for every host when set
    known_hosts: tuple[str, ...] | None = None  # overrides UserKnownHostsFile when set
    connect_timeout: float = 10.0  # when the config gives no ConnectTimeout
    _patterns: list[tuple[list[str], list[str]]] | None = field(default=None, repr=False)
    _loaded: dict[tuple, tuple[Any, SSHClientConfig]] = field(default_factory=dict, repr=False)
    _blocks: tuple[Any, _BlockIndex | None] | None = field(default=None, repr=False)
    _reductions: dict[str, str] = field(default_factory=dict, repr=False)
    _copies: dict[str, tuple[Any, Path]] = field(default_factory=dict, repr=False)
    _copy_dir: Any = field(default=None, repr=False)  # TemporaryDirectory, removed with us
    _copy_count: int = field(default=0, repr=False)

    @property
    def paths(self) -> list[Path]:
        return [self.path] if self.path is not None and self.path.is_file() else []

    def load(self, alias: str, port: int | None = None, user: str | None = None
             ) -> SSHClientConfig:
        """asyncssh's reading of the config for `alias`, remembered until the file changes.

        A fleet's config names every node in its own `Host` block, so asyncssh's parser is fed
        only the lines that can apply to `alias` (the lines before the first block, the `Host`
        blocks whose patterns match it, every `Match` block): what it answers is unchanged, and
        a 200-node config is not re-read line by line for every node."""
        paths = self.paths
        stamp = _stamp(str(paths[0])) if paths else None
        key = (alias, port, user)
        hit = self._loaded.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        cfg = self._load(alias, port, user, paths)
        if len(self._loaded) > MAX_LOADED:
            self._loaded.clear()
        self._loaded[key] = (stamp, cfg)
        return cfg

    def paths_for(self, alias: str) -> list[Path]:
        """Config files to hand asyncssh when connecting to `alias`: a copy of the config with
        only the lines that can apply to it (see `load`) when that is much smaller, else the
        config itself. asyncssh reads its config on every connection; a fleet's config holds
        a block per node."""
        paths = self.paths
        if not paths:
            return []
        text = self._reduced(alias, paths[0])
        if text is None:
            return paths
        stamp = self._blocks[0] if self._blocks is not None else None
        hit = self._copies.get(alias)
        if hit is not None and hit[0] == stamp and hit[1].is_file():
            return [hit[1]]
        if self._copy_dir is None:
            self._copy_dir = tempfile.TemporaryDirectory(prefix="nodewb-ssh-config-")
        if len(self._copies) > MAX_LOADED:
            self._copies.clear()
        self._copy_count += 1  # a new name each time: asyncssh may be reading an older copy
        copy = Path(self._copy_dir.name) / f"{self._copy_count}.conf"
        copy.write_text(text)
        self._copies[alias] = (stamp, copy)
        return [copy]

    def _load(self, alias: str, port: int | None, user: str | None,
              paths: list[Path]) -> SSHClientConfig:
        def parse(where: list[Path]) -> SSHClientConfig:
            return cast(SSHClientConfig, SSHClientConfig.load(
                None, where, False, False, False, local_user(), user or self.user or (), alias,
                port if port is not None else ()))

        try:
            text = self._reduced(alias, paths[0]) if paths else None
            if text is not None:
                with tempfile.NamedTemporaryFile("w", prefix="nodewb-ssh-config-",
                                                 suffix=".conf") as f:
                    f.write(text)
                    f.flush()
                    try:
                        return parse([Path(f.name)])
                    except (ConfigParseError, ValueError):
                        pass  # the whole file again, so the message names its lines
            return parse(paths)
        except (ConfigParseError, OSError, ValueError) as exc:
            raise SshError(f"cannot read the ssh config {self.path}: {exc}") from None

    def _reduced(self, alias: str, path: Path) -> str | None:
        """The lines of `path` that can apply to `alias`; None when they are all of it or the
        file cannot be split into blocks (asyncssh then reads it whole)."""
        stamp = _stamp(str(path))
        if self._blocks is None or self._blocks[0] != stamp:
            self._blocks = (stamp, _BlockIndex.of(_config_blocks(path)))
            self._reductions = {}
        index = self._blocks[1]
        if index is None or len(index.texts) < 3:
            return None
        text = self._reductions.get(alias)
        if text is None:
            if len(self._reductions) > MAX_LOADED:
                self._reductions.clear()
            text = self._reductions[alias] = index.reduced(alias)
        return text

    # -- which names the config knows ---------------------------------------------------------
    def _scan(self) -> list[tuple[list[str], list[str]]]:
        if self._patterns is None:
            found: list[tuple[list[str], list[str]]] = []
            for path in self.paths:
                _scan_hosts(path, found, 0)
            self._patterns = found
        return self._patterns

    def has_host(self, name: str) -> bool:
        """A `Host` block names this host (a bare `Host *` does not count)."""
        for positive, negative in self._scan():
            if any(_match(p, name) for p in negative):
                continue
            if any(p != "*" and _match(p, name) for p in positive):
                return True
        return False

    # -- resolving a host -----------------------------------------------------------------------
    def resolve(self, alias: str, *, port: int | None = None, user: str | None = None,
                jump_override: str | None = None, depth: int = 0) -> Hop:
        """The hop for `alias`, with its jump hosts (ProxyJump, or `jump_override` when given:
        a `[user@]host[:port][,...]` spec like `ssh -J`, or "none")."""
        if depth > MAX_JUMPS:
            raise SshError(f"ProxyJump for {alias} goes more than {MAX_JUMPS} hops deep "
                           f"(a loop in {self.path}?)")
        cfg = self.load(alias, port, user)
        host = str(option(cfg, "Hostname", alias))
        hop_port = int(port if port is not None else option(cfg, "Port", DEFAULT_PORT))
        hop_user = str(user or self.user or option(cfg, "User") or local_user())
        timeout = option(cfg, "ConnectTimeout")
        jump = jump_override if jump_override is not None else option(cfg, "ProxyJump")
        via: tuple[Hop, ...] = ()
        if jump and str(jump).strip().lower() != "none":
            via = self.jump_chain(str(jump), depth + 1)
        return Hop(
            alias=alias, host=host, port=hop_port, user=hop_user,
            host_key_alias=_str_or_none(option(cfg, "HostKeyAlias")),
            known_hosts=self._known_hosts(cfg),
            identity_files=tuple(str(Path(p).expanduser()) for p in
                                 (option(cfg, "IdentityFile") or ())),
            identities_only=bool(option(cfg, "IdentitiesOnly")),
            ciphers=option(cfg, "Ciphers") is not None,
            connect_timeout=float(timeout) if timeout else self.connect_timeout,
            via=via, explicit_port=port is not None, explicit_user=user is not None)

    def jump_chain(self, spec: str, depth: int = 1) -> tuple[Hop, ...]:
        """`a,b,c` -> hops a, b, c (a's own ProxyJump in front of it, as OpenSSH does)."""
        hops: list[Hop] = []
        for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
            user, host, port = parse_destination(part)
            hop = self.resolve(host, port=port, user=user, depth=depth,
                               jump_override=None if i == 0 else "none")
            if i > 0:
                hop = _with_via(hop, tuple(hops))
            hops.append(hop)
        if hops:
            first = hops[0]
            return first.via + tuple(hops)  # hops[1:] already carry the chain before them
        return ()

    def _known_hosts(self, cfg: SSHClientConfig) -> tuple[str, ...]:
        if self.known_hosts is not None:
            return tuple(str(Path(p).expanduser()) for p in self.known_hosts)
        user_files = option(cfg, "UserKnownHostsFile")
        if user_files is None:
            user_files = ["~/.ssh/known_hosts"]
        global_files = option(cfg, "GlobalKnownHostsFile")
        if global_files is None:
            global_files = ["/etc/ssh/ssh_known_hosts"]
        out: list[str] = []
        for p in [*user_files, *global_files]:
            if str(p).lower() == "none" or str(p) == "/dev/null":
                continue
            path = str(Path(os.path.expandvars(str(p))).expanduser())
            if path not in out:
                out.append(path)
        return tuple(out)


def _with_via(hop: Hop, via: tuple[Hop, ...]) -> Hop:
    return Hop(alias=hop.alias, host=hop.host, port=hop.port, user=hop.user,
               host_key_alias=hop.host_key_alias, known_hosts=hop.known_hosts,
               identity_files=hop.identity_files, identities_only=hop.identities_only,
               connect_timeout=hop.connect_timeout, via=via, explicit_port=hop.explicit_port,
               explicit_user=hop.explicit_user)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None


def parse_destination(spec: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`."""
    text = spec.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://"):].rstrip("/")
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
    port: int | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], spec)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p, spec)
    else:
        host = text
    if not host:
        raise SshError(f"cannot read the SSH destination {spec!r}: expected [user@]host[:port]")
    return user or None, host, port


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SshError(f"cannot read the port in {spec!r}: expected [user@]host[:port]")
    return int(text)


_KEYWORD = re.compile(r"\s*([A-Za-z]+)\s*(?:=|\s|$)")


def _config_blocks(path: Path) -> list[tuple[Any, str]] | None:
    """`path` cut where `Host` and `Match` lines start: ((matcher, patterns) of a Host block, or
    None for the lines before the first block and for Match blocks, which are always kept; the
    text).
    None when a Host line cannot be read (asyncssh then reports it)."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError):
        return None
    blocks: list[tuple[Any, str]] = []
    patterns: Any = None
    current: list[str] = []
    for line in lines:
        m = _KEYWORD.match(line)
        keyword = m.group(1).lower() if m else ""
        if ("'" in line or '"' in line or "\\" in line) and not line.lstrip().startswith("#"):
            try:  # asyncssh splits every line, in blocks that do not apply too: so must we
                shlex.split(line.strip())
            except ValueError:
                return None
        if keyword in ("host", "match") and not line.lstrip().startswith("#"):
            blocks.append((patterns, "".join(current)))
            current = []
            patterns = None
            if keyword == "host":
                try:
                    words = shlex.split(line.strip())
                except ValueError:
                    return None
                args = _host_args(words)
                if not args:
                    return None
                joined = ",".join(args)
                patterns = (WildcardPatternList(joined), joined.split(","))
        current.append(line if line.endswith("\n") else line + "\n")
    blocks.append((patterns, "".join(current)))
    return blocks


@dataclass(frozen=True, slots=True)
class _BlockIndex:
    """A config's blocks, with the Host blocks that name hosts literally (no wildcard, no
    negation: a fleet's per-node blocks) found by name instead of by trying each pattern."""

    texts: list[str]
    literal: dict[str, list[int]]  # host name -> the blocks naming it
    checked: list[tuple[int, Any]]  # (block, WildcardPatternList or None for always kept)

    @classmethod
    def of(cls, blocks: list[tuple[Any, str]] | None) -> _BlockIndex | None:
        if blocks is None:
            return None
        literal: dict[str, list[int]] = {}
        checked: list[tuple[int, Any]] = []
        for i, (patterns, _) in enumerate(blocks):
            names = patterns[1] if patterns is not None else None
            if names is not None and not any(c in n for n in names for c in "*?!"):
                for n in dict.fromkeys(names):
                    literal.setdefault(n, []).append(i)
            else:
                checked.append((i, patterns[0] if patterns is not None else None))
        return cls([text for _, text in blocks], literal, checked)

    def reduced(self, alias: str) -> str:
        keep = {i for i, matcher in self.checked if matcher is None or matcher.matches(alias)}
        keep.update(self.literal.get(alias, ()))
        return "".join(self.texts[i] for i in sorted(keep))


def _host_args(words: list[str]) -> list[str]:
    """The patterns of a `Host` line as asyncssh splits it (`Host=a b`, `Host = a`)."""
    args: list[str] = []
    for i, word in enumerate(words):
        if word.startswith("="):
            if len(word) > 1:
                args.append(word[1:])
        elif word.endswith("="):
            args.append(word[:-1])
        elif "=" in word:
            args.extend(word.split("=", 1))
        else:
            args.append(word)
        if i == 0:
            args.pop(0)
    return args


def _match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower().replace("[", "[[]"))


def _scan_hosts(path: Path, out: list[tuple[list[str], list[str]]], depth: int) -> None:
    if depth > 8:
        return
    try:
        text = path.read_text()
    except OSError:
        return
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        keyword, args = words[0], words[1:]
        if "=" in keyword:
            keyword, first = keyword.split("=", 1)
            args = ([first] if first else []) + args
        keyword = keyword.lower()
        if keyword == "host":
            out.append(([a for a in args if not a.startswith("!")],
                        [a[1:] for a in args if a.startswith("!")]))
        elif keyword == "include":
            for pattern in args:
                p = Path(pattern).expanduser()
                if not p.is_absolute():
                    p = Path("~/.ssh").expanduser() / p
                for found in sorted(glob.glob(str(p))):
                    _scan_hosts(Path(found), out, depth + 1)


# -- known_hosts --------------------------------------------------------------------------------
class KnownHostsCache:
    """known_hosts files read once and re-read when they change (size or mtime)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], tuple[tuple, asyncssh.SSHKnownHosts]] = {}

    def load(self, files: tuple[str, ...]) -> asyncssh.SSHKnownHosts:
        stamp = tuple(_stamp(f) for f in files)
        hit = self._cache.get(files)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        known = asyncssh.SSHKnownHosts()
        for f, st in zip(files, stamp, strict=False):
            if st is None:
                continue
            try:
                known.load(Path(f).read_text(errors="replace"))
            except (OSError, ValueError, asyncssh.KeyImportError) as exc:
                raise SshError(f"cannot read known_hosts file {f}: {exc}") from None
        self._cache[files] = (stamp, known)
        return known


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def key_type(key: asyncssh.SSHKey) -> str:
    alg = key.get_algorithm()
    return KEY_TYPES.get(alg, alg.upper())


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def known_keys(hop: Hop, addr: str, files: tuple[str, ...] | None = None
               ) -> list[tuple[str, asyncssh.SSHKey]]:
    """(file, key) for every key a known_hosts file holds for this hop."""
    found: list[tuple[str, asyncssh.SSHKey]] = []
    port = None if hop.port == DEFAULT_PORT else hop.port
    for f in files if files is not None else hop.known_hosts:
        if _stamp(f) is None:
            continue
        try:
            known = asyncssh.read_known_hosts(f)
            keys = asyncssh.match_known_hosts(known, hop.host_key_alias or hop.host, addr,
                                              port)[0]
        except Exception:
            continue
        for k in keys:
            if not any(k == seen for _, seen in found):
                found.append((f, k))
    return found


def host_key_error(hop: Hop, node: str | None, presented: asyncssh.SSHKey | None, addr: str,
                   config_path: Path | None) -> SshError:
    """HostKeyUnknown or HostKeyChanged, with the fingerprint presented and the way out."""
    files = hop.known_hosts
    existing = [f for f in files if _stamp(f) is not None]
    user_file = files[0] if files else str(Path("~/.ssh/known_hosts").expanduser())
    name = hop.known_name
    kind = key_type(presented) if presented is not None else "unknown-type"
    fp = fingerprint(presented) if presented is not None else "(not seen)"
    who = f"{node} ({hop.describe()})" if node and node != hop.alias else hop.describe()
    consulted = ", ".join(files) if files else "(none)"
    if not existing:
        consulted += " (none of these files exists)"
    openssh = f"ssh -F {config_path} {hop.alias} true" if config_path else f"ssh {hop.alias} true"
    known = known_keys(hop, addr)
    keyscan = f"ssh-keyscan -p {hop.port} -t {_keyscan_type(presented)} {hop.host}"
    if hop.host_key_alias:
        keyscan += f" | sed 's/^[^ ]*/{hop.host_key_alias}/'"
    if hop.via:
        keyscan_where = (f" (run it where {hop.host} is reachable, e.g. on "
                         f"{hop.via[-1].alias})")
    else:
        keyscan_where = ""
    common: dict[str, Any] = dict(node=node, target=hop.address, host=name, key_type=kind,
                                  fingerprint=fp, known_hosts=tuple(files))
    if known:
        old = "; ".join(f"{key_type(k)} {fingerprint(k)} in {f}" for f, k in known)
        fix_file = known[0][0]
        message = (
            f"HOST KEY CHANGED for {who}: the server presented {kind} key {fp}, but known_hosts "
            f"holds a different key for {name!r}: {old}.\n"
            f"Either the node was rebuilt, or someone is intercepting the connection; nodewb "
            f"refuses to connect either way.\n"
            f"Verify the new fingerprint out of band (the node's console or your provisioning "
            f"records: `ssh-keygen -lf /etc/ssh/ssh_host_{_file_type(presented)}_key.pub` on the "
            f"node), then remove the old entry:\n"
            f"    ssh-keygen -R {_quote_name(name)} -f {fix_file}\n"
            f"and add the new one:\n"
            f"    {keyscan} >> {fix_file}{keyscan_where}\n"
            f"or connect once with OpenSSH and accept it: {openssh}")
        return HostKeyChanged(message, known_fingerprints=tuple(fingerprint(k) for _, k in known),
                              **common)
    message = (
        f"Unknown host key for {who}: the server presented {kind} key {fp}, and no known_hosts "
        f"file consulted has an entry for {name!r} (consulted: {consulted}).\n"
        f"nodewb never accepts a host key it cannot verify. Verify this fingerprint out of band "
        f"(the node's console or your provisioning records: "
        f"`ssh-keygen -lf /etc/ssh/ssh_host_{_file_type(presented)}_key.pub` on the node), "
        f"then add it:\n"
        f"    {keyscan} >> {user_file}{keyscan_where}\n"
        f"or connect once with OpenSSH and accept it: {openssh}")
    return HostKeyUnknown(message, **common)


def _keyscan_type(key: asyncssh.SSHKey | None) -> str:
    if key is None:
        return "ed25519"
    alg = key.get_algorithm()
    if alg.startswith("ecdsa"):
        return "ecdsa"
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ssh-dss": "dsa"}.get(alg, alg)


def _file_type(key: asyncssh.SSHKey | None) -> str:
    return _keyscan_type(key)


def _quote_name(name: str) -> str:
    return shlex.quote(name) if any(c in name for c in "[]*?") else name


__all__ = ["Hop", "SshConfig", "KnownHostsCache", "host_key_error", "parse_destination",
           "key_type", "fingerprint", "local_user"]
