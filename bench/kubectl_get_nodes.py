"""Wall time of `kubectl get nodes` against a served lab of N nodes (default 5,000).

    python -m bench.kubectl_get_nodes [--nodes 5000] [--runs 5]

Prints the lab's start-up time, then each run of `kubectl get nodes` and `-o wide`, with the
median. kubectl here is a dispatcher that first asks the server's version; that request is part of
what a user waits for, so it is part of the figure.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def serve(directory: Path, nodes: int) -> tuple[subprocess.Popen, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "lab", "serve", "--dir", str(directory),
         "--nodes", str(nodes)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"ready" not in line:
        proc.kill()
        raise SystemExit(f"lab did not start (exit {proc.poll()})")
    return proc, time.monotonic() - started


def timed(cmd: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.decode()[-500:]}")
    return elapsed, result.stdout.count(b"\n")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "lab"
        proc, startup = serve(directory, args.nodes)
        try:
            kubeconfig = str(directory / "kubeconfig")
            print(f"lab: {args.nodes} nodes ready in {startup:.2f} s, "
                  f"RSS {rss_mb(proc.pid):.0f} MB")
            for label, extra in (("get nodes", []), ("get nodes -o wide", ["-o", "wide"])):
                times = []
                for _ in range(args.runs):
                    elapsed, lines = timed(["kubectl", "--kubeconfig", kubeconfig, "get", "nodes",
                                            *extra])
                    times.append(elapsed)
                print(f"kubectl {label}: {lines - 1} rows; runs "
                      + ", ".join(f"{t:.2f}" for t in times)
                      + f" s; median {statistics.median(times):.2f} s")
            elapsed, _ = timed(["kubectl", "--kubeconfig", kubeconfig, "version", "-o", "json"])
            print(f"kubectl version (dispatcher overhead alone): {elapsed:.2f} s")
            print(f"lab RSS after the runs: {rss_mb(proc.pid):.0f} MB")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
