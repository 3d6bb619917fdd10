"""probes.ssh against the lab over real sockets: through the lab's bastion (ProxyJump from the lab's
ssh_config), host keys checked, hung commands reported, streams followed across dropped
connections. Plus the pure parts (journal resume, config lookups) on their own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import asyncssh
import pytest

from conftest import SCENARIO_NODES
from probes.observation import Status
from probes.ssh import (
    AuthFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    SshClient,
    SshError,
    StreamGap,
    Unreachable,
)
from probes.ssh_journal import RESUME_LINES, JournalResume
from probes.ssh_target import SshConfig, parse_destination

DEADLOCK = SCENARIO_NODES["containerd-deadlock"]
HEALTHY = [f"node-{i:04d}" for i in range(1, 31) if f"node-{i:04d}" not in
           SCENARIO_NODES.values()]
ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d) ")


def client_for(lab, **kw) -> SshClient:
    kw.setdefault("keepalive_interval", 2)
    kw.setdefault("keepalive_count_max", 2)
    return SshClient(ssh_config=lab.ssh_config, **kw)


async def next_item(stream, timeout: float):
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def lines_until(stream, count: int, timeout: float) -> list:
    """The next `count` items (lines or gaps), all within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < count:
        out.append(await next_item(stream, max(0.01, deadline - time.monotonic())))
    return out


def fingerprint_of(key_line: str) -> str:
    return asyncssh.import_public_key(key_line).get_fingerprint("sha256")


def known_hosts_entry(lab, name: str) -> str:
    return next(line for line in (lab.dir / "known_hosts").read_text().splitlines()
                if name in line.split()[0].split(","))


def config_with_known_hosts(lab, tmp_path: Path, text: str) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(text)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(lab.ssh_config.read_text().replace(str((lab.dir / "known_hosts").resolve()),
                                                      str(kh)))
    return cfg


# -- commands through the bastion ----------------------------------------------------------------
async def test_run_through_the_lab_bastion(served_lab):
    async with client_for(served_lab) as ssh:
        hop = ssh.target("node-0001")
        assert hop.via and hop.via[-1].alias == "nodewb-bastion"
        assert hop.host == served_lab.info["ips"]["node-0001"] and hop.host_key_alias == \
            "node-0001"
        r = await ssh.run("node-0001", "systemctl is-active kubelet", timeout=10)
        assert (r.exit_status, r.stdout, r.timed_out, r.ok) == (0, "active\n", False, True)
        r = await ssh.run(DEADLOCK, "journalctl -u kubelet -n 20", timeout=10)
        assert r.exit_status == 0 and len(r.stdout.splitlines()) == 20
        assert all(f" {DEADLOCK} kubelet[" in line for line in r.stdout.splitlines())
        assert "PLEG is not healthy" in r.stdout
        r = await ssh.run("node-0002", "echo out; echo err >&2; exit 3", timeout=10)
        assert (r.exit_status, r.stdout, r.stderr) == (3, "out\n", "err\n")
        r = await ssh.run(SCENARIO_NODES["runtime-dead"], "systemctl is-active containerd", 10)
        assert r.exit_status != 0 and r.stdout.strip() in ("failed", "inactive")
        stats = ssh.stats()
        # one connection per node, reused; one bastion connection for both nodes behind it
        assert stats["opened"] == {"nodewb-bastion": 1, "node-0001": 1, "node-0002": 1,
                                   DEADLOCK: 1, SCENARIO_NODES["runtime-dead"]: 1}


async def test_hung_crictl_is_reported_and_does_not_hold_up_other_nodes(served_lab):
    async with client_for(served_lab) as ssh:
        await ssh.run(HEALTHY[0], "true", 10)  # the bastion is up before the clock starts
        finished: dict[str, float] = {}
        t0 = time.monotonic()

        async def timed(node: str, command: str, timeout: float):
            r = await ssh.run(node, command, timeout)
            finished[node] = time.monotonic() - t0
            return r

        hung, *others = await asyncio.gather(
            timed(DEADLOCK, "crictl ps", 3.0),
            *(timed(n, "crictl ps; systemctl is-active kubelet", 10.0) for n in HEALTHY[:5]))
        print(f"\nhung crictl reported after {finished[DEADLOCK]:.2f} s; other nodes done after "
              f"{max(finished[n] for n in HEALTHY[:5]):.2f} s")
        assert hung.timed_out and hung.exit_status is None and not hung.ok
        assert 3.0 <= hung.duration < 4.0 and finished[DEADLOCK] < 4.5
        assert "did not finish in 3 s" in hung.describe() and "hung" in hung.describe()
        assert "CONTAINER" not in hung.stdout  # what it printed so far: nothing on stdout
        for r in others:
            assert r.ok and r.stdout.startswith("CONTAINER ") and r.stdout.endswith("active\n")
        assert max(finished[n] for n in HEALTHY[:5]) < 2.0  # not behind the hung one
        # the channel was closed, the node's connection is still good
        r = await ssh.run(DEADLOCK, "hostname", 10)
        assert r.stdout == f"{DEADLOCK}\n" and ssh.stats()["opened"][DEADLOCK] == 1
        with pytest.raises(CommandTimeout) as info:
            await ssh.run(DEADLOCK, "crictl pods", 0.5, raise_on_timeout=True)
        assert info.value.result.timed_out and DEADLOCK in str(info.value)


async def test_twenty_nodes_in_parallel_through_one_bastion(served_lab):
    nodes = [f"node-{i:04d}" for i in range(1, 21)]
    for bound in (4, 16):
        async with client_for(served_lab, concurrency=bound) as ssh:
            t0 = time.monotonic()
            cold = await ssh.run_many(nodes, "sleep 0.5; hostname", 10)
            t_cold = time.monotonic() - t0
            t0 = time.monotonic()
            warm = await ssh.run_many(nodes, "sleep 0.5; hostname", 10)
            t_warm = time.monotonic() - t0
            t0 = time.monotonic()
            quick = await ssh.run_many(nodes, "systemctl is-active kubelet", 10)
            t_quick = time.monotonic() - t0
            print(f"\n20 nodes through one bastion, concurrency {bound}: `sleep 0.5; hostname` "
                  f"{t_cold:.2f} s connecting, {t_warm:.2f} s reusing connections; "
                  f"`systemctl is-active kubelet` {t_quick * 1000:.0f} ms")
            for name in nodes:
                assert warm[name].stdout == cold[name].stdout == f"{name}\n"
                assert not isinstance(quick[name], SshError)
            waves = -(-len(nodes) // bound)
            assert t_warm >= 0.5 * waves - 0.05  # never more than `bound` at once
            assert t_warm < 0.5 * waves + 2.0
            assert ssh.stats()["opened"]["nodewb-bastion"] == 1
            assert ssh.stats()["connections"] == 21


# -- streams ---------------------------------------------------------------------------------------
async def test_stream_yields_new_lines_and_is_cancelled_cleanly(served_lab):
    async with client_for(served_lab) as ssh:
        stream = ssh.stream(DEADLOCK, "journalctl -u kubelet -f")
        async with stream:
            backlog = await lines_until(stream, 10, 15)
            assert all(isinstance(x, str) and f" {DEADLOCK} kubelet[" in x for x in backlog)
            t0 = time.monotonic()
            fresh = await next_item(stream, 15)  # the lab writes a line every few seconds
            assert isinstance(fresh, str) and fresh not in backlog
            print(f"\nfirst new journal line after {time.monotonic() - t0:.2f} s")
            task = stream._task
        assert task is not None and task.done()
        with pytest.raises(StopAsyncIteration):
            await next_item(stream, 1)
        assert ssh.stats()["streams"] == 0
        r = await ssh.run(DEADLOCK, "hostname", 10)  # the connection outlives the stream
        assert r.ok and ssh.stats()["opened"][DEADLOCK] == 1


@pytest.mark.parametrize("fmt,drop", [("", "node"), ("-o short-iso", "bastion")])
async def test_stream_resumes_after_a_dropped_connection(served_lab, fmt, drop):
    node = SCENARIO_NODES["pleg-slow-io"]
    async with client_for(served_lab) as ssh:
        async with ssh.stream(node, f"journalctl -u kubelet -f {fmt}".strip()) as stream:
            seen = await lines_until(stream, 10, 15)
            conn = await ssh.connection(node, bastion=(drop == "bastion"))
            conn.abort()  # the transport goes away under the running command
            gap = await next_item(stream, 10)
            assert isinstance(gap, StreamGap) and gap.open and gap.node == node
            closed = await next_item(stream, 15)
            assert isinstance(closed, StreamGap) and not closed.open
            assert closed.started == gap.started and closed.ended >= closed.started
            assert closed.resumed.startswith("--since ")
            resumed = await next_item(stream, 15)
            assert isinstance(resumed, str) and f" {node} kubelet[" in resumed
            assert resumed not in seen  # the lines of the last second are not repeated
            print(f"\n{drop} connection dropped: {closed.describe()}")
        assert ssh.stats()["opened"][node] == 2
        assert ssh.stats()["opened"]["nodewb-bastion"] == (2 if drop == "bastion" else 1)


@pytest.mark.slow
async def test_stream_survives_a_frozen_lab(fresh_lab):
    """SIGSTOP the whole lab (bastion and nodes freeze, TCP stays up): keepalives notice, the
    stream reconnects with backoff once it is thawed and resumes where it was."""
    for attempt in range(3):  # labs started at once by other runs can race for an address block
        try:
            lab = fresh_lab("--nodes", "3", "--scenario", "containerd-deadlock@node-0002")
            break
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
    ssh = client_for(lab, keepalive_interval=0.5, keepalive_count_max=2, connect_timeout=2,
                     backoff=(0.2, 1.0))
    try:
        async with ssh.stream("node-0002", "journalctl -u kubelet -f -o short-iso") as stream:
            seen = await lines_until(stream, 10, 15)
            os.kill(lab.process.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                gap = await next_item(stream, 10)
                noticed = time.monotonic() - t0
                assert isinstance(gap, StreamGap) and gap.open
                await asyncio.sleep(3)  # the lab's kubelet "writes" while frozen
            finally:
                os.kill(lab.process.pid, signal.SIGCONT)
            t1 = time.monotonic()
            closed = await next_item(stream, 20)
            assert isinstance(closed, StreamGap) and not closed.open and closed.attempts >= 2
            print(f"\nfrozen lab: drop noticed after {noticed:.2f} s, back "
                  f"{time.monotonic() - t1:.2f} s after SIGCONT; {closed.describe()}")
            after = [x for x in await lines_until(stream, 1, 15)]
            last_before = ISO.match(seen[-1]).group(1)
            assert all(isinstance(x, str) and x not in seen for x in after)
            assert ISO.match(after[0]).group(1) >= last_before
    finally:
        await ssh.close()


async def test_stream_back_pressure_pauses_the_channel(served_lab):
    async with client_for(served_lab) as ssh:
        total = (await ssh.run(DEADLOCK, "journalctl --no-pager | wc -l", 20)).stdout.strip()
        async with ssh.stream(DEADLOCK, "journalctl --no-pager", max_queue=5) as stream:
            first = await next_item(stream, 10)
            await asyncio.sleep(0.3)  # the consumer lags (the pause itself is measured against
            got = [first] + [x async for x in stream]  # sshd, with output big enough)
        assert stream.exit_status == 0
        assert len(got) == int(total) > 100  # nothing lost across pauses
        assert all(isinstance(x, str) for x in got)
        print(f"\n{len(got)} lines through a 5-line queue; paused {stream.pauses} times")


# -- host keys -------------------------------------------------------------------------------------
async def test_unknown_host_key_is_refused(served_lab, tmp_path):
    text = "".join(line + "\n" for line in (served_lab.dir / "known_hosts").read_text()
                   .splitlines() if "node-0001" not in line.split()[0].split(","))
    cfg = config_with_known_hosts(served_lab, tmp_path, text)
    presented = known_hosts_entry(served_lab, "node-0001").split(None, 1)[1]
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(HostKeyUnknown) as info:
            await ssh.run("node-0001", "hostname", 10)
        # a node that is known still works through the same bastion
        assert (await ssh.run("node-0002", "hostname", 10)).stdout == "node-0002\n"
    exc = info.value
    msg = str(exc)
    print("\n" + msg)
    ip = served_lab.info["ips"]["node-0001"]
    assert exc.node == "node-0001" and exc.fingerprint == fingerprint_of(presented)
    assert exc.key_type == "ED25519" and exc.known_hosts == (str(tmp_path / "known_hosts"),)
    for part in ("node-0001", "ED25519", fingerprint_of(presented), str(tmp_path / "known_hosts"),
                 f"ssh-keyscan -p 22 -t ed25519 {ip}", f">> {tmp_path / 'known_hosts'}",
                 "out of band", f"ssh -F {cfg} node-0001"):
        assert part in msg


async def test_changed_host_key_is_refused(served_lab, tmp_path):
    real = known_hosts_entry(served_lab, "node-0001")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    text = (served_lab.dir / "known_hosts").read_text().replace(real, real.split()[0] + " " +
                                                                other)
    cfg = config_with_known_hosts(served_lab, tmp_path, text)
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(HostKeyChanged) as info:
            await ssh.run("node-0001", "hostname", 10)
    msg = str(info.value)
    print("\n" + msg)
    kh = tmp_path / "known_hosts"
    assert info.value.fingerprint == fingerprint_of(real.split(None, 1)[1])
    assert info.value.known_fingerprints == (fingerprint_of(other),)
    for part in ("HOST KEY CHANGED", "node-0001", fingerprint_of(real.split(None, 1)[1]),
                 fingerprint_of(other), f"ssh-keygen -R node-0001 -f {kh}", str(kh)):
        assert part in msg


async def test_unknown_bastion_key_is_refused(served_lab, tmp_path):
    text = "".join(line + "\n" for line in (served_lab.dir / "known_hosts").read_text()
                   .splitlines() if "nodewb-bastion" not in line)
    cfg = config_with_known_hosts(served_lab, tmp_path, text)
    async with SshClient(ssh_config=cfg) as ssh:
        with pytest.raises(HostKeyUnknown) as info:
            await ssh.run("node-0001", "hostname", 10)
    assert info.value.node == "node-0001" and info.value.host == "nodewb-bastion"
    assert "bastion" in str(info.value) and str(served_lab.info["bastion"][1]) in str(info.value)


# -- reaching nodes ------------------------------------------------------------------------------
async def test_unreachable_bastion_port(served_lab, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once closed
    cfg = tmp_path / "ssh_config"
    cfg.write_text(served_lab.ssh_config.read_text().replace(
        f"Port {served_lab.info['bastion'][1]}\n", f"Port {dead}\n"))
    async with SshClient(ssh_config=cfg) as ssh:
        t0 = time.monotonic()
        with pytest.raises(Unreachable) as info:
            await ssh.run("node-0001", "hostname", 10)
        assert time.monotonic() - t0 < 3
        msg = str(info.value)
        assert f"127.0.0.1:{dead}" in msg and "node-0001" in msg and "bastion" in msg
        assert "refused" in msg and info.value.node == "node-0001"
        with pytest.raises(Unreachable):  # a stream that cannot start says so at once
            async with ssh.stream("node-0001", "journalctl -u kubelet -f") as stream:
                await next_item(stream, 10)
    print("\n" + msg)


async def test_addresses_templates_and_explicit_bastion(served_lab, tmp_path):
    """No Host block for nodes: InternalIP by default, a template when given, the bastion from
    the `bastion` option; the config's `Host *` still gives user, key and known_hosts."""
    bastion_port = served_lab.info["bastion"][1]
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n    User root\n    IdentityFile {served_lab.dir / 'id_ed25519'}\n"
                   f"    IdentitiesOnly yes\n"
                   f"    UserKnownHostsFile {served_lab.dir / 'known_hosts'}\n")
    ips = served_lab.info["ips"]
    node = SimpleNamespace(name="node-0005", internal_ip=ips["node-0005"])
    async with SshClient(ssh_config=cfg, bastion=f"root@127.0.0.1:{bastion_port}") as ssh:
        assert ssh.target(node).host == ips["node-0005"]
        assert (await ssh.run(node, "hostname", 10)).stdout == "node-0005\n"
        ssh.addresses["node-0006"] = ips["node-0006"]
        assert (await ssh.run("node-0006", "hostname", 10)).stdout == "node-0006\n"
        assert ssh.stats()["opened"] == {"127.0.0.1": 1, ips["node-0005"]: 1,
                                         ips["node-0006"]: 1}
    async with SshClient(ssh_config=cfg, bastion=f"127.0.0.1:{bastion_port}",
                         target="{name}") as ssh:
        hop = ssh.target("node-0007")
        assert hop.host == "node-0007" and hop.via[-1].address == f"127.0.0.1:{bastion_port}"
        # the lab's bastion forwards by node name too, and known_hosts lists the name
        assert (await ssh.run("node-0007", "hostname", 10)).stdout == "node-0007\n"
    async with SshClient(ssh_config=cfg, bastion=f"127.0.0.1:{bastion_port}",
                         target="{ip}") as ssh:
        with pytest.raises(SshError, match="no InternalIP known for node-0008"):
            ssh.target("node-0008")


async def test_wrong_key_is_auth_failed(served_lab, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "other_key"
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    async with SshClient(ssh_config=served_lab.ssh_config, identity_files=[path]) as ssh:
        with pytest.raises(AuthFailed) as info:
            await ssh.run("node-0001", "hostname", 10)
    msg = str(info.value)
    assert "refused every key" in msg and str(path) in msg and "'root'" in msg
    assert f"127.0.0.1:{served_lab.info['bastion'][1]}" in msg


async def test_sudo_and_output_cap(served_lab):
    async with client_for(served_lab, user="ubuntu") as ssh:
        r = await ssh.run("node-0001", "whoami", 10)
        assert r.stdout == "ubuntu\n"
        r = await ssh.run("node-0001", "whoami", 10, sudo=True)
        assert r.stdout == "root\n" and r.command == "sudo -n whoami"
        r = await ssh.run("node-0001", "whoami | tr a-z A-Z", 10, sudo=True)
        assert r.stdout == "ROOT\n" and r.command.startswith("sudo -n sh -c ")
    async with client_for(served_lab, sudo=True) as ssh:
        r = await ssh.run("node-0001", "journalctl -u kubelet -n 200", 10, max_output=1000)
        assert r.ok and r.truncated and len(r.stdout.encode()) <= 1000
        assert r.command == "sudo -n journalctl -u kubelet -n 200"


async def test_observe_makes_probe_observations(served_lab, tmp_path):
    async with client_for(served_lab) as ssh:
        ok, hung, bad = await asyncio.gather(
            ssh.observe("node-0001", "node.kubelet_active", "systemctl is-active kubelet"),
            ssh.observe(DEADLOCK, "node.crictl_ps", "crictl ps", timeout=1),
            ssh.observe(SCENARIO_NODES["runtime-dead"], "node.containerd_active",
                        "systemctl is-active containerd"))
    assert (ok.status, ok.via, ok.raw, ok.node) == (Status.OK, "ssh", "active\n", "node-0001")
    assert hung.status is Status.HUNG and hung.data["timed_out"] and "hung" in hung.summary
    assert 1.0 <= hung.duration < 2.5
    assert bad.status is Status.BAD and bad.data["exit_status"] != 0
    cfg = tmp_path / "ssh_config"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg.write_text(served_lab.ssh_config.read_text().replace(
        f"Port {served_lab.info['bastion'][1]}\n", f"Port {dead}\n"))
    async with SshClient(ssh_config=cfg) as ssh:
        err = await ssh.observe("node-0001", "node.kubelet_active", "systemctl is-active kubelet")
    assert err.status is Status.ERROR and f"127.0.0.1:{dead}" in err.reason
    assert err.as_dict()["status"] == "error"


async def test_closed_client_refuses_work(served_lab):
    ssh = client_for(served_lab)
    await ssh.run("node-0001", "true", 10)
    await ssh.close()
    with pytest.raises(SshError, match="closed"):
        await ssh.run("node-0001", "true", 10)


# -- pure parts ------------------------------------------------------------------------------------
def test_journal_resume_short_format():
    r = JournalResume.for_command("journalctl -u kubelet -f -n 50")
    assert r is not None and r.format == "short"
    lines = ["Nov 21 07:56:51 node-0004 kubelet[2159]: a",
             "Nov 21 07:56:52 node-0004 kubelet[2159]: b",
             "Nov 21 07:56:52 node-0004 kubelet[2159]: c"]
    assert all(r.accept(x) for x in lines)
    command, how = r.command()
    year = time.localtime().tm_year
    assert command == (f"journalctl -u kubelet -f --since '{year}-11-21 07:56:52' "
                       f"--lines={RESUME_LINES}")
    assert how == f"--since {year}-11-21 07:56:52"
    # the restarted follow repeats the last second: b and c are dropped, d and later kept
    assert not r.accept(lines[1]) and not r.accept(lines[2])
    assert r.accept("Nov 21 07:56:52 node-0004 kubelet[2159]: d")
    assert r.accept("Nov 21 07:56:53 node-0004 kubelet[2159]: b")


def test_journal_resume_iso_json_and_cursor():
    r = JournalResume.for_command("sudo -n journalctl -u kubelet --follow -o short-iso")
    assert r is not None
    r.accept("2026-11-21T07:56:52+01:00 node-0004 kubelet[2159]: a")
    assert r.command()[0] == (f"sudo -n journalctl -u kubelet --follow -o short-iso "
                              f"--since @1795244212 --lines={RESUME_LINES}")
    r = JournalResume.for_command("journalctl -fu kubelet -o json")
    assert r is not None and r.format == "json"
    r.accept(json.dumps({"__REALTIME_TIMESTAMP": "1795247817360678", "MESSAGE": "x"}))
    assert "--since @1795247817" in r.command()[0]
    r.accept(json.dumps({"__REALTIME_TIMESTAMP": "1795247818000000", "__CURSOR": "s=abc;i=5",
                         "MESSAGE": "y"}))
    assert r.command() == ("journalctl -fu kubelet -o json '--after-cursor=s=abc;i=5'",
                           "--after-cursor")
    assert JournalResume.for_command("journalctl -u kubelet -n 20") is None  # not a follow
    assert JournalResume.for_command("journalctl -u kubelet -f | grep PLEG") is None
    r = JournalResume.for_command("journalctl -u kubelet -f -o cat")
    assert r is not None and r.accept("a line") and r.command()[1] == "restart"


def test_ssh_config_lookups(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("Host jump\n  HostName 10.0.0.1\n  Port 2222\n  User ops\n"
                   "Host node-*\n  ProxyJump jump\n  User core\n"
                   "Host *\n  UserKnownHostsFile ~/kh1 /etc/kh2\n  ConnectTimeout 7\n")
    c = SshConfig(cfg)
    assert c.has_host("node-0001") and not c.has_host("10.2.3.4")
    hop = c.resolve("node-0001")
    assert (hop.user, hop.connect_timeout, hop.via[-1].address, hop.via[-1].user) == \
        ("core", 7.0, "10.0.0.1:2222", "ops")
    assert hop.known_hosts[0] == str(Path("~/kh1").expanduser())
    hop = c.resolve("10.2.3.4", jump_override="admin@jump:22,bastion2")
    assert [h.alias for h in hop.via] == ["jump", "bastion2"]
    assert hop.via[0].user == "admin" and hop.via[0].port == 22
    assert hop.via[1].via[-1].alias == "jump"
    assert parse_destination("ssh://u@[::1]:2200") == ("u", "::1", 2200)
    assert parse_destination("host") == (None, "host", None)
    with pytest.raises(SshError):
        parse_destination("u@host:notaport")


def test_the_cipher_preference_yields_to_the_ssh_config(tmp_path):
    from probes.ssh import CIPHERS
    from probes.ssh_target import SshConfig

    path = tmp_path / "config"
    path.write_text("Host pinned\n  HostName 127.0.0.1\n  Ciphers aes256-ctr\n"
                    "Host free\n  HostName 127.0.0.1\n")
    config = SshConfig(path)
    assert config.resolve("pinned").ciphers is True
    assert config.resolve("free").ciphers is False
    assert CIPHERS[0].startswith("aes128-gcm") and "chacha20-poly1305@openssh.com" in CIPHERS
