"""The kubelet's /metrics reduced to the few figures nodewb plots and decides on.

Three steps:

1. `prefilter(payload)` keeps only the lines the figures are made from: the samples of the
   families below and their # TYPE lines, without the `_sum` lines (and the `_count` lines but
   PLEG's) nothing reads. One regular expression over the bytes; a 2 MB payload is mostly other
   families (workqueues, storage operations, API client detail) and is never decoded.
2. `parse(payload, at)` reads the kept lines with prometheus_client's text parser into a
   `Scrape`: sample name -> label text -> value. prometheus_client gives up on a whole text at
   its first bad line, so the kept lines are read one family block at a time, and a block that
   fails is read again line by line: a bad line costs itself (counted in `bad_lines`), not the
   scrape. Before that, the histograms lose the labels no figure groups them by (LABELS_READ:
   the API client's per-URL or per-host series, say) and their series are summed: the figures
   are the same, and prometheus_client, whose cost grows with the length of a line, reads less.
3. `reduce(prev, cur)` turns two scrapes into `KubeletSignals`: histogram quantiles from bucket
   increases between the scrapes (PromQL's histogram_quantile, linear in the bucket), rates per
   second, the time since the last PLEG relist, certificate TTL, goroutines, RSS, API client
   latency and errors. Without a previous scrape, or after a counter reset (a kubelet restart),
   quantiles come from the cumulative buckets instead and say so.

Every figure is a `Figure`: a value or None, with the family and method it came from, and why it
is missing when it is. Kubelets up to v1.14 export PLEG and runtime latency as microsecond
summaries (`*_latency_microseconds`); those are read when the histograms are absent, converted to
seconds, and labelled as summary quantiles over the kubelet's own sliding window.

Nothing here raises on bad input: HTML, JSON, truncated lines, NaN, huge numbers or bytes that are
not UTF-8 give a `Scrape` with `error`/`errors` set and figures that say they are missing.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "FAMILIES", "THRESHOLDS", "Scrape", "Figure", "KubeletSignals", "Histogram",
    "COUNTS_READ", "LABELS_READ", "prefilter", "parse", "project", "scrape_from_families",
    "reduce", "histogram_quantile", "parse_labels",
]

INF = float("inf")

# Families read (prefixes of sample names; `_bucket`/`_sum`/`_count`/`_total` follow them).
FAMILIES: tuple[str, ...] = (
    "kubelet_pleg_relist_duration_seconds",
    "kubelet_pleg_relist_interval_seconds",
    "kubelet_pleg_last_seen_seconds",
    "kubelet_pleg_discard_events",
    "kubelet_pleg_relist_latency_microseconds",  # v1.14 and older: summary, microseconds
    "kubelet_pleg_relist_interval_microseconds",  # v1.14 and older: summary, microseconds
    "kubelet_runtime_operations",  # _duration_seconds, _errors_total, _total, _latency_microseconds
    # _ttl_seconds, _expiration_renew_errors, _expiration_seconds
    "kubelet_certificate_manager_client_",
    "go_goroutines",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "rest_client_request_duration_seconds",
    "rest_client_request_latency_seconds",  # v1.14 and older
    "rest_client_requests_total",
    "kubernetes_build_info",
)

# The only `_count` samples a figure reads (relist rate, restart detection); every other
# `_count` and every `_sum` is left out by the pre-filter.
COUNTS_READ: tuple[str, ...] = (
    "kubelet_pleg_relist_duration_seconds_count",
    "kubelet_pleg_relist_latency_microseconds_count",
)

# The labels the figures group each histogram by (its quantiles are taken over the sum of the
# series by these labels). The others (`url`, `host`...) are stripped before the parse and the
# series that then share their labels are summed.
LABELS_READ: dict[str, tuple[str, ...]] = {
    "kubelet_pleg_relist_duration_seconds": ("le",),
    "kubelet_pleg_relist_interval_seconds": ("le",),
    "kubelet_runtime_operations_duration_seconds": ("operation_type", "le"),
    "rest_client_request_duration_seconds": ("verb", "le"),
    "rest_client_request_latency_seconds": ("verb", "le"),
}

# The runbooks' warning levels for these signals.
THRESHOLDS: dict[str, float] = {
    "pleg_relist_p99": 10.0,  # seconds; the runbook's band is 10-30 s
    "pleg_relist_age": 180.0,  # seconds; PLEG is unhealthy after 3 minutes without a relist
    "runtime_list_p99": 5.0,  # seconds, list operations
    "cert_ttl": 7 * 86400.0,  # seconds
    "cert_renew_errors": 0.0,  # any
    "rss": 500e6,  # bytes
    "goroutines": 500.0,
    "rest_p99": 5.0,  # seconds
    "rest_5xx_rate": 0.0,  # per second, any
}

MAX_ERRORS_KEPT = 20
MAX_GZIP = 64 << 20


# -- step 1: the pre-filter ------------------------------------------------------------------------
def _keep_pattern() -> re.Pattern[bytes]:
    fams = b"|".join(re.escape(f.encode()) for f in FAMILIES)
    counts = b"|".join(re.escape(c.encode()) for c in COUNTS_READ)
    # Anchored on the newline before each line, so the engine jumps from line to line; the
    # look-ahead runs only on lines of our families.
    return re.compile(rb"\n(# TYPE (?:" + fams + rb")[^\n]*|(?:" + counts + rb")[{ \t][^\n]*|(?:"
                      + fams + rb")(?![a-zA-Z0-9_:]*_(?:sum|count)[{ \t])[^\n]*)")


_KEEP = _keep_pattern()


def _strip_pattern(keep: tuple[str, ...]) -> re.Pattern[bytes]:
    """A label pair whose name is not in `keep`, with the comma after it (a trailing comma
    left before the `}` is allowed)."""
    names = b"|".join(re.escape(k.encode()) for k in keep)
    return re.compile(rb'(?<=[{,])(?!(?:' + names + rb')=")[a-zA-Z_][a-zA-Z0-9_]*="'
                      rb'(?:[^"\\\n]|\\.)*",?')


_STRIP = {family: _strip_pattern(keep) for family, keep in LABELS_READ.items()}


def project(family: str, labels: dict[str, str]) -> dict[str, str]:
    """The labels of a `family` series that the parse keeps (all but for the histograms of
    LABELS_READ)."""
    keep = LABELS_READ.get(family)
    return labels if keep is None else {k: v for k, v in labels.items() if k in keep}


def prefilter(payload: bytes) -> list[bytes]:
    """The lines of `payload` the figures are read from (samples of FAMILIES and their # TYPE
    lines, without the `_sum`/`_count` lines nothing reads)."""
    return _KEEP.findall(b"\n" + payload)


# -- step 2: parsing -------------------------------------------------------------------------------
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"')
_UNESCAPE = re.compile(r'\\(.)')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1),
                                                                        "\\" + m.group(1)), value)


def _escape(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def parse_labels(text: str) -> dict[str, str]:
    """Label text in a Scrape's canonical form (`a="x",b="y"`, escapes allowed) -> {name: value}."""
    return dict(_pairs(text))


@lru_cache(maxsize=1 << 16)
def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, _unescape(v)) for k, v in _PAIR.findall(text))


def _label_text(labels: dict[str, str]) -> str:
    """prometheus_client's labels in canonical text, in the order printed."""
    if not labels:
        return ""
    return ",".join([f'{k}="{_escape(v)}"' for k, v in labels.items()])


@dataclass(slots=True)
class Scrape:
    """One /metrics read: when, and the samples of FAMILIES found in it.

    `samples` maps a sample name (`kubelet_pleg_relist_duration_seconds_bucket`) to the series'
    label text in canonical form (`le="0.005"`, or `operation_type="status",le="0.005"`; "" for
    none) to the value. The histograms of LABELS_READ hold their series summed by the labels
    listed there. `at` is when it was read, on the local clock (epoch seconds);
    `node_time` is the node's own clock at that moment when the caller knows it."""

    at: float
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # family -> counter|gauge|histogram|...
    error: str = ""  # why nothing usable came out of the payload ("" when it parsed)
    errors: list[str] = field(default_factory=list)  # per-line problems (the first few)
    bad_lines: int = 0
    size: int = 0  # bytes of payload
    kept: int = 0  # lines the pre-filter kept
    node_time: float | None = None
    parse_seconds: float = 0.0
    _hists: dict[str, dict[str, Histogram]] = field(default_factory=dict, repr=False,
                                                      compare=False)
    _grouped: dict[tuple, dict[tuple, Histogram]] = field(default_factory=dict, repr=False,
                                                             compare=False)

    @property
    def ok(self) -> bool:
        return not self.error

    def has(self, name: str) -> bool:
        return bool(self.samples.get(name))

    def declared(self, name: str) -> bool:
        """The payload has samples of `name`, or declares its family (# TYPE) with none yet:
        a Go counter vector that has counted nothing prints only its HELP and TYPE lines."""
        if self.samples.get(name):
            return True
        for suffix in ("", "_total", "_count", "_sum", "_bucket"):
            if suffix and name.endswith(suffix) and name[:-len(suffix)] in self.types:
                return True
        return name in self.types

    def value(self, name: str, labels: str = "") -> float | None:
        """One sample's value, None when absent."""
        series = self.samples.get(name)
        if not series:
            return None
        return series.get(labels)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every series of a sample name as (labels, value)."""
        return [(parse_labels(raw), v) for raw, v in (self.samples.get(name) or {}).items()]

    def histograms(self, family: str, by: Sequence[str] | None = None) -> dict[tuple, Histogram]:
        """The histogram series of `family`, keyed by label text without `le`, or summed by
        the label names in `by` (a key of their values, `()` for everything summed)."""
        return _histograms(self, family, by)

    def version(self) -> str:
        for raw, _ in (self.samples.get("kubernetes_build_info") or {}).items():
            labels = parse_labels(raw)
            return labels.get("git_version") or labels.get("gitVersion") or ""
        return ""


def parse(payload: bytes | bytearray | str | None, at: float | None = None, *,
          node_time: float | None = None) -> Scrape:
    """Read a /metrics payload into a Scrape. Never raises: problems land in `error`/`errors`."""
    started = time.perf_counter()
    scrape = Scrape(at=time.time() if at is None else float(at), node_time=node_time)
    try:
        _parse_into(scrape, payload)
    except Exception as err:  # a bug here must not take the caller down with it
        scrape.samples = {}
        scrape.error = f"the metrics payload could not be read: {type(err).__name__}: {err}"
    scrape.parse_seconds = time.perf_counter() - started
    return scrape


def scrape_from_families(families: Iterable[Any], at: float, *,
                         node_time: float | None = None) -> Scrape:
    """A Scrape of the FAMILIES samples in prometheus_client metric families (a full parse of a
    payload, say), named as prometheus_client names them: a counter's samples end in `_total`."""
    scrape = Scrape(at=float(at), node_time=node_time)
    for metric in families:
        if metric.name.startswith(FAMILIES):
            scrape.types[metric.name] = metric.type
        _add_samples(scrape, metric, "", strict=False)
    if not scrape.samples:
        scrape.error = "no kubelet families in the parsed payload"
    return scrape


def _describe(payload: bytes) -> str:
    head = payload[:200].lstrip()
    low = head[:64].lower()
    if low.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "an HTML page, not Prometheus text"
    if low.startswith((b"{", b"[")):
        return "JSON, not Prometheus text"
    if not payload.strip():
        return "empty"
    first = head.split(b"\n", 1)[0][:80].decode("utf-8", "replace")
    return f"no kubelet families in it (first line: {first!r})"


def _parse_into(scrape: Scrape, payload: bytes | bytearray | str | None) -> None:
    if payload is None:
        scrape.error = "no payload"
        return
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    payload = bytes(payload)
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = _gunzip(payload)
        except (OSError, EOFError, zlib.error, ValueError) as err:
            scrape.size = len(payload)
            scrape.error = f"the payload is gzip that does not decompress: {err}"
            return
    scrape.size = len(payload)
    lines = prefilter(payload)
    scrape.kept = len(lines)
    if not lines:
        scrape.error = f"the payload ({len(payload)} bytes) is {_describe(payload)}"
        return
    for declared, block in _blocks(scrape, lines):
        _read_block(scrape, declared, block)
    if not scrape.samples:
        scrape.error = (f"none of the {scrape.bad_lines} kubelet lines in the payload could be "
                        f"read (first: {scrape.errors[0] if scrape.errors else '?'})"
                        if scrape.bad_lines else
                        f"the payload ({len(payload)} bytes) is {_describe(payload)}")


def _blocks(scrape: Scrape, lines: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """The kept lines cut into family blocks, each from its # TYPE line (the lines before the
    first # TYPE make a block of their own), with the type each declares noted in `scrape`."""
    out: list[tuple[str, list[bytes]]] = []
    declared = ""
    current: list[bytes] = []
    for line in lines:
        if line[:1] == b"#":  # the pre-filter keeps no comment but `# TYPE <our family> ...`
            if current:
                out.append((declared, current))
            current = [line]
            parts = line.decode("utf-8", "replace").split()
            declared = parts[2]
            if len(parts) == 4:
                scrape.types[declared] = parts[3]
        else:
            current.append(line)
    if current:
        out.append((declared, current))
    return out


def _read_block(scrape: Scrape, declared: str, lines: list[bytes]) -> None:
    """One family block through prometheus_client; line by line when the block as a whole
    fails, so that only the bad lines are lost."""
    # prometheus_client names the samples of a counter printed without `_total` NAME_total
    bare = declared if scrape.types.get(declared) == "counter" and \
        not declared.endswith("_total") else ""
    raw = b"\n".join(lines)
    strip = _STRIP.get(declared) if scrape.types.get(declared) == "histogram" else None
    if strip is not None:
        raw = strip.sub(b"", raw)
        lines = raw.split(b"\n")
    summed = strip is not None
    try:
        metrics = list(text_string_to_metric_families(raw.decode("utf-8")))
    except Exception:  # prometheus_client raises ValueError, and others on odd input
        metrics = None
    if metrics is not None:
        for metric in metrics:
            _add_samples(scrape, metric, bare, summed=summed)
        return
    for line in lines:
        if line[:1] == b"#":
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            _line_error(scrape, f"not UTF-8 at byte {err.start}", line[:160])
            continue
        try:
            metrics = list(text_string_to_metric_families(text))
        except Exception as err:
            _line_error(scrape, f"not a sample line ({str(err)[:60] or type(err).__name__})",
                        text)
            continue
        for metric in metrics:
            _add_samples(scrape, metric, "", summed=summed)


_NAMES_SEEN: set[str] = set()


def _add_samples(scrape: Scrape, metric: Any, bare_counter: str, strict: bool = True,
                 summed: bool = False) -> None:
    """`summed`: samples that share name and labels add up (labels were stripped), rather than
    the last one printed standing."""
    samples = scrape.samples
    renamed = bare_counter + "_total" if bare_counter and metric.type == "counter" else None
    for s in metric.samples:
        name = s.name
        if name == renamed:
            name = bare_counter
        if name not in _NAMES_SEEN:
            if not (_NAME.fullmatch(name) and name.startswith(FAMILIES)):
                if strict:  # prometheus_client does not check a name followed by labels
                    _line_error(scrape, "not a metric name", f"{name}{s.labels} {s.value}")
                continue
            if len(_NAMES_SEEN) > 10_000:
                _NAMES_SEEN.clear()
            _NAMES_SEEN.add(name)
        value = s.value
        if type(value) is not float:
            try:
                value = float(value)
            except OverflowError:  # an integer past float's range, as the Go parser reads it
                value = INF if value > 0 else -INF
        series = samples.get(name)
        if series is None:
            samples[name] = series = {}
        key = _label_text(s.labels)
        if summed:
            if value != value and name.endswith("_bucket"):
                continue  # a NaN bucket adds nothing to the sum, as a series would skip it
            if key in series:
                series[key] += value
                continue
        series[key] = value


def _gunzip(data: bytes) -> bytes:
    out = zlib.decompressobj(16 + zlib.MAX_WBITS)
    body = out.decompress(data, MAX_GZIP)
    if out.unconsumed_tail:
        raise ValueError(f"more than {MAX_GZIP} bytes once decompressed")
    if not out.eof:
        raise ValueError("the gzip stream is cut short")
    return body


def _line_error(scrape: Scrape, what: str, line: str | bytes) -> None:
    scrape.bad_lines += 1
    if len(scrape.errors) < MAX_ERRORS_KEPT:
        shown = line if isinstance(line, str) else line.decode("utf-8", "replace")
        scrape.errors.append(f"{what}: {shown[:160]!r}")


# -- histograms and quantiles ----------------------------------------------------------------------
@dataclass(slots=True)
class Histogram:
    """Cumulative buckets [(le, count)] sorted by le, with +Inf last when present."""

    buckets: list[tuple[float, float]]
    sum: float | None = None
    count: float | None = None

    @property
    def total(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def complete(self) -> bool:
        return bool(self.buckets) and self.buckets[-1][0] == INF


_SPLIT: dict[str, tuple[str, float] | None] = {}


def _split_le(raw: str) -> tuple[str, float] | None:
    """'operation_type="x",le="0.5"' -> ('operation_type="x"', 0.5); None without a usable le.
    Remembered per text, since a kubelet prints the same bucket labels on every scrape."""
    try:
        return _SPLIT[raw]
    except KeyError:
        pass
    out: tuple[str, float] | None = None
    le_text: str | None
    i = raw.rfind('le="')
    if (i == 0 or (i > 0 and raw[i - 1] == ",")) and raw.find('"', i + 4) == len(raw) - 1:
        le_text, rest = raw[i + 4:-1], raw[:i - 1] if i > 0 else ""
    else:
        labels = parse_labels(raw)
        le_text = labels.pop("le", None)
        rest = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    if le_text is not None:
        try:
            le = float(le_text)
        except ValueError:
            le = math.nan
        if le == le:
            out = (rest, le)
    if len(_SPLIT) > 200_000:
        _SPLIT.clear()
    _SPLIT[raw] = out
    return out


def _series_histograms(scrape: Scrape, family: str) -> dict[str, Histogram]:
    """Each series of a histogram family by its label text without le."""
    cache = scrape._hists
    found = cache.get(family)
    if found is not None:
        return found
    raw_buckets = scrape.samples.get(family + "_bucket") or {}
    per: dict[str, list[tuple[float, float]]] = {}
    split = _split_le
    for raw, count in raw_buckets.items():
        parts = split(raw)
        if parts is None or count != count:
            continue
        rest, le = parts
        acc = per.get(rest)
        if acc is None:
            per[rest] = acc = []
        acc.append((le, count))
    sums = scrape.samples.get(family + "_sum") or {}
    counts = scrape.samples.get(family + "_count") or {}
    found = {rest: Histogram(sorted(acc), sums.get(rest), counts.get(rest))
             for rest, acc in per.items()}
    cache[family] = found
    return found


def _histograms(scrape: Scrape, family: str, by: Sequence[str] | None) -> dict[tuple, Histogram]:
    key_ = (family, tuple(by) if by is not None else None)
    done = scrape._grouped.get(key_)
    if done is None:
        done = scrape._grouped[key_] = _group(scrape, family, by)
    return done


def _group(scrape: Scrape, family: str, by: Sequence[str] | None) -> dict[tuple, Histogram]:
    series = _series_histograms(scrape, family)
    if by is None:
        return {(rest,): h for rest, h in series.items()}
    grouped: dict[tuple, list[Histogram]] = {}
    for rest, h in series.items():
        if by:
            labels = parse_labels(rest)
            key = tuple(labels.get(k, "") for k in by)
        else:
            key = ()
        grouped.setdefault(key, []).append(h)
    out: dict[tuple, Histogram] = {}
    for key, hists in grouped.items():
        if len(hists) == 1:
            out[key] = hists[0]
            continue
        acc: dict[float, float] = {}
        total_sum = total_count = 0.0
        have_sum = have_count = True
        for h in hists:  # sum by (le), as PromQL does: a series lacking an le adds nothing there
            for le, c in h.buckets:
                acc[le] = acc.get(le, 0.0) + c
            if h.sum is None:
                have_sum = False
            else:
                total_sum += h.sum
            if h.count is None:
                have_count = False
            else:
                total_count += h.count
        out[key] = Histogram(sorted(acc.items()), total_sum if have_sum else None,
                             total_count if have_count else None)
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """PromQL's histogram_quantile on cumulative buckets [(le, count)]: NaN when it has no
    answer (no +Inf bucket, fewer than two buckets, no observations)."""
    return _quantile(q, buckets)[0]


def _quantile(q: float, buckets: Sequence[tuple[float, float]]) -> tuple[float, bool]:
    """(value, beyond): `beyond` when the rank falls in the +Inf bucket, so the value returned
    (the last finite bound, as Prometheus does) is a lower bound."""
    if q != q:
        return math.nan, False
    if q < 0:
        return -INF, False
    if q > 1:
        return INF, False
    b = sorted(buckets)
    if len(b) < 2 or b[-1][0] != INF:
        return math.nan, False
    # ensure monotonic, as Prometheus does for buckets scraped at slightly different moments
    fixed: list[tuple[float, float]] = []
    top = 0.0
    for le, c in b:
        if c != c:
            return math.nan, False
        top = max(top, c)
        fixed.append((le, top))
    total = fixed[-1][1]
    if total <= 0:
        return math.nan, False
    rank = q * total
    idx = len(fixed) - 1
    for i in range(len(fixed) - 1):
        if fixed[i][1] >= rank:
            idx = i
            break
    if idx == len(fixed) - 1:
        return fixed[-2][0], True
    if idx == 0 and fixed[0][0] <= 0:
        return fixed[0][0], False
    start = 0.0 if idx == 0 else fixed[idx - 1][0]
    below = 0.0 if idx == 0 else fixed[idx - 1][1]
    end, at = fixed[idx]
    inside = at - below
    if inside <= 0:
        return end, False
    return start + (end - start) * ((rank - below) / inside), False


# -- step 3: the figures ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Figure:
    """One number nodewb shows: the value or None, its unit, where it came from, and why it is
    missing (or a caveat). `bound` is ">=" when a quantile fell beyond the last finite bucket
    (the value is the bucket's bound: the truth is at least that), "<=" for an upper bound."""

    value: float | None
    unit: str
    source: str
    why: str = ""
    bound: str = ""

    @property
    def missing(self) -> bool:
        return self.value is None

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        v = self.value
        if self.unit == "s":
            shown = _seconds(v)
        elif self.unit == "bytes":
            shown = f"{v / 2**20:.0f} MiB"
        elif self.unit == "/s":
            shown = f"{v:.3g}/s"
        elif self.unit == "cores":
            shown = f"{v:.2f} cores"
        else:
            shown = f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"
        return f"{self.bound}{shown}" if self.bound else shown

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(v: float) -> str:
    a = abs(v)
    if a >= 2 * 86400:
        return f"{v / 86400:.1f}d"
    if a >= 7200:
        return f"{v / 3600:.1f}h"
    if a >= 120:
        return f"{v / 60:.1f}m"
    if a >= 1:
        return f"{v:.2f}s"
    return f"{v * 1000:.1f}ms"


def _missing(unit: str, source: str, why: str) -> Figure:
    return Figure(None, unit, source, why)


@dataclass(slots=True)
class KubeletSignals:
    """What one scrape (and the one before it) says about a kubelet."""

    at: float
    interval: float | None  # seconds since the previous scrape; None without one
    basis: str  # "between scrapes" | "since kubelet start: ..." (why no deltas)
    restarted: bool  # counters went down (or the start time moved): the kubelet restarted
    version: str
    pleg_relist_p50: Figure
    pleg_relist_p99: Figure
    pleg_interval_p99: Figure
    pleg_last_relist_age: Figure
    pleg_relist_rate: Figure
    pleg_discard_rate: Figure
    runtime_p50: dict[str, Figure]
    runtime_p99: dict[str, Figure]
    runtime_error_rate: dict[str, Figure]
    runtime_op_rate: dict[str, Figure]
    cert_ttl: Figure
    cert_renew_errors: Figure
    goroutines: Figure
    rss: Figure
    cpu: Figure
    rest_p99: Figure
    rest_p99_by_verb: dict[str, Figure]
    rest_5xx_rate: Figure
    rest_error_rate: Figure  # transport errors (code "<error>"): timeouts, refused, resets
    rest_request_rate: Figure
    clock_offset: Figure  # node clock minus local clock, when the scrapes reveal it
    error: str = ""
    errors: list[str] = field(default_factory=list)  # the first few unreadable lines
    bad_lines: int = 0  # lines of the families read that could not be read

    def figures(self) -> dict[str, Figure]:
        """Every figure by a flat name (`runtime_p99.list_podsandbox` for the per-op ones)."""
        out: dict[str, Figure] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Figure):
                out[name] = value
            elif isinstance(value, dict):
                for key, fig in value.items():
                    if isinstance(fig, Figure):
                        out[f"{name}.{key}"] = fig
        return out

    def summary(self) -> str:
        """The headline figures on one line, then the thresholds crossed ("no figures" when the
        scrape had none)."""
        parts = [f"{label} {fig.text()}" for label, fig in (
            ("PLEG p99", self.pleg_relist_p99), ("last relist", self.pleg_last_relist_age),
            ("goroutines", self.goroutines), ("RSS", self.rss), ("cert TTL", self.cert_ttl))
            if fig.value is not None]
        text = ", ".join(parts) or "no figures"
        breaches = self.breaches()
        return text + (" | " + "; ".join(breaches) if breaches else "")

    def breaches(self) -> list[str]:
        """The runbook thresholds these figures cross, worded for a person."""
        t = THRESHOLDS
        out: list[str] = []

        def over(fig: Figure, limit: float) -> bool:
            if fig.value is None:
                return False
            return fig.value > limit or (fig.bound == ">=" and fig.value >= limit)

        if over(self.pleg_relist_p99, t["pleg_relist_p99"]):
            out.append(f"PLEG relist p99 {self.pleg_relist_p99.text()} (warning above "
                       f"{t['pleg_relist_p99']:.0f} s)")
        if over(self.pleg_last_relist_age, t["pleg_relist_age"]):
            out.append(f"no PLEG relist for {self.pleg_last_relist_age.text()} (PLEG is "
                       f"unhealthy after 3 min)")
        for op, fig in sorted(self.runtime_p99.items()):
            if op.startswith("list_") and over(fig, t["runtime_list_p99"]):
                out.append(f"runtime {op} p99 {fig.text()} (warning above "
                           f"{t['runtime_list_p99']:.0f} s)")
        if self.cert_ttl.value is not None and self.cert_ttl.value < t["cert_ttl"]:
            out.append("client certificate " + (
                f"expired {_seconds(-self.cert_ttl.value)} ago" if self.cert_ttl.value <= 0
                else f"expires in {self.cert_ttl.text()} (warning below 7 days)"))
        if over(self.cert_renew_errors, t["cert_renew_errors"]):
            out.append(f"{self.cert_renew_errors.text()} client certificate renewal errors")
        if over(self.rss, t["rss"]):
            out.append(f"kubelet RSS {self.rss.text()} (warning above 500 MB)")
        if over(self.goroutines, t["goroutines"]):
            out.append(f"{self.goroutines.text()} goroutines (warning above 500)")
        if over(self.rest_p99, t["rest_p99"]):
            out.append(f"API client p99 {self.rest_p99.text()} (warning above 5 s)")
        if over(self.rest_5xx_rate, t["rest_5xx_rate"]):
            out.append(f"API client 5xx answers at {self.rest_5xx_rate.text()}")
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Figure):
                out[name] = value.as_dict()
            elif isinstance(value, dict):
                out[name] = {k: f.as_dict() for k, f in value.items()}
            else:
                out[name] = value
        out["breaches"] = self.breaches()
        return out


class _Window:
    """The two scrapes a reduction looks at, and how to take differences between them."""

    def __init__(self, prev: Scrape | None, cur: Scrape) -> None:
        self.cur = cur
        self.prev = prev if prev is not None and prev.ok and prev.at < cur.at else None
        self.interval = cur.at - self.prev.at if self.prev is not None else None
        self.restarted = False
        self.why_cumulative = ""
        if prev is None:
            self.why_cumulative = "no previous scrape"
        elif not prev.ok:
            self.why_cumulative = "the previous scrape could not be read"
        elif prev.at >= cur.at:
            self.why_cumulative = "the previous scrape is not older than this one"
        elif self._reset():
            self.restarted = True
            self.why_cumulative = "counters reset (the kubelet restarted)"
            self.prev = None

    def _reset(self) -> bool:
        assert self.prev is not None
        a = self.prev.value("process_start_time_seconds")
        b = self.cur.value("process_start_time_seconds")
        if a is not None and b is not None and abs(b - a) > 1.0:
            return True
        for name in ("kubelet_pleg_relist_duration_seconds_count", "process_cpu_seconds_total",
                     "kubelet_pleg_relist_latency_microseconds_count"):
            a, b = self.prev.value(name), self.cur.value(name)
            if a is not None and b is not None and b < a:
                return True
        return False

    @property
    def basis(self) -> str:
        if self.prev is not None:
            return "between scrapes"
        return f"since kubelet start: {self.why_cumulative}"

    # -- histograms --
    def quantiles(self, family: str, qs: Sequence[float], by: Sequence[str] | None,
                  what: str) -> dict[tuple, list[Figure]]:
        cur = self.cur.histograms(family, by)
        prev = self.prev.histograms(family, by) if self.prev is not None else {}
        out: dict[tuple, list[Figure]] = {}
        for key, hist in cur.items():
            before = prev.get(key)
            buckets, how = hist.buckets, ""
            if self.prev is None:
                how = f"{family} histogram, cumulative ({self.basis})"
            elif before is None:
                how = f"{family} histogram, new series: all of it since the last scrape"
            else:
                les_a = [le for le, _ in before.buckets]
                les_b = [le for le, _ in buckets]
                if les_a == les_b and all(cb >= ca for (_, ca), (_, cb)
                                          in zip(before.buckets, buckets, strict=False)):
                    buckets = [(le, cb - ca) for (le, ca), (_, cb)
                               in zip(before.buckets, buckets, strict=False)]
                    how = f"{family} histogram, increase over {self.interval:.1f} s"
                else:
                    how = (f"{family} histogram, cumulative (this series reset or changed "
                           f"buckets since the last scrape)")
            figs = []
            for q in qs:
                figs.append(_quantile_figure(q, buckets, how, what, self.interval
                                             if self.prev is not None and before is not None
                                             else None))
            out[key] = figs
        return out

    # -- counters --
    def rate(self, name: str, labels_filter=None, unit: str = "/s", what: str = "",
             absent_is_zero: str = "") -> Figure:
        """The per-second increase of a counter's series (those `labels_filter` accepts).
        `absent_is_zero` names the counter to report when the family is missing: the Go client
        prints nothing at all for a counter vector that has not counted yet."""
        name = name or absent_is_zero
        source = f"{name} rate"
        if not self.cur.declared(name) and not absent_is_zero:
            return _missing(unit, source, f"the kubelet does not export {name}")
        if self.prev is None:
            return _missing(unit, source, f"a rate needs two scrapes ({self.why_cumulative})")
        total = 0.0
        prev_series = self.prev.samples.get(name) or {}
        seen = False
        for raw, v in (self.cur.samples.get(name) or {}).items():
            if labels_filter is not None and not labels_filter(raw):
                continue
            seen = True
            before = prev_series.get(raw, 0.0)
            if v != v or before != before:
                continue
            total += v - before if v >= before else v
        assert self.interval is not None
        if not seen:
            return Figure(0.0, unit, f"{source} over {self.interval:.1f} s",
                          f"no {what or 'matching'} series: none counted since the kubelet "
                          f"started")
        return Figure(total / self.interval, unit, f"{source} over {self.interval:.1f} s")


def _quantile_figure(q: float, buckets: Sequence[tuple[float, float]], how: str, what: str,
                     interval: float | None) -> Figure:
    source = f"p{q * 100:g} from {how}"
    if not buckets or buckets[-1][0] != INF:
        return _missing("s", source, "the histogram has no +Inf bucket (truncated payload?)")
    if buckets[-1][1] <= 0:
        if interval is not None:
            return _missing("s", source, f"no {what} finished in the {interval:.0f} s between "
                                         f"scrapes")
        return _missing("s", source, f"no {what} recorded yet")
    value, beyond = _quantile(q, buckets)
    if value != value or value in (INF, -INF):
        return _missing("s", source, "the buckets give no quantile")
    if beyond:
        return Figure(value, "s", source, f"beyond the last finite bucket ({value:g} s): at "
                                          f"least that", ">=")
    return Figure(value, "s", source)


def _summary_figure(scrape: Scrape, family: str, q: str, labels_prefix: str = "",
                    scale: float = 1e-6) -> Figure | None:
    """A quantile of an old microsecond summary, in seconds; None when the family is absent."""
    series = scrape.samples.get(family)
    if not series:
        return None
    key = (labels_prefix + "," if labels_prefix else "") + f'quantile="{q}"'
    source = (f"p{float(q) * 100:g} from the {family} summary (microseconds, over the "
              f"kubelet's own sliding window; not between scrapes)")
    v = series.get(key)
    if v is None:
        return _missing("s", source, f"the summary has no quantile {q}")
    if v != v:
        return _missing("s", source, "no observations in the summary's window (NaN)")
    return Figure(v * scale, "s", source)


def _gauge(scrape: Scrape, name: str, unit: str, alt: Iterable[str] = ()) -> Figure:
    for n in (name, *alt):
        v = scrape.value(n)
        if v is not None:
            if v != v:
                return _missing(unit, f"{n} gauge", "the kubelet reports NaN")
            return Figure(v, unit, f"{n} gauge")
    return _missing(unit, f"{name} gauge", f"the kubelet does not export {name}")


def _op_of(key: tuple) -> str:
    return key[0] if key else ""


def reduce(prev: Scrape | None, cur: Scrape) -> KubeletSignals:
    """The figures between two scrapes of one kubelet (or of one, when `prev` is None)."""
    try:
        return _reduce(prev, cur)
    except Exception as err:  # never let a surprise in one payload take down the caller
        failed = Scrape(at=cur.at, error=f"reducing the scrape failed: {type(err).__name__}: "
                                         f"{err}")
        return _reduce(None, failed)


def _reduce(prev: Scrape | None, cur: Scrape) -> KubeletSignals:
    if not cur.ok:
        why = cur.error or "no payload"
        none = lambda unit, src: _missing(unit, src, why)  # noqa: E731
        return KubeletSignals(
            at=cur.at, interval=None, basis="no data", restarted=False, version="",
            pleg_relist_p50=none("s", "PLEG relist"), pleg_relist_p99=none("s", "PLEG relist"),
            pleg_interval_p99=none("s", "PLEG interval"),
            pleg_last_relist_age=none("s", "kubelet_pleg_last_seen_seconds"),
            pleg_relist_rate=none("/s", "PLEG relists"),
            pleg_discard_rate=none("/s", "kubelet_pleg_discard_events"),
            runtime_p50={}, runtime_p99={}, runtime_error_rate={}, runtime_op_rate={},
            cert_ttl=none("s", "client certificate TTL"),
            cert_renew_errors=none("count", "renew errors"), goroutines=none("count", "go"),
            rss=none("bytes", "process"), cpu=none("cores", "process"),
            rest_p99=none("s", "rest client"), rest_p99_by_verb={},
            rest_5xx_rate=none("/s", "rest client"), rest_error_rate=none("/s", "rest client"),
            rest_request_rate=none("/s", "rest client"),
            clock_offset=none("s", "clock"), error=why, errors=list(cur.errors),
            bad_lines=cur.bad_lines)
    w = _Window(prev, cur)

    # PLEG relist duration: histogram, else the old summary
    fam = "kubelet_pleg_relist_duration_seconds"
    if cur.has(fam + "_bucket"):
        figs = w.quantiles(fam, (0.5, 0.99), (), "relist").get((), None)
        if figs is None:
            figs = [_missing("s", fam, "no readable buckets")] * 2
        p50, p99 = figs
    else:
        old = "kubelet_pleg_relist_latency_microseconds"
        p50 = _summary_figure(cur, old, "0.5") or _missing("s", fam, "the kubelet exports "
                                                                     "neither the relist "
                                                                     "histogram nor the old "
                                                                     "summary")
        p99 = _summary_figure(cur, old, "0.99") or p50
    fam_i = "kubelet_pleg_relist_interval_seconds"
    if cur.has(fam_i + "_bucket"):
        interval_p99 = (w.quantiles(fam_i, (0.99,), (), "relist").get(()) or
                        [_missing("s", fam_i, "no readable buckets")])[0]
    else:
        interval_p99 = _summary_figure(cur, "kubelet_pleg_relist_interval_microseconds", "0.99") \
            or _missing("s", fam_i, f"the kubelet does not export {fam_i}")

    age, offset = _relist_age(w)
    if cur.has(fam + "_count"):
        relist_rate = w.rate(fam + "_count", what="relist")
    else:
        relist_rate = w.rate("kubelet_pleg_relist_latency_microseconds_count", what="relist")
    discard_name = "kubelet_pleg_discard_events" if cur.has("kubelet_pleg_discard_events") \
        else "kubelet_pleg_discard_events_total"
    discard = w.rate(discard_name)

    # runtime operations per operation_type
    runtime_p50: dict[str, Figure] = {}
    runtime_p99: dict[str, Figure] = {}
    rfam = "kubelet_runtime_operations_duration_seconds"
    if cur.has(rfam + "_bucket"):
        for key, (f50, f99) in w.quantiles(rfam, (0.5, 0.99), ("operation_type",),
                                           "call").items():
            runtime_p50[_op_of(key)], runtime_p99[_op_of(key)] = f50, f99
    else:
        old = "kubelet_runtime_operations_latency_microseconds"
        for raw in cur.samples.get(old) or {}:
            labels = parse_labels(raw)
            op = labels.get("operation_type")
            if op is None or op in runtime_p99:
                continue
            prefix = f'operation_type="{_escape(op)}"'
            runtime_p50[op] = _summary_figure(cur, old, "0.5", prefix) or \
                _missing("s", old, "absent")
            runtime_p99[op] = _summary_figure(cur, old, "0.99", prefix) or \
                _missing("s", old, "absent")
    err_name = _first_present(cur, "kubelet_runtime_operations_errors_total",
                              "kubelet_runtime_operations_errors")
    ops_name = _first_present(cur, "kubelet_runtime_operations_total",
                              "kubelet_runtime_operations")
    ops = sorted(set(runtime_p99) | _label_values(cur, err_name, "operation_type")
                 | _label_values(cur, ops_name, "operation_type"))
    runtime_error_rate: dict[str, Figure] = {}
    runtime_op_rate: dict[str, Figure] = {}
    for op in ops:
        match = _label_is("operation_type", op)
        runtime_error_rate[op] = w.rate(err_name, match, what="error", absent_is_zero=(
            "kubelet_runtime_operations_errors_total" if runtime_p99 or ops_name else ""))
        runtime_op_rate[op] = w.rate(ops_name, match, what="call")
    for op in ops:
        runtime_p50.setdefault(op, _missing("s", rfam, "no latency series for this operation"))
        runtime_p99.setdefault(op, _missing("s", rfam, "no latency series for this operation"))

    # certificates
    ttl = _gauge(cur, "kubelet_certificate_manager_client_ttl_seconds", "s")
    if ttl.missing:
        exp = cur.value("kubelet_certificate_manager_client_expiration_seconds")
        if exp is not None and exp == exp and exp > 0:
            clock = cur.node_time if cur.node_time is not None else cur.at
            which = "node" if cur.node_time is not None else "local"
            ttl = Figure(exp - clock, "s", f"kubelet_certificate_manager_client_expiration_seconds "
                                           f"(a timestamp) minus the scrape time, {which} clock")
    renew_name = _first_present(cur, "kubelet_certificate_manager_client_expiration_renew_errors",
                                "kubelet_certificate_manager_client_expiration_renew_errors_total")
    renew_name = renew_name or "kubelet_certificate_manager_client_expiration_renew_errors"
    renew = _gauge(cur, renew_name, "count")
    renew = Figure(renew.value, "count", f"{renew_name} counter (since kubelet start)",
                   renew.why)
    if renew.missing and cur.declared(renew_name):
        renew = Figure(0.0, "count", f"{renew_name} counter (since kubelet start)",
                       "declared with no samples: none counted")

    goroutines = _gauge(cur, "go_goroutines", "count")
    rss = _gauge(cur, "process_resident_memory_bytes", "bytes")
    cpu = w.rate("process_cpu_seconds_total", unit="cores")

    # the API client
    rest_fam = "rest_client_request_duration_seconds"
    if not cur.has(rest_fam + "_bucket") and cur.has("rest_client_request_latency_seconds_bucket"):
        rest_fam = "rest_client_request_latency_seconds"
    if cur.has(rest_fam + "_bucket"):
        rest_p99 = (w.quantiles(rest_fam, (0.99,), (), "API request").get(()) or
                    [_missing("s", rest_fam, "no readable buckets")])[0]
        by_verb = {key[0]: figs[0] for key, figs in
                   w.quantiles(rest_fam, (0.99,), ("verb",), "API request").items()}
    else:
        rest_p99 = _missing("s", rest_fam, f"the kubelet does not export {rest_fam}")
        by_verb = {}
    rest_5xx = w.rate("rest_client_requests_total", _label_startswith("code", "5"), what="5xx")
    rest_err = w.rate("rest_client_requests_total", _label_is("code", "<error>"),
                      what="transport error")
    rest_all = w.rate("rest_client_requests_total")

    return KubeletSignals(
        at=cur.at, interval=w.interval if w.prev is not None else None, basis=w.basis,
        restarted=w.restarted, version=cur.version(),
        pleg_relist_p50=p50, pleg_relist_p99=p99, pleg_interval_p99=interval_p99,
        pleg_last_relist_age=age, pleg_relist_rate=relist_rate, pleg_discard_rate=discard,
        runtime_p50=runtime_p50, runtime_p99=runtime_p99,
        runtime_error_rate=runtime_error_rate, runtime_op_rate=runtime_op_rate,
        cert_ttl=ttl, cert_renew_errors=renew, goroutines=goroutines, rss=rss, cpu=cpu,
        rest_p99=rest_p99, rest_p99_by_verb=by_verb, rest_5xx_rate=rest_5xx,
        rest_error_rate=rest_err, rest_request_rate=rest_all, clock_offset=offset,
        errors=list(cur.errors), bad_lines=cur.bad_lines)


def _first_present(scrape: Scrape, *names: str) -> str:
    for n in names:
        if scrape.has(n):
            return n
    for n in names:
        if scrape.declared(n):
            return n
    return ""


def _label_values(scrape: Scrape, name: str, label: str) -> set[str]:
    if not name:
        return set()
    out = set()
    for raw in scrape.samples.get(name) or {}:
        v = parse_labels(raw).get(label)
        if v is not None:
            out.add(v)
    return out


def _label_is(label: str, value: str):
    def match(raw: str) -> bool:
        return parse_labels(raw).get(label) == value
    return match


def _label_startswith(label: str, prefix: str):
    def match(raw: str) -> bool:
        return (parse_labels(raw).get(label) or "").startswith(prefix)
    return match


def _relist_age(w: _Window) -> tuple[Figure, Figure]:
    """Seconds since the last successful relist: the scrape's time minus
    kubelet_pleg_last_seen_seconds (a unix timestamp written with the node's clock)."""
    name = "kubelet_pleg_last_seen_seconds"
    cur = w.cur
    no_offset = _missing("s", "node clock vs local clock", "not measured")
    seen = cur.value(name)
    if seen is None:
        return _missing("s", name, f"the kubelet does not export {name} (added in v1.20)"), \
            no_offset
    if seen != seen or seen <= 0:
        return _missing("s", name, f"{name} is {seen}"), no_offset
    if cur.node_time is not None:
        clock, which = cur.node_time, "the node's clock"
        offset = Figure(cur.node_time - cur.at, "s", "node time given with the scrape")
    else:
        clock, which = cur.at, "the local clock"
        offset = no_offset
    age = clock - seen
    source = f"scrape time ({which}) minus {name}"
    # A relist finished after the previous scrape when the gauge moved since then: the true age
    # is at most the time between the scrapes. More than that means the clocks disagree.
    if w.prev is not None and cur.node_time is None:
        before = w.prev.value(name)
        assert w.interval is not None
        if before is not None and seen > before:
            limit = w.interval + 1.0  # the gauge is whole seconds
            if age > limit + 5.0 or age < -5.0:
                skew = seen - cur.at  # node minus local, give or take the true age
                offset = Figure(skew, "s", f"{name} moved between scrapes yet reads "
                                           f"{_seconds(age)} from the local clock",
                                "approximate: the node's clock and ours disagree")
                return Figure(limit, "s", source,
                              f"the node's clock is {_seconds(abs(skew))} "
                              f"{'behind' if skew < 0 else 'ahead of'} ours; a relist finished "
                              f"since the last scrape, so at most this", "<="), offset
    if age < -5.0:
        return Figure(age, "s", source, f"the last relist is {_seconds(-age)} in the future: the "
                                        f"node's clock runs ahead of {which}"), offset
    return Figure(max(age, 0.0), "s", source), offset
