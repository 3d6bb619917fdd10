"""Fuzzing the SSH command outputs the node checks parse (probes.node_checks: df, df -i, lsmod,
systemctl, free/swapon, openssl, crictl, ps, curl, timedatectl...): whatever a node prints, every
check returns a well-typed Observation and never raises. Output the check cannot read is ERROR
with the check's own words, never a Python exception's name (that is the last-resort catch in
node_checks._execute, which would mean a parser bug)."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes import node_checks as nc
from probes.command_result import CommandResult
from probes.observation import Observation, Status

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SECTIONS = ["bin", "conf", "config", "content", "free", "pods", "status", "sys", "x", ""]
SNIPPETS = [
    # df -h / df -i / df -P
    "Filesystem      Size  Used Avail Use% Mounted on",
    "/dev/nvme0n1p1   97G   90G  7.0G  93% /var/lib/kubelet",
    "Filesystem      Inodes  IUsed   IFree IUse% Mounted on",
    "/dev/nvme0n1p1 6553600 6553600 0 100% /",
    "overlay - - - - /var/lib/containerd", "tmpfs 0 0 0 -% /run",
    "/dev/sda1 1 2 3 999999999999999999999999% /var/log", "/dev/x 1 1 1 1e9% /",
    # lsmod
    "Module                  Size  Used by", "vxlan 77824 0", "overlay 151552 0",
    "br_netfilter 32768 0", "bridge 307200 1 br_netfilter",
    # systemctl show
    "ActiveState=active", "ActiveState=failed", "SubState=running", "NRestarts=4",
    "NRestarts=99999999999999999999999", "MainPID=812", "MainPID=-1", "Result=exit-code",
    "ExecMainStartTimestamp=Mon 2024-03-04 10:00:00 UTC", "ActiveState", "=x",
    # free / swapon
    "               total        used        free      shared  buff/cache   available",
    "Mem:     16000000000 1 2 3 4 5", "Swap:    2147479552 0 2147479552", "Swap: x y z",
    "NAME      TYPE SIZE USED PRIO", "/swapfile file   2G   0B   -2",
    # openssl
    "notBefore=Mar  4 10:00:00 2024 GMT", "notAfter=Mar  4 10:00:00 2025 GMT",
    "notAfter=Feb 30 99:99:99 0000 GMT", "notAfter=0001-01-01T00:00:00Z",
    "notAfter=9999-12-31T23:59:59", "subject=CN = system:node:node-0001",
    "Certificate will expire", "1709546400", "99999999999999999999999", "-1e400",
    # crictl
    "CONTAINER           IMAGE               CREATED             STATE",
    "3f2a1b4c5d6e 12ab 5 minutes ago Running kube-proxy 0 9f8e7d6c",
    '{"status": {"conditions": [{"type": "RuntimeReady", "status": true}]}}',
    '{"status": {"conditions": "x"}}', '{"config": {"sandboxImage": 5}}', "[", "{", "null",
    "0123456789abcdef", "deadbeef01",
    # curl / healthz / apiserver
    "ok", "200", "HTTP/1.1 200 OK", "000", "curl: (7) Failed to connect", "ok\n200",
    "server: https://10.0.0.1:6443", "    server: https://[::1]:6443", "server:",
    # ps
    "  PID   RSS %CPU", "812 512000 12.5", "812 x y", "812 1e999 nan", "1 -5 -5",
    # timedatectl / chrony
    "NTPSynchronized=yes", "NTPSynchronized=no", "System clock synchronized: yes",
    "Last offset     : +0.000012345 seconds", "Last offset : nan seconds",
    "System time     : 0.000000001 seconds fast of NTP time",
    # kubelet config / CNI
    "maxPods: 110", "maxPods: 99999999999999999999", "maxPods: '250'", "failSwapOn: false",
    "memorySwap:", "10-calico.conflist", "calico", "flannel", "bridge", "portmap",
    '{"cniVersion": "0.3.1", "plugins": [{"type": "calico"}]}', '{"plugins": 5}',
    '{"type": ["x"]}',
    # the kernel log
    "[12345.678] Out of memory: Killed process 1234 (java)", "invoked oom-killer",
    "Memory cgroup out of memory: Killed process 77",
]
HOSTILE = ["\x1b[2J", "\x1b]0;x\x07", "\x00", "\r", "\t", "\u202e", "\xff", "\ufffd", "%", "{}",
           "[bold]", "'", '"', "\\", "=", ":", " ", "-", "9" * 400]

pieces = st.one_of(st.sampled_from(SNIPPETS), st.sampled_from(HOSTILE), st.text(max_size=20),
                   st.sampled_from([nc.SECTION + s for s in SECTIONS]))
line = st.lists(pieces, min_size=0, max_size=5).map(" ".join)
output = st.lists(line, max_size=25).map("\n".join)


class Replay:
    """Answers every command with the drawn output (the way triage.evidence_read replays a
    captured file through the same checks)."""

    def __init__(self, answers: list[tuple[int | None, str, str, bool]]) -> None:
        self.answers = answers
        self.calls = 0

    async def run(self, node: str, command: str, timeout: float) -> CommandResult:
        exit_status, stdout, stderr, timed_out = self.answers[self.calls % len(self.answers)]
        self.calls += 1
        return CommandResult(exit_status, stdout, stderr, 0.01, timed_out, node=node,
                             command=command, started=1_700_000_000.0, timeout=timeout)


def drive(coro) -> Observation:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("a check waited on something other than the replayed command")


PYTHON_ERROR = re.compile(r"^[A-Z]\w*(Error|Exception|Warning|Overflow)\b: ")

answers = st.lists(st.tuples(st.sampled_from([0, 0, 0, 1, 2, 124, None]), output,
                             st.one_of(st.just(""), output), st.sampled_from([False] * 5 + [True])),
                   min_size=1, max_size=3)


@FUZZ
@given(st.sampled_from(nc.CHECKS), answers)
def test_every_check_reads_any_output(spec: nc.CheckSpec, drawn) -> None:
    obs = drive(spec.run(Replay(drawn), "node-0001"))
    assert isinstance(obs, Observation)
    assert isinstance(obs.status, Status)
    assert obs.probe == spec.id
    assert isinstance(obs.summary, str) and obs.summary
    assert isinstance(obs.raw, str) and isinstance(obs.reason, str)
    json.dumps(obs.data, allow_nan=True)  # JSON-safe
    assert not PYTHON_ERROR.match(obs.reason), f"{spec.id}: {obs.reason}"
    if obs.status is Status.ERROR:
        assert obs.reason


def readable(parse, *args):
    """A parser's answer, or None when it says the text is not its command's output (its
    documented _Unreadable, which the check turns into ERROR with that message)."""
    try:
        return parse(*args)
    except nc._Unreadable as exc:
        assert str(exc)
        return None


@FUZZ
@given(output)
def test_plain_parsers(text: str) -> None:
    for row in readable(nc.parse_df, text) or []:
        assert isinstance(row["mount"], str)
        assert row["use_pct"] is None or isinstance(row["use_pct"], int)
    assert all(isinstance(m, str) for m in readable(nc.parse_lsmod, text) or [])
    assert all(isinstance(k, str) and isinstance(v, str)
               for k, v in (readable(nc.parse_systemctl_show, text) or {}).items())
    for pid, _value in readable(nc.parse_ps_rss_cpu, text) or []:
        assert isinstance(pid, int)
    assert readable(nc.parse_ntp, text) in (True, False, None)
    swaps, total = readable(nc.parse_swap, text, text) or ([], None)
    assert total is None or isinstance(total, int)
    max_pods = readable(nc.parse_max_pods, text)
    assert max_pods is None or isinstance(max_pods, int)
    assert all(isinstance(t, str) for t in readable(nc.cni_plugin_types, text) or [])
    server = readable(nc.kubeconfig_server, text)
    assert server is None or isinstance(server, str)


async def test_the_probes_panel_shows_no_escape_sequence() -> None:
    """An observation's summary quotes node output as it came, escape sequences included; the
    panel that shows it must not pass them to the operator's terminal."""
    from textual.app import App

    from tui.node_probes_panel import ProbesPanel

    drawn = [(0, "ActiveState=\x1b[2J\x1b]0;owned\x07failed\x9b31m\nSubState=dead\n", "",
              False)]
    obs = drive(nc.CHECKS[0].run(Replay(drawn), "node-0001"))
    assert obs.status is Status.BAD

    class Host(App):
        def compose(self):
            yield ProbesPanel(lambda: 0.0)

    async with Host().run_test() as pilot:
        panel = pilot.app.query_one(ProbesPanel)
        panel.observed(obs)
        await pilot.pause()
        assert "failed" in panel.plain
        assert not any(c in panel.plain for c in "\x1b\x9b\x07"), repr(panel.plain)
