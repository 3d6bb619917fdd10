"""probes.ssh against OpenSSH's real sshd on loopback: commands run on it directly (exit status,
stderr, signals on timeout, host keys, auth), and sshd as the bastion in front of lab nodes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from _sshd import needs_sshd, start_sshd
from conftest import SCENARIO_NODES
from probes.ssh import AuthFailed, HostKeyChanged, HostKeyUnknown, SshClient, StreamGap

pytestmark = [needs_sshd, pytest.mark.openssh]


@pytest.fixture(scope="module")
def client_key(tmp_path_factory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("sshd-client")
    key = asyncssh.generate_private_key("ssh-ed25519", comment="nodewb-test")
    path = d / "id_ed25519"
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return path, key.export_public_key().decode().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory, client_key, served_lab):
    """One sshd for the module; it trusts the test key and the lab's client key."""
    lab_pub = (served_lab.dir / "id_ed25519.pub").read_text().strip()
    server = start_sshd(tmp_path_factory.mktemp("sshd"), [client_key[1], lab_pub])
    yield server
    server.stop()


def direct_config(tmp_path: Path, sshd, key: Path, known: str) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(known)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host realsshd\n    HostName 127.0.0.1\n    Port {sshd.port}\n    User root\n"
                   f"    IdentityFile {key}\n    IdentitiesOnly yes\n"
                   f"    UserKnownHostsFile {kh}\n    GlobalKnownHostsFile /dev/null\n")
    return cfg


async def test_commands_on_a_real_sshd(sshd, client_key, tmp_path):
    cfg = direct_config(tmp_path, sshd, client_key[0], sshd.known_hosts_line() + "\n")
    async with SshClient(ssh_config=cfg) as ssh:
        r = await ssh.run("realsshd", "echo hi; id -un; echo oops >&2; exit 3", 10)
        assert (r.exit_status, r.stdout, r.stderr) == (3, "hi\nroot\n", "oops\n")
        r = await ssh.run("realsshd", "printf '\\377\\376 bad utf8\\n'", 10)
        assert r.stdout == "\ufffd\ufffd bad utf8\n"  # decoded with errors="replace"
        r = await ssh.run("realsshd", "head -c 3000000 /dev/zero | tr '\\0' x", 10,
                          max_output=100_000)
        assert r.ok and r.truncated and len(r.stdout) == 100_000
        r = await ssh.run("realsshd", "sudo -n true 2>/dev/null || true; whoami", 10, sudo=True)
        assert r.command.startswith("sudo -n sh -c ") and (r.ok or "sudo" in r.stderr)
        # a hung command: reported with what it printed; sshd refuses signals on root logins,
        # so the node's `timeout` (REMOTE_GRACE later) is what stops it there
        marker = "37.25"
        t0 = time.monotonic()
        r = await ssh.run("realsshd", f"echo started; sleep {marker}; echo never", 1.0)
        assert r.timed_out and r.stdout == "started\n" and time.monotonic() - t0 < 2.5
        assert r.sent.startswith("timeout -k 5 3 sh -c ")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            ps = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True)
            if ps.returncode != 0:
                break
            await asyncio.sleep(0.05)
        assert ps.returncode != 0, "the timed-out command is still running on the server"
        assert (await ssh.run("realsshd", "echo again", 10)).stdout == "again\n"
        assert ssh.stats()["opened"] == {"realsshd": 1}


async def test_real_sshd_host_keys_and_auth(sshd, client_key, tmp_path):
    presented = asyncssh.import_public_key(sshd.host_key).get_fingerprint("sha256")
    cfg = direct_config(tmp_path, sshd, client_key[0], "")
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(HostKeyUnknown) as info:
            await ssh.run("realsshd", "true", 10)
    assert info.value.fingerprint == presented
    assert f"ssh-keyscan -p {sshd.port} -t ed25519 127.0.0.1 >> {tmp_path / 'known_hosts'}" in \
        str(info.value)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    cfg = direct_config(tmp_path, sshd, client_key[0], f"[127.0.0.1]:{sshd.port} {other}\n")
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(HostKeyChanged) as info:
            await ssh.run("realsshd", "true", 10)
    assert info.value.fingerprint == presented
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {tmp_path / 'known_hosts'}" in \
        str(info.value)
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    os.chmod(stranger, 0o600)
    cfg = direct_config(tmp_path, sshd, stranger, sshd.known_hosts_line() + "\n")
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(AuthFailed) as info:
            await ssh.run("realsshd", "true", 10)
    assert str(stranger) in str(info.value) and f"127.0.0.1:{sshd.port}" in str(info.value)


async def test_real_sshd_back_pressure(sshd, client_key, tmp_path):
    cfg = direct_config(tmp_path, sshd, client_key[0], sshd.known_hosts_line() + "\n")
    count = 300_000
    async with SshClient(ssh_config=cfg) as ssh:
        async with ssh.stream("realsshd", f"seq 1 {count}", max_queue=1000) as stream:
            first = await asyncio.wait_for(stream.__anext__(), 10)
            await asyncio.sleep(0.5)  # lagging consumer: the channel is paused, sshd blocks
            peak_while_lagging = stream.peak_backlog
            t0 = time.monotonic()
            n, last = 1, first
            async for line in stream:
                n += 1
                last = line
            elapsed = time.monotonic() - t0
        assert (first, last, n, stream.exit_status) == ("1", str(count), count, 0)
        assert stream.pauses >= 1 and peak_while_lagging < 1000 + 20_000
        print(f"\n{count} lines in {elapsed:.2f} s ({count / elapsed:,.0f} lines/s) through a "
              f"1000-line queue; paused {stream.pauses} times, peak backlog "
              f"{stream.peak_backlog}")


async def test_real_sshd_as_the_bastion(sshd, served_lab, tmp_path):
    """ProxyJump through OpenSSH's sshd (direct-tcpip) to the lab's node shells."""
    ips = served_lab.info["ips"]
    port = served_lab.info["node_ssh_port"]
    key = served_lab.dir / "id_ed25519"
    kh = tmp_path / "known_hosts"
    kh.write_text((served_lab.dir / "known_hosts").read_text() +
                  sshd.known_hosts_line("realbastion") + "\n")
    common = (f"    User root\n    IdentityFile {key}\n    IdentitiesOnly yes\n"
              f"    UserKnownHostsFile {kh}\n    GlobalKnownHostsFile /dev/null\n")
    nodes = ["node-0001", "node-0002", SCENARIO_NODES["containerd-deadlock"]]
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host realbastion\n    HostName 127.0.0.1\n    Port {sshd.port}\n"
                   f"    HostKeyAlias realbastion\n" + common + "".join(
                       f"Host {n}\n    HostName {ips[n]}\n    Port {port}\n"
                       f"    HostKeyAlias {n}\n    ProxyJump realbastion\n" + common
                       for n in nodes))
    async with SshClient(ssh_config=cfg, keepalive_interval=2) as ssh:
        results = await ssh.run_many(nodes, "hostname; systemctl is-active kubelet", 10)
        for n in nodes:
            assert results[n].stdout == f"{n}\nactive\n"
        deadlock = SCENARIO_NODES["containerd-deadlock"]
        r = await ssh.run(deadlock, "journalctl -u kubelet -n 5", 10)
        assert r.ok and len(r.stdout.splitlines()) == 5 and "PLEG is not healthy" in r.stdout
        r = await ssh.run(deadlock, "crictl ps", 1.5)
        assert r.timed_out
        assert ssh.stats()["opened"]["realbastion"] == 1
        # a followed journal through sshd; the bastion connection drops; it resumes
        async with ssh.stream(deadlock, "journalctl -u kubelet -f -o short-iso") as stream:
            seen = [await asyncio.wait_for(stream.__anext__(), 15) for _ in range(10)]
            (await ssh.connection(deadlock, bastion=True)).abort()
            gap = await asyncio.wait_for(stream.__anext__(), 10)
            closed = await asyncio.wait_for(stream.__anext__(), 15)
            assert isinstance(gap, StreamGap) and gap.open
            assert isinstance(closed, StreamGap) and not closed.open
            line = await asyncio.wait_for(stream.__anext__(), 15)
            assert isinstance(line, str) and line not in seen and f" {deadlock} kubelet[" in line
        assert ssh.stats()["opened"]["realbastion"] == 2
    log = sshd.log_text()
    assert "Accepted publickey for root" in log
