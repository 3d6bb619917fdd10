"""The lab's control endpoint (`/lab/v1/...` on the API server, admin only): load and faults
that tests and benchmarks ask for. Nothing a real cluster serves; clients never depend on it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lab import effects


class LabControl:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self._churn: asyncio.Task | None = None
        self.churned = 0

    async def handle(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"do_{action.replace('-', '_')}", None)
        if handler is None:
            raise KeyError(f"no lab control action {action!r}")
        return await handler(**params)

    async def do_status(self) -> dict[str, Any]:
        c = self.cluster
        ready = sum(1 for s in c.nodes.values() if s.conditions["Ready"][0] == "True")
        return {"nodes": len(c.nodes), "ready": ready, "resourceVersion": c.store.rv,
                "churned": self.churned,
                "churning": self._churn is not None and not self._churn.done()}

    async def do_churn(self, rate: float = 1000.0, seconds: float = 10.0,
                       objects: str = "nodes") -> dict[str, Any]:
        """Objects modified at `rate` per second for `seconds` (bounded: at most 60 s and
        50,000/s), as a busy cluster's status updates and lease renewals are: each is a
        MODIFIED watch event. `objects`: "nodes", "leases", or "mixed" (alternating)."""
        rate = max(1.0, min(float(rate), 50_000.0))
        seconds = max(0.1, min(float(seconds), 60.0))
        if objects not in ("nodes", "leases", "mixed"):
            raise ValueError("objects must be nodes, leases or mixed")
        if self._churn is not None and not self._churn.done():
            self._churn.cancel()
        self._churn = asyncio.create_task(self._run_churn(rate, seconds, objects))
        return {"rate": rate, "seconds": seconds, "objects": objects}

    async def _run_churn(self, rate: float, seconds: float, objects: str) -> None:
        c = self.cluster
        states = list(c.nodes.values())
        step = 0.02
        per_step = rate * step
        owed = 0.0
        i = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            owed += per_step
            now = time.time()
            while owed >= 1:
                state = states[(i // 2 if objects == "mixed" else i) % len(states)]
                lease = objects == "leases" or (objects == "mixed" and i % 2)
                i += 1
                owed -= 1
                if lease:
                    state.lease_renew = now
                    c._put_lease(state)
                else:
                    for cond in state.conditions.values():
                        if state.conditions["Ready"][0] != "Unknown":
                            cond[3] = now
                    c._put_node(state, now)
                self.churned += 1
            await asyncio.sleep(step - (time.monotonic() - started) % step)

    async def do_partition(self, node: str, on: bool = True) -> dict[str, Any]:
        """Cut (or restore) the path between a node and the API server."""
        state = self.cluster.nodes[node]
        effects.set_partition(state.machine, bool(on), time.time())
        return {"node": node, "partitioned": bool(on)}

    async def do_compact(self) -> dict[str, Any]:
        """Compact the store now: every older resourceVersion gets 410 Gone."""
        self.cluster.store.compact()
        return {"floor": self.cluster.store.rv}
