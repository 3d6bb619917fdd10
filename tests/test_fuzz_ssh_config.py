"""Fuzzing probes.ssh_target's reading of an OpenSSH client config: for random configs (Host and
Match blocks, negations, wildcards, `Host=`, quoting, options before the first block), what
SshConfig answers for a host, and the per-host copy it hands asyncssh, say exactly what asyncssh's
own parser says reading the whole file; a config asyncssh rejects is an SshError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from asyncssh.config import ConfigParseError, SSHClientConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.ssh_errors import SshError
from probes.ssh_target import SshConfig, local_user, parse_destination

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="nodewb-fuzz-ssh-config-"))
ALIASES = ["node-0001", "node-0002", "node-0010", "bastion", "10.0.0.1", "other", "NODE-0001"]
OPTIONS = ["Hostname", "Port", "User", "ProxyJump", "IdentityFile", "HostKeyAlias",
           "ConnectTimeout", "UserKnownHostsFile", "IdentitiesOnly", "GlobalKnownHostsFile"]

patterns = st.sampled_from(["node-*", "node-000?", "node-0001", "!node-0002", "*", "bastion",
                            "10.0.0.*", "node-00[01]*", '"node-0010"', "other,node-0002",
                            "NODE-0001", "*-0001", "!*"])
option_lines = st.one_of(
    st.sampled_from([
        "HostName 127.0.0.2", "HostName %h.example", "Hostname=10.9.9.9", "Port 2222",
        "Port=22", "Port x", "User root", "User = admin", "ProxyJump bastion",
        "ProxyJump none", "ProxyJump root@jump:2200,bastion", "IdentityFile ~/.ssh/id_x",
        "IdentityFile /k/%h", "HostKeyAlias node-key", "ConnectTimeout 5",
        "ConnectTimeout x", "UserKnownHostsFile /kh/a /kh/b", "IdentitiesOnly yes",
        "GlobalKnownHostsFile /dev/null", "  # a comment", "", "\tUser tabbed",
        "StrictHostKeyChecking no", "LogLevel ERROR", "Unknownoption x", 'User "quoted name"',
        "User 'x",
    ]),
)
host_lines = st.builds(lambda kw, ps: f"{kw}{' '.join(ps)}",
                       st.sampled_from(["Host ", "host ", "Host=", "  Host ", "HOST\t"]),
                       st.lists(patterns, min_size=1, max_size=3))
match_lines = st.sampled_from(["Match host node-0001", "Match all", "Match originalhost bastion",
                               "Match user root", "Match host node-*,!node-0002",
                               "Match canonical", "Match final"])
blocks = st.tuples(st.one_of(host_lines, host_lines, match_lines),
                   st.lists(option_lines, max_size=4))
configs = st.builds(
    lambda pre, bs: "\n".join(pre + [line for head, body in bs for line in [head, *body]]) + "\n",
    st.lists(option_lines, max_size=3), st.lists(blocks, min_size=0, max_size=7))


def asyncssh_answer(path: Path, alias: str):
    try:
        cfg = SSHClientConfig.load(None, [path], False, False, False, local_user(), (), alias, ())
    except (ConfigParseError, ValueError, OSError) as err:
        return ("error", type(err).__name__)
    return {opt: cfg.get(opt) for opt in OPTIONS}


def ours(config: SshConfig, alias: str):
    try:
        cfg = config.load(alias)
    except SshError:
        return ("error",)
    return {opt: cfg.get(opt) for opt in OPTIONS}


@FUZZ
@given(configs, st.lists(st.sampled_from(ALIASES), min_size=1, max_size=4))
def test_reduced_reading_equals_asyncssh(text: str, aliases: list[str]) -> None:
    path = WORK / "config"
    path.write_text(text)
    config = SshConfig(path)
    for alias in aliases:
        want = asyncssh_answer(path, alias)
        got = ours(config, alias)
        if want[0] == "error" if isinstance(want, tuple) else False:
            assert got == ("error",), (alias, text)
            continue
        assert got == want, (alias, text)
        assert ours(config, alias) == want  # remembered answer
        copy = config.paths_for(alias)
        assert asyncssh_answer(copy[0], alias) == want, (alias, text)


@FUZZ
@given(configs, st.sampled_from(ALIASES))
def test_resolve_raises_only_ssh_error(text: str, alias: str) -> None:
    path = WORK / "config2"
    path.write_text(text)
    try:
        hop = SshConfig(path).resolve(alias)
    except SshError as err:
        assert str(err)
        return
    assert isinstance(hop.host, str) and isinstance(hop.port, int)


def test_config_change_is_seen() -> None:
    path = WORK / "config3"
    path.write_text("Host a\n  Port 1\nHost b\n  Port 2\nHost c\n  Port 3\n")
    config = SshConfig(path)
    assert config.load("a").get("Port") == 1
    path.write_text("Host a\n  Port 11\nHost b\n  Port 2\nHost c\n  Port 3\n# longer\n")
    assert config.load("a").get("Port") == 11
    assert asyncssh_answer(config.paths_for("a")[0], "a")["Port"] == 11


@FUZZ
@given(st.one_of(st.text(max_size=40),
                 st.sampled_from(["root@h:22", "[::1]:2222", "ssh://u@h:1/", "h:99999", "@:",
                                  "u@", "h:x", "[", "a@b@c:5"])))
def test_parse_destination(spec: str) -> None:
    try:
        user, host, port = parse_destination(spec)
    except SshError as err:
        assert spec[:10] in str(err) or str(err)
        return
    assert host and isinstance(host, str)
    assert port is None or 0 < port < 65536
