"""nodewb's SSH client: commands and followed logs on nodes, through a bastion, with asyncssh.

    async with SshClient(ssh_config="~/.ssh/config") as ssh:
        r = await ssh.run("node-0003", "systemctl is-active kubelet", timeout=10)
        r.exit_status, r.stdout, r.timed_out
        async with ssh.stream("node-0003", "journalctl -u kubelet -f -o short-iso") as lines:
            async for item in lines:   # str lines, and StreamGap markers when it reconnected
                ...

Where a node is reached (first that applies):
  1. a `Host` block of the ssh config naming the node (`Host node-0003`, `Host node-*`; a bare
     `Host *` does not count): the node name is the host, the config says the rest;
  2. the `target` template, e.g. "{name}.corp.example" or "{ip}";
  3. the node's InternalIP (`addresses`, or a node object with `.name` and `.internal_ip`),
     else the node name.
The host found is then looked up in the ssh config like `ssh HOST` would: HostName, Port, User,
IdentityFile, IdentitiesOnly, UserKnownHostsFile, HostKeyAlias, ConnectTimeout, ProxyJump. An
explicit `bastion="user@host:port"` (or "a,b" for a chain) takes ProxyJump's place, as `ssh -J`
does.

Connections: one per node, reused, re-opened when it dropped; one per bastion, shared by every
node behind it (each node is a direct-tcpip channel through it; asyncssh gets the bastion as a
connection object in `tunnel=`). At most `concurrency` nodes connect or run a command at once, and
at most `sessions_per_node` commands run at once on one node (OpenSSH allows 10 sessions per
connection by default; streams are not counted, leave room for them).

Host keys are checked against known_hosts (UserKnownHostsFile and GlobalKnownHostsFile from the
config, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts). An unknown or changed key raises
HostKeyUnknown / HostKeyChanged naming the host, the key type and SHA256 fingerprint presented,
the files consulted and the fix. Nothing is ever accepted on first use.

Every command has a time limit. A command that does not finish in it comes back with
`timed_out=True` and what it printed so far, and its channel is closed: a hang is evidence, and
it never holds up commands on other nodes. The command also runs under the node's own `timeout`
(a little longer than ours), because sshd refuses signal requests on root logins and closing a
channel does not stop a process that never writes. `observe` wraps `run` into a probe
Observation (HUNG, ERROR, OK/BAD).

Streams (`stream`) reconnect with backoff when the connection drops and mark the gap with
StreamGap items; a `journalctl -f` resumes after the last line it delivered (see
probes.ssh_journal). Keepalives (default every 15 s, 3 missed) are what notice a bastion or node
that froze without closing TCP.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import errno
import math
import os
import random
import shlex
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.command_result import CommandResult
from probes.observation import Observation, Status, timed
from probes.quiet_asyncssh import asyncssh
from probes.ssh_errors import (
    AuthFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyError,
    HostKeyUnknown,
    SshError,
    Unreachable,
)
from probes.ssh_journal import JournalResume
from probes.ssh_target import Hop, KnownHostsCache, SshConfig, host_key_error

DEFAULT_SSH_CONFIG = "~/.ssh/config"
MAX_OUTPUT = 4 * 1024 * 1024  # bytes kept per stream (stdout, stderr) of one command
MAX_LINE = 64 * 1024  # a streamed line longer than this is cut into pieces
STREAM_WINDOW = 256 * 1024  # SSH window of a stream: what the server may send while it is paused
CLOSE_WAIT = 5.0  # seconds close() waits for connections to say goodbye
REMOTE_GRACE = 2.0  # the node's `timeout` fires this long after ours...
REMOTE_KILL_AFTER = 5.0  # ...and sends KILL this long after its TERM
OBSERVATION_RAW = 256 * 1024  # characters of output an Observation quotes (the end of it)
# Cipher preference when the ssh config names none: AES-GCM first. Its per-packet cost in the
# cryptography library is a fraction of chacha20-poly1305's here, and through a bastion every
# packet is encrypted twice; with hundreds of nodes at once that is most of the client's CPU.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr")
_SHELL_CHARS = set("|&;<>()$`\\\"'*?[]#~=%{}\n\t")


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A stream lost its connection. Yielded twice per gap: when the drop is seen (`ended` is
    None: reconnecting), and when the command runs again (`ended` set, `resumed` says how)."""

    node: str
    reason: str
    started: float  # epoch seconds the drop was seen
    ended: float | None = None  # epoch seconds the command was running again
    attempts: int = 0  # connection attempts it took to close the gap
    resumed: str = ""  # "--since ...", "--after-cursor" (nothing lost or repeated), "restart"

    @property
    def open(self) -> bool:
        return self.ended is None

    def describe(self) -> str:
        if self.ended is None:
            return f"{self.node}: stream interrupted ({self.reason}); reconnecting"
        how = {"restart": "restarted (lines may repeat or be missing)"}.get(
            self.resumed, f"resumed with {self.resumed}")
        return (f"{self.node}: stream interrupted for {self.ended - self.started:.1f} s "
                f"({self.reason}); {how}")


# -- asyncssh callbacks ------------------------------------------------------------------------
class _Client(asyncssh.SSHClient):
    """Remembers the host key a server presented when known_hosts did not vouch for it."""

    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None
        self.addr = ""

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        self.presented = key
        self.addr = addr
        return False  # never trust a key known_hosts does not hold


class _Capture(asyncssh.SSHClientSession):
    """A command's output, capped, and how it ended."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.out = bytearray()
        self.err = bytearray()
        self.truncated = False
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.error: Exception | None = None
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes, datatype) -> None:
        buf = self.err if datatype == asyncssh.EXTENDED_DATA_STDERR else self.out
        room = self.cap - len(buf)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        buf += data

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if not self.done.done():
            self.done.set_result(None)


class _LineSession(asyncssh.SSHClientSession):
    """A streamed command: stdout cut into lines for the stream, stderr kept aside."""

    def __init__(self, stream: LineStream) -> None:
        self.stream = stream
        self.chan: Any = None
        self.partial = b""
        self.err_partial = b""
        self.held: list[bytes] | None = []  # lines that came before the stream took them
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.error: Exception | None = None
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def connection_made(self, chan) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            parts = (self.err_partial + data).split(b"\n")
            self.err_partial = parts.pop()[-MAX_LINE:]
            for raw in parts:
                self.stream.stderr.append(raw.decode("utf-8", "replace").rstrip("\r"))
            return
        parts = (self.partial + data).split(b"\n")
        self.partial = parts.pop()
        limit = self.stream.max_line
        while len(self.partial) > limit:
            parts.append(self.partial[:limit])
            self.partial = self.partial[limit:]
        stream = self.stream
        if self.held is not None:
            self.held.extend(parts)
            return
        for raw in parts:
            stream._line(raw)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        stream = self.stream
        if stream._backlog() >= stream.max_queue and stream._paused is None and \
                self.chan is not None:
            self.chan.pause_reading()
            stream._paused = self.chan
            stream.pauses += 1

    def activate(self) -> None:
        """Hand the lines over from now on (after the stream has posted what comes first)."""
        held, self.held = self.held, None
        for raw in held or ():
            self.stream._line(raw)
        if not self.done.done():
            self._maybe_pause()

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if self.partial and (self.exit_status is not None or self.exit_signal is not None):
            if self.held is not None:
                self.held.append(self.partial)
            else:
                self.stream._line(self.partial)  # a last line without a newline
        self.partial = b""
        if self.err_partial:
            self.stream.stderr.append(self.err_partial.decode("utf-8", "replace"))
        if not self.done.done():
            self.done.set_result(None)


# -- connections -------------------------------------------------------------------------------
class _Entry:
    """The connection to one hop (a node or a bastion) and the attempt to open it, if any."""

    def __init__(self, hop: Hop) -> None:
        self.hop = hop
        self.conn: asyncssh.SSHClientConnection | None = None
        self.pending: asyncio.Future | None = None
        self.opened = 0

    def live(self) -> asyncssh.SSHClientConnection | None:
        conn = self.conn
        return conn if conn is not None and not conn.is_closed() else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == \
            errno.ECONNREFUSED:
        return "connection refused (nothing listens there)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, asyncssh.ChannelOpenError):
        return exc.reason or str(exc)
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _node_name(node: Any) -> tuple[str, str | None]:
    if isinstance(node, str):
        return node, None
    name = getattr(node, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a node is a name or an object with .name, not {node!r}")
    ip = getattr(node, "internal_ip", None) or None
    return name, ip


class SshClient:
    """SSH to nodes: `run`, `stream`, `close`. All of it async; nothing blocks the loop."""

    def __init__(
        self,
        *,
        ssh_config: str | os.PathLike | None = DEFAULT_SSH_CONFIG,
        bastion: str | None = None,
        target: str | None = None,
        addresses: Mapping[str, str] | None = None,
        user: str | None = None,
        known_hosts: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        identity_files: Sequence[str | os.PathLike] | None = None,
        concurrency: int = 16,
        sessions_per_node: int = 8,
        connect_timeout: float | None = None,
        keepalive_interval: float | None = 15.0,
        keepalive_count_max: int = 3,
        sudo: bool = False,
        sudo_prefix: str = "sudo -n",
        remote_timeout: bool = True,
        max_output: int = MAX_OUTPUT,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """
        ssh_config: OpenSSH client config to read (None: none at all).
        bastion: `[user@]host[:port]` (comma-separated for a chain) in front of every node,
            instead of the config's ProxyJump; looked up in the config like any host.
        target: how a node name becomes a host when the config has no Host block for it:
            a template with {name} and {ip}; default: the node's InternalIP.
        addresses: node name -> InternalIP (also learnt from node objects passed in).
        user, known_hosts, identity_files: override the config's User, UserKnownHostsFile,
            IdentityFile for every host.
        sudo: run every command under sudo (per call: `sudo=`); sudo_prefix is how
            ("sudo -n": never prompt, fail instead).
        remote_timeout: run commands under the node's `timeout` (coreutils), a little longer than
            their own limit, so a hung command does not outlive the session on the node: sshd
            refuses signal requests on root logins, and closing the channel does not stop a
            process that never writes.
        connect_timeout: seconds to open a connection, overriding ConnectTimeout (default: the
            config's, else 10).
        keepalive_interval/keepalive_count_max: a connection that does not answer
            count_max keepalives in a row is dropped (streams then reconnect).
        backoff: first and longest wait between reconnect attempts of a stream (seconds).
        """
        path = Path(ssh_config).expanduser() if ssh_config is not None else None
        if isinstance(known_hosts, (str, os.PathLike)):
            known_hosts = [known_hosts]
        self.config = SshConfig(
            path, user=user,
            known_hosts=tuple(str(Path(p).expanduser()) for p in known_hosts)
            if known_hosts is not None else None,
            connect_timeout=connect_timeout or 10.0)
        self.connect_timeout = connect_timeout
        self.bastion = bastion
        self.template = target
        self.addresses: dict[str, str] = dict(addresses or {})
        self.identity_files = [str(Path(p).expanduser()) for p in identity_files] \
            if identity_files is not None else None
        self.concurrency = concurrency
        self.sessions_per_node = sessions_per_node
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.sudo_prefix = sudo_prefix
        self.sudo_default = sudo
        self.remote_timeout = remote_timeout
        self.max_output = max_output
        self.backoff = backoff
        self._slots = asyncio.Semaphore(concurrency)
        self._sessions: dict[tuple, asyncio.Semaphore] = {}
        self._entries: dict[tuple, _Entry] = {}
        self._hops: dict[tuple[str, str | None], Hop] = {}
        self._known = KnownHostsCache()
        self._streams: set[LineStream] = set()
        self._closed = False
        if bastion is not None:
            self.config.jump_chain(bastion)  # a malformed spec fails here, not per node

    async def __aenter__(self) -> SshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- where nodes are ---------------------------------------------------------------------
    def target(self, node: Any) -> Hop:
        """How `node` is reached: host, port, user, jump hosts, known_hosts files."""
        name, ip = _node_name(node)
        if ip:
            self.addresses[name] = ip
        ip = self.addresses.get(name)
        cached = self._hops.get((name, ip))
        if cached is not None:
            return cached
        if self.config.has_host(name):
            alias = name
        elif self.template:
            if "{ip}" in self.template and not ip:
                raise SshError(f"no InternalIP known for {name}, and the SSH target template "
                               f"{self.template!r} needs one", node=name)
            try:
                alias = self.template.format(name=name, ip=ip or "")
            except (KeyError, IndexError, ValueError) as exc:
                raise SshError(f"cannot use the SSH target template {self.template!r}: {exc!r} "
                               f"(it may use {{name}} and {{ip}})", node=name) from None
        else:
            alias = ip or name
        hop = self.config.resolve(alias, jump_override=self.bastion)
        self._hops[(name, ip)] = hop
        return hop

    def _command(self, command: str, sudo: bool | None, limit: float | None = None) -> str:
        """The line sent: `command`, under `timeout` when `limit` is given, under sudo when
        asked."""
        use = self.sudo_default if sudo is None else sudo
        prefix = []
        if use:
            prefix.append(self.sudo_prefix or "sudo -n")
        if limit is not None:
            prefix.append(f"timeout -k {REMOTE_KILL_AFTER:g} {math.ceil(limit):d}")
        if not prefix:
            return command
        if any(c in _SHELL_CHARS for c in command):
            return f"{' '.join(prefix)} sh -c {shlex.quote(command)}"
        return f"{' '.join(prefix)} {command}"

    # -- connections -------------------------------------------------------------------------
    async def connection(self, node: Any, *, bastion: bool = False
                         ) -> asyncssh.SSHClientConnection:
        """The live connection to `node` (or to the bastion in front of it), opened when
        needed."""
        name, _ = _node_name(node)
        hop = self.target(node)
        async with self._slots:
            conn = await self._node_connection(hop, name)
        if bastion:
            if not hop.via:
                raise SshError(f"{name} is reached directly, without a bastion", node=name)
            entry = self._entries.get(hop.via[-1].key)
            live = entry.live() if entry is not None else None
            if live is None:
                raise Unreachable(f"{name}: the bastion connection dropped", node=name)
            return live
        return conn

    async def _node_connection(self, hop: Hop, node: str) -> asyncssh.SSHClientConnection:
        try:
            return await self._hop_connection(hop, node)
        except SshError as exc:
            if exc.node is None or exc.node != node:
                exc = copy.copy(exc)
                if not exc.message.startswith(f"{node}:") and node not in exc.message:
                    exc.message = f"{node}: {exc.message}"
                exc.node = node
                raise exc from None
            raise

    async def _hop_connection(self, hop: Hop, node: str | None) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise SshError("the SSH client is closed", node=node)
        entry = self._entries.get(hop.key)
        if entry is None:
            entry = self._entries[hop.key] = _Entry(hop)
        conn = entry.live()
        if conn is not None:
            return conn
        if entry.pending is None:
            pending = asyncio.ensure_future(self._establish(entry, node))
            entry.pending = pending

            def done(f: asyncio.Future, entry: _Entry = entry) -> None:
                entry.pending = None
                if not f.cancelled():
                    f.exception()  # retrieved: every waiter gets it through the shield

            pending.add_done_callback(done)
        return await asyncio.shield(entry.pending)

    async def _establish(self, entry: _Entry, node: str | None) -> asyncssh.SSHClientConnection:
        hop = entry.hop
        tunnel = await self._hop_connection(hop.via[-1], None) if hop.via else None
        conn = await self._open(hop, tunnel, bastion=node is None)
        old = entry.conn
        entry.conn = conn
        entry.opened += 1
        if old is not None:
            old.abort()
        return conn

    async def _open(self, hop: Hop, tunnel: asyncssh.SSHClientConnection | None, *,
                    bastion: bool) -> asyncssh.SSHClientConnection:
        client = _Client()
        kw: dict[str, Any] = dict(
            config=self.config.paths_for(hop.alias), tunnel=tunnel, client_factory=lambda: client,
            known_hosts=self._known.load(hop.known_hosts),
            connect_timeout=self.connect_timeout or hop.connect_timeout,
            keepalive_count_max=self.keepalive_count_max)
        if self.keepalive_interval is not None:
            kw["keepalive_interval"] = self.keepalive_interval
        if hop.explicit_port:
            kw["port"] = hop.port
        if hop.explicit_user or self.config.user:
            kw["username"] = hop.user
        if self.identity_files is not None:
            kw["client_keys"] = self.identity_files
        if not hop.ciphers:
            kw["encryption_algs"] = CIPHERS
        role = "the bastion " if bastion else ""
        where = f"{role}{hop.alias}"
        try:
            return await asyncssh.connect(hop.alias, **kw)
        except asyncssh.HostKeyNotVerifiable as exc:
            if client.presented is None:
                raise HostKeyUnknown(f"cannot verify the host key of {where} at {hop.address}: "
                                 f"{exc.reason}",
                                     target=hop.address, host=hop.known_name,
                                     known_hosts=hop.known_hosts) from None
            raise host_key_error(hop, None, client.presented, client.addr or hop.host,
                                 self.config.path) from None
        except asyncssh.PermissionDenied as exc:
            raise AuthFailed(self._auth_message(hop, where, exc), target=hop.address) from None
        except asyncssh.ChannelOpenError as exc:
            jump = hop.via[-1]
            raise Unreachable(
                f"the bastion {jump.alias} ({jump.address}) could not open a connection to "
                f"{hop.address} for {hop.alias}: {_reason(exc)}", target=hop.address) from None
        except (TimeoutError, OSError) as exc:
            how = f" through {hop.via[-1].alias}" if hop.via else ""
            limit = self.connect_timeout or hop.connect_timeout
            timeout = f" (waited {limit:g} s)" if isinstance(exc, TimeoutError) else ""
            raise Unreachable(f"cannot reach {where} at {hop.address}{how}: {_reason(exc)}"
                              f"{timeout}", target=hop.address) from None
        except asyncssh.KeyExchangeFailed as exc:
            raise SshError(f"cannot agree on keys with {where} at {hop.address}: {exc.reason}. "
                           f"If known_hosts holds a key type the server no longer offers, "
                           f"check the server's host keys.", target=hop.address) from None
        except asyncssh.DisconnectError as exc:
            raise Unreachable(f"{where} at {hop.address} closed the connection: {_reason(exc)}",
                              target=hop.address) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise SshError(f"cannot load a client key for {where}: {exc}. Check IdentityFile "
                           f"in {self.config.path} (an encrypted key needs the ssh-agent).",
                           target=hop.address) from None

    def _auth_message(self, hop: Hop, where: str, exc: Exception) -> str:
        files = self.identity_files if self.identity_files is not None else hop.identity_files
        agent = os.environ.get("SSH_AUTH_SOCK")
        offered = []
        if files:
            offered.append("identity files " + ", ".join(files))
        if agent and not hop.identities_only:
            offered.append(f"the ssh-agent at {agent}")
        elif agent:
            offered.append("the ssh-agent's copies of those keys only (IdentitiesOnly yes)")
        if not offered:
            offered.append("the default keys in ~/.ssh (no IdentityFile, no SSH_AUTH_SOCK)")
        return (f"{where} refused every key offered for user {hop.user!r} at {hop.address} "
                f"({_reason(exc)}). Offered: {'; '.join(offered)}. Check User and IdentityFile "
                f"for {hop.alias} in {self.config.path or 'the ssh config'}, that the key is in "
                f"~{hop.user}/.ssh/authorized_keys there, or load it into the agent (ssh-add).")

    def _session_slot(self, hop: Hop) -> asyncio.Semaphore:
        sem = self._sessions.get(hop.key)
        if sem is None:
            sem = self._sessions[hop.key] = asyncio.Semaphore(self.sessions_per_node)
        return sem

    async def _open_session(self, hop: Hop, node: str, line: str, shown: str, factory,
                            **kw) -> tuple[Any, Any]:
        """A session running `line` on the node's connection (opened or re-opened as needed).
        A connection found dead is replaced once; a session that does not open in the connect
        time limit means the connection stopped answering: it is dropped and Unreachable
        raised, never reported as a hung command."""
        wait = self.connect_timeout or hop.connect_timeout or 10.0
        for attempt in (0, 1):
            conn = await self._node_connection(hop, node)
            try:
                return await asyncio.wait_for(
                    conn.create_session(factory, line, encoding=None, **kw), wait)
            except TimeoutError:
                conn.abort()
                raise Unreachable(f"{node}: the connection to {hop.describe()} stopped "
                                  f"answering (no session opened for `{shown}` in {wait:g} s)",
                                  node=node, target=hop.address) from None
            except (asyncssh.Error, OSError) as exc:
                if attempt == 0 and conn.is_closed():
                    continue  # a reused connection had dropped: open a new one
                if isinstance(exc, asyncssh.ChannelOpenError) and not conn.is_closed():
                    raise SshError(f"{node} refused to open a session for `{shown}`: "
                                   f"{_reason(exc)}", node=node, target=hop.address) from None
                raise Unreachable(f"{node}: the connection to {hop.describe()} dropped before "
                                  f"`{shown}` started: {_reason(exc)}", node=node,
                                  target=hop.address) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- commands ----------------------------------------------------------------------------
    async def run(self, node: Any, command: str, timeout: float = 10.0, *,
                  sudo: bool | None = None, max_output: int | None = None,
                  raise_on_timeout: bool = False) -> CommandResult:
        """Run one command on `node`, at most `timeout` seconds once its session is open.

        A hang comes back as `timed_out=True` with the output so far (or raises CommandTimeout
        carrying that result when `raise_on_timeout`). Connection failures raise SshError
        subclasses; a command that started is never re-run."""
        name, _ = _node_name(node)
        hop = self.target(node)
        asked = self._command(command, sudo)
        line = self._command(command, sudo, timeout + REMOTE_GRACE if self.remote_timeout
                             else None)
        cap = max_output if max_output is not None else self.max_output
        async with self._session_slot(hop), self._slots:
            chan, session = await self._open_session(hop, name, line, asked,
                                                     lambda: _Capture(cap))
            started = time.time()
            t0 = time.monotonic()
            timed_out = False
            try:
                await asyncio.wait_for(asyncio.shield(session.done), timeout)
            except TimeoutError:
                timed_out = True
                _stop(chan)
            except asyncio.CancelledError:
                _stop(chan)
                raise
            result = CommandResult(
                session.exit_status, session.out.decode("utf-8", "replace"),
                session.err.decode("utf-8", "replace"), time.monotonic() - t0, timed_out,
                session.truncated, session.exit_signal, name, asked, started, timeout, line)
        if timed_out:
            return self._timed_out(result, raise_on_timeout)
        if session.exit_status is None and session.exit_signal is None:
            why = _reason(session.error) if session.error else "no exit status"
            raise Unreachable(
                f"{name}: the connection to {hop.describe()} dropped while `{asked}` ran "
                f"({why}); it printed {len(result.stdout)} characters before", node=name,
                target=hop.address)
        return result

    @staticmethod
    def _timed_out(result: CommandResult, raise_it: bool) -> CommandResult:
        if raise_it:
            raise CommandTimeout(result.describe(), result=result, node=result.node)
        return result

    async def run_many(self, nodes: Sequence[Any], command: str, timeout: float = 10.0, *,
                       sudo: bool | None = None) -> dict[str, CommandResult | SshError]:
        """`command` on every node at once (bounded by `concurrency`): name -> result or the
        SshError that kept it from running."""
        async def one(node: Any) -> tuple[str, CommandResult | SshError]:
            name, _ = _node_name(node)
            try:
                return name, await self.run(node, command, timeout, sudo=sudo)
            except SshError as exc:
                return name, exc
        return dict(await asyncio.gather(*(one(n) for n in nodes)))

    async def observe(self, node: Any, probe: str, command: str, timeout: float = 10.0, *,
                      sudo: bool | None = None,
                      judge: Callable[[CommandResult], tuple[Status, str]] | None = None
                      ) -> Observation:
        """`run` as a probe: an Observation that is HUNG when the command did not finish, ERROR
        when SSH failed (the reason says why and what to try), else what `judge` says of the
        result (default: OK on exit 0, BAD otherwise)."""
        name, _ = _node_name(node)
        with timed() as t:
            try:
                r = await self.run(node, command, timeout, sudo=sudo)
            except SshError as exc:
                r = None
                error = exc
        if r is None:
            return Observation(probe, name, Status.ERROR, t["started"], t["duration"],
                               f"{command}: {str(error).splitlines()[0]}", via="ssh",
                               reason=str(error),
                               data={"command": command, "error": type(error).__name__})
        raw = (r.stdout + r.stderr)[-OBSERVATION_RAW:]
        data = {"command": r.command, "exit_status": r.exit_status, "timed_out": r.timed_out,
                "truncated": r.truncated, "duration": r.duration}
        if r.timed_out:
            return Observation(probe, name, Status.HUNG, t["started"], t["duration"],
                               r.describe(), data, "ssh", raw)
        if judge is not None:
            status, summary = judge(r)
        elif r.exit_status == 0:
            status, summary = Status.OK, r.describe()
        else:
            status, summary = Status.BAD, r.describe()
        return Observation(probe, name, status, t["started"], t["duration"], summary, data,
                           "ssh", raw)

    def stream(self, node: Any, command: str, *, sudo: bool | None = None,
               resume: bool = True, reconnect: bool = True, max_attempts: int | None = None,
               max_queue: int = 10_000, max_line: int = MAX_LINE) -> LineStream:
        """Follow `command`'s stdout line by line (e.g. `journalctl -u kubelet -f`).

        Iterate it (`async with ssh.stream(...) as s: async for item in s`): items are str lines
        and StreamGap markers. When the connection drops it reconnects with backoff and starts
        the command again (a journalctl follow resumes after the last line seen); it ends when
        the command exits (`exit_status`), and raises the SshError that stops it for good (a
        host key, auth, or the first connection failing). Back-pressure: when `max_queue` lines
        wait unread, the channel is paused until the consumer has caught up by half."""
        name, _ = _node_name(node)
        hop = self.target(node)
        s = LineStream(self, name, hop, command, sudo=sudo, resume=resume, reconnect=reconnect,
                       max_attempts=max_attempts, max_queue=max_queue, max_line=max_line)
        self._streams.add(s)
        return s

    async def _start_stream(self, stream: LineStream, command: str):
        line = self._command(command, stream.sudo)
        async with self._slots:
            return await self._open_session(stream.hop, stream.node, line, line,
                                            lambda: _LineSession(stream), window=STREAM_WINDOW)

    # -- the end -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Open connections by role, and how often each hop was (re)opened."""
        live = [e for e in self._entries.values() if e.live() is not None]
        return {"connections": len(live),
                "opened": {e.hop.alias: e.opened for e in self._entries.values()},
                "streams": len(self._streams)}

    async def close(self) -> None:
        """Stop every stream and close every connection (nodes first, then bastions)."""
        self._closed = True
        streams = list(self._streams)
        if streams:
            await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
        entries = sorted(self._entries.values(), key=lambda e: -len(e.hop.via))
        for e in entries:
            if e.pending is not None:
                e.pending.cancel()
        conns = [e.conn for e in entries if e.conn is not None]
        for conn in conns:
            conn.close()
        if conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*(c.wait_closed() for c in conns),
                                                      return_exceptions=True), CLOSE_WAIT)
        for conn in conns:
            if not conn.is_closed():
                conn.abort()
        self._entries.clear()


def _stop(chan: Any) -> None:
    """Ask a command to stop (TERM, for servers that pass signals on) and close its channel."""
    with contextlib.suppress(Exception):
        chan.send_signal("TERM")
    with contextlib.suppress(Exception):
        chan.close()


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class LineStream:
    """A followed command's lines (str) and StreamGap markers, as an async iterator."""

    def __init__(self, client: SshClient, node: str, hop: Hop, command: str, *,
                 sudo: bool | None, resume: bool, reconnect: bool, max_attempts: int | None,
                 max_queue: int, max_line: int) -> None:
        self.client = client
        self.node = node
        self.hop = hop
        self.command = command
        self.sudo = sudo
        self.reconnect = reconnect
        self.max_attempts = max_attempts
        self.max_queue = max_queue
        self.max_line = max_line
        self.resume = JournalResume.for_command(command) if resume else None
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.gaps: list[StreamGap] = []
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.lines = 0  # lines delivered into the queue
        self.pauses = 0  # times the channel was paused because the consumer lagged
        self.peak_backlog = 0  # most lines ever waiting unread
        self._items: collections.deque[Any] = collections.deque()
        self._queued_lines = 0
        self._wake = asyncio.Event()
        self._paused: Any = None
        self._task: asyncio.Task | None = None
        self._session: _LineSession | None = None
        self._finished = False

    # -- consumer side -------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str | StreamGap]:
        return self

    async def __aenter__(self) -> LineStream:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._task is None and not self._finished:
            self._task = asyncio.ensure_future(self._drive())

    async def __anext__(self) -> str | StreamGap:
        self._start()
        while True:
            if self._items:
                item = self._items.popleft()
                if isinstance(item, _End):
                    self._items.appendleft(item)  # stays ended
                    if item.error is not None:
                        raise item.error
                    raise StopAsyncIteration
                if isinstance(item, str):
                    self._queued_lines -= 1
                    if self._paused is not None and self._queued_lines <= self.max_queue // 2:
                        chan, self._paused = self._paused, None
                        with contextlib.suppress(Exception):
                            chan.resume_reading()
                return item
            if self._finished and not self._items:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    async def aclose(self) -> None:
        """Stop following: the channel is closed and the connection kept for other work."""
        task = self._task
        self._finished = True
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, CLOSE_WAIT)
        self.client._streams.discard(self)
        self._items.clear()  # lines still queued are not delivered after a close
        self._queued_lines = 0
        self._wake.set()

    # -- producer side -------------------------------------------------------------------------
    def _backlog(self) -> int:
        return self._queued_lines

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        if self.resume is not None and not self.resume.accept(text):
            return
        self._items.append(text)
        self._queued_lines += 1
        if self._queued_lines > self.peak_backlog:
            self.peak_backlog = self._queued_lines
        self.lines += 1
        self._wake.set()

    def _post(self, item: Any) -> None:
        if isinstance(item, StreamGap):
            self.gaps.append(item)
        self._items.append(item)
        self._wake.set()

    def _delay(self, attempt: int) -> float:
        first, longest = self.client.backoff
        if attempt <= 1:
            return 0.0  # the first retry is immediate: most drops are one connection
        base = min(longest, first * 2 ** (attempt - 2))
        return base * random.uniform(0.8, 1.2)

    async def _drive(self) -> None:
        started = False
        gap_started: float | None = None
        reason = ""
        attempts = 0
        try:
            while True:
                how = ""
                if started and self.resume is not None:
                    command, how = self.resume.command()
                else:
                    command = self.command
                    how = "restart" if started else ""
                try:
                    _chan, session = await self.client._start_stream(self, command)
                except SshError as exc:
                    transient = isinstance(exc, Unreachable)
                    if not started or not self.reconnect or not transient or (
                            self.max_attempts is not None and attempts >= self.max_attempts):
                        self._post(_End(exc))
                        return
                    attempts += 1
                    await asyncio.sleep(self._delay(attempts + 1))
                    continue
                if gap_started is not None:
                    self._post(StreamGap(self.node, reason, gap_started, time.time(),
                                         attempts + 1, how))
                    gap_started = None
                started = True
                attempts = 0
                self._session = session
                session.activate()
                await session.done
                self._paused = None
                if session.exit_status is not None or session.exit_signal is not None:
                    self.exit_status = session.exit_status
                    self.exit_signal = session.exit_signal
                    self._post(_End())
                    return
                reason = (f"connection lost: {_reason(session.error)}" if session.error
                          else "the connection closed")
                gap_started = time.time()
                self._post(StreamGap(self.node, reason, gap_started))
                if not self.reconnect:
                    self._post(_End(Unreachable(f"{self.node}: {reason}", node=self.node,
                                                target=self.hop.address)))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must reach the consumer, not vanish in a task
            self._post(_End(exc))
        finally:
            self._finished = True
            session = self._session
            if session is not None and session.chan is not None and not session.done.done():
                _stop(session.chan)
            self._wake.set()


__all__ = ["SshClient", "CommandResult", "StreamGap", "LineStream", "SshError", "HostKeyError",
           "HostKeyUnknown", "HostKeyChanged", "AuthFailed", "Unreachable", "CommandTimeout",
           "Hop", "DEFAULT_SSH_CONFIG", "MAX_OUTPUT"]
