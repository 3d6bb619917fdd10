"""The `nodewb` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from tui.cli_session import node_session, session_options

KUBELET_PATHS = ("auto", "proxy", "direct", "ssh")  # the words of probes.kubelet.PATH_WORDS


def _cluster_args(p: argparse.ArgumentParser, top: bool = True) -> None:
    """The cluster options. The top parser holds their defaults; a subcommand's copies default
    to nothing at all (SUPPRESS), so an option given before the subcommand is kept and one given
    after it wins."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument("--kubeconfig", default=default(None),
                   help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", default=default(None),
                   help="kubeconfig context to use (default: the current context)")
    p.add_argument("--ssh-config", default=default(os.path.expanduser("~/.ssh/config")),
                   help="OpenSSH client config for reaching nodes (default: ~/.ssh/config)")
    p.add_argument("--bastion", metavar="[USER@]HOST[:PORT]", default=default(None),
                   help="jump host for SSH to nodes (instead of ProxyJump in the ssh config)")
    p.add_argument("--ssh-target", metavar="TEMPLATE", default=default(None),
                   help="how a node is reached over SSH, e.g. '{name}.corp.example' "
                        "(default: its InternalIP, or a Host entry named after it)")
    p.add_argument("--ssh-user", default=default(None),
                   help="user for SSH to nodes (default: from the ssh config)")
    p.add_argument("--sudo", action="store_true", default=default(False),
                   help="run node commands through `sudo -n`")
    p.add_argument("--kubelet-via", choices=KUBELET_PATHS, default=default("auto"),
                   help="how the kubelet's endpoints are reached: auto (the API server's node "
                        "proxy, SSH when the proxy shows a partition), proxy, direct "
                        "(https://INTERNAL-IP:10250) or ssh (curl on the node); default auto")
    p.add_argument("--allow-actions", action="store_true", default=default(False),
                   help="enable the safe actions (they are off by default)")


def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=40, help="number of nodes (default 40)")
    p.add_argument("--scenario", action="append", default=[], metavar="S[@NODE]",
                   help="make NODE (or the next healthy node) fail with scenario S; repeatable")
    p.add_argument("--seed", type=int, default=1, help="seed for the lab's random choices")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault KIND[:KEY=VALUE,...], e.g. api-down:for=10,after=30 "
                        "(see lab/INTERNALS.md); repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodewb", description="Node-health workbench for Kubernetes.")
    _cluster_args(parser)
    sub = parser.add_subparsers(dest="command")

    lab = sub.add_parser("lab", help="run the simulated cluster (and open the TUI on it)")
    lab.add_argument("mode", nargs="?", choices=["serve"],
                     help="serve: run the lab headless and write client files to --dir")
    lab.add_argument("--dir", help="where `lab serve` writes kubeconfig, ssh_config, known_hosts")
    lab.add_argument("--allow-actions", action="store_true", default=argparse.SUPPRESS,
                     help="enable the safe actions in the lab's TUI (off by default)")
    _lab_args(lab)

    scen = sub.add_parser("scenarios", help="list the lab's failure scenarios")
    scen.add_argument("--format", choices=["text", "json"], default="text")

    diag = sub.add_parser("diagnose", help="run the probes and the decision tree once on a node")
    diag.add_argument("node")
    diag.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    _cluster_args(diag, top=False)

    analyze = sub.add_parser("analyze", help="run the decision tree on captured evidence "
                                             "(a directory, a lone file or a .tar.gz bundle)")
    analyze.add_argument("path")
    analyze.add_argument("--format", choices=["text", "json", "markdown"], default="text")

    capture = sub.add_parser("capture", help="capture a node's evidence bundle (verified, 0600)")
    capture.add_argument("node")
    capture.add_argument("--out", metavar="FILE",
                         help="bundle file to write (default: a new file under "
                              "${XDG_DATA_HOME:-~/.local/share}/nodewb/evidence/)")
    _cluster_args(capture, top=False)

    from tui.cli_act import EPILOG

    act = sub.add_parser("act", help="one safe action on a node: guard rails, evidence first, "
                                     "then verify (exit 0 only when verified)",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    act.add_argument("node")
    act.add_argument("action", help="action id (see `nodewb act NODE list`)")
    act.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    act.add_argument("--verify-timeout", type=float, metavar="SECONDS",
                     help="how long to watch the node come back (default 180)")
    act.add_argument("--canary", action="store_true",
                     help="also run a canary pod on the node while verifying")
    _cluster_args(act, top=False)
    return parser


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_scenarios(args: argparse.Namespace) -> int:
    from lab.scenarios import SCENARIOS

    rows = [s.as_dict() for s in SCENARIOS.values()]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    dwidth = max(len(r["domain"]) for r in rows)
    print(f"{'NAME':<{width}}  {'DOMAIN':<{dwidth}}  {'ACTION':<18}  STORY")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['domain']:<{dwidth}}  {r['action'] or '-':<18}  "
              f"{r['story']}")
    return 0


def _check_lab_args(args: argparse.Namespace) -> str | None:
    from lab.scenarios import parse_spec

    if args.nodes < 1:
        return "--nodes must be at least 1"
    if args.nodes > 20_000:
        return "--nodes is limited to 20000 (one loopback /16 and the open-file limit)"
    for spec in args.scenario:
        try:
            parse_spec(spec)
        except ValueError as err:
            return str(err)
    return None


def cmd_lab_serve(args: argparse.Namespace) -> int:
    from lab.serve import Lab, serve_forever

    if not args.dir:
        print("nodewb lab serve: --dir DIR is required", file=sys.stderr)
        return 2
    _raise_fd_limit()
    try:
        lab = Lab(args.dir, nodes=args.nodes, scenarios=args.scenario or None, seed=args.seed,
                  faults=args.fault)
    except ValueError as err:
        print(f"nodewb lab serve: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_forever(lab))
    except (ValueError, OSError, RuntimeError) as err:
        print(f"nodewb lab serve: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_lab_tui(args: argparse.Namespace) -> int:
    from tui.embedded_lab import EmbeddedLab

    _raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="nodewb-lab-") as tmp:
        embedded = EmbeddedLab(Path(tmp), nodes=args.nodes, scenarios=args.scenario or None,
                               seed=args.seed, faults=args.fault)
        try:
            embedded.start()
        except Exception as err:
            print(f"nodewb lab: the lab did not start: {err}", file=sys.stderr)
            return 1
        try:
            return _run_tui(str(Path(tmp) / "kubeconfig"), None, str(Path(tmp) / "ssh_config"),
                            title="nodewb lab", allow_actions=args.allow_actions,
                            ssh_options={"kubelet_via": args.kubelet_via})
        finally:
            embedded.stop()


def _run_tui(kubeconfig: str | None, context: str | None, ssh_config: str | None,
             title: str = "nodewb", ssh_options: dict | None = None,
             allow_actions: bool = False) -> int:
    from tui.feed import FleetSource, Pump

    # The first page of nodes is fetched while the terminal UI loads.
    pump = Pump()
    source = FleetSource(kubeconfig, context)
    source.start(pump)
    from tui.app import run_app

    return run_app(kubeconfig, context, ssh_config, title=title, source=source, pump=pump,
                   ssh_options=ssh_options, allow_actions=allow_actions)


def cmd_tui(args: argparse.Namespace) -> int:
    return _run_tui(args.kubeconfig, args.context, args.ssh_config,
                    ssh_options=session_options(args), allow_actions=args.allow_actions)


async def _diagnose(args: argparse.Namespace):
    from probes.node_probes import NodeProbes
    from triage.tree import Diagnosis

    # The node list feeds the blast radius; the run stops once nothing still out could change
    # the verdict (the rest are listed as next probes).
    diagnosis = Diagnosis(args.node, wait_for=("api.nodes",))
    async with node_session(args, args.node) as s:
        await NodeProbes(s.kube, s.ssh, s.kubelet, s.node, internal_ip=s.internal_ip,
                         fleet=True).run(on_observation=diagnosis.add, until=diagnosis.settled)
    return diagnosis.verdict()


def _emit(text: str) -> None:
    """Print a command's result; a reader that went away early (`| head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cmd_diagnose(args: argparse.Namespace) -> int:
    from probes.kubeconfig import KubeError

    try:
        verdict = asyncio.run(_diagnose(args))
    except KubeError as err:
        print(f"nodewb diagnose: {err}", file=sys.stderr)
        return 1
    render = {"json": verdict.to_json, "markdown": verdict.to_markdown}.get(args.format,
                                                                           verdict.to_text)
    _emit(render())
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from triage.evidence_read import read_evidence
    from triage.tree import Diagnosis

    try:
        evidence = read_evidence(args.path)
    except OSError as err:
        why = err.strerror if err.strerror and err.filename else str(err)
        print(f"nodewb analyze: {args.path}: {why}", file=sys.stderr)
        return 1
    diagnosis = Diagnosis(evidence.node).extend(evidence.observations)
    verdict = diagnosis.verdict()
    verdict.notes.extend(evidence.notes)
    render = {"json": verdict.to_json, "markdown": verdict.to_markdown}.get(args.format,
                                                                           verdict.to_text)
    _emit(render())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scenarios":
        return cmd_scenarios(args)
    if args.command == "diagnose":
        return cmd_diagnose(args)
    if args.command == "analyze":
        return cmd_analyze(args)
    if args.command == "capture":
        from tui.cli_capture import cmd_capture
        return cmd_capture(args)
    if args.command == "act":
        from tui.cli_act import cmd_act
        return cmd_act(args)
    if args.command == "lab":
        problem = _check_lab_args(args)
        if problem:
            print(f"nodewb lab: {problem}", file=sys.stderr)
            return 2
        return cmd_lab_serve(args) if args.mode == "serve" else cmd_lab_tui(args)
    return cmd_tui(args)


if __name__ == "__main__":
    sys.exit(main())
