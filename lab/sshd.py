"""The lab's SSH: a bastion that only forwards to the lab's nodes, and one SSH server per node.

Every node listens on its own loopback address (port 22 when it can be bound) with its own
ed25519 host key, so `ssh -J bastion node` and asyncssh's `tunnel=` behave as against a real
fleet, host-key checking included. A session runs one command line (exec) or an interactive
shell (`root@node-0001:~# `) through `lab.shell`; closing the session cancels what it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import shell
from lab.faults import Fault, FaultSet
from lab.machine import Machine
from lab.quiet_asyncssh import asyncssh

logging.getLogger("asyncssh").setLevel(logging.WARNING)

BASTION_ALIAS = "nodewb-bastion"
MAX_LINE = 1 << 20


def _public_line(key: Any) -> str:
    """An OpenSSH public key line from an asyncssh key, a key line, or key bytes."""
    if isinstance(key, (asyncssh.SSHKey,)):
        return key.export_public_key("openssh").decode().strip()
    if isinstance(key, bytes):
        key = key.decode()
    key = key.strip()
    if key.startswith("-----BEGIN") or "PRIVATE KEY" in key:
        return asyncssh.import_private_key(key).export_public_key("openssh").decode().strip()
    return asyncssh.import_public_key(key).export_public_key("openssh").decode().strip()


class _Server(asyncssh.SSHServer):
    """Public-key auth for any user name; nothing else."""

    def __init__(self, lab: SshLab, node: str | None) -> None:
        self.lab = lab
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.lab._conns.add(conn)
        if self.node is None:
            self.lab._bastion_conns.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.lab._conns.discard(self.conn)
            self.lab._bastion_conns.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key.export_public_key("openssh").decode().split()[1] in self.lab._client_blobs

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int):
        if self.node is not None:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                            "port forwarding is disabled on nodes")
        target = self.lab._forward_target(dest_host, dest_port)
        if target is None:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"the bastion only forwards to lab nodes ({dest_host}:{dest_port} refused)")
        assert self.conn is not None
        return self.conn.forward_connection(*target)

    def server_requested(self, listen_host: str, listen_port: int):
        return False


class SshLab:
    """The bastion and the node SSH servers of one lab."""

    def __init__(self) -> None:
        self.machines: dict[str, Machine] = {}
        self.host_keys: dict[str, str] = {}  # node name -> "ssh-ed25519 AAAA..."
        self.addresses: dict[str, tuple[str, int]] = {}  # node name -> (host, port)
        self.bastion_host = "127.0.0.1"
        self.bastion_port = 0
        self.bastion_host_key = ""
        self.node_port = 22
        self.now_fn: Callable[[], float] = time.time
        self._private: dict[str, asyncssh.SSHKey] = {}
        self._acceptors: list[Any] = []
        self._bastion: Any = None
        self._targets: dict[tuple[str, int], tuple[str, int]] = {}
        self._client_blobs: set[str] = set()
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._bastion_conns: set[asyncssh.SSHServerConnection] = set()
        self._tasks: set[asyncio.Task] = set()
        self._sessions: dict[asyncio.Task, tuple[str, Any, float]] = {}  # node, conn, began
        self._bastion_key: Any = None
        self.faults: FaultSet | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, machines: dict[str, Machine], client_public_key: Any,
                    host: str = "127.0.0.1", node_port: int = 22) -> None:
        self.machines = dict(machines)
        keys = client_public_key if isinstance(client_public_key, (list, tuple)) else \
            [client_public_key]
        self._client_blobs = {_public_line(k).split()[1] for k in keys}
        self.bastion_host = host
        self._bastion_key = bastion_key = asyncssh.generate_private_key("ssh-ed25519")
        self.bastion_host_key = bastion_key.export_public_key("openssh").decode().strip()
        self._bastion = await self._listen_bastion(host, 0)
        self.bastion_port = self._bastion.get_port()
        await self._start_nodes(node_port)

    async def _listen_bastion(self, host: str, port: int):
        return await asyncssh.listen(
            host, port, server_host_keys=[self._bastion_key],
            server_factory=lambda: _Server(self, None), allow_pty=False,
            x11_forwarding=False, agent_forwarding=False, keepalive_interval=30,
            login_timeout=30, reuse_address=True)

    # -- faults ------------------------------------------------------------------------------------
    def attach_faults(self, faults: FaultSet) -> None:
        self.faults = faults
        faults.runners["bastion-down"] = self._bastion_outage
        faults.runners["ssh-drop"] = self._drop_sessions

    async def _bastion_outage(self, fault: Fault) -> None:
        """The bastion stops listening and its connections are aborted until the fault ends."""
        if self._bastion is None:
            return
        self._bastion.close()
        for conn in list(self._bastion_conns):
            conn.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._bastion.wait_closed(), 2)
        self._bastion = None
        try:
            assert self.faults is not None
            await self.faults.until_over(fault)
        finally:
            for _ in range(50 if not self._stopping else 0):
                try:
                    self._bastion = await self._listen_bastion(self.bastion_host,
                                                               self.bastion_port)
                    break
                except OSError:
                    await asyncio.sleep(0.1)

    async def _drop_sessions(self, fault: Fault) -> None:
        """Abort the node connection under every session that has run `every` s (so a followed
        stream is cut mid-way), for as long as the fault lasts."""
        assert self.faults is not None
        while fault.active():
            now = time.time()
            for node, conn, began in list(self._sessions.values()):
                if fault.applies_to(node) and now - max(began, fault.begins) >= fault["every"]:
                    conn.abort()
            await asyncio.sleep(0.1)

    async def _start_nodes(self, node_port: int) -> None:
        port = node_port
        shared_host = False
        for name, m in self.machines.items():
            key = asyncssh.generate_private_key("ssh-ed25519")
            self._private[name] = key
            self.host_keys[name] = key.export_public_key("openssh").decode().strip()
            sock, port, shared_host = self._bind(m, port, shared_host)
            bound_host, bound_port = sock.getsockname()[:2]
            acceptor = await asyncssh.listen(
                sock=sock, server_host_keys=[key],
                server_factory=lambda n=name: _Server(self, n),
                process_factory=lambda p, n=name: self._session(n, p),
                encoding="utf-8", errors="surrogateescape", allow_pty=True,
                x11_forwarding=False, agent_forwarding=False, line_editor=True,
                keepalive_interval=30, login_timeout=30)
            self._acceptors.append(acceptor)
            self.addresses[name] = (bound_host, bound_port)
            self._targets[(bound_host, bound_port)] = (bound_host, bound_port)
            self._targets[(name, bound_port)] = (bound_host, bound_port)
            self._targets[(name, 22)] = (bound_host, bound_port)
            if m.ip != bound_host:
                self._targets[(m.ip, 22)] = (bound_host, bound_port)
                self._targets[(m.ip, bound_port)] = (bound_host, bound_port)
        self.node_port = port

    def _bind(self, m: Machine, port: int, shared_host: bool) -> tuple[socket.socket, int, bool]:
        """Bind the node's listener: its own address on `port`; a free high port on its address
        when `port` needs privileges; 127.0.0.1 with its own port when the address is absent."""
        attempts = []
        if not shared_host:
            attempts.append((m.ip, port))
            if port:
                attempts.append((m.ip, 0))
        attempts.append(("127.0.0.1", 0))
        last: OSError | None = None
        for host, p in attempts:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, p))
                sock.listen(128)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                last = exc
                if host == "127.0.0.1" and m.ip != "127.0.0.1":
                    raise
                if exc.errno == errno.EADDRNOTAVAIL:
                    shared_host = True
                continue
            bound = sock.getsockname()[1]
            if host == m.ip and p == 0 and port:
                port = bound  # every later node tries this same port on its own address
            elif host == m.ip:
                port = bound if p else port
            return sock, port, shared_host
        raise last or OSError("cannot bind a node listener")

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns):
            conn.abort()
        if self._bastion is not None:
            self._bastion.close()
        for acceptor in self._acceptors:
            acceptor.close()
        waits = [a.wait_closed() for a in self._acceptors]
        if self._bastion is not None:
            waits.append(self._bastion.wait_closed())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._acceptors.clear()
        self._bastion = None

    # -- forwarding --------------------------------------------------------------------------------
    def _forward_target(self, host: str, port: int) -> tuple[str, int] | None:
        return self._targets.get((host, port))

    # -- sessions ----------------------------------------------------------------------------------
    def _session(self, name: str, process: asyncssh.SSHServerProcess):
        task = asyncio.ensure_future(self._run_session(name, process))
        self._tasks.add(task)
        self._sessions[task] = (name, process.channel.get_connection(), time.time())
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: self._sessions.pop(t, None))
        return task

    async def _run_session(self, name: str, process: asyncssh.SSHServerProcess) -> None:
        machine = self.machines[name]
        user = process.get_extra_info("username") or "root"
        session = shell.Session(machine, user=user, now_fn=self.now_fn)
        status = 0
        try:
            if process.command is not None:
                status = await self._guarded(process, session, process.command, stdin=True)
            else:
                status = await self._interactive(process, session)
        except (BrokenPipeError, ConnectionError, asyncssh.Error, asyncio.CancelledError):
            status = 255
        except Exception as exc:  # a bug in a command must not kill the server
            with contextlib.suppress(Exception):
                process.stderr.write(f"bash: internal error: {exc!r}\n")
            status = 1
        with contextlib.suppress(Exception):
            process.exit(status)

    def _writers(self, process: asyncssh.SSHServerProcess):
        async def out(text: str) -> None:
            process.stdout.write(text)
            await process.stdout.drain()

        async def err(text: str) -> None:
            process.stderr.write(text)
            await process.stderr.drain()

        return out, err

    async def _guarded(self, process: asyncssh.SSHServerProcess, session: shell.Session,
                       line: str, *, stdin: bool, interrupt: asyncio.Future | None = None) -> int:
        """Run one line; a closed channel (or ^C) cancels it."""
        out, err = self._writers(process)
        run = asyncio.ensure_future(self._faulty(shell.run_line(
            session, line, out, err, stdin=process.stdin if stdin else None),
            session.machine.name, line, out))
        closed = asyncio.ensure_future(process.channel.wait_closed())
        waiters = {run, closed}
        if interrupt is not None:
            waiters.add(interrupt)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if run.done():
            return run.result()
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run
        if interrupt is not None and interrupt.done():
            return 130
        raise ConnectionResetError

    async def _faulty(self, command, node: str, line: str, out) -> int:
        """Run a command line under the SSH faults in force: ssh-hang holds it until the fault
        ends; ssh-huge adds its flood of output after what the command printed."""
        faults = self.faults
        if faults is None or not faults.faults:
            return await command
        hang = faults.active("ssh-hang", node)
        if hang is not None and hang["match"] in line:
            try:
                await faults.until_over(hang)
            except asyncio.CancelledError:
                command.close()
                raise
        huge = faults.active("ssh-huge", node)
        status = await command
        if huge is not None and huge["match"] in line:
            row = ("lab fault ssh-huge: " + "x" * 107 + "\n")
            block = row * (65536 // len(row))
            left = huge["bytes"]
            while left > 0:
                await out(block[:left])
                left -= len(block)
        return status

    async def _interactive(self, process: asyncssh.SSHServerProcess,
                           session: shell.Session) -> int:
        tty = process.get_terminal_type() is not None
        out, err = self._writers(process)
        if tty:
            last = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(self.now_fn() - 3600))
            await out(f"Linux {session.machine.name} {session.machine.kernel} #1 SMP "
                      f"PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30) x86_64\n\n"
                      f"Last login: {last} from 10.0.0.10\n")
        pending: asyncio.Future | None = None
        while not session.exited:
            if tty:
                await out(session.prompt())
            try:
                if pending is not None:
                    line = await pending
                    pending = None
                else:
                    line = await process.stdin.readline()
            except asyncssh.BreakReceived:
                await out("^C\n")
                continue
            except asyncssh.TerminalSizeChanged:
                continue
            except asyncssh.SignalReceived:
                continue
            if not line:
                if tty:
                    await out("logout\n")
                break
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            if tty:
                pending = asyncio.ensure_future(self._read_interrupt(process))
                status = await self._guarded(process, session, line, stdin=False,
                                             interrupt=pending)
                if pending.done() and not pending.cancelled():
                    exc = pending.exception()
                    if isinstance(exc, asyncssh.BreakReceived):
                        await out("^C\n")
                        pending = None
                    elif exc is None and pending.result() == "":
                        break
                session.status = status
            else:
                status = await self._guarded(process, session, line, stdin=False)
        return session.status

    async def _read_interrupt(self, process: asyncssh.SSHServerProcess) -> str:
        """While a command runs in a terminal: a ^C raises, a typed line is kept for later."""
        while True:
            try:
                return await process.stdin.readline()
            except (asyncssh.TerminalSizeChanged, asyncssh.SignalReceived):
                continue

    # -- client files ------------------------------------------------------------------------------
    def known_hosts_lines(self) -> list[str]:
        lines = []
        bastion = self.bastion_host if self.bastion_port == 22 else \
            f"[{self.bastion_host}]:{self.bastion_port}"
        lines.append(f"{bastion},{BASTION_ALIAS} {self.bastion_host_key}")
        for name, (host, port) in self.addresses.items():
            names = [name, host] if port == 22 else [f"[{name}]:{port}", f"[{host}]:{port}", name]
            lines.append(f"{','.join(names)} {self.host_keys[name]}")
        return lines

    def write_client_files(self, directory: str | os.PathLike, identity_file: str | os.PathLike,
                           *, user: str = "root", ssh_config: str = "ssh_config",
                           known_hosts: str = "known_hosts") -> tuple[Path, Path]:
        """Write DIR/known_hosts and DIR/ssh_config for OpenSSH's ssh and asyncssh."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        kh = directory / known_hosts
        cfg = directory / ssh_config
        identity = Path(identity_file).resolve()
        kh.write_text("\n".join(self.known_hosts_lines()) + "\n")
        common = (f"    User {user}\n    IdentityFile {identity}\n    IdentitiesOnly yes\n"
                  f"    UserKnownHostsFile {kh.resolve()}\n    GlobalKnownHostsFile /dev/null\n"
                  f"    StrictHostKeyChecking yes\n    CheckHostIP no\n"
                  f"    PasswordAuthentication no\n    KbdInteractiveAuthentication no\n"
                  f"    LogLevel ERROR\n    ConnectTimeout 10\n")
        parts = [f"Host {BASTION_ALIAS}\n    HostName {self.bastion_host}\n"
                 f"    Port {self.bastion_port}\n    HostKeyAlias {BASTION_ALIAS}\n" + common]
        for name, (host, port) in self.addresses.items():
            parts.append(f"Host {name}\n    HostName {host}\n    Port {port}\n"
                         f"    HostKeyAlias {name}\n    ProxyJump {BASTION_ALIAS}\n" + common)
        cfg.write_text("\n".join(parts))
        return cfg, kh


__all__ = ["SshLab", "BASTION_ALIAS"]
