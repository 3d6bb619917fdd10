"""One probe command on N lab nodes through the one bastion: nodewb's SshClient at bounded
concurrency, beside a sequential OpenSSH loop over the same nodes, in one run.

    python -m bench.ssh_fanout [--nodes 200] [--concurrency 32] [--sample 0] [--command CMD]

A lab of N nodes is served (`nodewb lab serve`), then:

- ours, cold: `SshClient.run_many` over every node from a fresh client: each node's connection is
  opened through the bastion's shared connection, then the command runs. Per node: the time
  from the fan-out's start to that node's result (queueing for a slot included);
- ours, warm: the same again on the connections now open;
- peer: `ssh -F DIR/ssh_config -o BatchMode=yes NODE CMD`, one after another, each a new
  OpenSSH process with its own connection through the bastion (ProxyJump). With `--sample K`
  only K nodes (spread over the fleet) are run and the total is extrapolated; the output says
  so.

Every result is checked: exit status 0 and the command's expected output on every node, else
the bench fails. Prints wall time, p50/p99 per node, nodes/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.kubectl_get_nodes import serve
from probes.command_result import CommandResult
from probes.ssh import SshClient
from probes.ssh_errors import SshError

COMMAND = "systemctl is-active kubelet; df -i /; uptime"
EXPECT = ("Inodes", "load average")  # in every node's output of COMMAND


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def check(name: str, result: CommandResult | SshError | str, command: str) -> str | None:
    """Why `result` is not a good answer to `command`; None when it is."""
    if isinstance(result, SshError):
        return f"{name}: {result}"
    text = result if isinstance(result, str) else result.stdout
    if not isinstance(result, str) and (result.exit_status != 0 or result.timed_out):
        return f"{name}: exit {result.exit_status}, timed out {result.timed_out}"
    if command == COMMAND and not all(e in text for e in EXPECT):
        return f"{name}: unexpected output {text[:200]!r}"
    return None


async def fan_out(ssh_config: Path, nodes: list[str], command: str, concurrency: int,
                  timeout: float) -> dict[str, float]:
    """Cold and warm passes of `command` over `nodes` with one SshClient."""
    async with SshClient(ssh_config=ssh_config, concurrency=concurrency) as ssh:
        figures: dict[str, float] = {}
        for label in ("cold", "warm"):
            done: dict[str, float] = {}
            started = time.monotonic()

            async def one(node: str, done: dict[str, float] = done,
                          started: float = started) -> tuple[str, CommandResult | SshError]:
                try:
                    r: CommandResult | SshError = await ssh.run(node, command, timeout)
                except SshError as exc:
                    r = exc
                done[node] = time.monotonic() - started
                return node, r

            results = dict(await asyncio.gather(*(one(n) for n in nodes)))
            wall = time.monotonic() - started
            problems = [p for p in (check(n, r, command) for n, r in results.items()) if p]
            if problems:
                raise SystemExit(f"ours ({label}): {len(problems)} of {len(nodes)} nodes failed; "
                                 f"first: {problems[0]}")
            per = list(done.values())
            figures[f"{label}_wall"] = wall
            figures[f"{label}_p50"] = statistics.median(per)
            figures[f"{label}_p99"] = pct(per, 0.99)
        figures["connections"] = float(ssh.stats()["connections"])
    return figures


def sequential(ssh_config: Path, nodes: list[str], command: str, timeout: float) -> list[float]:
    """`ssh NODE CMD` one node after another: each run's wall time."""
    times = []
    for node in nodes:
        started = time.monotonic()
        r = subprocess.run(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", node, command],
                           capture_output=True, text=True, timeout=timeout)
        times.append(time.monotonic() - started)
        if r.returncode != 0:
            raise SystemExit(f"peer: ssh {node} exited {r.returncode}: {r.stderr.strip()[-300:]}")
        problem = check(node, r.stdout, command)
        if problem:
            raise SystemExit(f"peer: {problem}")
    return times


def spread(nodes: list[str], k: int) -> list[str]:
    """k nodes spread evenly over the list."""
    if k <= 0 or k >= len(nodes):
        return list(nodes)
    step = len(nodes) / k
    return [nodes[int(i * step)] for i in range(k)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--sample", type=int, default=0,
                    help="run the sequential OpenSSH loop on this many nodes and extrapolate "
                         "(0: every node)")
    ap.add_argument("--command", default=COMMAND)
    ap.add_argument("--timeout", type=float, default=20.0, help="per command, seconds")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "lab"
        proc, startup = serve(directory, args.nodes)
        try:
            config = directory / "ssh_config"
            nodes = [f"node-{i:04d}" for i in range(1, args.nodes + 1)]
            print(f"lab: {args.nodes} nodes behind one bastion, ready in {startup:.2f} s; "
                  f"command: {args.command!r}")
            ours = asyncio.run(fan_out(config, nodes, args.command, args.concurrency,
                                       args.timeout))
            sample = spread(nodes, args.sample)
            seq = sequential(config, sample, args.command, args.timeout + 10)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    n = len(nodes)
    seq_total = sum(seq) * n / len(seq)
    how = ("every node" if len(seq) == n else
           f"{len(seq)} nodes timed, total extrapolated to {n}")
    for label in ("cold", "warm"):
        wall = ours[f"{label}_wall"]
        which = "new connections" if label == "cold" else "open connections"
        print(f"nodewb SshClient, {label} ({which}, "
              f"concurrency {args.concurrency}): {wall:.2f} s for {n} nodes, "
              f"{n / wall:.0f} nodes/s; per node from the start: p50 "
              f"{ours[f'{label}_p50'] * 1000:.0f} ms, p99 {ours[f'{label}_p99'] * 1000:.0f} ms")
    print(f"OpenSSH, sequential `ssh -F ssh_config NODE CMD` ({how}): {seq_total:.2f} s, "
          f"{n / seq_total:.1f} nodes/s; per node p50 {statistics.median(seq) * 1000:.0f} ms, "
          f"p99 {pct(seq, 0.99) * 1000:.0f} ms")
    ratio = seq_total / ours["cold_wall"]
    goal = "met" if ours["cold_wall"] <= 10.0 and ratio >= 10.0 else "NOT met"
    print(f"ratio (sequential OpenSSH / nodewb cold): {ratio:.1f}x; goal ({n} nodes within 10 s, "
          f">= 10x): {goal}")
    return {"nodes": float(n), "ours_cold": ours["cold_wall"], "ours_warm": ours["warm_wall"],
            "ours_p50": ours["cold_p50"], "ours_p99": ours["cold_p99"], "peer": seq_total,
            "peer_p50": statistics.median(seq), "peer_p99": pct(seq, 0.99),
            "sampled": float(len(seq))}


if __name__ == "__main__":
    main(sys.argv[1:])
