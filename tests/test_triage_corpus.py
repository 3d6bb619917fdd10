"""`nodewb analyze` on evidence posted in public bug reports: tests/corpus/<domain>/<case>/.

Each case holds the files as posted (kubelet.log, describe-node.txt, events.txt, ...) and a
SOURCE.md with the report's address. The folder name is the verdict analyze must reach;
`unknown` holds evidence that decides nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from tests.conftest import ROOT
from triage.rules import DOMAINS
from tui.cli import main

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(p for p in CORPUS.glob("*/*") if p.is_dir())


def _shared(a: str, b: str) -> int:
    """Length of the longest run of text two strings share."""
    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return m.size


def analyze(case: Path, capsys) -> dict:
    assert main(["analyze", str(case), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_domain_has_a_case_and_some_decide_nothing():
    by_domain = {d.name: [c for c in CASES if c.parent == d] for d in CORPUS.iterdir()}
    assert set(DOMAINS) <= set(by_domain), set(DOMAINS) - set(by_domain)
    assert set(by_domain) <= set(DOMAINS) | {"unknown"}
    assert all(by_domain[d] for d in DOMAINS)
    assert len(by_domain["unknown"]) >= 2
    assert sum(len(by_domain[d]) >= 2 for d in DOMAINS) >= 6


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.parent.name}/{c.name}")
def test_case_is_analyzed_to_its_domain(case, capsys):
    source = (case / "SOURCE.md").read_text()
    assert re.search(r"https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+", source), source
    evidence = [f for f in case.iterdir() if f.name != "SOURCE.md"]
    assert evidence, f"{case}: no evidence files"

    verdict = analyze(case, capsys)
    want = case.parent.name
    assert verdict["verdict"] == want, json.dumps(verdict, indent=1)[:3000]
    if want == "unknown":
        assert not any(d["status"] == "confirmed" for d in verdict["domains"])
        assert not verdict["fix"] and not verdict["actions"]
        return
    chosen = next(d for d in verdict["domains"] if d["id"] == want)
    assert chosen["status"] == "confirmed" and chosen["evidence"]
    # the evidence quotes the posted text, not words of our own
    posted = " ".join(" ".join(f.read_text().split()) for f in evidence)
    assert any(_shared(" ".join(e.split()), posted) >= 20 for e in chosen["evidence"]), \
        chosen["evidence"]
    assert verdict["fix"] and verdict["verify"] and verdict["dont"]


def test_the_cli_as_a_process_reads_a_case_and_a_lone_file(tmp_path):
    case = CORPUS / "runtime_down" / "containerd-12138-listpodsandbox-deadline"
    for path in (case, case / "kubelet.log"):
        r = subprocess.run([sys.executable, "-m", "tui.cli", "analyze", str(path), "--format",
                            "json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["verdict"] == "runtime_down" and out["leaf"] == "hung"
        assert out["node"] is None
    md = subprocess.run([sys.executable, "-m", "tui.cli", "analyze", str(case), "--format",
                         "markdown"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert md.returncode == 0 and "**Leaf:** `hung`" in md.stdout
