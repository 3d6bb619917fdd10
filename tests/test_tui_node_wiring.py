"""How the node view and the node commands reach a node, against the served lab: SSH by the node's
InternalIP when the ssh config says nothing of node names (`Host *`, a bastion on the command line,
known_hosts keyed by address, as on a real cluster), the kubelet by the path --kubelet-via names,
and the cluster options kept wherever they stand around the subcommand."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from probes.kubelet import DIRECT, PATH_WORDS, PROXY
from tests.conftest import SCENARIO_NODES
from tui.app import NodewbApp
from tui.cli import KUBELET_PATHS, build_parser
from tui.cli_session import node_session, session_options, ssh_options
from tui.config import Config
from tui.feed import FleetSource
from tui.node_context import live_context
from tui.node_screen import NodeScreen

DEADLOCK = SCENARIO_NODES["containerd-deadlock"]
HEALTHY = "node-0001"
NO_CONFIG = Config(Path("/nonexistent/config.toml"))


def fleet_ssh(lab, where: Path) -> tuple[Path, str]:
    """A `Host *` ssh config and a known_hosts keyed by IP only (the bastion by its address),
    and the --bastion spec: what an operator of a real fleet has."""
    lines = []
    for line in (lab.dir / "known_hosts").read_text().splitlines():
        hosts, key = line.split(" ", 1)
        names = hosts.split(",")
        lines.append(f"{names[0] if 'nodewb-bastion' in names else names[1]} {key}")
    known = where / "known_hosts_by_ip"
    known.write_text("\n".join(lines) + "\n")
    assert not any(line.startswith("node-") for line in lines)
    config = where / "ssh_config"
    config.write_text(f"Host *\n    User root\n    IdentityFile {lab.dir / 'id_ed25519'}\n"
                      f"    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n"
                      f"    GlobalKnownHostsFile /dev/null\n")
    return config, f"root@127.0.0.1:{lab.info['bastion'][1]}"


def lab_ip(lab, node: str) -> str:
    ips = lab.info["ips"]
    return ips[node] if isinstance(ips, dict) else dict(ips)[node]


async def open_screen(lab, argv: list[str], node: str, *, scrape_every: float = 5.0):
    """The app on the lab with the context the command line would give it, the node screen
    open on `node` once the fleet has synced."""
    args = build_parser().parse_args(argv)
    source = FleetSource(str(lab.kubeconfig), None)
    app = NodewbApp(source, title="test", config=NO_CONFIG)
    make = live_context(source.connect, args.ssh_config, ssh_options=session_options(args))

    def context():
        ctx = make()
        ctx.scrape_every = scrape_every
        return ctx

    app.node_context = context  # type: ignore[attr-defined]
    return app, make


async def until(pilot, done, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        await pilot.pause(0.2)
    return done()


# -- 1. SSH by InternalIP, from the TUI as from diagnose ------------------------------------------
@pytest.mark.slow
async def test_node_screen_reaches_the_node_by_its_internal_ip(served_lab, tmp_path):
    config, bastion = fleet_ssh(served_lab, tmp_path)
    ip = lab_ip(served_lab, DEADLOCK)
    app, make = await open_screen(served_lab, ["--ssh-config", str(config), "--bastion", bastion],
                                  DEADLOCK)
    t0 = time.monotonic()
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            assert await until(pilot, lambda: app.model.synced, 30)
            screen = NodeScreen(app.model, DEADLOCK, time.time())
            await app.push_screen(screen)
            journal = screen.journal
            assert await until(pilot, lambda: any(not x.gap and "kubelet" in x.text
                                                  for x in journal.buffer), 20), \
                (journal.source, [x.text for x in journal.buffer][-3:])
            journal_after = time.monotonic() - t0
            # the journal streams over ssh, to the node's address through the bastion
            assert journal.source.startswith(f"ssh {DEADLOCK} (root@{ip}:22 via 127.0.0.1)"), \
                journal.source
            assert not any(x.gap for x in journal.buffer), [x.text for x in journal.buffer
                                                            if x.gap]
            ctx = make()
            assert ctx.ssh.target(DEADLOCK).host == ip
            rows = screen.probes.rows
            assert await until(pilot, lambda: "node.crictl.ps" in rows and rows[
                "node.crictl.ps"].state not in ("pending", "running"), 40)
            crictl = rows["node.crictl.ps"]
            assert crictl.state == "hung", (crictl.state, crictl.summary)
            assert await until(pilot, lambda: all(r.state not in ("pending", "running")
                                                  for r in rows.values() if r.via == "ssh"), 30)
            ssh_rows = {k: r for k, r in rows.items() if r.via == "ssh"}
            assert len(ssh_rows) > 10
            unreached = {k: r.summary for k, r in ssh_rows.items()
                         if "host key" in r.summary.lower() or "could not run" in r.summary}
            assert not unreached, unreached
            assert rows["node.systemd.kubelet"].state in ("ok", "bad"), \
                rows["node.systemd.kubelet"].summary
            print(f"\njournal over ssh after {journal_after:.1f} s, probes done after "
                  f"{time.monotonic() - t0:.1f} s")
            await pilot.press("q")
    finally:
        await make.aclose()


async def test_diagnose_session_maps_the_node_the_same_way(served_lab, tmp_path):
    config, bastion = fleet_ssh(served_lab, tmp_path)
    args = build_parser().parse_args(["--kubeconfig", str(served_lab.kubeconfig), "--ssh-config",
                                      str(config), "--bastion", bastion, "diagnose", HEALTHY])
    async with node_session(args, HEALTHY) as s:
        assert s.ssh.target(HEALTHY).host == s.internal_ip == lab_ip(served_lab, HEALTHY)
        r = await s.ssh.run(HEALTHY, "hostname", timeout=20)
        assert r.exit_status == 0 and r.stdout.strip() == HEALTHY, r
    # a template still overrides the address, in both
    args = build_parser().parse_args(["--ssh-config", str(config), "--bastion", bastion,
                                      "--ssh-target", "{name}.corp.example"])
    make = live_context(lambda: None, args.ssh_config, ssh_options=session_options(args))
    try:
        ctx = make()
        assert await ctx.locate(HEALTHY, "10.1.2.3") == "10.1.2.3"
        assert ctx.ssh.target(HEALTHY).host == f"{HEALTHY}.corp.example"
        assert ctx.kubelet().addresses[HEALTHY] == "10.1.2.3"
        assert ctx.probes(HEALTHY).internal_ip == "10.1.2.3"
    finally:
        await make.aclose()


# -- 2. --kubelet-via -----------------------------------------------------------------------------
def test_kubelet_via_words_are_the_clients_paths():
    assert KUBELET_PATHS == tuple(PATH_WORDS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--kubelet-via", "carrier-pigeon"])


@pytest.mark.parametrize("word", KUBELET_PATHS)
async def test_kubelet_via_reaches_the_client(served_lab, tmp_path, word):
    # the TUI: before the (absent) subcommand
    args = build_parser().parse_args(["--kubelet-via", word, "--ssh-config",
                                      str(tmp_path / "absent")])
    make = live_context(lambda: None, args.ssh_config, ssh_options=session_options(args))
    try:
        assert make().kubelet().via == PATH_WORDS[word]
    finally:
        await make.aclose()
    # diagnose, capture, act: before and after the subcommand
    for argv in (["--kubelet-via", word, "diagnose", HEALTHY],
                 ["capture", HEALTHY, "--kubelet-via", word],
                 ["act", HEALTHY, "drain", "--kubelet-via", word]):
        args = build_parser().parse_args(argv + ["--kubeconfig", str(served_lab.kubeconfig),
                                                 "--ssh-config", str(served_lab.ssh_config)])
        async with node_session(args, HEALTHY) as s:
            assert s.kubelet.via == PATH_WORDS[word], argv
    # no flag: auto
    args = build_parser().parse_args(["--kubeconfig", str(served_lab.kubeconfig), "diagnose",
                                      HEALTHY])
    async with node_session(args, HEALTHY) as s:
        assert s.kubelet.via == "auto"


@pytest.mark.slow
async def test_kubelet_via_direct_scrapes_10250_from_the_node_screen(served_lab):
    ip = lab_ip(served_lab, HEALTHY)
    app, make = await open_screen(served_lab, ["--kubelet-via", "direct", "--ssh-config",
                                               str(served_lab.ssh_config)], HEALTHY,
                                  scrape_every=1.0)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            assert await until(pilot, lambda: app.model.synced, 30)
            screen = NodeScreen(app.model, HEALTHY, time.time())
            await app.push_screen(screen)
            assert await until(pilot, lambda: screen.signals.scrapes >= 1, 30), \
                screen.signals.via_text
            assert DIRECT in screen.signals.via_text, screen.signals.via_text
            rows = screen.probes.rows
            assert await until(pilot, lambda: all(
                pid in rows and rows[pid].state not in ("pending", "running")
                for pid in ("kubelet.healthz", "kubelet.metrics")), 30)
            for pid in ("kubelet.healthz", "kubelet.metrics"):
                assert rows[pid].state == "ok" and rows[pid].via == DIRECT, rows[pid]
                assert "via direct" in rows[pid].summary
            kubelet = make().kubelet()
            obs = await kubelet.healthz(HEALTHY)
            assert obs.via == DIRECT and obs.data["url"] == f"https://{ip}:10250/healthz?verbose"
            await pilot.press("q")
    finally:
        await make.aclose()


@pytest.mark.slow
def test_diagnose_with_kubelet_via_direct_names_the_path(served_lab, capsys):
    from tui.cli import main

    code = main(["--kubelet-via", "direct", "--kubeconfig", str(served_lab.kubeconfig),
                 "diagnose", HEALTHY, "--format", "json", "--ssh-config",
                 str(served_lab.ssh_config)])
    out = capsys.readouterr().out
    assert code == 0, out
    verdict = json.loads(out)
    assert verdict["verdict"] == "healthy"
    # the evidence quotes the observations, which name their path
    assert f"metrics via {DIRECT}:" in out and f"via {PROXY}" not in out


# -- 3. cluster options before or after the subcommand --------------------------------------------
OPTIONS = [("--kubeconfig", "/k/config", "kubeconfig", "/k/config"),
           ("--context", "ctx-b", "context", "ctx-b"),
           ("--ssh-config", "/s/config", "ssh_config", "/s/config"),
           ("--bastion", "ops@jump:2222", "bastion", "ops@jump:2222"),
           ("--ssh-target", "{name}.corp", "ssh_target", "{name}.corp"),
           ("--ssh-user", "core", "ssh_user", "core"),
           ("--sudo", None, "sudo", True),
           ("--kubelet-via", "ssh", "kubelet_via", "ssh"),
           ("--allow-actions", None, "allow_actions", True)]
SUBCOMMANDS = {"diagnose": ["diagnose", "n1"], "capture": ["capture", "n1"],
               "act": ["act", "n1", "drain"]}


@pytest.mark.parametrize("sub", SUBCOMMANDS)
@pytest.mark.parametrize("flag,value,dest,expected", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_cluster_option_before_or_after_the_subcommand(sub, flag, value, dest, expected):
    given = [flag] + ([value] if value is not None else [])
    defaults = build_parser().parse_args(SUBCOMMANDS[sub])
    before = build_parser().parse_args(given + SUBCOMMANDS[sub])
    after = build_parser().parse_args(SUBCOMMANDS[sub] + given)
    assert getattr(before, dest) == getattr(after, dest) == expected
    assert getattr(defaults, dest) != expected
    for other in ("kubeconfig", "context", "ssh_config", "bastion", "ssh_user", "sudo"):
        if other != dest:
            assert getattr(before, other) == getattr(after, other) == getattr(defaults, other)


def test_after_the_subcommand_wins_and_lab_keeps_allow_actions():
    args = build_parser().parse_args(["--context", "a", "diagnose", "n1", "--context", "b"])
    assert args.context == "b"
    assert build_parser().parse_args(["--allow-actions", "lab"]).allow_actions is True
    assert build_parser().parse_args(["lab", "--allow-actions"]).allow_actions is True
    assert build_parser().parse_args(["lab"]).allow_actions is False


@pytest.mark.slow
def test_kubeconfig_before_diagnose_is_used(served_lab, capsys, monkeypatch, tmp_path):
    from tui.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code = main(["--kubeconfig", str(served_lab.kubeconfig), "--context", "nodewb-lab-viewer",
                 "--ssh-config", str(served_lab.ssh_config), "diagnose", HEALTHY,
                 "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["node"] == HEALTHY


# -- 4. --ssh-user and --sudo reach the SSH client ------------------------------------------------
async def test_ssh_user_and_sudo_reach_the_ssh_client(served_lab, tmp_path):
    argv = ["--bastion", "ops@bastion.example:2222", "--ssh-target", "{name}.corp.example",
            "--ssh-user", "core", "--sudo", "--ssh-config", str(tmp_path / "absent")]
    args = build_parser().parse_args(argv)
    make = live_context(lambda: None, args.ssh_config, ssh_options=session_options(args))
    try:
        ssh = make().ssh
        assert ssh.sudo_default is True and ssh.config.user == "core"
        assert ssh.bastion == "ops@bastion.example:2222" and ssh.template == "{name}.corp.example"
        hop = ssh.target("node-7")
        assert (hop.user, hop.host) == ("core", "node-7.corp.example")
        assert ssh._command("crictl ps", None).startswith("sudo -n ")
    finally:
        await make.aclose()
    plain = live_context(lambda: None, None, ssh_options=ssh_options(build_parser().parse_args(
        ["--bastion", "ops@bastion.example:2222"])))
    try:
        ssh = plain().ssh
        assert ssh.sudo_default is False and ssh.config.user is None
        assert ssh._command("crictl ps", None) == "crictl ps"
    finally:
        await plain.aclose()
    # the same flags after `diagnose` reach the session's client
    args = build_parser().parse_args(["diagnose", HEALTHY, "--kubeconfig",
                                      str(served_lab.kubeconfig), "--ssh-config",
                                      str(served_lab.ssh_config), "--ssh-user", "core", "--sudo"])
    async with node_session(args, HEALTHY) as s:
        assert s.ssh.sudo_default is True and s.ssh.config.user == "core"


def test_session_options_hold_the_ssh_options_and_the_path():
    args = argparse.Namespace(bastion="b", ssh_target=None, ssh_user="u", sudo=True,
                              kubelet_via="proxy")
    assert session_options(args) == dict(ssh_options(args), kubelet_via="proxy")
    make = live_context(lambda: None, None, ssh_options=session_options(args))
    assert make().kubelet().via == PROXY
