"""Figures for the fleet screen at scale: `python -m tui.bench_fleet [--nodes 5000] [--rate 10000]`.

Runs the app headless on a synthetic feed (a thread emitting watch-like upserts and lease
renewals at `rate` events per second over `nodes` nodes) and prints frame costs, lines
re-rendered and how long a key takes to move the cursor. Prints figures; asserts nothing.
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


async def _main(nodes: int, rate: int, seconds: float) -> None:
    from pathlib import Path

    from tui.app import NodewbApp
    from tui.config import Config

    started = time.perf_counter()
    records = _records(nodes)
    print(f"built {nodes} records in {time.perf_counter() - started:.2f} s")
    feed = SyntheticFeed(records, rate)
    app = NodewbApp(feed, title="bench", config=Config(Path("/nonexistent/config.toml")))
    frames: list[float] = []
    original = app.frame

    def timed_frame() -> None:
        t = time.perf_counter()
        original()
        frames.append(time.perf_counter() - t)

    app.frame = timed_frame  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)) as pilot:
        t0 = time.perf_counter()
        while not app.model.synced or len(app.fleet.table.rows) < nodes:
            await pilot.pause(0.01)
        print(f"all {nodes} rows on screen {1000 * (time.perf_counter() - t0):.0f} ms after "
              f"start")
        table = app.fleet.table
        repaints0 = table.repaints
        frames.clear()
        latencies = []
        end = time.perf_counter() + seconds
        sent0 = feed.sent
        while time.perf_counter() < end:
            before = table.cursor
            t = time.perf_counter()
            app.simulate_key("j")
            while table.cursor == before and time.perf_counter() - t < 2:
                await asyncio.sleep(0.0005)
            latencies.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
        elapsed = seconds
        print(f"feed: {(feed.sent - sent0) / elapsed:.0f} events/s applied over {elapsed:.0f} s "
              f"({app.model.events_applied} events in total)")
        frames.sort()
        print(f"frame (drain + apply + view + diff): median {1000 * statistics.median(frames):.1f}"
              f" ms, p95 {1000 * frames[int(len(frames) * 0.95)]:.1f} ms, "
              f"max {1000 * frames[-1]:.1f} ms over {len(frames)} frames")
        latencies.sort()
        print(f"key j -> cursor moved: median {1000 * statistics.median(latencies):.1f} ms, "
              f"p95 {1000 * latencies[int(len(latencies) * 0.95)]:.1f} ms, "
              f"max {1000 * latencies[-1]:.1f} ms ({len(latencies)} presses)")
        lines = table.repaints - repaints0
        print(f"lines re-rendered: {lines} in {len(frames)} frames "
              f"({lines / max(1, len(frames)):.1f} per frame; {table.size.height} on screen)")
        await pilot.press("q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=10000, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(_main(args.nodes, args.rate, args.seconds))


if __name__ == "__main__":
    main()
