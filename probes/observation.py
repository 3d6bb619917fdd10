"""What every probe returns: a typed observation with when, how long, how it went and what it
saw."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    OK = "ok"  # the probe ran and what it saw is healthy
    BAD = "bad"  # the probe ran and what it saw is a problem
    HUNG = "hung"  # the probe did not return in its time limit: itself evidence
    ERROR = "error"  # the probe could not run (connection refused, permission denied, ...)
    SKIPPED = "skipped"  # not run, with a reason (no SSH configured, forbidden by RBAC, ...)


@dataclass(frozen=True, slots=True)
class Observation:
    probe: str  # stable id, e.g. "kubelet.healthz", "node.crictl_ps", "node.df_inodes"
    node: str | None
    status: Status
    started: float  # epoch seconds
    duration: float  # seconds
    summary: str  # one line a person reads
    data: dict[str, Any] = field(default_factory=dict)  # the probe's typed payload (JSON-safe)
    via: str = ""  # the path it came by: "apiserver-proxy", "direct", "ssh"
    raw: str = ""  # the output it decided on, quoted as evidence
    reason: str = ""  # why it is skipped or in error

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """`with timed() as t:` ... then t["started"], t["duration"]."""
    box = {"started": time.time(), "duration": 0.0}
    t0 = time.monotonic()
    try:
        yield box
    finally:
        box["duration"] = time.monotonic() - t0
