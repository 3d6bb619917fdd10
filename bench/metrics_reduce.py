"""Time to reduce a ~2 MB kubelet /metrics payload to nodewb's figures, against a full
prometheus_client parse of the same bytes, in one run.

    python -m bench.metrics_reduce [--size-mb 2] [--runs 9] [--source PATH]

The payload is built from a real scrape (../shared/data/kubelet-metrics/, v1.21 by default; a lab
render when that file is absent) grown to the size asked for by repeating its families with other
label values, the way a big node's payload grows:

- "other families grow": the families nodewb does not read (workqueues, storage operations,
  volume stats, HTTP paths...) are repeated; the ones it reads stay as they are;
- "per-URL": the API client's series grow too (kubelets up to v1.2x label them per URL);
- "worst case": every labelled family is repeated, nodewb's own included, so the pre-filter keeps
  as much as it can.

Printed per shape: payload size and lines, the lines the pre-filter kept, then medians over
`--runs`: the pre-filter alone; ours, the pre-filter then prometheus_client's parser on the kept
family blocks (the first, cold run apart); the reduce of one scrape against the one before it; the
whole step for one new scrape (parse + reduce against a kept previous scrape); and the same with
prometheus_client's full parse of the payload (parse alone, then parse + reduce). Last, whether
both parsers reduce the payload to the same figures.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from probes import metrics as M

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "kubelet-metrics" / "datadog_kubelet_metrics_1_21.txt"


def lab_payload() -> bytes:
    import random

    from lab.machine import GiB, Machine
    from lab.machine_files import KUBELET_CONFIG
    from lab.metrics import KubeletMetrics

    now = time.time()
    m = Machine(name="node-0001", index=1, ip="127.200.0.2", zone="a", pool="p",
                instance_type="m5.xlarge", cpus=4, memory=16 * GiB, kernel="5.15",
                os_image="Ubuntu", kubelet_version="v1.29.4", containerd_version="1.7.13",
                boot_time=now - 86400, rng=random.Random(1))
    m.files["/var/lib/kubelet/config.yaml"] = KUBELET_CONFIG
    KubeletMetrics(m)
    m.catch_up(now)
    return m.metrics.render(m, now)


def blocks(payload: bytes) -> list[tuple[str, list[bytes], list[bytes]]]:
    """(family, comment lines, sample lines) in payload order."""
    out: list[tuple[str, list[bytes], list[bytes]]] = []
    current: tuple[str, list[bytes], list[bytes]] | None = None
    for line in payload.split(b"\n"):
        if not line:
            continue
        if line.startswith(b"# "):
            parts = line.split(b" ", 3)
            name = parts[2].decode() if len(parts) > 2 else ""
            if current is None or current[0] != name:
                current = (name, [], [])
                out.append(current)
            current[1].append(line)
        else:
            if current is None:
                current = ("", [], [])
                out.append(current)
            current[2].append(line)
    return out


def ours(name: str) -> bool:
    return name.startswith(M.FAMILIES)


def grow(payload: bytes, target: int, shape: str) -> bytes:
    """Repeat the labelled families (with a `replica` label) until about `target` bytes:
    shape "others" grows only families nodewb does not read, "per-url" also the API client's
    (labelled per URL up to v1.2x), "all" every labelled family."""
    fams = blocks(payload)

    def grows(name: str, samples: list[bytes]) -> bool:
        if not samples or not all(b"{" in s for s in samples):
            return False
        if shape == "all":
            return True
        return not ours(name) or (shape == "per-url" and name.startswith("rest_client_"))

    fixed = sum(sum(len(x) + 1 for x in c + s) for n, c, s in fams)
    growing = sum(sum(len(x) + 1 for x in s) for n, c, s in fams if grows(n, s))
    if growing == 0:
        raise SystemExit("no labelled families to grow")
    copies = max(1, round((target - fixed) / growing) + 1)
    out: list[bytes] = []
    for name, comments, samples in fams:
        out.extend(comments)
        if grows(name, samples):
            for k in range(copies):
                tag = b'{replica="%d",' % k
                out.extend(s.replace(b"{", tag, 1) for s in samples)
        else:
            out.extend(samples)
    return b"\n".join(out) + b"\n"


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def figure_values(sig: M.KubeletSignals) -> dict[str, tuple[float | None, str]]:
    return {name: (fig.value, fig.bound) for name, fig in sig.figures().items()}


def same_values(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, (va, ba) in a.items():
        vb, bb = b[key]
        if ba != bb or (va is None) != (vb is None):
            return False
        if va is not None and not math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12):
            return False
    return True


def full_parse(text: str, at: float) -> M.Scrape:
    return M.scrape_from_families(text_string_to_metric_families(text), at=at)


def measure(label: str, payload: bytes, runs: int) -> None:
    text = payload.decode()
    kept = M.prefilter(payload)
    M._SPLIT.clear()
    M._NAMES_SEEN.clear()
    M._pairs.cache_clear()
    t = time.perf_counter()
    first = M.parse(payload, at=1000.0)
    cold = (time.perf_counter() - t) * 1000
    assert first.ok, first.error
    prev = M.parse(payload, at=1000.0)
    M.reduce(None, prev)  # its histograms are built once, as in a stream of scrapes

    def step() -> None:
        cur = M.parse(payload, at=1015.0)
        M.reduce(prev, cur)

    def both() -> None:
        a = M.parse(payload, at=1000.0)
        b = M.parse(payload, at=1015.0)
        t0 = time.perf_counter()
        M.reduce(a, b)
        both.reduce_ms.append((time.perf_counter() - t0) * 1000)  # type: ignore[attr-defined]

    full_prev = full_parse(text, 1000.0)

    def full_step() -> None:
        M.reduce(full_prev, full_parse(text, 1015.0))

    both.reduce_ms = []  # type: ignore[attr-defined]
    pre = median_ms(lambda: M.prefilter(payload), runs)
    parse = median_ms(lambda: M.parse(payload, at=1015.0), runs)
    median_ms(both, runs)
    reduce_fresh = statistics.median(both.reduce_ms)  # type: ignore[attr-defined]
    whole = median_ms(step, runs)
    prom_runs = max(3, runs // 3)
    prom = median_ms(lambda: sum(len(f.samples) for f in text_string_to_metric_families(text)),
                     prom_runs)
    prom_whole = median_ms(full_step, prom_runs)

    cur, full_cur = M.parse(payload, at=1015.0), full_parse(text, 1015.0)
    ours_figs = [figure_values(M.reduce(None, cur)), figure_values(M.reduce(prev, cur))]
    full_figs = [figure_values(M.reduce(None, full_cur)),
                 figure_values(M.reduce(full_prev, full_cur))]
    agree = all(same_values(a, b) for a, b in zip(ours_figs, full_figs, strict=False))
    sig = M.reduce(prev, cur)
    nlines = payload.count(b"\n")
    print(f"\n{label}: {len(payload) / 1e6:.2f} MB, {nlines:,} lines; pre-filter "
          f"keeps {len(kept):,} lines ({sum(len(x) + 1 for x in kept) / 1e3:.0f} kB)")
    print(f"  pre-filter alone                                  {pre:8.2f} ms")
    print(f"  ours, parse: pre-filter + prometheus_client       {parse:8.2f} ms   "
          f"first, cold: {cold:.2f} ms")
    print(f"  ours, reduce: both scrapes parsed fresh           {reduce_fresh:8.2f} ms")
    print(f"  ours, one new scrape: parse + reduce              {whole:8.2f} ms   "
          f"(median of {runs})")
    print(f"  full parse: prometheus_client, whole payload      {prom:8.2f} ms   "
          f"(median of {prom_runs})")
    print(f"  full parse and reduce of one new scrape           {prom_whole:8.2f} ms")
    print(f"  speed-up of one step over the full parse: {prom_whole / whole:.0f}x; "
          f"breaches: {sig.breaches() or 'none'}")
    print(f"  figures: {len(ours_figs[1])} from each parser, same values: "
          f"{'yes' if agree else 'NO'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--source", type=Path, default=REAL)
    args = ap.parse_args(argv)
    if args.source.exists():
        base, where = args.source.read_bytes(), str(args.source)
    else:
        base, where = lab_payload(), "a lab render (real scrape not found)"
    print(f"source: {where} ({len(base):,} bytes); python {sys.version.split()[0]}")
    target = int(args.size_mb * 1e6)
    measure("other families grow (a node with many pods and volumes)",
            grow(base, target, "others"), args.runs)
    measure("the API client's per-URL series grow too (kubelets up to v1.2x)",
            grow(base, target, "per-url"), args.runs)
    measure("worst case: every labelled family grows", grow(base, target, "all"), args.runs)


if __name__ == "__main__":
    main()
