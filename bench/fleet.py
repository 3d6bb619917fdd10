"""The fleet screen against a served lab of N nodes (default 5,000), beside kubectl in the same run.

    python -m bench.fleet [--nodes 5000] [--churn 10000] [--seconds 10]

Prints `kubectl get nodes` wall time, then, from the app running headless in its own process:
the time from launch to the first rows and to all rows on screen, watch events applied per
second while the lab churns node objects, the key-press latency while that happens, and the
app's peak RSS.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.kubectl_get_nodes import rss_mb, serve, timed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--churn", type=int, default=10000, help="node updates per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "lab"
        proc, startup = serve(directory, args.nodes)
        try:
            kubeconfig = str(directory / "kubeconfig")
            print(f"lab: {args.nodes} nodes ready in {startup:.2f} s, "
                  f"RSS {rss_mb(proc.pid):.0f} MB")
            timed(["kubectl", "--kubeconfig", kubeconfig, "get", "nodes"])  # warm kubectl's cache
            times = [timed(["kubectl", "--kubeconfig", kubeconfig, "get", "nodes"])[0]
                     for _ in range(args.runs)]
            print("kubectl get nodes (all rows printed): "
                  + ", ".join(f"{t * 1000:.0f}" for t in times)
                  + f" ms; median {statistics.median(times) * 1000:.0f} ms")
            for run in range(args.runs):
                kubectl_ms, _ = timed(["kubectl", "--kubeconfig", kubeconfig, "get", "nodes"])
                launched = time.time()
                app = subprocess.run([sys.executable, "-m", "tui.bench_fleet", "--kubeconfig",
                                      kubeconfig, "--t0", repr(launched), "--seconds", "0"],
                                     check=True, timeout=120, capture_output=True, text=True)
                print(f"launch {run + 1}: nodewb {app.stdout.strip()}; kubectl get nodes just "
                      f"before: {kubectl_ms * 1000:.0f} ms")
            launched = time.time()
            subprocess.run([sys.executable, "-m", "tui.bench_fleet", "--kubeconfig", kubeconfig,
                            "--t0", repr(launched), "--rate", str(args.churn),
                            "--seconds", str(args.seconds)], check=True, timeout=600)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
