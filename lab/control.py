"""The lab's control endpoint (`/lab/v1/...` on the API server, admin only): load and faults
that tests and benchmarks ask for. Nothing a real cluster serves; clients never depend on it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from lab import effects
from lab.faults import make_fault, parse_fault


class LabControl:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self._churn: asyncio.Task | None = None
        self.churned = 0
        self._deleted: dict[str, Any] = {}  # node name -> its NodeState, while deleted
        self._pending: set[asyncio.Task] = set()

    async def handle(self, action: str, params: dict[str, Any],
                     method: str = "POST") -> dict[str, Any]:
        if action == "faults":
            return await self.faults(method, params)
        handler = getattr(self, f"do_{action.replace('-', '_')}", None)
        if handler is None:
            raise KeyError(f"no lab control action {action!r}")
        return await handler(**params)

    # -- faults -------------------------------------------------------------------------------
    async def faults(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET lists the faults in force; POST adds one (`{"spec": "api-down:for=5"}` or
        `{"kind": "api-down", "for": 5, ...}`); DELETE clears them (all, or `{"kind": ...}`)."""
        faults = self.cluster.faults
        if method == "GET":
            return {"faults": faults.listing()}
        if method == "DELETE":
            kind = params.get("kind")
            gone = faults.clear(str(kind) if kind else None)
            return {"cleared": [f.spec() for f in gone], "faults": faults.listing()}
        if method != "POST":
            raise ValueError(f"{method} is not supported on /lab/v1/faults (GET, POST, DELETE)")
        if "spec" in params:
            if set(params) != {"spec"}:
                raise ValueError("give either spec or kind with parameters, not both")
            fault = parse_fault(str(params["spec"]))
        else:
            values = dict(params)
            kind = values.pop("kind", None)
            if not kind:
                raise ValueError('a fault needs "spec" or "kind"')
            fault = make_fault(str(kind), values)
        if fault.node and fault.node not in self.cluster.nodes:
            raise ValueError(f"no node {fault.node!r} in this lab")
        faults.add(fault)
        return {"fault": fault.describe(), "faults": faults.listing()}

    # -- nodes come and go --------------------------------------------------------------------
    async def do_delete_node(self, node: str, after: float = 0.0) -> dict[str, Any]:
        """Delete a Node object (and its lease), now or `after` s (at most 60) from now, as when
        an autoscaler removes an instance. The machine stays reachable; restore-node brings the
        Node back."""
        if node not in self.cluster.nodes:
            raise ValueError(f"no node {node!r} in this lab")
        self._later(after, lambda: self._delete_node(node))
        return {"node": node, "deleted_in": max(0.0, float(after))}

    async def do_restore_node(self, node: str, after: float = 0.0) -> dict[str, Any]:
        """Put a deleted Node back (created anew), now or `after` s from now."""
        if node not in self._deleted:
            raise ValueError(f"{node!r} was not deleted by the lab control")
        self._later(after, lambda: self._restore_node(node))
        return {"node": node, "restored_in": max(0.0, float(after))}

    def _later(self, after: float, action) -> None:
        after = max(0.0, min(float(after), 60.0))
        if not after:
            action()
            return
        task = asyncio.get_running_loop().create_task(self._after(after, action))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _after(delay: float, action) -> None:
        await asyncio.sleep(delay)
        action()

    def _delete_node(self, node: str) -> None:
        c = self.cluster
        state = c.nodes.pop(node, None)
        if state is None:
            return
        with contextlib.suppress(ValueError):
            state.machine.listeners.remove(c._machine_changed)
        self._deleted[node] = state
        c.store["leases"].delete("kube-node-lease", node)
        c.store["nodes"].delete("", node)

    def _restore_node(self, node: str) -> None:
        c = self.cluster
        state = self._deleted.pop(node, None)
        if state is None:
            return
        now = time.time()
        state.created = now
        c.nodes[node] = state
        state.machine.listeners.append(c._machine_changed)
        c.store["nodes"].put(c.node_object(state))
        c._put_lease(state)

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
