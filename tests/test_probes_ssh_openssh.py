"""probes.ssh against OpenSSH's real sshd on loopback: commands run on it directly (exit status,
stderr, signals on timeout, host keys, auth, keys held by ssh-agent), and sshd as the bastion in
front of lab nodes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
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


AGENT_LIFETIME = 120  # s: the agent stops by itself even if the test run is killed


def agent_env(sock: Path) -> dict[str, str]:
    return {**os.environ, "SSH_AUTH_SOCK": str(sock)}


@pytest.fixture
def ssh_agent():
    """OpenSSH's ssh-agent on a socket of its own, killed at the end (and by `timeout` anyway)."""
    if not (shutil.which("ssh-agent") and shutil.which("ssh-add")):
        pytest.skip("ssh-agent / ssh-add are not installed (openssh-client)")
    directory = Path(tempfile.mkdtemp(prefix="nodewb-agent-"))  # short: a socket path is <108
    sock = directory / "agent.sock"
    proc = subprocess.Popen(["timeout", str(AGENT_LIFETIME), "ssh-agent", "-D", "-a", str(sock)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None, f"ssh-agent exited with {proc.returncode}"
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.02)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def agent_config(tmp_path: Path, sshd, served_lab, node: str) -> Path:
    """realsshd directly, and a lab node through the lab's bastion: no IdentityFile anywhere,
    so only the agent's keys (or the defaults in ~/.ssh) can be offered."""
    kh = tmp_path / "known_hosts"
    kh.write_text((served_lab.dir / "known_hosts").read_text() + sshd.known_hosts_line() + "\n")
    lab_cfg = served_lab.ssh_config.read_text()
    bastion_port = lab_cfg.split("Host nodewb-bastion", 1)[1].split("Port ", 1)[1].split()[0]
    ip = served_lab.info["ips"][node]
    port = served_lab.info["node_ssh_port"]
    common = f"    User root\n    UserKnownHostsFile {kh}\n    GlobalKnownHostsFile /dev/null\n"
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host realsshd\n    HostName 127.0.0.1\n    Port {sshd.port}\n" + common +
                   f"Host agentbastion\n    HostName 127.0.0.1\n    Port {bastion_port}\n"
                   f"    HostKeyAlias nodewb-bastion\n" + common +
                   f"Host {node}\n    HostName {ip}\n    Port {port}\n    HostKeyAlias {node}\n"
                   f"    ProxyJump agentbastion\n" + common)
    assert "IdentityFile" not in cfg.read_text()
    return cfg


async def test_keys_from_the_ssh_agent(sshd, client_key, served_lab, ssh_agent, tmp_path,
                                       monkeypatch):
    """With keys only in ssh-agent (no IdentityFile, an empty HOME), commands run on the real
    sshd and on a lab node behind the bastion; without the agent, or with it empty, the error
    says what was offered."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.ssh/id_* to fall back on
    node = "node-0002"
    cfg = agent_config(tmp_path, sshd, served_lab, node)
    for key in (client_key[0], served_lab.dir / "id_ed25519"):
        subprocess.run(["ssh-add", "-q", str(key)], env=agent_env(ssh_agent), check=True,
                       capture_output=True, timeout=20)
    listed = subprocess.run(["ssh-add", "-l"], env=agent_env(ssh_agent), capture_output=True,
                            text=True, timeout=20).stdout
    assert len(listed.splitlines()) == 2, listed

    monkeypatch.setenv("SSH_AUTH_SOCK", str(ssh_agent))
    async with SshClient(ssh_config=cfg) as ssh:
        r = await ssh.run("realsshd", "id -un", 10)
        assert (r.exit_status, r.stdout) == (0, "root\n")
        r = await ssh.run(node, "hostname", 10)
        assert (r.exit_status, r.stdout) == (0, f"{node}\n")
    assert "Accepted publickey for root" in sshd.log_text()

    monkeypatch.delenv("SSH_AUTH_SOCK")
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(AuthFailed) as info:
            await ssh.run("realsshd", "true", 10)
        assert f"127.0.0.1:{sshd.port}" in str(info.value)
        assert "no IdentityFile, no SSH_AUTH_SOCK" in str(info.value)
        with pytest.raises(AuthFailed) as info:
            await ssh.run(node, "true", 10)
        assert "the bastion agentbastion" in str(info.value)

    subprocess.run(["ssh-add", "-D"], env=agent_env(ssh_agent), check=True,
                   capture_output=True, timeout=20)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(ssh_agent))
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(AuthFailed) as info:
            await ssh.run("realsshd", "true", 10)
        assert f"the ssh-agent at {ssh_agent}" in str(info.value)
        assert "ssh-add" in str(info.value)
