"""The node shell against machines built here: parsing, filters, and every node command with
its key flags, including state changes that go through lab.effects."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import shutil
import time

import pytest

from lab import shell
from lab.machine import Fault, GiB, LabPod, Machine, MiB
from lab.machine_files import default_files
from lab.pki import CA
from tests.conftest import SCENARIO_NODES


def make_machine(now: float | None = None, *, name: str = "node-0001",
                 ip: str = "127.31.0.2") -> Machine:
    now = now or time.time()
    m = Machine(name=name, index=1, ip=ip, zone="us-east-1b", pool="general",
                instance_type="m5.xlarge", cpus=4, memory=16 * GiB,
                kernel="6.1.0-26-cloud-amd64", os_image="Debian GNU/Linux 12 (bookworm)",
                kubelet_version="v1.31.4", containerd_version="v1.7.22",
                boot_time=now - 3 * 86400, rng=random.Random(7))
    ca = CA("kubernetes", now)
    m.files = default_files(ip, "https://127.0.0.1:6443", base64.b64encode(ca.cert_pem).decode())
    issued = ca.issue(f"system:node:{name}", not_before=now - 100 * 86400,
                      not_after=now + 265 * 86400, orgs=("system:nodes",), client=True)
    m.client_cert_pem, m.client_key_pem = issued.cert_pem, issued.key_pem
    m.client_cert_not_before, m.client_cert_not_after = issued.not_before, issued.not_after
    m.journal_upto = now - 900
    m.pleg_last_relist = m.journal_upto
    for app, image in (("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4"),
                       ("calico-node", "docker.io/calico/node:v3.28.2"),
                       ("nginx", "docker.io/library/nginx:1.27")):
        m.pods.append(LabPod("kube-system", f"{app}-x7k2p", app, image, "DaemonSet", app,
                             50 * MiB, now - 86400, daemon=True))
    return m


class Clock:
    """Virtual time: sleeps advance it at once, so timeouts and stop timeouts run instantly."""

    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


async def sh(m: Machine, line: str, *, user: str = "root", clock: Clock | None = None,
             stdin: str | None = None) -> tuple[int, str, str]:
    out: list[str] = []
    err: list[str] = []
    kw = {"now_fn": clock.now, "sleep": clock.sleep} if clock else {}
    rc = await asyncio.wait_for(shell.run(m, line, out.append, err.append, user=user,
                                          stdin=stdin, **kw), 30)
    return rc, "".join(out), "".join(err)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def m(clock: Clock) -> Machine:
    return make_machine(clock.t)


# -- the interpreter -------------------------------------------------------------------------------
async def test_unknown_command_is_127(m):
    rc, out, err = await sh(m, "foo --bar")
    assert rc == 127 and err == "bash: foo: command not found\n" and out == ""


async def test_quoting_pipes_and_lists(m):
    assert (await sh(m, "echo 'a  b' \"c $HOME\" d\\ e"))[1] == "a  b c /root d e\n"
    assert (await sh(m, "echo one; false || echo two && echo three"))[1] == "one\ntwo\nthree\n"
    assert (await sh(m, "false && echo no; echo $?"))[1] == "1\n"
    assert (await sh(m, "printf 'b\\na\\nb\\n' | sort | uniq -c"))[1] == \
        "      1 a\n      2 b\n"
    assert (await sh(m, "echo a:b:c | cut -d: -f2,3"))[1] == "b:c\n"
    assert (await sh(m, "echo 'x y z' | awk '{print $2, $NF}'"))[1] == "y z\n"
    assert (await sh(m, "printf '1\\n2\\n3\\n' | awk '{s+=$1} END {print s}'"))[1] == "6\n"
    rc, out, _ = await sh(m, "echo hello | grep -q ell")
    assert rc == 0 and out == ""
    assert (await sh(m, "echo hello | grep -c nope"))[0:2] == (1, "0\n")


async def test_redirects_and_substitution(m):
    rc, out, err = await sh(m, "foo 2>&1 | grep -c 'not found'")
    assert out == "1\n" and err == ""
    rc, out, err = await sh(m, "foo > /dev/null 2>&1")
    assert rc == 127 and out == err == ""
    rc, out, err = await sh(m, "echo one > /tmp/x; echo two >> /tmp/x; cat /tmp/x")
    assert out == "one\ntwo\n" and m.files["/tmp/x"] == "one\ntwo\n"
    pid = str(m.kubelet.pid)
    assert (await sh(m, "echo $(pgrep -x kubelet)"))[1] == pid + "\n"
    assert (await sh(m, "sudo -n bash -c 'echo $(whoami)'", user="ubuntu"))[1] == "root\n"
    assert (await sh(m, "sh -c 'exit 3'"))[0] == 3


async def test_syntax_error_and_exit(m):
    rc, _, err = await sh(m, "echo 'unterminated")
    assert rc == 2 and "unexpected EOF" in err
    assert (await sh(m, "exit 4; echo no"))[0:2] == (4, "")


async def test_time_prints_real_user_sys(m, clock):
    rc, out, err = await sh(m, "time sleep 2", clock=clock)
    assert rc == 0 and re.search(r"real\t0m2\.\d{3}s\nuser\t0m\d\.\d{3}s\nsys\t", err)


async def test_filters(m):
    text = "alpha\nbeta\nGamma\ndelta\nepsilon\n"
    assert (await sh(m, "grep -i gamma", stdin=text))[1] == "Gamma\n"
    assert (await sh(m, "grep -v a", stdin=text))[1] == "epsilon\n"
    assert (await sh(m, "grep -E 'beta|delta'", stdin=text))[1] == "beta\ndelta\n"
    assert (await sh(m, "grep -A1 beta", stdin=text))[1] == "beta\nGamma\n"
    assert (await sh(m, "grep -B1 -e delta", stdin=text))[1] == "Gamma\ndelta\n"
    assert (await sh(m, "grep -C1 beta", stdin=text))[1] == "alpha\nbeta\nGamma\n"
    assert (await sh(m, "grep -w eta", stdin=text))[0] == 1
    assert (await sh(m, "head -n 2", stdin=text))[1] == "alpha\nbeta\n"
    assert (await sh(m, "tail -n 1", stdin=text))[1] == "epsilon\n"
    assert (await sh(m, "tail -2", stdin=text))[1] == "delta\nepsilon\n"
    assert (await sh(m, "wc -l", stdin=text))[1] == "5\n"
    assert (await sh(m, "sed -n 's/^b\\(.*\\)/B\\1/p'", stdin=text))[1] == "Beta\n"
    assert (await sh(m, "sort -r | head -1", stdin=text))[1] == "epsilon\n"
    assert (await sh(m, "xargs echo", stdin=text))[1] == "alpha beta Gamma delta epsilon\n"
    assert (await sh(m, "tee /tmp/t | wc -l", stdin=text))[1] == "5\n"
    assert m.files["/tmp/t"] == text
    assert (await sh(m, "[ -S /run/containerd/containerd.sock ] && echo sock"))[1] == "sock\n"
    assert (await sh(m, "test 3 -gt 5"))[0] == 1


async def test_sed_streamed_and_from_a_file_agree(m):
    text = "alpha\nbeta\nGamma\ndelta\nepsilon\n"
    m.files["/tmp/words"] = text
    for script, want in (("/beta/d", "alpha\nGamma\ndelta\nepsilon\n"),
                         ("/beta/a after", "alpha\nbeta\nafter\nGamma\ndelta\nepsilon\n"),
                         ("-n /Gamma/=", "3\n"),
                         ("/Gamma/q", "alpha\nbeta\nGamma\n"),
                         ("s/a/A/g", "AlphA\nbetA\nGAmmA\ndeltA\nepsilon\n")):
        streamed = (await sh(m, f"sed {script!r}" if not script.startswith("-n")
                             else f"sed -n '{script[3:]}'", stdin=text))[1]
        filed = (await sh(m, f"sed {script!r} /tmp/words" if not script.startswith("-n")
                          else f"sed -n '{script[3:]}' /tmp/words"))[1]
        assert streamed == filed == want, script


async def test_sed_in_place_on_files(m):
    rc, _, _ = await sh(m, "sed -i 's/maxPods: 110/maxPods: 250/' /var/lib/kubelet/config.yaml")
    assert rc == 0 and m.max_pods == 250
    rc, _, err = await sh(m, "sed -i 's/a/b/' /etc/fstab", user="ubuntu")
    assert rc == 4 and "Permission denied" in err


async def test_huge_and_binary_output_pass_through(m):
    escape = "\x1b[31mred\x1b[0m \udcff raw"
    m.log("kubelet", time.time(), escape)
    rc, out, _ = await sh(m, "journalctl -u kubelet -n 1 -o cat")
    assert out == escape + "\n"
    rc, out, _ = await sh(m, "journalctl -u kubelet -n 1 -o json")
    assert isinstance(json.loads(out)["MESSAGE"], list)  # non-printable: a byte array
    big = "x" * 1000 + "\n"
    rc, out, _ = await sh(m, "cat", stdin=big * 5000)
    assert out == big * 5000


# -- systemd ---------------------------------------------------------------------------------------
async def test_systemctl_status_layout(m):
    rc, out, _ = await sh(m, "systemctl status kubelet")
    lines = out.splitlines()
    assert rc == 0
    assert lines[0] == "● kubelet.service - kubelet: The Kubernetes Node Agent"
    assert lines[1] == ("     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled; "
                        "preset: enabled)")
    assert lines[2] == "    Drop-In: /etc/systemd/system/kubelet.service.d"
    assert lines[3] == "             └─10-kubeadm.conf"
    assert re.match(r"     Active: active \(running\) since \w{3} \d{4}-\d\d-\d\d "
                    r"\d\d:\d\d:\d\d \w+; .+ ago$", lines[4])
    assert f"   Main PID: {m.kubelet.pid} (kubelet)" in lines
    assert any(line.startswith("      Tasks: ") for line in lines)
    assert any(line.startswith("     Memory: ") for line in lines)
    assert any(line.startswith("     CGroup: /system.slice/kubelet.service") for line in lines)
    assert re.search(rf"^\w{{3}} \d\d \d\d:\d\d:\d\d node-0001 kubelet\[{m.kubelet.pid}\]: ",
                     out, re.M)


async def test_systemctl_queries(m, clock):
    assert (await sh(m, "systemctl is-active kubelet"))[0:2] == (0, "active\n")
    assert (await sh(m, "systemctl is-enabled containerd"))[1] == "enabled\n"
    rc, out, _ = await sh(m, "systemctl show kubelet -p NRestarts,ActiveState,SubState")
    assert set(out.split()) == {"NRestarts=0", "ActiveState=active", "SubState=running"}
    assert (await sh(m, "systemctl show kubelet --property=MainPID --value"))[1] == \
        f"{m.kubelet.pid}\n"
    rc, out, _ = await sh(m, "systemctl list-units --failed")
    assert "0 loaded units listed." in out
    rc, out, err = await sh(m, "systemctl status nosuch")
    assert rc == 4 and "could not be found" in err
    await sh(m, "systemctl stop kubelet", clock=clock)
    rc, out, _ = await sh(m, "systemctl is-active kubelet")
    assert (rc, out) == (3, "inactive\n")
    rc, out, _ = await sh(m, "systemctl status kubelet")
    assert rc == 3 and "Active: inactive (dead)" in out


async def test_systemctl_restart_on_hung_runtime_waits_stop_timeout(m, clock):
    from lab.effects import CONTAINERD_STOP_TIMEOUT

    m.faults["runtime_hung"] = Fault("runtime_hung", clock.t)
    start = clock.t
    rc, _, _ = await sh(m, "systemctl restart containerd", clock=clock)
    assert rc == 0
    assert clock.t - start >= CONTAINERD_STOP_TIMEOUT
    assert m.containerd.running and m.runtime_responsive()
    rc, out, _ = await sh(m, "journalctl -u containerd -n 20 --no-pager", clock=clock)
    assert "State 'stop-sigterm' timed out. Killing." in out
    assert (await sh(m, "crictl ps | wc -l", clock=clock))[1] == "4\n"


async def test_privileged_commands_need_root(m):
    rc, _, err = await sh(m, "systemctl restart kubelet", user="ubuntu")
    assert rc == 1 and "Interactive authentication required" in err
    m.modules.discard("vxlan")
    rc, _, err = await sh(m, "modprobe vxlan", user="ubuntu")
    assert rc == 1 and err == "modprobe: ERROR: could not insert 'vxlan': Operation not permitted\n"
    assert "vxlan" not in m.modules
    rc, _, _ = await sh(m, "sudo -n modprobe vxlan", user="ubuntu")
    assert rc == 0 and "vxlan" in m.modules


async def test_journalctl_selection(m, clock):
    now = clock.t
    m.catch_up(now)
    m.log("kubelet", now - 3600, "old line")
    m.log("kubelet", now - 60, "E1121 recent failure", priority=3)
    m.log("containerd", now - 30, "containerd line")
    rc, out, _ = await sh(m, "journalctl -u kubelet --since '10 minutes ago' --no-pager",
                          clock=clock)
    assert "recent failure" in out and "old line" not in out
    rc, out, _ = await sh(m, "journalctl -u kubelet --since -5m -p err", clock=clock)
    assert out.count("\n") == 1 and "recent failure" in out
    rc, out, _ = await sh(m, "journalctl -u kubelet -u containerd -n 2 -o short-iso",
                          clock=clock)
    assert "containerd line" in out and re.match(r"\d{4}-\d\d-\d\dT", out)
    rc, out, _ = await sh(m, "journalctl -u kubelet -n 1 -o json", clock=clock)
    assert json.loads(out)["_SYSTEMD_UNIT"] in ("kubelet.service", "init.scope")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - 120))
    rc, out, _ = await sh(m, f"journalctl -u kubelet --since '{stamp}' -o cat", clock=clock)
    assert "E1121 recent failure" in out and "old line" not in out
    rc, out, _ = await sh(m, "journalctl -k | grep -c 'Linux version'", clock=clock)
    assert out == "1\n"
    rc, out, _ = await sh(m, "journalctl -u nosuch", clock=clock)
    assert out == "-- No entries --\n"


async def test_journalctl_vacuum_and_disk_usage(m, clock):
    m.journal_bytes = int(4.6 * GiB)
    rc, out, _ = await sh(m, "journalctl --disk-usage", clock=clock)
    assert out == "Archived and active journals take up 4.6G in the file system.\n"
    rc, _, err = await sh(m, "journalctl --vacuum-size=500M", clock=clock)
    assert rc == 0 and re.search(r"Vacuuming done, freed 4\.1G of archived journals from "
                                 r"/var/log/journal/[0-9a-f]{32}\.", err)
    assert m.journal_bytes == 500 * MiB


async def test_journalctl_follow_streams_and_cancels(m):
    got: list[str] = []
    seen = asyncio.Event()

    def write(text: str) -> None:
        got.append(text)
        if "streamed line" in text:
            seen.set()

    task = asyncio.ensure_future(shell.run(m, "journalctl -u kubelet -f", write,
                                           lambda t: None))
    await asyncio.sleep(0.4)
    m.log("kubelet", time.time(), "streamed line")
    await asyncio.wait_for(seen.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


# -- the runtime -----------------------------------------------------------------------------------
async def test_crictl_lists(m):
    rc, out, _ = await sh(m, "crictl ps")
    head, *rows = out.splitlines()
    assert head.split() == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD",
                            "ID", "POD"]
    assert len(rows) == 3 and all("Running" in r for r in rows)
    assert (await sh(m, "crictl pods | grep -c Ready"))[1] == "3\n"
    assert "registry.k8s.io/pause" in (await sh(m, "crictl images"))[1]
    info = json.loads((await sh(m, "crictl info"))[1])
    assert info["status"]["conditions"][0]["type"] == "RuntimeReady"
    assert "RuntimeVersion:  v1.7.22" in (await sh(m, "crictl version"))[1]
    rc, out, _ = await sh(m, "crictl --runtime-endpoint unix:///run/containerd/containerd.sock "
                             "ps -a")
    assert rc == 0 and out.count("\n") == 4


async def test_crictl_hung_runtime_blocks_until_timeout(m, clock):
    m.faults["runtime_hung"] = Fault("runtime_hung", clock.t)
    rc, out, _ = await sh(m, "timeout 10 crictl ps", clock=clock)
    assert rc == 124 and out == ""
    rc, _, err = await sh(m, "time timeout 10 crictl --runtime-endpoint "
                             "unix:///run/containerd/containerd.sock pods", clock=clock)
    assert rc == 124 and re.search(r"real\t0m1\d\.\d{3}s", err)


async def test_crictl_dead_runtime_errors(m, clock):
    await sh(m, "systemctl stop containerd", clock=clock)
    rc, out, err = await sh(m, "crictl ps", clock=clock)
    assert rc == 1 and out == ""
    assert re.search(r'^E\d{4} [\d:.]+ +\d+ remote_runtime\.go:\d+\] "ListContainers with filter '
                     r'from runtime service failed" err="rpc error: code = Unavailable desc = '
                     r'connection error: desc = \\"transport: Error while dialing: dial unix '
                     r'/run/containerd/containerd.sock: connect: no such file or directory\\""',
                     err, re.M)
    assert re.search(r"^FATA\[0000\] listing containers: rpc error", err, re.M)
    rc, out, _ = await sh(m, "ls /run/containerd", clock=clock)
    assert "containerd.sock" not in out


async def test_crictl_rmi_prune_frees_space(m):
    before = m.images_bytes
    rc, out, _ = await sh(m, "crictl rmi --prune")
    assert rc == 0 and out.startswith("Deleted: ") and m.images_bytes < before


async def test_kill_9_containerd_gets_restarted(m, clock):
    m.faults["runtime_hung"] = Fault("runtime_hung", clock.t)
    old = m.containerd.pid
    rc, _, _ = await sh(m, f"kill -9 {old}", clock=clock)
    assert rc == 0
    for _ in range(200):
        await clock.sleep(0.5)
        m.catch_up(clock.t)
        if m.containerd.running and m.runtime_responsive():
            break
    assert m.containerd.running and m.containerd.pid != old
    rc, _, err = await sh(m, f"kill -9 {m.containerd.pid}", user="ubuntu")
    assert rc == 1 and "Operation not permitted" in err


# -- disks, memory, kernel ------------------------------------------------------------------------
async def test_df_and_inodes(m):
    fs = m.filesystem()
    rc, out, _ = await sh(m, "df -h /var/lib/kubelet /var/lib/containerd /var/log")
    lines = out.splitlines()
    assert lines[0] == "Filesystem      Size  Used Avail Use% Mounted on"
    assert len(lines) == 4 and all(line.endswith(" /") for line in lines[1:])
    rc, out, _ = await sh(m, "df -i /")
    assert out.splitlines()[0].split() == ["Filesystem", "Inodes", "IUsed", "IFree", "IUse%",
                                           "Mounted", "on"]
    assert str(fs.iused) in out
    m.faults["inode_flood"] = Fault("inode_flood", time.time(),
                                    {"inodes": fs.inodes - fs.iused - 10})
    rc, out, _ = await sh(m, "df -i / | awk 'NR==2 {print $5}'")
    assert out == "100%\n"
    rc, out, _ = await sh(m, "df -h / | awk 'NR==2 {print $5}'")
    assert int(out.strip().rstrip("%")) < 60  # df -h still looks fine
    rc, out, _ = await sh(m, "df /nonexistent")
    assert rc == 1
    rc, out, _ = await sh(m, "du -sh /var/log/journal")
    assert out.endswith("\t/var/log/journal\n")


async def test_memory_swap_and_load(m, clock):
    rc, out, _ = await sh(m, "free -m")
    lines = out.splitlines()
    assert lines[0] == ("               total        used        free      shared  buff/cache"
                        "   available")
    assert lines[1].split()[1] == str(16 * 1024) and lines[2].split()[1] == "0"
    m.files["/etc/fstab"] += "/swap.img none swap sw 0 0\n"
    await sh(m, "swapon -a")
    assert m.swap_on
    assert "/swap.img" in (await sh(m, "swapon --show"))[1]
    assert "/swap.img" in (await sh(m, "cat /proc/swaps"))[1]
    assert (await sh(m, "free -h | awk '/Swap/ {print $2}'"))[1] == "4.0Gi\n"
    rc, _, _ = await sh(m, "swapoff -a")
    assert rc == 0 and not m.swap_on
    assert (await sh(m, "swapon --show"))[1] == ""
    assert re.match(r" \d\d:\d\d:\d\d up 3 days, .*load average: [\d.]+, [\d.]+, [\d.]+\n",
                    (await sh(m, "uptime"))[1])
    assert re.match(r"[\d.]+ [\d.]+ [\d.]+ \d+/\d+ \d+\n",
                    (await sh(m, "cat /proc/loadavg"))[1])
    assert "MemTotal:       16777216 kB" in (await sh(m, "cat /proc/meminfo"))[1]
    assert (await sh(m, "nproc"))[1] == "4\n"


async def test_modprobe_then_lsmod(m):
    m.modules.discard("vxlan")
    m.modules.discard("ip6_udp_tunnel")
    rc, out, _ = await sh(m, "lsmod | grep vxlan")
    assert rc == 1 and out == ""
    assert (await sh(m, "modprobe vxlan"))[0] == 0
    rc, out, _ = await sh(m, "lsmod | grep vxlan")
    assert rc == 0 and re.search(r"^vxlan +\d+  \d", out, re.M)
    rc, _, err = await sh(m, "modprobe nosuchmod")
    assert rc == 1 and "not found in directory /lib/modules/6.1.0-26-cloud-amd64" in err
    await sh(m, "echo vxlan | tee /etc/modules-load.d/vxlan.conf > /dev/null")
    assert "vxlan" in m.modules_persisted


async def test_dmesg_has_preamble_and_oom(m):
    m.kernel_messages.append((time.time() - 5, "Out of memory: Killed process 1234 (kubelet)"))
    rc, out, _ = await sh(m, "dmesg")
    assert out.startswith("[    0.000000] Linux version 6.1.0-26-cloud-amd64")
    assert "Killed process 1234 (kubelet)" in out
    rc, out, _ = await sh(m, "dmesg -T | tail -1")
    assert re.match(r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] Out of memory", out)
    assert (await sh(m, "dmesg", user="ubuntu"))[0] == 1


# -- files, certificates, processes, network, time -------------------------------------------------
async def test_ls_and_cat(m):
    m.cni_bin.discard("calico")
    rc, out, _ = await sh(m, "ls -la /opt/cni/bin/")
    assert out.startswith("total ") and " calico\n" not in out and " calico-ipam\n" in out
    assert "10-calico.conflist" in (await sh(m, "ls /etc/cni/net.d"))[1]
    assert "k8s.conf" in (await sh(m, "ls /etc/modules-load.d"))[1]
    assert "kubelet-client-current.pem -> " in (await sh(m, "ls -l /var/lib/kubelet/pki"))[1]
    rc, out, _ = await sh(m, "cat /etc/os-release | grep PRETTY")
    assert out == 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    rc, _, err = await sh(m, "cat /etc/nothing")
    assert rc == 1 and err == "cat: /etc/nothing: No such file or directory\n"
    m.faults["socket_missing"] = Fault("socket_missing", time.time())
    assert "containerd.sock\n" not in (await sh(m, "ls /run/containerd"))[1]


async def test_openssl_reads_the_real_certificate(m):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(m.client_cert_pem)
    rc, out, _ = await sh(m, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                             "-noout -dates")
    nb = cert.not_valid_before_utc.strftime("%b %e %H:%M:%S %Y GMT")
    na = cert.not_valid_after_utc.strftime("%b %e %H:%M:%S %Y GMT")
    assert out == f"notBefore={nb}\nnotAfter={na}\n"
    assert (await sh(m, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                        "-noout -enddate"))[1] == f"notAfter={na}\n"
    assert (await sh(m, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                        "-noout -subject"))[1] == \
        "subject=O = system:nodes, CN = system:node:node-0001\n"
    assert (await sh(m, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem "
                        "-noout -issuer"))[1] == "issuer=CN = kubernetes\n"
    assert "Validity" in (await sh(m, "openssl x509 -in /var/lib/kubelet/pki/kubelet-client-"
                                      "current.pem -noout -text"))[1]


async def test_processes(m):
    rc, out, _ = await sh(m, "ps -p $(pgrep kubelet) -o %cpu,rss,cmd")
    head, row = out.splitlines()
    assert head.split() == ["%CPU", "RSS", "CMD"]
    assert row.split()[1] == str(m.kubelet_rss // 1024) and "/usr/bin/kubelet" in row
    assert (await sh(m, "pgrep -x kubelet"))[1] == f"{m.kubelet.pid}\n"
    rc, out, _ = await sh(m, "ps aux | grep -c calico-node")
    assert out == "1\n"
    assert "kubelet" in (await sh(m, "top -bn1 | head -12"))[1]
    m.kubelet.active, m.kubelet.sub = "inactive", "dead"
    assert (await sh(m, "pgrep -x kubelet"))[0] == 1
    rc, _, err = await sh(m, "ps -p $(pgrep kubelet) -o %cpu,rss,cmd")
    assert rc == 1 and "list of process IDs must follow -p" in err


async def test_network_and_curl(m, clock):
    rc, out, _ = await sh(m, "ss -tlnp | grep 10250")
    assert rc == 0 and '"kubelet"' in out
    assert (await sh(m, "curl -sk https://localhost:10250/healthz"))[1] == "ok"
    assert m.ip in (await sh(m, "ip addr"))[1] and "default via" in (await sh(m, "ip route"))[1]
    rc, out, _ = await sh(m, "ping -c 2 localhost", clock=clock)
    assert rc == 0 and "2 packets transmitted, 2 received, 0% packet loss" in out
    rc, out, _ = await sh(m, 'curl -k -s -o /dev/null -w "%{http_code}" '
                             'https://127.0.0.1:6443/healthz', clock=clock)
    assert out == "200"
    m.api_reachable = False
    rc, out, _ = await sh(m, 'curl -k -s -m 5 -o /dev/null -w "%{http_code}" '
                             'https://127.0.0.1:6443/healthz', clock=clock)
    assert rc == 28 and out == "000"
    rc, _, err = await sh(m, "curl -k -S -s --connect-timeout 10 https://127.0.0.1:6443/healthz",
                          clock=clock)
    assert err == "curl: (28) Connection timed out after 10001 milliseconds\n"
    await sh(m, "systemctl stop kubelet", clock=clock)
    rc, _, err = await sh(m, "curl -sSk https://localhost:10250/healthz", clock=clock)
    assert rc == 7 and err == ("curl: (7) Failed to connect to localhost port 10250 after 0 ms: "
                               "Couldn't connect to server\n")
    assert (await sh(m, "ss -tlnp | grep -c 10250", clock=clock))[1] == "0\n"


async def test_goroutine_dump_to_file(m):
    rc, _, _ = await sh(m, "curl -sk https://localhost:10250/debug/pprof/goroutine?debug=1 > "
                           "/tmp/kubelet_goroutines.txt")
    assert rc == 0 and m.files["/tmp/kubelet_goroutines.txt"].startswith("goroutine profile:")


async def test_clock_commands(m, clock):
    m.clock_offset = 300.0
    m.ntp_synced = False
    rc, out, _ = await sh(m, "timedatectl", clock=clock)
    assert "System clock synchronized: no" in out and "NTP service: active" in out
    want = time.strftime("%H:%M", time.localtime(clock.t + 300))
    assert want in out.splitlines()[0]
    assert (await sh(m, "date +%s", clock=clock))[1] == f"{int(clock.t + 300)}\n"
    rc, out, _ = await sh(m, "chronyc tracking", clock=clock)
    assert "300.000000000 seconds fast of NTP time" in out
    assert (await sh(m, "chronyc makestep", clock=clock))[1] == "200 OK\n"
    assert m.clock_offset == 0 and m.ntp_synced
    assert "System clock synchronized: yes" in (await sh(m, "timedatectl", clock=clock))[1]


async def test_misc_identity(m):
    assert (await sh(m, "hostname"))[1] == "node-0001\n"
    assert (await sh(m, "whoami", user="ubuntu"))[1] == "ubuntu\n"
    assert (await sh(m, "id -u"))[1] == "0\n"
    assert (await sh(m, "uname -r"))[1] == "6.1.0-26-cloud-amd64\n"
    assert (await sh(m, "uname -a"))[1].startswith("Linux node-0001 6.1.0-26-cloud-amd64 ")
    assert (await sh(m, "reboot"))[0] == 1
    assert "unknown command" in (await sh(m, "kubeadm alpha certs renew kubelet-client"))[2]
    assert (await sh(m, "journalctl --list-boots"))[1].startswith("IDX BOOT ID")


def _free_m(out: str) -> dict[str, int]:
    head = out.splitlines()[0].split()
    return dict(zip(head, map(int, out.splitlines()[1].split()[1:]), strict=False))


async def test_free_never_shows_more_used_than_total(m):
    # a leaking pod asks for more than the node has: the OOM killer keeps `used` below the
    # total, and the page cache is what went first
    m.pods.append(LabPod("logging", "fluentd-aggregator-5b7d9c6f4-hx8kp", "fluentd-aggregator",
                         "fluent/fluentd:v1.16-1", "ReplicaSet", "fluentd-aggregator-5b7d9c6f4",
                         m.memory, time.time(), leaking=True))
    rc, out, _ = await sh(m, "free -m")
    row = _free_m(out)
    assert rc == 0 and row["total"] == 16 * 1024
    assert row["used"] < row["total"]
    assert row["used"] + row["free"] + row["buff/cache"] <= row["total"]
    assert row["buff/cache"] < 64 and row["available"] < 100
    rc, text, _ = await sh(m, "cat /proc/meminfo")
    meminfo = dict(line.split(":", 1) for line in text.splitlines())
    assert int(meminfo["MemAvailable"].split()[0]) < 100 * 1024
    assert int(meminfo["MemFree"].split()[0]) > 0


@pytest.mark.kubectl
@pytest.mark.openssh
@pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("kubectl") is None,
                    reason="OpenSSH's ssh or kubectl not installed")
def test_free_on_the_kubelet_oom_node_over_ssh(served_lab):
    node = SCENARIO_NODES["kubelet-oom"]
    row = _free_m(served_lab.ssh(node, "free -m").stdout)
    assert row["used"] < row["total"], row
    assert row["used"] + row["free"] + row["buff/cache"] <= row["total"] + 2, row
    assert row["available"] < 100, row
    healthy = _free_m(served_lab.ssh("node-0001", "free -m").stdout)
    assert healthy["buff/cache"] > 1024, healthy
