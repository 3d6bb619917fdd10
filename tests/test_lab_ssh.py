"""The lab's SSH over real sockets: asyncssh through the bastion (tunnel=) and OpenSSH's ssh with
ProxyJump, host-key checking on, streams cancelled by closing the session."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest
from test_lab_shell import make_machine  # noqa: E402  (tests/ is on sys.path under pytest)

from lab.machine import Fault
from lab.sshd import BASTION_ALIAS, SshLab

SSH = shutil.which("ssh")
needs_openssh = pytest.mark.skipif(SSH is None, reason="OpenSSH client not installed")


@pytest.fixture
async def lab(tmp_path: Path):
    block = random.randint(100, 250)
    now = time.time()
    machines = {}
    for i in range(1, 4):
        m = make_machine(now, name=f"node-{i:04d}", ip=f"127.{block}.0.{i + 1}")
        machines[m.name] = m
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    key.write_private_key(str(key_path))
    os.chmod(key_path, 0o600)
    ssh_lab = SshLab()
    await asyncio.wait_for(ssh_lab.start(machines, key.export_public_key("openssh").decode()), 30)
    cfg, kh = ssh_lab.write_client_files(tmp_path, key_path)
    ssh_lab.test_key = key
    ssh_lab.test_cfg = cfg
    ssh_lab.test_kh = kh
    ssh_lab.test_dir = tmp_path
    try:
        yield ssh_lab
    finally:
        await asyncio.wait_for(ssh_lab.stop(), 30)


async def _bastion(lab: SshLab, **kw):
    return await asyncio.wait_for(asyncssh.connect(
        "127.0.0.1", lab.bastion_port, known_hosts=str(lab.test_kh),
        client_keys=[lab.test_key], username="root", **kw), 10)


async def _node(lab: SshLab, bastion, name: str = "node-0001", user: str = "root", **kw):
    host, port = lab.addresses[name]
    return await asyncio.wait_for(asyncssh.connect(
        host, port, tunnel=bastion, known_hosts=kw.pop("known_hosts", str(lab.test_kh)),
        client_keys=[lab.test_key], username=user, **kw), 10)


async def _drained(lab: SshLab, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lab._tasks:
            return True
        await asyncio.sleep(0.05)
    return False


def test_client_files(lab):
    cfg = lab.test_cfg.read_text()
    host, port = lab.addresses["node-0001"]
    block = cfg.split("Host node-0001\n", 1)[1].split("\nHost ", 1)[0]
    for line in (f"HostName {host}", f"Port {port}", f"ProxyJump {BASTION_ALIAS}",
                 "StrictHostKeyChecking yes", "IdentitiesOnly yes", "IdentityFile ",
                 "UserKnownHostsFile "):
        assert line in block
    assert f"Host {BASTION_ALIAS}\n" in cfg and f"Port {lab.bastion_port}" in cfg
    kh = lab.test_kh.read_text()
    for name, key in lab.host_keys.items():
        assert any(name in line.split()[0].split(",") and line.endswith(key)
                   for line in kh.splitlines())
    assert lab.bastion_host_key in kh
    assert len(set(lab.host_keys.values())) == 3  # every node its own host key


async def test_asyncssh_through_bastion(lab):
    async with await _bastion(lab) as b:
        async with await _node(lab, b) as c:
            r = await asyncio.wait_for(c.run("journalctl -u kubelet -n 5 --no-pager",
                                             check=False), 10)
            assert r.exit_status == 0 and r.stdout.count("\n") == 5
            assert " node-0001 kubelet[" in r.stdout
            r = await asyncio.wait_for(c.run("echo out; echo err >&2; exit 3", check=False), 10)
            assert (r.stdout, r.stderr, r.exit_status) == ("out\n", "err\n", 3)
            r = await asyncio.wait_for(c.run("foo", check=False), 10)
            assert r.exit_status == 127 and r.stderr == "bash: foo: command not found\n"
        async with await _node(lab, b, "node-0002", user="ubuntu") as c:
            r = await asyncio.wait_for(c.run("whoami; sudo -n whoami; hostname", check=False), 10)
            assert r.stdout == "ubuntu\nroot\nnode-0002\n"


async def test_bastion_only_forwards_to_nodes(lab):
    async with await _bastion(lab) as b:
        with pytest.raises(asyncssh.ChannelOpenError):
            await asyncio.wait_for(b.open_connection("127.0.0.1", lab.bastion_port), 10)
        with pytest.raises(asyncssh.ChannelOpenError):
            host, _ = lab.addresses["node-0001"]
            await asyncio.wait_for(b.open_connection(host, 10250), 10)
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.Error)):
            await asyncio.wait_for(b.run("id"), 10)


async def test_wrong_client_key_and_host_key_are_refused(lab):
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncio.wait_for(asyncssh.connect(
            "127.0.0.1", lab.bastion_port, known_hosts=str(lab.test_kh), client_keys=[other],
            username="root", password="x"), 10)
    bad = lab.test_dir / "bad_known_hosts"
    host, _ = lab.addresses["node-0001"]
    bad.write_text(lab.test_kh.read_text().replace(
        lab.host_keys["node-0001"], other.export_public_key("openssh").decode().strip()))
    async with await _bastion(lab) as b:
        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            await _node(lab, b, known_hosts=str(bad))


async def test_follow_is_cancelled_when_the_session_closes(lab):
    m = lab.machines["node-0001"]
    async with await _bastion(lab) as b:
        async with await _node(lab, b) as c:
            proc = await c.create_process("journalctl -u kubelet -f")
            first = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert " kubelet[" in first
            m.log("kubelet", time.time(), "a line written while following")
            deadline = time.monotonic() + 10
            seen = ""
            while "a line written while following" not in seen:
                seen = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
            assert lab._tasks
            proc.close()
            assert await _drained(lab)


async def test_hung_crictl_times_out_over_ssh(lab):
    m = lab.machines["node-0003"]
    m.faults["runtime_hung"] = Fault("runtime_hung", time.time())
    async with await _bastion(lab) as b:
        async with await _node(lab, b, "node-0003") as c:
            started = time.monotonic()
            r = await asyncio.wait_for(c.run("timeout 1 crictl ps", check=False), 10)
            assert r.exit_status == 124 and r.stdout == ""
            assert 0.9 <= time.monotonic() - started < 5
            proc = await c.create_process("crictl pods")
            await asyncio.sleep(0.5)
            assert lab._tasks  # still blocked on the hung runtime
            proc.close()
            assert await _drained(lab)


async def test_interactive_shell(lab):
    async with await _bastion(lab) as b:
        async with await _node(lab, b) as c:
            proc = await c.create_process(term_type="xterm", term_size=(120, 40))
            buf = ""
            while "root@node-0001:~# " not in buf:
                buf += await asyncio.wait_for(proc.stdout.read(1024), 10)
            proc.stdin.write("hostname\n")
            buf = ""
            while "root@node-0001:~# " not in buf:
                buf += await asyncio.wait_for(proc.stdout.read(1024), 10)
            assert "node-0001\r\n" in buf
            proc.stdin.write("exit 5\n")
            await asyncio.wait_for(proc.wait_closed(), 10)
            assert proc.exit_status == 5


async def _openssh(lab: SshLab, *args: str, timeout: float = 30, config: Path | None = None):
    proc = await asyncio.create_subprocess_exec(
        SSH, "-F", str(config or lab.test_cfg), *args, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


@needs_openssh
@pytest.mark.openssh
async def test_openssh_proxyjump(lab):
    m = lab.machines["node-0001"]
    for i in range(25):
        m.log("kubelet", time.time() - 30 + i, f"I1121 line {i}")
    rc, out, err = await _openssh(lab, "node-0001", "journalctl", "-u", "kubelet", "-n", "20")
    assert rc == 0, err
    assert out.count("\n") == 20 and " node-0001 kubelet[" in out
    rc, out, err = await _openssh(lab, "node-0002", "crictl ps")
    assert rc == 0 and out.startswith("CONTAINER ") and "calico-node" in out
    rc, out, err = await _openssh(lab, "node-0003", "systemctl is-active kubelet; exit 3")
    assert (rc, out) == (3, "active\n")
    rc, out, err = await _openssh(lab, "node-0001", "nosuchcmd")
    assert rc == 127 and "bash: nosuchcmd: command not found" in err


@needs_openssh
@pytest.mark.openssh
async def test_openssh_refuses_unknown_host_key(lab):
    kh = lab.test_dir / "partial_known_hosts"
    kh.write_text("".join(line + "\n" for line in lab.test_kh.read_text().splitlines()
                          if "node-0001" not in line))
    cfg = lab.test_dir / "partial_config"
    cfg.write_text(lab.test_cfg.read_text().replace(str(lab.test_kh.resolve()), str(kh)))
    rc, out, err = await _openssh(lab, "node-0001", "hostname", config=cfg)
    assert rc == 255 and out == ""
    assert "Host key verification failed" in err or "No ED25519 host key is known" in err


@needs_openssh
@pytest.mark.openssh
async def test_openssh_follow_cancelled_by_disconnect(lab):
    proc = await asyncio.create_subprocess_exec(
        SSH, "-F", str(lab.test_cfg), "node-0001", "journalctl -u kubelet -f",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b" kubelet[" in line
        lab.machines["node-0001"].log("kubelet", time.time(), "followed over openssh")
        deadline = time.monotonic() + 10
        while b"followed over openssh" not in line:
            line = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
        assert lab._tasks
    finally:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
    assert await _drained(lab, 10)
