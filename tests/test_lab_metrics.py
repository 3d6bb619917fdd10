"""lab.metrics: the kubelet /metrics payload a lab machine renders, and how it moves."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.machine import Fault, GiB, LabPod, Machine, MiB
from lab.machine_files import KUBELET_CONFIG
from lab.metrics import DEF_BUCKETS, KubeletMetrics, gofloat, render_configz, render_goroutines

REAL_SCRAPE = (Path(__file__).resolve().parent.parent.parent / "shared" / "data"
               / "kubelet-metrics" / "datadog_kubelet_metrics_1_21.txt")


KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:36443
  name: default-cluster
"""

CONTAINERD = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n' \
             '  SystemdCgroup = true\n'


def make_machine(index: int = 7, now: float | None = None, pods: int = 10,
                 ip: str | None = None) -> Machine:
    now = time.time() if now is None else now
    m = Machine(name=f"node-{index:04d}", index=index, ip=ip or f"127.200.0.{index + 1}",
                zone="us-east-1b", pool="general", instance_type="m5.xlarge", cpus=4,
                memory=16 * GiB, kernel="5.15.0-1051-aws", os_image="Ubuntu 22.04.4 LTS",
                kubelet_version="v1.29.4", containerd_version="1.7.13",
                boot_time=now - 2 * 86400, rng=random.Random(index))
    m.files["/var/lib/kubelet/config.yaml"] = KUBELET_CONFIG
    m.files["/etc/kubernetes/kubelet.conf"] = KUBECONFIG
    m.files["/etc/containerd/config.toml"] = CONTAINERD
    m.files["/etc/cni/net.d/10-calico.conflist"] = "{}"
    for i in range(pods):
        m.pods.append(LabPod(namespace="shop", name=f"cart-5d8f7-{i:05d}", app="cart",
                             image="registry.example/cart:1.4.2", owner_kind="ReplicaSet",
                             owner_name="cart-5d8f7", memory=180 * MiB, created=now - 86400,
                             pod_ip=f"10.244.3.{i + 2}"))
    m.client_cert_not_before = now - 300 * 86400
    m.client_cert_not_after = now + 65 * 86400
    m.journal_upto = now - 1800  # history starts half an hour back
    KubeletMetrics(m)
    return m


def families(payload: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(payload.decode())}


def hist(fams: dict, name: str, **labels) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets [(le, count)], sum, count) of one histogram series."""
    fam = fams[name]
    buckets, total, count = [], 0.0, 0.0
    for s in fam.samples:
        lab = {k: v for k, v in s.labels.items() if k != "le"}
        if any(lab.get(k) != v for k, v in labels.items()):
            continue
        if s.name.endswith("_bucket"):
            buckets.append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            total = s.value
        elif s.name.endswith("_count"):
            count = s.value
    return buckets, total, count


def value(fams: dict, name: str, sample: str | None = None, **labels) -> float:
    fam = fams[name]
    for s in fam.samples:
        if sample and s.name != sample:
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


def delta_quantile(a, b, q: float) -> float:
    """histogram_quantile(q, increase) between two scrapes, as PromQL computes it."""
    inc = [(le, cb - ca) for (le, ca), (_, cb) in zip(a, b, strict=False)]
    total = inc[-1][1]
    assert total > 0
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in inc:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return prev_le


def scrape(m: Machine, now: float) -> dict:
    m.catch_up(now)
    return families(m.metrics.render(m, now))


# -- the payload -----------------------------------------------------------------------------------
def test_payload_parses_and_has_the_real_families():
    now = time.time()
    m = make_machine(now=now)
    m.catch_up(now)
    payload = m.metrics.render(m, now)
    assert payload.count(b"\n") > 400
    fams = families(payload)
    expected = {
        "kubelet_pleg_relist_duration_seconds": "histogram",
        "kubelet_pleg_relist_interval_seconds": "histogram",
        "kubelet_pleg_last_seen_seconds": "gauge",
        "kubelet_pleg_discard_events": "counter",
        "kubelet_runtime_operations_duration_seconds": "histogram",
        "kubelet_runtime_operations": "counter",
        "kubelet_certificate_manager_client_ttl_seconds": "gauge",
        "kubelet_certificate_manager_client_expiration_renew_errors": "counter",
        "kubelet_node_name": "gauge",
        "kubernetes_build_info": "gauge",
        "go_goroutines": "gauge",
        "process_resident_memory_bytes": "gauge",
        "process_cpu_seconds": "counter",
        "process_start_time_seconds": "gauge",
        "rest_client_requests": "counter",
        "rest_client_request_duration_seconds": "histogram",
        "kubelet_running_pods": "gauge",
        "kubelet_running_containers": "gauge",
    }
    for name, kind in expected.items():
        assert name in fams, name
        assert fams[name].type == kind, (name, fams[name].type)
    prefixes = {n.split("_")[0] for n in fams}
    assert {"apiserver", "go", "process", "rest", "kubelet", "workqueue", "storage"} <= prefixes
    assert value(fams, "kubelet_node_name", node="node-0007") == 1
    assert value(fams, "kubelet_running_pods") == 10
    assert value(fams, "kubelet_running_containers", container_state="running") == 20
    assert value(fams, "process_resident_memory_bytes") == m.kubelet_rss
    assert value(fams, "process_start_time_seconds") == pytest.approx(m.kubelet.since, abs=0.01)
    assert value(fams, "go_goroutines") >= m.goroutines_base
    info = fams["kubernetes_build_info"].samples[0].labels
    assert info["git_version"] == "v1.29.4" and info["minor"] == "29"
    # the text layout a Go client prints
    text = payload.decode()
    assert "# HELP kubelet_pleg_relist_duration_seconds [ALPHA] Duration in seconds for " \
           "relisting pods in PLEG.\n" \
           "# TYPE kubelet_pleg_relist_duration_seconds histogram\n" in text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_bucket_layout_and_help_match_a_real_kubelet_scrape():
    if not REAL_SCRAPE.exists():
        pytest.skip("real scrape not available")
    real = families(REAL_SCRAPE.read_bytes())
    now = time.time()
    m = make_machine(now=now)
    ours = scrape(m, now)
    for name, labels in (("kubelet_pleg_relist_duration_seconds", {}),
                         ("kubelet_pleg_relist_interval_seconds", {}),
                         ("kubelet_runtime_operations_duration_seconds",
                          {"operation_type": "list_podsandbox"})):
        real_les = [le for le, _ in hist(real, name, **labels)[0]]
        our_les = [le for le, _ in hist(ours, name, **labels)[0]]
        assert our_les == real_les, name
        assert ours[name].documentation == real[name].documentation
    real_text = REAL_SCRAPE.read_text()
    our_text = m.metrics.render(m, now).decode()
    for line in ('kubelet_runtime_operations_duration_seconds_bucket{'
                 'operation_type="list_podsandbox",le="0.078125"}',
                 'kubelet_pleg_relist_duration_seconds_bucket{le="0.025"}'):
        assert line in real_text and line in our_text


def test_go_float_formatting():
    assert gofloat(1671950) == "1.67195e+06"
    assert gofloat(88778) == "88778"
    assert gofloat(1648119277.0) == "1.648119277e+09"
    assert gofloat(35470.97548711002) == "35470.97548711002"
    assert gofloat(9.999999999999999e-06) == "9.999999999999999e-06"
    assert gofloat(1e6) == "1e+06"
    assert gofloat(2.592e6) == "2.592e+06"
    assert gofloat(0.0125) == "0.0125"
    assert gofloat(float("inf")) == "+Inf"
    assert gofloat(0) == "0"


# -- histograms and counters move --------------------------------------------------------------
def test_histograms_are_cumulative_and_grow_over_advance():
    now = time.time()
    m = make_machine(now=now)
    a = scrape(m, now)
    b = scrape(m, now + 120)
    for fams in (a, b):
        for fam in fams.values():
            if fam.type != "histogram":
                continue
            series: dict = {}
            for s in fam.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {"b": [], "c": None})
                if s.name.endswith("_bucket"):
                    series[key]["b"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series[key]["c"] = s.value
            for key, sv in series.items():
                les = [le for le, _ in sv["b"]]
                counts = [c for _, c in sv["b"]]
                assert les == sorted(les) and math.isinf(les[-1]), (fam.name, key)
                assert counts == sorted(counts), (fam.name, key, counts)
                assert counts[-1] == sv["c"], (fam.name, key)
    relist_a = hist(a, "kubelet_pleg_relist_duration_seconds")
    relist_b = hist(b, "kubelet_pleg_relist_duration_seconds")
    grown = relist_b[2] - relist_a[2]
    assert 100 <= grown <= 125  # a relist every second plus its duration
    assert relist_b[1] > relist_a[1]
    interval = hist(b, "kubelet_pleg_relist_interval_seconds")
    assert delta_quantile(hist(a, "kubelet_pleg_relist_interval_seconds")[0], interval[0],
                          0.5) == pytest.approx(1.75, abs=0.75)  # the 1-2.5 s bucket
    for op in ("list_podsandbox", "list_containers", "status", "version"):
        before = value(a, "kubelet_runtime_operations", "kubelet_runtime_operations_total",
                       operation_type=op)
        after = value(b, "kubelet_runtime_operations", "kubelet_runtime_operations_total",
                      operation_type=op)
        assert after > before, op
        count = hist(b, "kubelet_runtime_operations_duration_seconds", operation_type=op)[2]
        assert count == after, op
    assert value(b, "process_cpu_seconds", "process_cpu_seconds_total") > \
        value(a, "process_cpu_seconds", "process_cpu_seconds_total")
    put_a = value(a, "rest_client_requests", "rest_client_requests_total", code="200", method="PUT")
    put_b = value(b, "rest_client_requests", "rest_client_requests_total", code="200", method="PUT")
    assert put_b - put_a == pytest.approx(12, abs=2)  # lease renewals every 10 s


def test_long_quiet_stretch_is_filled_without_sampling_each_relist():
    now = time.time()
    m = make_machine(now=now)
    m.journal_upto = now - 86400
    t = time.perf_counter()
    fams = scrape(m, now)
    assert time.perf_counter() - t < 2.0
    _, total, count = hist(fams, "kubelet_pleg_relist_duration_seconds")
    assert 80_000 < count < 90_000
    assert 0.005 < total / count < 0.05


def test_hung_runtime_freezes_last_seen_and_raises_relist_p99():
    now = time.time()
    m = make_machine(now=now)
    healthy_a = scrape(m, now)
    healthy_b = scrape(m, now + 60)
    seen_a = value(healthy_a, "kubelet_pleg_last_seen_seconds")
    seen_b = value(healthy_b, "kubelet_pleg_last_seen_seconds")
    assert seen_b - seen_a == pytest.approx(60, abs=2)
    p99_healthy = delta_quantile(hist(healthy_a, "kubelet_pleg_relist_duration_seconds")[0],
                                 hist(healthy_b, "kubelet_pleg_relist_duration_seconds")[0], 0.99)
    assert p99_healthy < 0.1

    m.catch_up(now + 61)
    m.faults["runtime_hung"] = Fault("runtime_hung", now + 61)
    m.changed()
    hung_a = scrape(m, now + 300)
    hung_b = scrape(m, now + 900)
    frozen_a = value(hung_a, "kubelet_pleg_last_seen_seconds")
    frozen_b = value(hung_b, "kubelet_pleg_last_seen_seconds")
    assert frozen_a == frozen_b
    assert frozen_a == pytest.approx(now + 61, abs=3)
    # relists now wait for the CRI deadline: everything lands beyond the last finite bucket
    p99_hung = delta_quantile(hist(hung_a, "kubelet_pleg_relist_duration_seconds")[0],
                              hist(hung_b, "kubelet_pleg_relist_duration_seconds")[0], 0.99)
    assert p99_hung >= 10
    relists = hist(hung_b, "kubelet_pleg_relist_duration_seconds")[2] - \
        hist(hung_a, "kubelet_pleg_relist_duration_seconds")[2]
    assert 4 <= relists <= 6  # one per 2 min + 1 s
    err_a = value(hung_a, "kubelet_runtime_operations_errors",
                  "kubelet_runtime_operations_errors_total", operation_type="list_podsandbox")
    err_b = value(hung_b, "kubelet_runtime_operations_errors",
                  "kubelet_runtime_operations_errors_total", operation_type="list_podsandbox")
    assert err_b > err_a
    lp_a = hist(hung_a, "kubelet_runtime_operations_duration_seconds", operation_type="status")
    lp_b = hist(hung_b, "kubelet_runtime_operations_duration_seconds", operation_type="status")
    assert delta_quantile(lp_a[0], lp_b[0], 0.5) >= 119  # status calls time out at 2 min
    # the relist interval climbs while no relist succeeds
    ia, ib = (hist(x, "kubelet_pleg_relist_interval_seconds")[0] for x in (hung_a, hung_b))
    assert ib[-1][1] - ia[-1][1] > ib[-2][1] - ia[-2][1]
    assert value(hung_b, "go_goroutines") > value(healthy_b, "go_goroutines") + 300
    assert value(hung_b, "process_resident_memory_bytes") > m.kubelet_rss

    # containerd restarted: relists succeed again and last_seen moves
    m.catch_up(now + 901)
    del m.faults["runtime_hung"]
    m.changed()
    healed = scrape(m, now + 1000)
    assert value(healed, "kubelet_pleg_last_seen_seconds") == pytest.approx(now + 1000, abs=3)
    assert value(healed, "go_goroutines") < value(hung_b, "go_goroutines")


def test_dead_runtime_fails_relists_fast():
    now = time.time()
    m = make_machine(now=now)
    a = scrape(m, now)
    m.containerd.active, m.containerd.sub = "failed", "failed"
    m.changed()
    b = scrape(m, now + 120)
    assert value(b, "kubelet_pleg_last_seen_seconds") == value(a, "kubelet_pleg_last_seen_seconds")
    ha, hb = (hist(x, "kubelet_pleg_relist_duration_seconds") for x in (a, b))
    assert hb[2] - ha[2] > 100  # failing at once, every second
    assert delta_quantile(ha[0], hb[0], 0.99) < 0.01
    errs = value(b, "kubelet_runtime_operations_errors", "kubelet_runtime_operations_errors_total",
                 operation_type="list_podsandbox")
    assert errs > 100


def test_slow_io_moves_relists_into_multi_second_buckets():
    now = time.time()
    m = make_machine(now=now)
    a = scrape(m, now)
    m.io_await_ms = 800
    m.changed()
    d = m.relist_seconds()
    assert d > 2.5  # the machine's own figure for a relist on a saturated disk
    b = scrape(m, now + 3600)
    ha, hb = (hist(x, "kubelet_pleg_relist_duration_seconds") for x in (a, b))
    n = hb[2] - ha[2]
    assert n == pytest.approx(3600 / (d + 1), abs=3)
    inc = {le: cb - ca for (le, ca), (_, cb) in zip(ha[0], hb[0], strict=False)}
    assert inc[2.5] <= 1  # at most the relist that was in flight when the disk slowed down
    assert delta_quantile(ha[0], hb[0], 0.5) >= 2.5
    assert delta_quantile(ha[0], hb[0], 0.99) >= min(d, 10) * 0.7
    mean = (hb[1] - ha[1]) / n
    assert mean == pytest.approx(d, rel=0.3)
    for op in ("list_podsandbox", "list_containers", "status"):
        oa = hist(a, "kubelet_runtime_operations_duration_seconds", operation_type=op)
        ob = hist(b, "kubelet_runtime_operations_duration_seconds", operation_type=op)
        assert delta_quantile(oa[0], ob[0], 0.99) > 1.0, op
    assert value(b, "kubelet_pleg_discard_events") > value(a, "kubelet_pleg_discard_events")
    # relists still complete: last seen keeps moving
    assert value(b, "kubelet_pleg_last_seen_seconds") > value(a, "kubelet_pleg_last_seen_seconds")


def test_a_relist_of_a_few_seconds_lands_in_the_finite_second_buckets():
    now = time.time()
    m = make_machine(now=now)
    a = scrape(m, now)
    template = m.pods[0]
    while m.relist_seconds() < 3.0 and len(m.pods) < 400:  # too many pods for the node
        i = len(m.pods)
        m.pods.append(LabPod(namespace="batch", name=f"job-{i:05d}", app="job",
                             image=template.image, owner_kind="Job", owner_name=f"job-{i}",
                             memory=20 * MiB, created=now, pod_ip=f"10.244.4.{i % 250}"))
    if not 3.0 <= m.relist_seconds() <= 8.0:
        pytest.skip(f"the machine's relist model gives {m.relist_seconds():.1f} s")
    m.changed()
    b = scrape(m, now + 900)
    ha, hb = (hist(x, "kubelet_pleg_relist_duration_seconds") for x in (a, b))
    inc = {le: cb - ca for (le, ca), (_, cb) in zip(ha[0], hb[0], strict=False)}
    n = hb[2] - ha[2]
    assert inc[10.0] - inc[1.0] >= n - 1  # nearly all between 1 and 10 s
    assert 2.5 <= delta_quantile(ha[0], hb[0], 0.99) <= 10


def test_client_certificate_ttl_tracks_not_after_and_the_node_clock():
    now = time.time()
    m = make_machine(now=now)
    fams = scrape(m, now)
    ttl = value(fams, "kubelet_certificate_manager_client_ttl_seconds")
    assert ttl == pytest.approx(m.client_cert_not_after - now, abs=2)
    m.client_cert_not_after = now + 3600
    fams = scrape(m, now + 10)
    assert (value(fams, "kubelet_certificate_manager_client_ttl_seconds")
            == pytest.approx(3590, abs=2))
    m.clock_offset = 600.0  # the node's clock runs ten minutes ahead
    fams = scrape(m, now + 10)
    assert (value(fams, "kubelet_certificate_manager_client_ttl_seconds")
            == pytest.approx(2990, abs=2))
    m.clock_offset = 0.0
    m.client_cert_not_after = now - 100  # expired
    fams = scrape(m, now + 20)
    assert value(fams, "kubelet_certificate_manager_client_ttl_seconds") < 0
    assert value(fams, "kubelet_certificate_manager_client_expiration_renew_errors") == 0
    m.pending_csr = "csr-8w2kq"
    fams = scrape(m, now + 2000)
    assert value(fams, "kubelet_certificate_manager_client_expiration_renew_errors") >= 2
    # and the API client is refused
    assert value(fams, "rest_client_requests", "rest_client_requests_total", code="401",
                 method="PUT") > 0


def test_partition_shows_in_the_api_client_metrics():
    now = time.time()
    m = make_machine(now=now)
    a = scrape(m, now)
    m.api_reachable = False
    m.changed()
    b = scrape(m, now + 600)
    codes = {s.labels["code"] for s in b["rest_client_requests"].samples}
    assert "<error>" in codes and "503" in codes
    ha = hist(a, "rest_client_request_duration_seconds", verb="PUT")
    hb = hist(b, "rest_client_request_duration_seconds", verb="PUT")
    assert delta_quantile(ha[0], hb[0], 0.5) >= 8


def test_kubelet_restart_resets_counters():
    now = time.time()
    m = make_machine(now=now)
    before = scrape(m, now + 300)
    m.catch_up(now + 301)
    m.kubelet.pid += 123
    m.kubelet.since = now + 301
    m.changed()
    after = scrape(m, now + 331)
    assert hist(after, "kubelet_pleg_relist_duration_seconds")[2] < 40
    assert hist(before, "kubelet_pleg_relist_duration_seconds")[2] > 1000
    assert value(after, "process_start_time_seconds") == pytest.approx(now + 301, abs=0.01)
    assert value(after, "process_cpu_seconds", "process_cpu_seconds_total") < \
        value(before, "process_cpu_seconds", "process_cpu_seconds_total")


def test_same_machine_same_numbers():
    now = 1_750_000_000.0
    one, two = make_machine(now=now), make_machine(now=now)
    one.catch_up(now + 100)
    two.catch_up(now + 100)
    def relist(m):
        return hist(families(m.metrics.render(m, now + 100)),
                                "kubelet_pleg_relist_duration_seconds")
    assert relist(one) == relist(two)


# -- /configz and goroutine dumps ------------------------------------------------------------------
def test_configz_reflects_the_config_file_over_defaults():
    now = time.time()
    m = make_machine(now=now)
    m.catch_up(now)
    conf = json.loads(render_configz(m))["kubeletconfig"]
    assert conf["cgroupDriver"] == "systemd"
    assert conf["maxPods"] == 110
    assert conf["failSwapOn"] is True
    assert conf["clusterDNS"] == ["10.96.0.10"]
    assert conf["evictionHard"]["nodefs.inodesFree"] == "5%"
    assert conf["enableServer"] is True
    assert conf["syncFrequency"] == "1m0s"
    assert conf["staticPodPath"] == "/etc/kubernetes/manifests"
    assert conf["authentication"]["webhook"]["enabled"] is True
    # the running kubelet keeps what it loaded; a restart picks up the edit
    m.files["/var/lib/kubelet/config.yaml"] = KUBELET_CONFIG.replace("maxPods: 110", "maxPods: 250")
    assert json.loads(render_configz(m))["kubeletconfig"]["maxPods"] == 110
    m.kubelet.pid += 5
    m.kubelet.since = now + 10
    m.catch_up(now + 20)
    assert json.loads(render_configz(m))["kubeletconfig"]["maxPods"] == 250


def test_goroutine_dump_shows_the_pile_on_the_cri_when_hung():
    now = time.time()
    m = make_machine(now=now)
    m.catch_up(now)
    healthy = render_goroutines(m, now, debug=1).decode()
    assert healthy.startswith(f"goroutine profile: total {m.metrics.goroutines(m, now)}\n")
    assert "(*ClientConn).Invoke" not in healthy
    m.faults["runtime_hung"] = Fault("runtime_hung", now)
    m.changed()
    m.catch_up(now + 900)
    dump1 = render_goroutines(m, now + 900, debug=1).decode()
    total = int(dump1.splitlines()[0].rsplit(" ", 1)[1])
    assert total > m.goroutines_base + 500
    groups = [int(line.split(" @ ")[0]) for line in dump1.splitlines() if " @ 0x" in line]
    assert sum(groups) == total
    invoke_groups = [b for b in dump1.split("\n", 1)[1].split("\n\n")
                     if "google.golang.org/grpc.(*ClientConn).Invoke" in b]
    assert sum(int(b.split(" @ ")[0]) for b in invoke_groups) > 300
    relist = [b for b in invoke_groups
              if "k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Relist" in b]
    assert relist and "ListPodSandbox" in relist[0]
    dump2 = render_goroutines(m, now + 900, debug=2).decode()
    assert dump2.count("\ngoroutine ") + 1 == total
    stanza = next(s for s in dump2.split("\n\n") if "(*GenericPLEG).Relist" in s)
    assert stanza.startswith("goroutine ") and "[select" in stanza.splitlines()[0]
    assert "google.golang.org/grpc.(*ClientConn).Invoke(" in stanza
    assert "created by k8s.io/kubernetes/pkg/kubelet/pleg.(*GenericPLEG).Start" in stanza


def test_render_is_fast():
    now = time.time()
    m = make_machine(now=now, pods=40)
    m.catch_up(now)
    m.metrics.render(m, now)
    t = time.perf_counter()
    for i in range(50):
        m.catch_up(now + i)
        m.metrics.render(m, now + i)
    per = (time.perf_counter() - t) / 50
    print(f"\ncatch_up + render: {per * 1000:.2f} ms per scrape")
    assert DEF_BUCKETS[-1] == 10.0


# -- /metrics/cadvisor -----------------------------------------------------------------------------
def _containers(payload: bytes, family: str) -> dict[str, tuple[dict, float]]:
    """pod -> (labels, value) of FAMILY's container series."""
    return {s.labels["pod"]: (s.labels, s.value) for s in families(payload)[family].samples
            if s.labels.get("container")}


def test_cadvisor_figures_follow_the_machines_pods():
    from lab import effects
    from lab.cadvisor import IO_HEAVY_WRITE, render_cadvisor

    now = time.time()
    m = make_machine(pods=3, now=now)
    m.pods.append(LabPod("batch", "etl-7c9f5-q4wzr", "etl", "registry.example/etl:2", "ReplicaSet",
                         "etl-7c9f5", 900 * MiB, now - 600, io_heavy=True))
    m.pods.append(LabPod("batch", "forker-6d5f8-mz2lt", "forker", "registry.example/f:1",
                         "ReplicaSet", "forker-6d5f8", 600 * MiB, now - 600, pids=5030))
    first = render_cadvisor(m, now)
    later = render_cadvisor(m, now + 10)
    writes0, writes1 = (_containers(p, "container_fs_writes_bytes") for p in (first, later))
    grew = writes1["etl-7c9f5-q4wzr"][1] - writes0["etl-7c9f5-q4wzr"][1]
    assert abs(grew - 10 * IO_HEAVY_WRITE) < IO_HEAVY_WRITE * 0.01
    assert all(writes1[p][1] - writes0[p][1] < 10 * MiB for p in writes1 if p != "etl-7c9f5-q4wzr")
    procs = _containers(first, "container_processes")
    assert 5000 <= procs["forker-6d5f8-mz2lt"][1] <= 5029
    assert max(v for p, (_, v) in procs.items() if p != "forker-6d5f8-mz2lt") <= 4
    threads = _containers(first, "container_threads")
    assert threads["cart-5d8f7-00000"][1] == 29 and threads["forker-6d5f8-mz2lt"][1] == 5029
    memory = _containers(first, "container_memory_working_set_bytes")
    labels, ws = memory["etl-7c9f5-q4wzr"]
    assert ws == 900 * MiB
    assert set(labels) == {"container", "id", "image", "name", "namespace", "pod"}
    assert labels["id"].startswith("/kubepods.slice/kubepods-burstable.slice/")
    assert labels["id"].endswith(f"/cri-containerd-{labels['name']}.scope")
    assert labels["image"] == "registry.example/etl:2" and labels["namespace"] == "batch"
    # the pod's own cgroup is there too, with empty container, image and name
    pod_level = [s for s in families(first)["container_processes"].samples
                 if s.labels["pod"] == "forker-6d5f8-mz2lt" and not s.labels["container"]]
    assert len(pod_level) == 1 and pod_level[0].labels["image"] == ""
    effects.remove_pod(m, "batch", "etl-7c9f5-q4wzr", now + 20)
    assert "etl-7c9f5-q4wzr" not in _containers(render_cadvisor(m, now + 21),
                                                "container_processes")
    m.files["/etc/containerd/config.toml"] = ""
    ids = _containers(render_cadvisor(m, now + 22), "container_cpu_usage_seconds")
    assert ids["forker-6d5f8-mz2lt"][0]["id"].startswith("/kubepods/burstable/pod")
