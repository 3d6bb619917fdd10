"""OpenSSH's sshd for tests: `/usr/sbin/sshd -D -e -f CONFIG` on a free 127.0.0.1 port, with its own
host key, public-key auth against a temporary authorized_keys file, and TCP forwarding on (so it
can be the bastion in front of lab nodes).

    sshd = start_sshd(tmp_path, [client_public_key_line])
    ... sshd.port, sshd.host_key (an "ssh-ed25519 AAAA..." line), sshd.known_hosts_line()
    sshd.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
READY_TIMEOUT = 10.0

needs_sshd = pytest.mark.skipif(
    not (os.path.exists(SSHD) and os.access(SSHD, os.X_OK) and os.path.exists(SSH_KEYGEN)),
    reason="OpenSSH's sshd is not installed (/usr/sbin/sshd); `apt-get install -y "
           "openssh-server` (CI does it in .ci/run)")


@dataclass
class Sshd:
    dir: Path
    port: int
    host_key: str  # the public host key line, "ssh-ed25519 AAAA..."
    process: subprocess.Popen
    log: Path
    host: str = "127.0.0.1"

    def known_hosts_line(self, *names: str) -> str:
        hosts = [f"[{self.host}]:{self.port}", *names]
        return f"{','.join(hosts)} {self.host_key}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(directory: Path, authorized_keys: list[str], *, extra: str = "") -> Sshd:
    """Start sshd on a free port; returns once it listens (raises with its log otherwise)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    key = directory / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "nodewb-test-sshd",
                        "-f", str(key)], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    host_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    auth = directory / "authorized_keys"
    auth.write_text("".join(line.strip() + "\n" for line in authorized_keys))
    os.chmod(auth, 0o600)
    last_error = ""
    for _ in range(3):  # a free port can be taken between picking it and sshd binding it
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            f"Port {port}\n"
            f"ListenAddress 127.0.0.1\n"
            f"HostKey {key}\n"
            f"AuthorizedKeysFile {auth}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            f"UsePAM no\n"
            f"StrictModes no\n"
            f"PubkeyAuthentication yes\n"
            f"PasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\n"
            f"PermitRootLogin prohibit-password\n"
            f"AllowTcpForwarding yes\n"
            f"X11Forwarding no\n"
            f"PrintMotd no\n"
            f"LogLevel INFO\n"
            f"{extra}")
        log = directory / "sshd.log"
        log_file = open(log, "wb")
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log_file.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if f"Server listening on 127.0.0.1 port {port}" in text:
                return Sshd(directory, port, host_key, proc, log)
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        last_error = log.read_text(errors="replace")
        if "Address already in use" not in last_error:
            break
    raise RuntimeError(f"sshd did not start listening:\n{last_error[-3000:]}")
