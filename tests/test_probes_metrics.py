"""probes.metrics: real kubelet scrapes and lab payloads reduced to the figures nodewb plots."""

from __future__ import annotations

import gzip
import math
import random
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.machine import Fault, GiB, LabPod, Machine, MiB
from lab.machine_files import KUBELET_CONFIG
from lab.metrics import KubeletMetrics
from probes.metrics import (
    COUNTS_READ,
    FAMILIES,
    LABELS_READ,
    Figure,
    KubeletSignals,
    Scrape,
    histogram_quantile,
    parse,
    parse_labels,
    prefilter,
    project,
    reduce,
    scrape_from_families,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kubelet-metrics"
V121 = DATA / "datadog_kubelet_metrics_1_21.txt"
V114 = DATA / "datadog_kubelet_metrics_1_14.txt"
OURS = Path(__file__).resolve().parent / "data" / "kubelet-metrics"
V135 = OURS / "kind_kubelet_metrics_1_35.txt"


def real(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"real scrape {path.name} not available")
    return path.read_bytes()


# -- a lab machine, built the way tests/test_lab_metrics.py builds one ---------------------------
def make_machine(index: int = 7, now: float | None = None, pods: int = 10) -> Machine:
    now = time.time() if now is None else now
    m = Machine(name=f"node-{index:04d}", index=index, ip=f"127.200.0.{index + 1}",
                zone="us-east-1b", pool="general", instance_type="m5.xlarge", cpus=4,
                memory=16 * GiB, kernel="5.15.0-1051-aws", os_image="Ubuntu 22.04.4 LTS",
                kubelet_version="v1.29.4", containerd_version="1.7.13",
                boot_time=now - 2 * 86400, rng=random.Random(index))
    m.files["/var/lib/kubelet/config.yaml"] = KUBELET_CONFIG
    m.files["/etc/kubernetes/kubelet.conf"] = ("apiVersion: v1\nclusters:\n- cluster:\n"
                                               "    server: https://127.0.0.1:36443\n")
    m.files["/etc/containerd/config.toml"] = (
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
        '  SystemdCgroup = true\n')
    m.files["/etc/cni/net.d/10-calico.conflist"] = "{}"
    for i in range(pods):
        m.pods.append(LabPod(namespace="shop", name=f"cart-5d8f7-{i:05d}", app="cart",
                             image="registry.example/cart:1.4.2", owner_kind="ReplicaSet",
                             owner_name="cart-5d8f7", memory=180 * MiB, created=now - 86400,
                             pod_ip=f"10.244.3.{i + 2}"))
    m.client_cert_not_before = now - 300 * 86400
    m.client_cert_not_after = now + 65 * 86400
    m.journal_upto = now - 1800
    KubeletMetrics(m)
    return m


def scrape(m: Machine, now: float) -> Scrape:
    m.catch_up(now)
    return parse(m.metrics.render(m, now), at=now)


# -- the parser against prometheus_client -------------------------------------------------------
def ours(s: Scrape) -> dict:
    out = {}
    for name, series in s.samples.items():
        for raw, v in series.items():
            family_type = s.types.get(name)
            # prometheus_client names a counter's sample NAME_total even when printed bare
            if family_type == "counter" and not name.endswith("_total"):
                name = name + "_total"
            out[(name, tuple(sorted(parse_labels(raw).items())))] = v
    return out


def read(name: str) -> bool:
    """A sample the figures read: the pre-filter leaves out every `_sum` and most `_count`s."""
    return name.startswith(FAMILIES) and not name.endswith("_sum") and \
        (not name.endswith("_count") or name in COUNTS_READ)


def theirs(payload: bytes, skip: set[str] = frozenset()) -> dict:
    """prometheus_client's full parse of the payload, as the parse is to hold it: the samples the
    figures read, histogram series summed by the labels the figures group them by."""
    out: dict = {}
    for fam in text_string_to_metric_families(payload.decode()):
        if fam.name in skip:
            continue
        for smp in fam.samples:
            if not read(smp.name):
                continue
            labels = project(fam.name, smp.labels) if fam.type == "histogram" else smp.labels
            key = (smp.name, tuple(sorted(labels.items())))
            if fam.name in LABELS_READ and fam.type == "histogram" and key in out:
                out[key] += smp.value
            else:
                out[key] = smp.value
    return out


def same(a: dict, b: dict) -> list:
    return [k for k in set(a) | set(b)
            if not (a.get(k) == b.get(k) or (a.get(k) != a.get(k) and b.get(k) != b.get(k)))]


def test_parser_matches_prometheus_client_on_the_real_v1_21_scrape():
    payload = real(V121)
    s = parse(payload)
    assert s.ok and s.bad_lines == 0 and not s.errors
    mine, ref = ours(s), theirs(payload)
    assert len(mine) == len(ref) > 300
    assert same(mine, ref) == []


def test_parser_matches_prometheus_client_on_the_real_v1_14_scrape():
    payload = real(V114)
    s = parse(payload)
    assert s.ok and s.bad_lines == 0
    # v1.14 prints both `kubelet_runtime_operations` and `kubelet_runtime_operations_total` as
    # counters; prometheus_client folds them into one family and keeps only one of each pair.
    clash = {"kubelet_runtime_operations", "kubelet_runtime_operations_errors"}
    mine = {k: v for k, v in ours(s).items()
            if not k[0].startswith(tuple(c + "_total" for c in clash))}
    ref = theirs(payload, skip=clash)
    assert len(mine) == len(ref) > 300
    assert same(mine, ref) == []
    # and the old counters are all there, under both names
    assert s.value("kubelet_runtime_operations", 'operation_type="list_podsandbox"') == 79691
    assert s.value("kubelet_runtime_operations_total", 'operation_type="list_podsandbox"') == 79691


def test_parser_matches_prometheus_client_on_a_lab_payload():
    now = time.time()
    m = make_machine(now=now)
    m.catch_up(now)
    payload = m.metrics.render(m, now)
    s = parse(payload, at=now)
    assert s.ok and s.bad_lines == 0
    assert same(ours(s), theirs(payload)) == []


def test_prefilter_keeps_only_our_families():
    payload = real(V121)
    kept = prefilter(payload)
    assert kept and all(line.startswith(tuple(f.encode() for f in FAMILIES)) or
                        line.startswith(b"# TYPE ") for line in kept)
    names = {line.split(b"{")[0].split(b" ")[0] for line in kept if not line.startswith(b"#")}
    assert b"kubelet_pleg_last_seen_seconds" in names
    assert not any(n.startswith((b"workqueue_", b"apiserver_", b"storage_")) for n in names)
    # nothing reads a histogram's _sum, nor its _count but PLEG's
    assert not any(n.endswith(b"_sum") for n in names)
    counts = {n for n in names if n.endswith(b"_count")}
    assert counts == {b"kubelet_pleg_relist_duration_seconds_count"}
    assert len(kept) < payload.count(b"\n") / 2


def test_escaped_and_loosely_written_labels_are_read_like_prometheus_does():
    text = ('# TYPE rest_client_requests_total counter\n'
            'rest_client_requests_total{code="200",host="a\\"b\\\\c\\nd",method="GET"} 3\n'
            'rest_client_requests_total{ code = "503" , host="x,y}z" , method="PUT", } '
              '2 1700000000000\n'
            'go_goroutines\t17\n')
    s = parse(text.encode())
    assert s.ok and s.bad_lines == 0, s.errors
    assert same(ours(s), theirs(text.encode())) == []
    labels = [parse_labels(raw) for raw in s.samples["rest_client_requests_total"]]
    assert {"code": "200", "host": 'a"b\\c\nd', "method": "GET"} in labels
    assert {"code": "503", "host": "x,y}z", "method": "PUT"} in labels
    assert s.value("go_goroutines") == 17


# -- real scrapes reduced --------------------------------------------------------------------------
def test_real_v1_21_scrape_reduced_on_its_own():
    payload = real(V121)
    last_seen = 1.648119277e9
    s = parse(payload, at=last_seen + 2.5)
    sig = reduce(None, s)
    assert sig.version == "v1.21.2"
    assert sig.interval is None and sig.basis.startswith("since kubelet start")
    # the healthy node's relists: well under a second, from the cumulative histogram
    assert 0.01 < sig.pleg_relist_p50.value < sig.pleg_relist_p99.value < 0.5
    assert "cumulative" in sig.pleg_relist_p99.source
    assert sig.pleg_last_relist_age.value == pytest.approx(2.5)
    assert sig.goroutines.value == 424
    assert sig.rss.value == 1.1157504e08
    assert sig.runtime_p99["list_podsandbox"].value < 1.0
    assert set(sig.runtime_p99) >= {"list_podsandbox", "list_containers", "status", "version"}
    assert 0 < sig.rest_p99.value < 1.0
    assert set(sig.rest_p99_by_verb) == {"GET", "POST", "PATCH", "DELETE", "PUT"}
    # rates need two scrapes: missing, and saying why
    for fig in (sig.cpu, sig.rest_5xx_rate, sig.pleg_relist_rate,
                sig.runtime_error_rate["exec_sync"]):
        assert fig.value is None and "two scrapes" in fig.why
    # this EKS kubelet has no client-certificate manager: missing, not invented
    assert sig.cert_ttl.value is None and "does not export" in sig.cert_ttl.why
    assert sig.breaches() == []


# v1.14 prints both `kubelet_runtime_operations` and `kubelet_runtime_operations_total` as counters;
# prometheus_client folds each pair into one family and keeps only one of them.
CLASH = {V114: {"kubelet_runtime_operations", "kubelet_runtime_operations_errors"}}


def values(sig: KubeletSignals) -> dict:
    return {name: (fig.value, fig.bound) for name, fig in sig.figures().items()}


@pytest.mark.parametrize("path", [V114, V121, V135], ids=lambda p: p.stem)
def test_each_real_scrape_matches_a_full_prometheus_client_parse(path):
    payload = real(path)
    s = parse(payload, at=1.7e9)
    assert s.ok and s.bad_lines == 0 and not s.errors
    clash = CLASH.get(path, set())
    mine = {k: v for k, v in ours(s).items()
            if not k[0].startswith(tuple(c + "_total" for c in clash))}
    ref = theirs(payload, skip=clash)
    assert len(mine) == len(ref) > 150
    assert same(mine, ref) == []
    # the figures from the pre-filtered parse are those of prometheus_client's full parse
    full = scrape_from_families(text_string_to_metric_families(payload.decode()), at=1.7e9)
    assert full.ok
    assert values(reduce(None, s)) == values(reduce(None, full))


def test_real_v1_35_scrape_reduced_on_its_own():
    payload = real(V135)
    last_seen = 1.768938012e9
    s = parse(payload, at=last_seen + 4.0)
    sig = reduce(None, s)
    assert sig.version == "v1.35.0" and sig.bad_lines == 0
    assert "cumulative" in sig.pleg_relist_p99.source
    # 12854 of its 12855 relists took under 5 ms
    assert 0.002 < sig.pleg_relist_p50.value < sig.pleg_relist_p99.value <= 0.005
    # every relist interval fell in (1 s, 2.5 s]
    assert sig.pleg_interval_p99.value == pytest.approx(1 + 1.5 * 0.99)
    assert sig.pleg_last_relist_age.value == pytest.approx(4.0)
    assert sig.goroutines.value == 275
    assert sig.rss.value == 9.9786752e07
    assert sig.cert_ttl.value == 3.1523113e07 and "ttl_seconds gauge" in sig.cert_ttl.source
    assert sig.cert_renew_errors.value == 0
    # runtime calls per operation, on the kubelet's exponential buckets (0.005 * 2.5^n)
    assert len(sig.runtime_p99) == 19
    assert sig.runtime_p99["list_podsandbox"].value <= 0.005
    assert sig.runtime_p99["status"].value <= 0.005
    # create_container: 11 of 12 under 1.22 s, the 12th under 3.05 s
    assert sig.runtime_p99["create_container"].value == pytest.approx(
        1.220703125 + (3.0517578125 - 1.220703125) * (0.99 * 12 - 11))
    # the API client, per host and verb in the payload, read summed by verb
    assert all("host" not in parse_labels(raw)
               for raw in s.samples["rest_client_request_duration_seconds_bucket"])
    assert set(sig.rest_p99_by_verb) == {"DELETE", "GET", "PATCH", "POST", "PUT"}
    # 436 of 1659 requests under 5 ms, 1653 under 25 ms
    assert sig.rest_p99.value == pytest.approx(0.005 + 0.02 * (0.99 * 1659 - 436) / (1653 - 436))
    assert sig.summary().startswith("PLEG p99 5.0ms, last relist 4.00s, goroutines 275")
    assert sig.breaches() == []


def test_a_bad_line_inside_a_family_block_costs_only_that_line():
    clean = real(V135)
    lines = clean.split(b"\n")

    def after(prefix: bytes, extra: bytes) -> None:
        at = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        lines.insert(at + 1, extra)

    runtime = b'kubelet_runtime_operations_duration_seconds_bucket{operation_type="status",'
    after(runtime + b'le="0.0125"}', runtime + b'le="0.03125" 2760')  # no closing brace
    after(b'kubelet_pleg_relist_duration_seconds_bucket{le="0.5"}',
          b"kubelet_pleg_relist_duration_seconds_bucket{le=1} 12855")
    after(b'rest_client_requests_total{code="201"', b'rest_client_requests_total{code="\xff"} 1')
    broken = b"\n".join(lines)
    with pytest.raises(ValueError):  # prometheus_client alone gives up on the whole payload
        list(text_string_to_metric_families(broken.decode("utf-8", "replace")))
    a, b = parse(clean, at=1.0), parse(broken, at=1.0)
    assert b.ok and b.bad_lines == 3 and len(b.errors) == 3
    assert any("not UTF-8" in e for e in b.errors)
    assert b.samples == a.samples  # every good line of the three blocks is still read
    sig = reduce(None, b)
    assert sig.bad_lines == 3 and sig.as_dict()["bad_lines"] == 3 and sig.errors == b.errors
    assert values(sig) == values(reduce(None, a))

    # a good-looking line with a bad value: that series alone is lost
    worse = clean.replace(b'kubelet_runtime_operations_total{operation_type="status"} 2760',
                          b'kubelet_runtime_operations_total{operation_type="status"} 2_760')
    c = parse(worse, at=1.0)
    assert c.bad_lines == 1
    ops = c.samples["kubelet_runtime_operations_total"]
    assert 'operation_type="status"' not in ops and len(ops) == 18
    assert ops['operation_type="list_podsandbox"'] == 19612


def test_real_v1_14_scrape_has_no_last_seen_and_reads_the_expiry_timestamp():
    payload = real(V114)
    s = parse(payload, at=1.5777e9)
    sig = reduce(None, s)
    assert sig.version == "v1.14.10"
    assert sig.pleg_last_relist_age.value is None
    assert "v1.20" in sig.pleg_last_relist_age.why
    # kubelet_certificate_manager_client_expiration_seconds 1.60876398e+09 is a timestamp
    assert sig.cert_ttl.value == pytest.approx(1.60876398e9 - 1.5777e9)
    assert "timestamp" in sig.cert_ttl.source
    assert "histogram" in sig.pleg_relist_p99.source  # v1.14 has both; the histogram wins


def old_kubelet(payload: bytes) -> bytes:
    """The v1.14 scrape without the new histograms: what a v1.13 kubelet prints."""
    gone = (b"kubelet_pleg_relist_duration_seconds", b"kubelet_pleg_relist_interval_seconds",
            b"kubelet_runtime_operations_duration_seconds", b"# HELP", b"# TYPE "
            b"kubelet_pleg_relist_duration", b"# TYPE kubelet_pleg_relist_interval_seconds",
            b"# TYPE kubelet_runtime_operations_duration")
    return b"\n".join(line for line in payload.split(b"\n") if not line.startswith(gone))


def test_old_microsecond_summaries_converted_to_seconds():
    payload = old_kubelet(real(V114))
    assert b"kubelet_pleg_relist_duration_seconds" not in payload
    sig = reduce(None, parse(payload, at=1.5777e9))
    # kubelet_pleg_relist_latency_microseconds{quantile="0.99"} 28543
    assert sig.pleg_relist_p99.value == pytest.approx(0.028543)
    assert sig.pleg_relist_p50.value == pytest.approx(0.008313)
    assert "summary" in sig.pleg_relist_p99.source and "microseconds" in sig.pleg_relist_p99.source
    # kubelet_pleg_relist_interval_microseconds{quantile="0.99"} 1.029029e+06
    assert sig.pleg_interval_p99.value == pytest.approx(1.029029)
    ref = {(s.labels["operation_type"], s.labels["quantile"]): s.value
           for fam in text_string_to_metric_families(payload.decode())
           if fam.name == "kubelet_runtime_operations_latency_microseconds"
           for s in fam.samples if "quantile" in s.labels}
    for op, fig in sig.runtime_p99.items():
        value = ref.get((op, "0.99"))
        if value is None:
            continue
        if math.isnan(value):  # no calls in the summary's window
            assert fig.value is None and "NaN" in fig.why, op
        else:
            assert fig.value == pytest.approx(value / 1e6), op
            assert "summary" in fig.source
    assert any(f.value is not None for f in sig.runtime_p99.values())
    assert any(f.value is None for f in sig.runtime_p99.values())


def test_two_real_scrapes_give_rates_from_their_difference():
    payload = real(V121)
    text = payload.decode()
    # the same kubelet 30 s later: 30 more relists, 3 more exec_sync errors, 2 more 503s
    later = text.replace("kubelet_pleg_relist_duration_seconds_count 1.67195e+06",
                         "kubelet_pleg_relist_duration_seconds_count 1.67198e+06")
    later = re.sub(r'(kubelet_pleg_relist_duration_seconds_bucket\{le="(0\.025|0\.05|0\.1|0\.25|'
                   r'0\.5|1|2\.5|5|10|\+Inf)"\}) (\S+)',
                   lambda m: f"{m.group(1)} {int(float(m.group(3))) + 30}", later)
    later = later.replace('kubelet_runtime_operations_errors_total{operation_type="exec_sync"} 16',
                          'kubelet_runtime_operations_errors_total{operation_type="exec_sync"} 19')
    later = later.replace("process_cpu_seconds_total 110425.94",
                          "process_cpu_seconds_total 110428.94")
    host = "3FFBFD220E427C1C2DCAB691B805C88C.gr7.us-east-1.eks.amazonaws.com"
    later += f'rest_client_requests_total{{code="503",host="{host}",method="PUT"}} 2\n'
    a = parse(payload, at=1000.0)
    b = parse(later.encode(), at=1030.0)
    sig = reduce(a, b)
    assert sig.interval == 30.0 and sig.basis == "between scrapes" and not sig.restarted
    assert sig.pleg_relist_rate.value == pytest.approx(1.0)
    # the 30 new relists all landed in the 10-25 ms bucket
    assert 0.01 < sig.pleg_relist_p99.value <= 0.025
    assert "increase over 30.0 s" in sig.pleg_relist_p99.source
    assert sig.runtime_error_rate["exec_sync"].value == pytest.approx(0.1)
    assert sig.runtime_error_rate["list_podsandbox"].value == 0.0
    assert sig.cpu.value == pytest.approx(0.1)
    assert sig.rest_5xx_rate.value == pytest.approx(2 / 30)
    # nothing new in the runtime histograms: no quantile between scrapes, and it says so
    assert sig.runtime_p99["list_podsandbox"].value is None
    assert "no call finished" in sig.runtime_p99["list_podsandbox"].why
    assert any("5xx" in b for b in sig.breaches())


# -- PromQL's histogram_quantile ------------------------------------------------------------------
def test_histogram_quantile_follows_promql():
    inf = float("inf")
    b = [(0.1, 10), (0.5, 60), (1.0, 100), (inf, 100)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * (50 - 10) / 50)
    assert histogram_quantile(0.05, b) == pytest.approx(0.05)  # first bucket starts at 0
    assert histogram_quantile(1.0, b) == pytest.approx(1.0)
    # the rank lands in +Inf: the last finite bound
    assert histogram_quantile(0.99, [(1.0, 1), (10.0, 2), (inf, 10)]) == 10.0
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0), (inf, 0)]))  # nothing observed
    assert math.isnan(histogram_quantile(0.5, [(1.0, 3), (2.0, 5)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(inf, 5)]))  # a lone +Inf
    assert histogram_quantile(-1, b) == -inf and histogram_quantile(2, b) == inf
    # non-monotonic buckets (scraped mid-update) are evened out, not trusted blindly
    assert histogram_quantile(0.5, [(0.1, 10), (0.5, 8), (1.0, 20), (inf, 20)]) == \
        pytest.approx(0.1)


# -- lab payloads moving between two scrapes ---------------------------------------------------
def test_healthy_then_hung_runtime_between_scrapes():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    a = scrape(m, now)
    b = scrape(m, now + 60)
    healthy = reduce(a, b)
    assert healthy.interval == 60 and healthy.basis == "between scrapes"
    assert healthy.pleg_relist_p99.value < 0.1
    assert healthy.pleg_relist_p99.bound == ""
    assert healthy.pleg_last_relist_age.value < 3
    assert healthy.pleg_relist_rate.value == pytest.approx(1.0, rel=0.15)
    assert healthy.runtime_p99["list_podsandbox"].value < 1.0
    assert healthy.runtime_error_rate["list_podsandbox"].value == 0.0
    assert healthy.goroutines.value < 500 and healthy.rss.value < 500e6
    assert 0 < healthy.cpu.value < 4
    assert healthy.rest_p99.value < 1 and healthy.rest_5xx_rate.value == 0
    assert healthy.breaches() == []

    m.catch_up(now + 61)
    m.faults["runtime_hung"] = Fault("runtime_hung", now + 61)
    m.changed()
    c = scrape(m, now + 300)
    d = scrape(m, now + 900)
    hung = reduce(c, d)
    # last_seen froze at the hang: the age is the time since then
    assert hung.pleg_last_relist_age.value == pytest.approx(900 - 61, abs=3)
    assert hung.pleg_relist_p99.value >= 10 and hung.pleg_relist_p99.bound == ">="
    assert "at least" in hung.pleg_relist_p99.why
    assert hung.runtime_error_rate["list_podsandbox"].value > 0
    assert hung.runtime_p99["status"].value >= 10
    assert hung.goroutines.value > 500
    text = " | ".join(hung.breaches())
    assert "PLEG relist p99" in text and "no PLEG relist for" in text and "goroutines" in text
    assert "runtime list_podsandbox p99" in text

    # two scrapes 15 s apart while hung: no relist finishes in between, and that is said
    # (one relist ends every 2 min + 1 s: most 15 s windows hold none)
    prev, t = d, 900
    for _ in range(10):
        t += 15
        e = scrape(m, now + t)
        short = reduce(prev, e)
        count = "kubelet_pleg_relist_duration_seconds_count"
        if e.value(count) == prev.value(count):
            break
        prev = e
    else:
        pytest.fail("every 15 s window held a relist")
    assert short.pleg_relist_p99.value is None
    assert "no relist finished in the 15 s between scrapes" in short.pleg_relist_p99.why
    assert short.pleg_last_relist_age.value == pytest.approx(t - 61, abs=3)


def test_slow_disk_shows_in_the_increase_not_in_the_cumulative_history():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    m.journal_upto = now - 86400  # a day of healthy history behind the scrape
    a = scrape(m, now)
    m.io_await_ms = 100
    m.changed()
    assert 10 < m.relist_seconds() < 60  # the machine's own figure for one relist now
    b = scrape(m, now + 3600)
    between = reduce(a, b)
    alone = reduce(None, b)
    # the last hour's relists all took longer than the last finite bucket
    assert between.pleg_relist_p99.value == 10.0 and between.pleg_relist_p99.bound == ">="
    assert between.pleg_relist_p50.value >= 5
    # a day of fast relists before it hides the hour in the cumulative histogram
    assert alone.pleg_relist_p99.value < 0.1
    assert "cumulative" in alone.pleg_relist_p99.source
    assert between.runtime_p99["list_podsandbox"].value > 5.0
    assert between.pleg_discard_rate.value > 0
    assert between.pleg_last_relist_age.value < 180  # slow, not stalled
    assert between.pleg_relist_rate.value == pytest.approx(1 / (m.relist_seconds() + 1), rel=0.2)
    assert any("PLEG relist p99" in x for x in between.breaches())
    assert not any("no PLEG relist" in x for x in between.breaches())


def test_kubelet_restart_is_a_counter_reset():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    before = scrape(m, now + 300)
    m.catch_up(now + 301)
    m.kubelet.pid += 123
    m.kubelet.since = now + 301
    m.changed()
    after = scrape(m, now + 331)
    sig = reduce(before, after)
    assert sig.restarted
    assert "reset" in sig.basis and sig.interval is None
    assert "cumulative" in sig.pleg_relist_p99.source
    assert sig.pleg_relist_p99.value is not None and sig.pleg_relist_p99.value < 0.1
    assert sig.cpu.value is None and "reset" in sig.cpu.why


def test_one_series_reset_alone_falls_back_to_its_cumulative_buckets():
    text = ('# TYPE kubelet_runtime_operations_duration_seconds histogram\n'
            'kubelet_runtime_operations_duration_seconds_bucket{operation_type="status",'
              'le="1"} %d\n'
            'kubelet_runtime_operations_duration_seconds_bucket{operation_type="status",'
              'le="10"} %d\n'
            'kubelet_runtime_operations_duration_seconds_bucket{operation_type="status",'
              'le="+Inf"} %d\n'
            'kubelet_runtime_operations_duration_seconds_count{operation_type="status"} %d\n')
    a = parse((text % (100, 100, 100, 100)).encode(), at=10)
    b = parse((text % (0, 4, 4, 4)).encode(), at=20)
    sig = reduce(a, b)
    fig = sig.runtime_p99["status"]
    assert "reset" in fig.source
    assert fig.value == pytest.approx(1 + 9 * 0.99)


def test_partition_shows_as_slow_and_failing_api_calls():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    a = scrape(m, now)
    m.api_reachable = False
    m.changed()
    b = scrape(m, now + 600)
    sig = reduce(a, b)
    assert sig.rest_p99.value >= 5
    assert sig.rest_p99_by_verb["PUT"].value >= 5
    assert sig.rest_error_rate.value > 0
    assert sig.rest_5xx_rate.value > 0
    text = " | ".join(sig.breaches())
    assert "API client p99" in text and "5xx" in text


def test_expired_client_certificate_and_renewal_errors():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    m.client_cert_not_after = now - 100
    m.pending_csr = "csr-8w2kq"
    sig = reduce(scrape(m, now + 10), scrape(m, now + 2000))
    assert sig.cert_ttl.value < 0
    assert sig.cert_renew_errors.value >= 2
    text = " | ".join(sig.breaches())
    assert "client certificate expired" in text and "renewal errors" in text
    m2 = make_machine(now=now)
    m2.client_cert_not_after = now + 3 * 86400
    soon = reduce(None, scrape(m2, now))
    assert soon.cert_ttl.value == pytest.approx(3 * 86400, abs=5)
    assert soon.cert_renew_errors.value == 0
    assert any("expires in" in b for b in soon.breaches())


def test_a_skewed_node_clock_does_not_pass_for_a_stalled_pleg():
    now = 1_750_000_000.0
    m = make_machine(now=now)
    m.clock_offset = -2 * 86400 - 1234.5  # the node's clock two days behind ours
    a = scrape(m, now)
    b = scrape(m, now + 30)
    alone = reduce(None, b)
    # on its own a scrape cannot tell a stalled PLEG from a skewed clock
    assert alone.pleg_last_relist_age.value > 2 * 86400
    both = reduce(a, b)
    age = both.pleg_last_relist_age
    assert age.bound == "<=" and age.value == pytest.approx(31)
    assert "behind" in age.why
    assert both.clock_offset.value == pytest.approx(-2 * 86400 - 1234.5, abs=5)
    assert not any("no PLEG relist" in x for x in both.breaches())
    # given the node's own clock, the age is read on it
    with_clock = parse(m.metrics.render(m, now + 30), at=now + 30, node_time=m.node_now(now + 30))
    assert reduce(None, with_clock).pleg_last_relist_age.value < 3


# -- garbage in, clear errors out -----------------------------------------------------------------
@pytest.mark.parametrize("payload, words", [
    (b"<!doctype html><html><body>502 Bad Gateway</body></html>", "HTML"),
    (b'{"kind":"Status","code":401}', "JSON"),
    (b"", "empty"),
    (None, "no payload"),
    (b"\x1f\x8b\x08\x00garbage", "gzip"),
    (b"node_cpu_seconds_total 3\nfoo_bar 1\n", "no kubelet families"),
])
def test_payloads_that_are_not_metrics(payload, words):
    s = parse(payload, at=100.0)
    assert not s.ok and words in s.error
    sig = reduce(None, s)
    assert sig.error == s.error
    assert all(f.value is None and f.why == s.error for f in sig.figures().values())
    assert sig.breaches() == []
    assert sig.as_dict()["error"] == s.error


def test_bad_lines_cost_only_themselves():
    good = ("go_goroutines 312\nprocess_resident_memory_bytes 1.1157504e+08\n"
            "kubelet_pleg_last_seen_seconds 1.648119277e+09\n")
    bad = ("kubelet_pleg_relist_duration_seconds_bucket{le=\"0.0\n"  # cut off mid-line
           "process_cpu_seconds_total 12_000\n"
           "kubelet_pleg_discard_events{a=b} 1\n"
           "rest_client_requests_total{code=\"200\" 5\n"
           "go_goroutines_x one\n")
    s = parse((good + bad).encode()
              + b"kubelet_runtime_operations_total{operation_type=\"\xff\xfe\"} 1\n",
              at=1.648119280e9)
    assert s.ok
    assert s.bad_lines == 6, s.errors
    assert any("UTF-8" in e for e in s.errors)
    sig = reduce(None, s)
    assert sig.goroutines.value == 312
    assert sig.pleg_last_relist_age.value == pytest.approx(3)
    assert sig.pleg_relist_p99.value is None
    assert sig.errors == s.errors


def test_nan_huge_and_truncated_histograms():
    text = ("go_goroutines NaN\nprocess_resident_memory_bytes 1e999\n"
            "kubelet_pleg_last_seen_seconds -Inf\n"
            "kubelet_pleg_relist_duration_seconds_bucket{le=\"0.005\"} 3\n"
            "kubelet_pleg_relist_duration_seconds_bucket{le=\"0.01\"} 9\n")  # no +Inf: cut short
    sig = reduce(None, parse(text.encode(), at=100.0))
    assert sig.goroutines.value is None and "NaN" in sig.goroutines.why
    assert sig.rss.value == float("inf")
    assert sig.pleg_last_relist_age.value is None
    assert sig.pleg_relist_p99.value is None and "+Inf" in sig.pleg_relist_p99.why


def test_gzip_and_str_payloads():
    payload = real(V121)
    a = parse(gzip.compress(payload), at=1.0)
    b = parse(payload.decode(), at=1.0)
    assert a.ok and b.ok and a.samples == b.samples == parse(payload, at=1.0).samples


def test_random_garbage_never_raises():
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base = real(V121)[:20000] if V121.exists() else b"go_goroutines 3\n"
    lines = base.split(b"\n")

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(st.sampled_from(lines), st.binary(max_size=80),
                              st.text(max_size=80).map(str.encode),
                              st.sampled_from([f.encode() for f in FAMILIES]).flatmap(
                                  lambda n: st.binary(max_size=40).map(lambda b: n + b))),
                    max_size=60),
           st.floats(allow_nan=True, allow_infinity=True))
    def check(parts, at):
        payload = b"\n".join(parts)
        s = parse(payload, at=at if at == at else 0.0)
        prev = parse(payload[: len(payload) // 2], at=0.0)
        sig = reduce(prev, s)
        assert isinstance(sig, KubeletSignals)
        for fig in sig.figures().values():
            assert isinstance(fig, Figure)
            assert fig.value is None or isinstance(fig.value, float)
        sig.breaches()
        sig.as_dict()

    check()
