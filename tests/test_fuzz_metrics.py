"""Fuzzing probes.metrics: garbage, huge numbers, NaN/Inf, odd labels and escapes, truncated lines
and mutated real scrapes never raise, and never reach the parser's last-resort catch (which
would mean a bug turned into an error message)."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.metrics import FAMILIES, Figure, KubeletSignals, Scrape, parse, parse_labels, reduce

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kubelet-metrics"
OURS = Path(__file__).resolve().parent / "data" / "kubelet-metrics"
REAL = [p.read_bytes() for p in sorted(DATA.glob("*.txt")) + sorted(OURS.glob("*.txt"))]
REAL_LINES = [line for payload in REAL for line in payload.split(b"\n")
              if line.startswith(tuple(f.encode() for f in FAMILIES))] or \
    [b'kubelet_pleg_relist_duration_seconds_bucket{le="0.005"} 1']
LAST_RESORT = "the metrics payload could not be read"

names = st.sampled_from([
    *(f + s for f in FAMILIES for s in ("", "_bucket", "_sum", "_count", "_total")),
    "kubelet_runtime_operations_duration_seconds_bucket",
    "kubelet_certificate_manager_client_ttl_seconds",
    "kubelet_certificate_manager_client_expiration_renew_errors",
    "rest_client_requests_total", "kubelet_pleg_last_seen_seconds",
])
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "Inf", "nan", "1e999", "-0", "0x10", "1_000",
                     "1e", ".", "", "1.5.3", "١٢", "\u00a0", "inf", "infinity", "9" * 500]),
)
label_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(['\\"', "\\\\", "\\n", "\\", 'a"b', "0.5", "+Inf", "NaN", "le", "\x1b[2J",
                     "\u202e", "5xx", "<error>"]),
)
label_names = st.one_of(st.sampled_from(["le", "quantile", "code", "verb", "operation_type",
                                         "url", "git_version", "host"]),
                        st.text(min_size=0, max_size=6))


@st.composite
def label_texts(draw) -> str:
    pairs = draw(st.lists(st.tuples(label_names, label_values), max_size=4))
    sep = draw(st.sampled_from([",", ", ", " , ", ",,", ""]))
    text = sep.join(f'{k}{draw(st.sampled_from(["=", " = ", "=="]))}"{v}"' for k, v in pairs)
    if draw(st.booleans()):
        text += draw(st.sampled_from([",", " ", '"', "\\", "}", "{", "\n"]))
    return text


@st.composite
def sample_lines(draw) -> bytes:
    name = draw(names)
    labels = draw(st.one_of(st.none(), label_texts()))
    value = draw(numbers)
    stamp = draw(st.sampled_from(["", " 1700000000000", " -1", " x", "  "]))
    line = f"{name}{{{labels}}} {value}{stamp}" if labels is not None else f"{name} {value}{stamp}"
    return line.encode("utf-8", "surrogatepass")


comment_lines = st.sampled_from([
    b"# TYPE kubelet_pleg_relist_duration_seconds histogram",
    b"# TYPE kubelet_pleg_relist_duration_seconds",
    b"# TYPE go_goroutines gauge extra words",
    b"# HELP go_goroutines \xff\xfe",
    b"#", b"# TYPE", b"",
])


def check(scrape: Scrape) -> None:
    assert isinstance(scrape, Scrape)
    assert not scrape.error.startswith(LAST_RESORT), scrape.error
    assert isinstance(scrape.errors, list) and len(scrape.errors) <= 20
    for name, series in scrape.samples.items():
        assert isinstance(name, str)
        for labels, value in series.items():
            assert isinstance(labels, str) and isinstance(value, float)
            parse_labels(labels)


def check_signals(sig: KubeletSignals) -> None:
    assert isinstance(sig, KubeletSignals)
    for key, fig in sig.figures().items():
        assert isinstance(fig, Figure), key
        assert fig.value is None or isinstance(fig.value, (int, float)), key
        assert isinstance(fig.text(), str)
    assert all(isinstance(b, str) for b in sig.breaches())
    sig.as_dict()


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(parse(payload, at=1000.0))


@FUZZ
@given(st.lists(st.one_of(sample_lines(), comment_lines, st.sampled_from(REAL_LINES)),
                max_size=40),
       st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
def test_sample_lines_then_reduce(lines: list[bytes], newline: bytes) -> None:
    payload = newline.join(lines)
    prev = parse(payload, at=1000.0)
    cur = parse(payload[: len(payload) * 2 // 3], at=1015.0)
    check(prev)
    check(cur)
    check_signals(reduce(None, prev))
    check_signals(reduce(prev, cur))
    check_signals(reduce(cur, prev))


@st.composite
def mutated_scrape(draw) -> bytes:
    payload = bytearray(draw(st.sampled_from(REAL)) if REAL else b"\n".join(REAL_LINES))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "dup"]))
        at = draw(st.integers(0, max(0, len(payload) - 1)))
        if op == "flip" and payload:
            payload[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del payload[at: at + draw(st.integers(1, 400))]
        elif op == "insert":
            payload[at:at] = draw(st.sampled_from([b"{", b"}", b'"', b"\\", b"\n", b"\x00",
                                                   b"\xff", b" NaN", b" 1e999", b",le=\"x\"",
                                                   b"\x1b[31m", b'le="+Inf"']))
        elif op == "truncate":
            del payload[at:]
        elif op == "dup":
            payload[at:at] = payload[at: at + 300]
    return bytes(payload)


@FUZZ
@given(mutated_scrape(), mutated_scrape())
def test_mutated_real_scrapes(a: bytes, b: bytes) -> None:
    prev, cur = parse(a, at=1000.0), parse(b, at=1015.0, node_time=1015.5)
    check(prev)
    check(cur)
    check_signals(reduce(prev, cur))


# Lines of the families read that no Prometheus parser accepts.
BAD_LINES = [
    b'kubelet_pleg_relist_duration_seconds_bucket{le="0.1" 12',
    b"kubelet_runtime_operations_total{operation_type=status} 3",
    b'rest_client_requests_total{code="200"} 1_000',
    b"go_goroutines twelve",
    b"process_resident_memory_bytes",
    b'kubelet_certificate_manager_client_ttl_seconds{a="b"}',
    b'rest_client_request_duration_seconds_bucket{verb="GET",le="1"} 3 4 5 x',
    b"kubelet_pleg_last_seen_seconds \xff\xfe",
]


@settings(FUZZ, max_examples=100)  # each example parses a real scrape twice
@given(st.sampled_from(range(len(REAL))) if REAL else st.just(-1), st.data())
def test_garbage_lines_cost_themselves_only(which: int, data) -> None:
    """Bad lines dropped anywhere into a real scrape are counted one by one, and every other
    sample reads as it does in the clean scrape."""
    clean = REAL[which] if which >= 0 else b"\n".join(REAL_LINES)
    lines = clean.split(b"\n")
    inserts = data.draw(st.lists(st.tuples(st.integers(0, len(lines)), st.sampled_from(BAD_LINES)),
                                 min_size=1, max_size=6))
    for at, bad in sorted(inserts, reverse=True):
        lines.insert(at, bad)
    broken = parse(b"\n".join(lines), at=1000.0)
    check(broken)
    assert broken.bad_lines == len(inserts), broken.errors
    assert nan_equal(broken.samples) == nan_equal(parse(clean, at=1000.0).samples)


def nan_equal(samples: dict) -> dict:
    return {name: {k: "NaN" if v != v else v for k, v in series.items()}
            for name, series in samples.items()}


@FUZZ
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True)), max_size=12),
       st.floats(allow_nan=True, allow_infinity=True))
def test_histogram_values(buckets: list[tuple[float, float]], last_seen: float) -> None:
    fam = "kubelet_pleg_relist_duration_seconds"
    lines = [f'{fam}_bucket{{le="{le!r}"}} {count!r}' for le, count in buckets]
    lines += [f"{fam}_sum 1", f"{fam}_count 2", f"kubelet_pleg_last_seen_seconds {last_seen!r}",
              f"kubelet_certificate_manager_client_ttl_seconds {last_seen!r}",
              f"go_goroutines {last_seen!r}"]
    payload = "\n".join(lines).encode()
    prev = parse(payload, at=1000.0)
    cur = parse(payload.replace(b"_sum 1", b"_sum 3"), at=1015.0)
    check(cur)
    sig = reduce(prev, cur)
    check_signals(sig)
    for fig in sig.figures().values():
        if fig.value is not None and math.isnan(fig.value):
            raise AssertionError(f"a figure is NaN: {fig}")


def test_real_scrapes_still_parse() -> None:
    """The strategies above start from the real scrapes; make sure they are there and read."""
    for payload in REAL:
        scrape = parse(payload, at=1000.0)
        assert scrape.ok and scrape.samples
