"""Figures for the fleet screen at scale: `python -m tui.bench_fleet [--nodes 5000] [--rate 10000]`.

Runs the app headless on a synthetic feed (a thread emitting watch-like upserts and lease
renewals at `rate` events per second over `nodes` nodes), or with `--kubeconfig` on a real
cluster (a served lab, whose control endpoint `--churn` asks for node updates at a rate), and
prints the time to the first and to all rows, events applied per second, frame costs, lines
re-rendered, how long a key takes to move the cursor, and peak RSS. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import statistics
import threading
import time


def _records(nodes: int):
    from lab.cluster import Cluster
    from probes.kube import node_record

    cluster = Cluster(nodes=60, seed=3)
    base = [node_record(cluster.node_object(s)) for s in cluster.nodes.values()]
    out = []
    for i in range(nodes):
        rec = copy.copy(base[i % len(base)])
        rec.name = f"node-{i + 1:05d}"
        out.append(rec)
    return out


class SyntheticFeed:
    context = "bench"
    server = "https://bench.invalid:6443"

    def __init__(self, records, rate: int, batch_every: float = 0.03) -> None:
        self.records = records
        self.rate = rate
        self.batch_every = batch_every
        self.sent = 0

    def run(self, emit, stop: threading.Event) -> None:
        from tui.feed import FeedEvent as E

        records = self.records
        emit([E("reset")])
        for i in range(0, len(records), 500):
            emit([E("chunk", nodes=records[i:i + 500])])
        emit([E("synced")])
        rng = random.Random(1)
        per_batch = max(1, int(self.rate * self.batch_every))
        while not stop.wait(self.batch_every):
            batch = []
            for _ in range(per_batch // 2):
                rec = copy.copy(records[rng.randrange(len(records))])
                rec.ready = rng.choice(("True", "True", "True", "False"))
                rec.heartbeat = time.time()
                batch.append(rec)
            leases = {records[rng.randrange(len(records))].name: time.time()
                      for _ in range(per_batch - len(batch))}
            emit([E("upsert", nodes=batch), E("leases", leases=leases)])
            self.sent += per_batch


def _churn(kubeconfig: str, rate: int, seconds: float, objects: str = "mixed") -> None:
    import json
    import subprocess

    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "create", "--raw", "/lab/v1/churn",
                    "-f", "-"],
                   input=json.dumps({"rate": rate, "seconds": seconds, "objects": objects}),
                   capture_output=True, text=True, timeout=30, check=True)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _main(nodes: int, rate: int, seconds: float, kubeconfig: str | None,
                t0: float | None) -> None:
    from pathlib import Path

    from tui.feed import FleetSource, Pump

    pump = Pump()
    feed: FleetSource | SyntheticFeed
    if kubeconfig:
        feed = FleetSource(kubeconfig, None)
        feed.start(pump)  # as `nodewb` does: the first page is fetched while the UI loads
    else:
        started = time.perf_counter()
        records = _records(nodes)
        print(f"built {nodes} records in {time.perf_counter() - started:.2f} s")
        feed = SyntheticFeed(records, rate)
    from tui.app import NodewbApp
    from tui.config import Config

    app = NodewbApp(feed, title="bench", config=Config(Path("/nonexistent/config.toml")),
                    pump=pump)
    frames: list[float] = []
    original = app.frame

    def timed_frame() -> None:
        t = time.perf_counter()
        original()
        frames.append(time.perf_counter() - t)

    app.frame = timed_frame  # type: ignore[method-assign]
    launched = t0 if t0 is not None else time.time()
    async with app.run_test(size=(160, 50)) as pilot:
        first = None
        while not app.model.synced:
            if first is None and app.fleet.table.rows:
                first = time.time() - launched
            await asyncio.sleep(0.002)
        while len(app.fleet.table.rows) < len(app.model.entries):
            await asyncio.sleep(0.002)
        every = time.time() - launched
        count = len(app.model.entries)
        print(f"first rows on screen {1000 * (first or every):.0f} ms after launch; all {count} "
              f"rows {1000 * every:.0f} ms after launch")
        if seconds <= 0:
            await pilot.press("q")
            return
        table = app.fleet.table
        repaints0 = table.repaints
        frames.clear()
        latencies: list[float] = []
        if kubeconfig:
            _churn(kubeconfig, rate, seconds)
        applied0 = app.model.events_applied
        sent0 = getattr(feed, "sent", 0)
        started = time.perf_counter()
        end = started + seconds
        while time.perf_counter() < end:
            before = table.cursor
            t = time.perf_counter()
            app.simulate_key("j" if len(latencies) % 40 < 20 else "k")
            while table.cursor == before and time.perf_counter() - t < 2:
                await asyncio.sleep(0.0005)
            latencies.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.2)
        applied = app.model.events_applied - applied0
        if kubeconfig:
            print(f"watch: {applied / elapsed:.0f} events/s applied over {elapsed:.1f} s "
                  f"(lab churn of node status and lease updates asked for {rate}/s)")
        else:
            print(f"feed: {(getattr(feed, 'sent', 0) - sent0) / elapsed:.0f} events/s sent, "
                  f"{applied / elapsed:.0f} applied over {elapsed:.1f} s")
        frames.sort()
        print(f"frame (drain + apply + view + diff): median {1000 * statistics.median(frames):.1f}"
              f" ms, p95 {1000 * frames[int(len(frames) * 0.95)]:.1f} ms, "
              f"max {1000 * frames[-1]:.1f} ms over {len(frames)} frames")
        latencies.sort()
        print(f"key j/k -> cursor moved: median {1000 * statistics.median(latencies):.1f} ms, "
              f"p99 {1000 * latencies[int(len(latencies) * 0.99)]:.1f} ms, "
              f"max {1000 * latencies[-1]:.1f} ms ({len(latencies)} presses)")
        lines = table.repaints - repaints0
        print(f"lines re-rendered: {lines} in {len(frames)} frames "
              f"({lines / max(1, len(frames)):.1f} per frame; {table.size.height} on screen)")
        print(f"peak RSS {_peak_rss_mb():.0f} MB")
        await pilot.press("q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=10000, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kubeconfig", help="a real cluster (a served lab) instead of the "
                                             "synthetic feed")
    parser.add_argument("--t0", type=float, help="launch time (epoch) to measure from")
    args = parser.parse_args()
    asyncio.run(_main(args.nodes, args.rate, args.seconds, args.kubeconfig, args.t0))


if __name__ == "__main__":
    main()
