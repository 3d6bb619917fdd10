"""The fleet as data: every node's record, lease and pod count, and the rows a person sees.

Pure Python (no textual), so it is fast to test. Events from the feed are applied in batches;
the visible row list (filter, sort, grouping) is recomputed at most once per call to `view()`,
and only when something that decides membership or order changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from probes.kube import NodeRecord

READY_RANK = {"False": 0, "Unknown": 1, "True": 2}
PRESSURES = (("MemoryPressure", "M"), ("DiskPressure", "D"), ("PIDPressure", "P"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# bidirectional overrides and isolates (they reorder what the eye reads), and lone surrogates
# (JSON may carry them; no terminal can be sent one)
_UNSHOWABLE = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean(text: Any) -> str:
    """Text from the outside world made safe for one table cell: no control characters, no
    bidirectional overrides, no lone surrogates."""
    if text is None:
        return ""
    text = str(text)
    if text.isprintable():
        return text.strip()
    return _UNSHOWABLE.sub("\ufffd", _CONTROL.sub(" ", text)).strip()


def age_text(then: float, now: float) -> str:
    """A kubectl-style short age ("7s", "12m", "5h", "3d"); "-" when the time is not known."""
    if not then:
        return "-"
    seconds = int(now - then)
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def labels_of(rec: NodeRecord) -> dict[str, str]:
    return getattr(rec, "labels", None) or {}


# -- columns ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Column:
    id: str
    title: str
    priority: int  # lower shows first; at 80 columns only the first few fit
    min: int  # narrowest useful width
    max: int  # widest it ever grows
    kind: str = "static"  # static: from the record; live: from the clock, leases or pods
    align: str = "left"
    flex: bool = False  # takes the space the others leave
    help: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME", 0, 8, 63, help="node name"),
    Column("status", "STATUS", 1, 8, 27, help="Ready condition (+SchedulingDisabled)"),
    Column("by", "BY", 8, 7, 10, help="who set Ready: the kubelet or the node controller"),
    Column("reason", "REASON", 2, 16, 90, flex=True, help="why not Ready (message, else reason)"),
    Column("since", "SINCE", 7, 5, 5, "live", "right", help="age of the Ready transition"),
    Column("heartbeat", "HEARTBEAT", 6, 9, 9, "live", "right", help="age of the last heartbeat"),
    Column("lease", "LEASE", 3, 5, 5, "live", "right", help="age of the node lease renewal"),
    Column("pressure", "PRESSURE", 4, 8, 8, help="M/D/P: memory, disk, PID pressure"),
    Column("net", "NET", 5, 4, 4, help="NetworkUnavailable: down, ok or ?"),
    Column("taints", "TAINTS", 9, 6, 34, help="taints (short keys); cordon"),
    Column("roles", "ROLES", 11, 5, 24),
    Column("version", "VERSION", 12, 7, 20, help="kubelet version"),
    Column("runtime", "RUNTIME", 14, 7, 28, help="container runtime"),
    Column("kernel", "KERNEL", 15, 6, 32),
    Column("os", "OS-IMAGE", 16, 8, 32),
    Column("zone", "ZONE", 4, 4, 24, help="topology zone"),
    Column("pool", "POOL", 13, 4, 24, help="node pool"),
    Column("pods", "PODS", 10, 7, 9, "live", "right", help="pods running / capacity"),
)
COLUMN_BY_ID = {c.id: c for c in COLUMNS}
SORT_ORDER: tuple[str, ...] = tuple(c.id for c in COLUMNS)
_STATIC_IDS: tuple[str, ...] = tuple(c.id for c in COLUMNS if c.kind == "static")


def _pressure(conditions: dict[str, str]) -> str:
    out = []
    for ctype, letter in PRESSURES:
        value = conditions.get(ctype)
        out.append(letter if value == "True" else "?" if value == "Unknown" else "-")
    return "".join(out)


def _net(conditions: dict[str, str]) -> str:
    value = conditions.get("NetworkUnavailable")
    return {"True": "down", "False": "ok", "Unknown": "?"}.get(value or "", "-")


def _taints(rec: NodeRecord) -> str:
    short: list[str] = []
    if rec.unschedulable:
        short.append("cordon")
    for taint in rec.taints:
        key = taint.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        if key == "unschedulable" and rec.unschedulable:
            continue
        if key not in short:
            short.append(key)
    return ",".join(short) or "-"


def short_message(message: str) -> str:
    """The kubelet's Ready message without its nested restatements.

    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady
    message:Network plugin returns error: cni plugin not initialized" becomes
    "container runtime network not ready: cni plugin not initialized".
    """
    message = " ".join(clean(message).split())
    if message.startswith("[") and message.endswith("]"):
        message = message[1:-1]
    if "message:" in message:
        head = message.split(":", 1)[0]
        tail = message.rsplit("message:", 1)[1].strip().rsplit(": ", 1)[-1]
        message = f"{head}: {tail}" if tail else head
    return message


def _reason(rec: NodeRecord) -> str:
    if rec.ready == "True":
        return ""
    return short_message(rec.ready_message) or clean(rec.ready_reason) or "no Ready condition"


def static_cells(rec: NodeRecord) -> dict[str, str]:
    """The cells that depend on the record alone (computed once per update of that node)."""
    conditions = rec.conditions or {}
    return {
        "name": clean(rec.name),
        "status": {"True": "Ready", "False": "NotReady"}.get(rec.ready, "Unknown")
        + (",SchedulingDisabled" if rec.unschedulable else ""),
        "by": "controller" if rec.ready_by == "node-controller" else clean(rec.ready_by) or "-",
        "reason": _reason(rec),
        "pressure": _pressure(conditions),
        "net": _net(conditions),
        "taints": _taints(rec),
        "roles": clean(rec.roles),
        "version": clean(rec.kubelet_version),
        "runtime": clean(rec.runtime),
        "kernel": clean(rec.kernel),
        "os": clean(rec.os_image),
        "zone": clean(rec.zone) or "-",
        "pool": clean(rec.pool) or "-",
    }


# -- filter ----------------------------------------------------------------------------------------

def _cond(ctype: str, status: str = "True") -> Callable[[NodeRecord], bool]:
    return lambda r: (r.conditions or {}).get(ctype) == status


WORDS: dict[str, Callable[[NodeRecord], bool]] = {
    "notready": lambda r: r.ready == "False",
    "unknown": lambda r: r.ready == "Unknown",
    "ready": lambda r: r.ready == "True",
    "cordoned": lambda r: r.unschedulable,
    "cordon": lambda r: r.unschedulable,
    "tainted": lambda r: bool(r.taints),
    "pressure": lambda r: any((r.conditions or {}).get(c) == "True" for c, _ in PRESSURES),
    "memorypressure": _cond("MemoryPressure"),
    "diskpressure": _cond("DiskPressure"),
    "pidpressure": _cond("PIDPressure"),
    "net": _cond("NetworkUnavailable"),
    "networkunavailable": _cond("NetworkUnavailable"),
}
FIELDS: dict[str, Callable[[NodeRecord], str]] = {
    "zone": lambda r: r.zone, "pool": lambda r: r.pool, "kernel": lambda r: r.kernel,
    "os": lambda r: r.os_image, "version": lambda r: r.kubelet_version,
    "runtime": lambda r: r.runtime, "role": lambda r: r.roles, "roles": lambda r: r.roles,
    "name": lambda r: r.name,
}
FILTER_HELP = ("name substring, label key or key=value, zone=/pool=/kernel=/os=/version=, "
               "notready unknown ready cordoned tainted pressure DiskPressure MemoryPressure "
               "PIDPressure net; !term negates; terms AND")


def _term(term: str) -> Callable[[NodeRecord], bool]:
    negate = term.startswith("!") and len(term) > 1
    if negate:
        term = term[1:]
    low = term.lower()
    if low in WORDS:
        test = WORDS[low]
    elif "=" in term:
        key, _, value = term.partition("=")
        vlow = value.lower()
        getter = FIELDS.get(key.lower())

        def test(r: NodeRecord, key=key, value=value, vlow=vlow, getter=getter) -> bool:
            labels = labels_of(r)
            if key in labels:
                return labels[key] == value
            if getter is not None:
                return getter(r).lower() == vlow
            return False
    else:
        def test(r: NodeRecord, term=term, low=low) -> bool:
            return low in r.name.lower() or term in labels_of(r)
    if negate:
        return lambda r: not test(r)
    return test


def compile_filter(text: str) -> Callable[[NodeRecord], bool] | None:
    terms = [_term(t) for t in text.split()]
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    return lambda r: all(t(r) for t in terms)


# -- grouping --------------------------------------------------------------------------------------

GROUPS: dict[str, tuple[str, Callable[[NodeRecord], str]]] = {
    "zone": ("zone", lambda r: r.zone),
    "pool": ("pool", lambda r: r.pool),
    "kernel": ("kernel", lambda r: r.kernel),
    "os": ("OS image", lambda r: r.os_image),
    "version": ("kubelet version", lambda r: r.kubelet_version),
}
GROUP_CYCLE: tuple[str | None, ...] = (None, "zone", "pool", "kernel", "os", "version")


# -- the model -------------------------------------------------------------------------------------

@dataclass(slots=True)
class Entry:
    rec: NodeRecord
    cells: dict[str, str]
    rank: int
    version: int = 0  # unique per update: what a cached line was drawn from
    seen: int = 0
    match: bool = True


@dataclass(slots=True)
class Group:
    key: str
    label: str  # what is grouped ("zone")
    total: int = 0
    not_ready: int = 0
    unknown: int = 0
    cordoned: int = 0

    @property
    def name(self) -> str:
        return f"\x00group:{self.key}"


Row = Entry | Group


@dataclass(slots=True)
class Counts:
    total: int = 0
    not_ready: int = 0
    unknown: int = 0
    cordoned: int = 0
    shown: int = 0


@dataclass
class FleetModel:
    """Nodes by name, plus what the rows look like. Not thread-safe: one thread applies and
    views."""

    entries: dict[str, Entry] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)
    sort: str = "status"
    reverse: bool = False
    group: str | None = None
    filter_text: str = ""
    connected: bool = True
    stale_since: float = 0.0  # when the API was lost (0: not stale)
    error: str = ""
    synced: bool = False  # the first full list has arrived
    listing: bool = False  # a (re)list is in progress
    generation: int = 0
    events_applied: int = 0  # node records, deletions and lease renewals applied
    _filter: Callable[[NodeRecord], bool] | None = None
    _rows: list[Row] = field(default_factory=list)
    _counts: Counts = field(default_factory=Counts)
    _order_dirty: bool = True
    _content_dirty: bool = True
    _widths: dict[str, int] = field(default_factory=dict)
    _serial: int = 0

    # -- events ------------------------------------------------------------------------------------
    def apply(self, events: Iterable[Any]) -> None:
        """Apply a batch of feed events (FleetEvent or anything with the same attributes)."""
        for event in events:
            kind = event.kind
            if kind == "upsert" or kind == "chunk":
                self.events_applied += len(event.nodes)
                for rec in event.nodes:
                    self._upsert(rec)
            elif kind == "delete":
                self.events_applied += len(event.names)
                for name in event.names:
                    if self.entries.pop(name, None) is not None:
                        self._order_dirty = True
                        self._widths = {}
                    self.leases.pop(name, None)
                    self.pods.pop(name, None)
            elif kind == "leases":
                self.events_applied += len(event.leases)
                self.leases.update(event.leases)
                self._content_dirty = True
                if self.sort == "lease":
                    self._order_dirty = True
            elif kind == "pods":
                # a complete count: a node missing from it runs no pods
                self.pods = {name: event.pods.get(name, 0) for name in self.entries}
                self.pods.update(event.pods)
                self._content_dirty = True
                if self.sort == "pods":
                    self._order_dirty = True
            elif kind == "reset":
                self.generation += 1
                self.listing = True
            elif kind == "synced":
                gen = self.generation
                gone = [name for name, e in self.entries.items() if e.seen != gen]
                if gone:
                    self._widths = {}
                for name in gone:
                    del self.entries[name]
                    self.leases.pop(name, None)
                    self.pods.pop(name, None)
                self.listing = False
                self.synced = True
                self._order_dirty = True
            elif kind == "connection":
                if event.connected:
                    self.connected = True
                    self.stale_since = 0.0
                    self.error = ""
                else:
                    if self.connected or not self.stale_since:
                        self.stale_since = event.at
                    self.connected = False
                    self.error = clean(event.error)
                self._content_dirty = True

    def _upsert(self, rec: NodeRecord) -> None:
        self._serial += 1
        entry = Entry(rec, static_cells(rec), READY_RANK.get(rec.ready, 1),
                      version=self._serial, seen=self.generation)
        entry.match = self._filter(rec) if self._filter else True
        self.entries[rec.name] = entry
        self._order_dirty = True
        widths = self._widths
        if widths:
            cells = entry.cells
            for cid in _STATIC_IDS:
                n = len(cells[cid])
                if n > widths[cid]:
                    widths[cid] = n

    # -- settings ----------------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text == self.filter_text:
            return
        self.filter_text = text
        self._filter = compile_filter(text)
        for entry in self.entries.values():
            entry.match = self._filter(entry.rec) if self._filter else True
        self._order_dirty = True

    def set_sort(self, column: str, reverse: bool | None = None) -> None:
        if column not in COLUMN_BY_ID:
            raise ValueError(f"unknown column {column!r}")
        self.sort = column
        if reverse is not None:
            self.reverse = reverse
        self._order_dirty = True

    def cycle_sort(self) -> str:
        i = SORT_ORDER.index(self.sort) if self.sort in SORT_ORDER else -1
        self.set_sort(SORT_ORDER[(i + 1) % len(SORT_ORDER)], reverse=False)
        return self.sort

    def toggle_reverse(self) -> None:
        self.reverse = not self.reverse
        self._order_dirty = True

    def set_group(self, group: str | None) -> None:
        if group is not None and group not in GROUPS:
            raise ValueError(f"unknown grouping {group!r}")
        self.group = group
        self._order_dirty = True

    def cycle_group(self) -> str | None:
        i = GROUP_CYCLE.index(self.group) if self.group in GROUP_CYCLE else 0
        self.set_group(GROUP_CYCLE[(i + 1) % len(GROUP_CYCLE)])
        return self.group

    # -- view --------------------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self._order_dirty or self._content_dirty

    def _sort_key(self) -> Callable[[Entry], Any]:
        col = self.sort
        leases, pods = self.leases, self.pods
        if col == "status":
            return lambda e: (e.rank, not e.rec.unschedulable, e.rec.name)
        if col == "name":
            return lambda e: e.rec.name
        if col == "lease":
            # oldest renewal first: the node that stopped renewing is the interesting one
            return lambda e: (e.rec.name not in leases, leases.get(e.rec.name, 0.0), e.rank,
                              e.rec.name)
        if col == "heartbeat":
            return lambda e: (e.rec.heartbeat, e.rank, e.rec.name)
        if col == "since":
            return lambda e: (-(getattr(e.rec, "ready_since", 0.0) or 0.0), e.rank, e.rec.name)
        if col == "pods":
            return lambda e: (-pods.get(e.rec.name, -1), e.rank, e.rec.name)
        if col == "taints":
            return lambda e: (-len(e.rec.taints) - e.rec.unschedulable, e.rank, e.rec.name)
        if col in ("pressure", "net"):
            # flagged first
            return lambda e: (e.cells[col].count("-") if col == "pressure"
                              else e.cells[col] != "down", e.rank, e.rec.name)
        return lambda e: (e.cells[col], e.rank, e.rec.name)

    def view(self) -> list[Row]:
        """The visible rows, recomputed only when membership or order may have changed."""
        if self._order_dirty:
            self._recompute()
            self._order_dirty = False
        self._content_dirty = False
        return self._rows

    @property
    def counts(self) -> Counts:
        if self._order_dirty:
            self.view()
        return self._counts

    @property
    def widths(self) -> dict[str, int]:
        """Widest static cell per column over every node (so widths do not jump on scroll or
        filter). Grows as nodes are updated; measured again after deletions."""
        if self._order_dirty:
            self.view()
        return self._widths

    def _measure(self) -> dict[str, int]:
        widths = {c.id: len(c.title) for c in COLUMNS}
        for entry in self.entries.values():
            cells = entry.cells
            for cid in _STATIC_IDS:
                n = len(cells[cid])
                if n > widths[cid]:
                    widths[cid] = n
        return widths

    def _recompute(self) -> None:
        counts = Counts()
        shown: list[Entry] = []
        if not self._widths:
            self._widths = self._measure()
        for entry in self.entries.values():
            counts.total += 1
            rank = entry.rank
            if rank == 0:
                counts.not_ready += 1
            elif rank == 1:
                counts.unknown += 1
            if entry.rec.unschedulable:
                counts.cordoned += 1
            if entry.match:
                shown.append(entry)
        counts.shown = len(shown)
        shown.sort(key=self._sort_key(), reverse=self.reverse)
        if self.group:
            label, getter = GROUPS[self.group]
            groups: dict[str, tuple[Group, list[Entry]]] = {}
            for entry in shown:
                key = clean(getter(entry.rec)) or "(none)"
                slot = groups.get(key)
                if slot is None:
                    slot = groups[key] = (Group(key, label), [])
                g, members = slot
                g.total += 1
                g.not_ready += entry.rank == 0
                g.unknown += entry.rank == 1
                g.cordoned += entry.rec.unschedulable
                members.append(entry)
            rows: list[Row] = []
            for g, members in sorted(groups.values(),
                                     key=lambda s: (-(s[0].not_ready + s[0].unknown), s[0].key)):
                rows.append(g)
                rows.extend(members)
            self._rows = rows
        else:
            self._rows = list(shown)
        self._counts = counts

    # -- cells that move with the clock or the side feeds -----------------------------------------
    def live_cells(self, entry: Entry, now: float) -> dict[str, str]:
        rec = entry.rec
        name = rec.name
        pods = self.pods.get(name)
        return {
            "since": age_text(getattr(rec, "ready_since", 0.0) or 0.0, now),
            "heartbeat": age_text(rec.heartbeat, now),
            "lease": age_text(self.leases.get(name, 0.0), now),
            "pods": f"{'?' if pods is None else pods}/{rec.pods_capacity}",
        }

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)


# -- column layout ---------------------------------------------------------------------------------

GAP = 1
ESSENTIAL = 4  # columns of this priority or better are always shown
FLEX_PREFERRED = 32
SHRINK_ORDER = ("reason", "status", "name", "zone", "pressure")
LIVE_WIDTH = {"since": 5, "heartbeat": 9, "lease": 5, "pods": 7}


def layout(width: int, natural: dict[str, int],
           keep: str | None = None) -> list[tuple[Column, int]]:
    """Which columns fit in `width` cells and how wide each is, kubectl -o wide style.

    Columns are taken in priority order at their natural width (the widest cell, capped) while
    they fit; the essential ones (name, status, reason, lease, pressure, zone) always, shrunk
    towards their narrowest if need be. `keep` (the sorted column) is always shown: to make room
    for it the least important optional columns give way. The flexible column (REASON) takes
    what is left over. The result is in display order.
    """
    def want(col: Column) -> int:
        nat = natural.get(col.id, LIVE_WIDTH.get(col.id, col.min))
        if col.flex:
            nat = min(nat, FLEX_PREFERRED)
        return max(col.min, min(col.max, nat))

    sizes: dict[str, int] = {}
    used = -GAP
    for col in sorted(COLUMNS, key=lambda c: c.priority):
        w = want(col)
        if col.priority <= ESSENTIAL or used + GAP + w <= width:
            sizes[col.id] = w
            used += GAP + w
        else:
            break
    if keep in COLUMN_BY_ID and keep not in sizes:
        w = want(COLUMN_BY_ID[keep])
        optional = sorted((cid for cid in sizes if COLUMN_BY_ID[cid].priority > ESSENTIAL),
                          key=lambda cid: COLUMN_BY_ID[cid].priority)
        while optional and used + GAP + w > width:
            used -= GAP + sizes.pop(optional.pop())
        sizes[keep] = w
        used += GAP + w
    over = used - width
    for cid in SHRINK_ORDER + ((keep,) if keep else ()):
        if over <= 0:
            break
        if cid in sizes:
            cut = min(over, sizes[cid] - COLUMN_BY_ID[cid].min)
            sizes[cid] -= cut
            over -= cut
    spare = width - (sum(sizes.values()) + GAP * (len(sizes) - 1))
    for cid, size in list(sizes.items()):
        col = COLUMN_BY_ID[cid]
        if col.flex and spare > 0:
            nat = max(col.min, min(col.max, natural.get(cid, col.min)))
            grow = min(spare, max(0, nat - size))
            sizes[cid] += grow
            spare -= grow
    return [(c, sizes[c.id]) for c in COLUMNS if c.id in sizes]
