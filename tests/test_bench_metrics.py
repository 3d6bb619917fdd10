"""bench.metrics_reduce, run small: it prints its figures for both parsers (ours and
prometheus_client's full parse), and both reduce the payload to the same values."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

from bench import metrics_reduce, table

TIMINGS = (
    "pre-filter alone",
    "ours, parse: pre-filter + prometheus_client",
    "ours, reduce: both scrapes parsed fresh",
    "ours, one new scrape: parse + reduce",
    "full parse: prometheus_client, whole payload",
    "full parse and reduce of one new scrape",
)
HEAD = re.compile(r"(?P<label>.+): (?P<mb>[0-9.]+) MB, (?P<lines>[0-9,]+) lines; pre-filter keeps "
                  r"(?P<kept>[0-9,]+) lines \((?P<kb>[0-9]+) kB\)")


def run(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        metrics_reduce.main(list(argv))
    return out.getvalue()


def test_bench_prints_both_parsers_figures_and_they_agree():
    text = run("--size-mb", "0.5", "--runs", "1")
    source, *shapes = text.strip().split("\n\n")
    assert source.startswith("source: ")
    assert len(shapes) == 3, text
    labels = []
    for block in shapes:
        head = HEAD.match(block)
        assert head, block
        labels.append(head["label"])
        assert 0.3 < float(head["mb"]) < 0.8
        lines, kept = int(head["lines"].replace(",", "")), int(head["kept"].replace(",", ""))
        assert 0 < kept < lines
        for name in TIMINGS:
            found = re.search(re.escape(name) + r"\s+([0-9]+\.[0-9]{2}) ms", block)
            assert found, (name, block)
            assert 0.0 < float(found.group(1)) < 60_000.0, (name, block)
        cold = re.search(r"first, cold: ([0-9]+\.[0-9]{2}) ms", block)
        assert cold and float(cold.group(1)) > 0, block
        speed = re.search(r"speed-up of one step over the full parse: ([0-9]+)x", block)
        assert speed, block
        agree = re.search(r"figures: ([0-9]+) from each parser, same values: (\S+)", block)
        assert agree, block
        assert int(agree.group(1)) > 50 and agree.group(2) == "yes", block
    assert labels[0].startswith("other families grow") and labels[2].startswith("worst case")
    # bench/table.py reads the same output: one row per shape, ours beside prometheus_client's
    rows = table.metrics_reduce(text)
    assert len(rows) == 3 and all(r.ours is not None and r.peer is not None for r in rows)
