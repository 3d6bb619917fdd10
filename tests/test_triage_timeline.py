"""The incident timeline and the Markdown incident report."""

from __future__ import annotations

import json
import os
import stat

import pytest

from probes.observation import Observation, Status
from triage.evidence import write_bundle
from triage.report import incident_report, write_report
from triage.timeline import KINDS, Timeline

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC

VERDICT = {
    "node": "node-0004", "verdict": "runtime_down",
    "domains": [
        {"id": "pleg_runtime_slow", "status": "confirmed",
         "evidence": ["kubelet.metrics: no PLEG relist for 11.3m"]},
        {"id": "runtime_down", "status": "confirmed",
         "evidence": ["node.crictl.ps [hung]: crictl ps did not return in 10 s | runtime hung"]},
        {"id": "disk_pressure", "status": "ruled_out", "evidence": ["node.df.space [ok]"]},
        {"id": "clock_skew", "status": "untested", "evidence": []},
    ],
    "next_probes": [], "fix": ["Restart containerd, then the kubelet"],
    "verify": ["crictl ps answers in under a second"], "dont": [],
    "actions": ["restart-containerd"],
}


class Clock:
    def __init__(self, start: float = T0, step: float = 5.0) -> None:
        self.now, self.step = start, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def story(tmp_path, verified: bool = True):
    bundle = write_bundle({"crictl-ps.txt": "nodewb-capture: timed out: ...\n"}, node="node-0004",
                          captured_at=T0 + 12, finished_at=T0 + 23, out=tmp_path / "b.tar.gz",
                          problems=["crictl-ps.txt: hung after 10 s"])
    tl = Timeline("node-0004", clock=Clock())
    tl.note("paged: node-0004 NotReady for 5 min")
    tl.observation(Observation("node.crictl.ps", "node-0004", Status.HUNG, T0 + 7, 10.0,
                               "crictl ps did not return in 10 s", {}, "ssh"))
    tl.verdict(VERDICT, at=T0 + 18)
    tl.capture(bundle)
    tl.action("restart-containerd", "systemctl restart containerd && systemctl restart kubelet",
              ok=True, result="exit 0", at=T0 + 40)
    tl.verify(verified, "Ready=True after 35 s; crictl ps 0.04 s" if verified
              else "Ready=False after 120 s", at=T0 + 80,
              detail={"checks": ["Ready=True", "healthz 200"]})
    return tl, bundle


def test_entries_stay_in_time_order_and_round_trip_as_json(tmp_path):
    tl, _ = story(tmp_path)
    times = [e.time for e in tl]
    assert times == sorted(times)
    assert [e.kind for e in tl] == ["note", "observation", "verdict", "capture", "action",
                                    "verify"]
    assert len(tl) == 6 and set(e.kind for e in tl) <= set(KINDS)
    assert tl.last("capture").detail["sha256"] and tl.of("action")[0].detail["ok"] is True
    assert tl.of("observation")[0].time == T0 + 7  # an observation keeps its own time
    assert tl.of("observation")[0].detail == {"probe": "node.crictl.ps", "status": "hung",
                                              "via": "ssh", "duration": 10.0}
    assert tl.of("verdict")[0].detail["confirmed"] == ["pleg_runtime_slow", "runtime_down"]
    text = tl.to_json()
    again = Timeline.from_json(text)
    assert again.to_dict() == tl.to_dict() == json.loads(text)
    assert again.node == "node-0004"


def test_equal_times_keep_the_order_they_were_added():
    tl = Timeline(clock=lambda: T0)
    for word in ("first", "second", "third"):
        tl.note(word)
    tl.note("earlier", at=T0 - 1)
    assert [e.text for e in tl] == ["earlier", "first", "second", "third"]


def test_bad_entries_are_refused():
    tl = Timeline()
    with pytest.raises(ValueError, match="kind 'restart'"):
        tl.add("restart", "x")
    with pytest.raises(ValueError, match="needs a text"):
        tl.add("note", "  ")
    with pytest.raises(ValueError, match="not JSON data"):
        tl.add("note", "x", {"when": object()})
    with pytest.raises(ValueError, match="not a timeline"):
        Timeline.from_json("[1, 2]")
    with pytest.raises(ValueError, match="entry 0"):
        Timeline.from_dict({"entries": [{"kind": "note"}]})
    assert len(tl) == 0


def test_the_report_tells_the_story(tmp_path):
    tl, bundle = story(tmp_path)
    md = incident_report(tl, VERDICT, bundle, "node-0004")
    heads = [ln for ln in md.splitlines() if ln.startswith("#")]
    assert heads == ["# Incident report: node-0004 — runtime_down", "## Summary", "## Timeline",
                     "## Root cause", "## Fix applied", "## Verification", "## Evidence bundle"]
    assert "- **Window:** 2026-11-18 11:06:45 → 2026-11-18 11:08:00 UTC (75 s)" in md
    assert "- **Outcome:** verified — Ready=True after 35 s; crictl ps 0.04 s" in md
    assert "- **Fix applied:** restart-containerd (ok)" in md
    # the timeline table: one row per entry, pipes in the text escaped
    rows = [ln for ln in md.splitlines() if ln.startswith("| 11:")]
    assert len(rows) == len(tl)
    assert rows[0] == "| 11:06:45 | note | paged: node-0004 NotReady for 5 min |"
    assert all(ln.count(" | ") == 2 for ln in rows)
    # root cause with the evidence that decided it; what was ruled out
    assert "**runtime_down** — " in md
    assert "- runtime_down: node.crictl.ps [hung]: crictl ps did not return in 10 s \\| " \
           "runtime hung" not in md  # evidence is a list item, not a table cell
    assert "- runtime_down: node.crictl.ps [hung]: crictl ps did not return in 10 s | " \
           "runtime hung" in md
    assert "Ruled out: disk_pressure." in md
    assert ("- 11:07:20 **restart-containerd** succeeded: `systemctl restart containerd && "
            "systemctl restart kubelet` — exit 0") in md
    assert "Result: **verified**." in md
    assert "  - Ready=True\n  - healthz 200\n" in md
    assert f"- Path: `{bundle.path}`" in md and f"- sha256: `{bundle.sha256}`" in md
    assert "  - crictl-ps.txt: hung after 10 s" in md


def test_a_report_of_a_fix_that_did_not_work_and_of_nothing_done(tmp_path):
    tl, bundle = story(tmp_path, verified=False)
    md = incident_report(tl, VERDICT, bundle, None)
    assert "- **Outcome:** NOT fixed — Ready=False after 120 s" in md
    assert "Result: **not fixed**." in md
    bare = incident_report(Timeline("node-0009"), None, None, None)
    assert bare.startswith("# Incident report: node-0009 — not diagnosed\n")
    for words in ("No verdict was reached.", "No action was taken.",
                  "Not verified: no verification was run.", "No evidence bundle was captured.",
                  "Nothing was recorded."):
        assert words in bare
    undone = Timeline("node-0004", clock=Clock())
    undone.verdict(VERDICT)
    md = incident_report(undone, VERDICT, None, "node-0004")
    assert "The runbook's fix for this verdict:\n\n- Restart containerd, then the kubelet" in md
    assert "How to verify:\n\n- crictl ps answers in under a second" in md


def test_several_commands_of_one_action_are_listed():
    tl = Timeline("n", clock=Clock())
    tl.action("restart-containerd", "systemctl restart containerd\nsystemctl restart kubelet",
              ok=False, result="exit 1")
    md = incident_report(tl, None, None, "n")
    assert ("- 11:06:45 **restart-containerd** failed — exit 1\n"
            "  - `systemctl restart containerd`\n  - `systemctl restart kubelet`\n") in md
    assert "- **Fix applied:** restart-containerd (failed)" in md


def test_outside_text_cannot_break_the_table():
    tl = Timeline("n", clock=Clock())
    tl.note("evil | cell\x1b[31m red")
    md = incident_report(tl, None, None, "n")
    row = next(ln for ln in md.splitlines() if ln.startswith("| 11:"))
    assert row == "| 11:06:45 | note | evil \\| cell [31m red |"


def test_write_report_is_atomic_and_private(tmp_path):
    path = write_report(tmp_path / "reports" / "incident.md", "# report\n")
    assert path.read_text() == "# report\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_report(path, "# second\n")
    assert path.read_text() == "# second\n"
    assert os.listdir(path.parent) == ["incident.md"]
    with pytest.raises(OSError):
        write_report(tmp_path / "reports", "x")  # a directory: nothing replaced, no temp left
    assert sorted(os.listdir(tmp_path / "reports")) == ["incident.md"]
