"""Fuzzing journal lines: the follow-resume helper (probes.ssh_journal), the runbook patterns
(probes.node_checks.scan_journal) and what the node screen shows of a line (tui.node_journal's
clean_line): arbitrary text, invalid UTF-8, escape sequences, very long lines.

Crashes found earlier have a test each below."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.node_checks import JOURNAL_PATTERNS, scan_journal
from probes.ssh_journal import JournalResume
from tui.node_journal import clean_line

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FORMATS = ["short", "short-precise", "short-iso", "short-iso-precise", "short-unix", "json",
           "json-seq", "cat", "verbose", "with-unit"]
ESCAPES = ["\x1b[2J", "\x1b[31m", "\x1b]0;title\x07", "\x1b]8;;http://x\x1b\\", "\x1bP1$r\x1b\\",
           "\x9b31m", "\x1b[?1049h", "\x1bc", "\x07", "\r", "\x00", "\x7f", "\x85", "\u202e",
           "\x1b", "\x1b[", "\x1b]", "[bold]x[/bold]", "[link=file:///etc/passwd]x"]
PATTERN_WORDS = [w for label, _ in JOURNAL_PATTERNS for w in label.split()][:80]

# Lines as a journal could print them: real stamps, real pattern text, escapes, raw bytes
# decoded as the SSH client decodes them (UTF-8 with replacement).
stamps = st.sampled_from([
    "Jan  5 10:00:01 node-0001 kubelet[812]: ", "Dec 31 23:59:59 n kubelet: ",
    "2024-03-01T10:00:00+0000 n kubelet[1]: ", "2024-03-01T10:00:00.123456Z n k: ",
    "1709287200.123456 n kubelet[1]: ", "", "Feb 30 00:00:00 ", "Abc 99 99:99:99 ",
])
invalid_utf8 = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "replace"))
fragments = st.one_of(st.text(max_size=30), st.sampled_from(ESCAPES),
                      st.sampled_from(PATTERN_WORDS), invalid_utf8,
                      st.sampled_from([label for label, _ in JOURNAL_PATTERNS]))
lines = st.builds(lambda s, parts: s + "".join(parts), stamps,
                  st.lists(fragments, max_size=8))
json_lines = st.builds(
    lambda ts, cursor, msg: json.dumps({"__REALTIME_TIMESTAMP": ts, "__CURSOR": cursor,
                                        "MESSAGE": msg}),
    st.one_of(st.integers(0, 4 * 10 ** 15).map(str), st.integers(0, 4 * 10 ** 15)),
    st.one_of(st.text(max_size=30), st.sampled_from(["s=1;i=2", "'; rm -rf / #", "$(id)"])),
    st.text(max_size=30))


@FUZZ
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.sampled_from(["journalctl", "-f", "-u", "kubelet", "-o", "json",
                                           "--since", "-n", "10", "-fu", "--lines=5", "|",
                                           "'", '"', "--output=short-iso", "-S", "today",
                                           "--after-cursor=x", "/usr/bin/journalctl", "-e"]),
                          max_size=12).map(" ".join)))
def test_for_command_never_raises(command: str) -> None:
    jr = JournalResume.for_command(command)
    assert jr is None or isinstance(jr, JournalResume)


@FUZZ
@given(st.sampled_from(FORMATS), st.lists(st.one_of(lines, json_lines), max_size=20))
def test_resume_from_well_formed_stamps(fmt: str, seen: list[str]) -> None:
    """Lines whose stamps are real dates: every format notes them, and the resumed command
    is one journalctl invocation again (cursors and dates from the node are quoted)."""
    jr = JournalResume.for_command(f"journalctl -u kubelet -f -o {fmt}")
    assert jr is not None
    for line in seen:
        assert isinstance(jr.accept(line), bool)
    command, how = jr.command()
    tokens = shlex.split(command)
    assert tokens[0] == "journalctl" and "-f" in tokens
    assert how == "restart" or how.startswith(("--since", "--after-cursor"))
    if how == "--after-cursor":
        assert f"--after-cursor={jr.cursor}" in tokens
    for line in seen:  # replayed lines: never raises; the ones already seen may be dropped
        assert isinstance(jr.accept(line), bool)


@FUZZ
@given(st.sampled_from(FORMATS), st.lists(st.one_of(
    lines, json_lines, st.text(max_size=60),
    st.sampled_from(["2024-13-01T00:00:00Z x", "0000-01-01T00:00:00Z x",
                     '{"__REALTIME_TIMESTAMP": 1e999}', "[" * 5_000, "9" * 5000 + " x"])),
    max_size=20))
def test_resume_never_raises_on_any_line(fmt: str, seen: list[str]) -> None:
    jr = JournalResume.for_command(f"journalctl -u kubelet -f -o {fmt}")
    assert jr is not None
    for line in seen:
        assert isinstance(jr.accept(line), bool)
    jr.command()


def test_resume_bad_iso_month() -> None:
    jr = JournalResume.for_command("journalctl -f -o short-iso")
    assert jr is not None
    assert jr.accept("2024-13-01T00:00:00Z node kubelet: x") is True


def test_resume_bad_json_stamp() -> None:
    jr = JournalResume.for_command("journalctl -f -o json")
    assert jr is not None
    assert jr.accept('{"__REALTIME_TIMESTAMP": 1e999}') is True
    assert jr.accept("[" * 50_000) is True


@FUZZ
@given(st.lists(lines, max_size=30))
def test_scan_journal_counts(seen: list[str]) -> None:
    found, n = scan_journal(seen)
    assert n == len(seen)
    assert [f["pattern"] for f in found] == [label for label, _ in JOURNAL_PATTERNS]
    for f in found:
        assert isinstance(f["count"], int) and 0 <= f["count"] <= n
        assert (f["count"] == 0) == (f["last"] is None)
        if f["last"] is not None:
            assert f["last"] in [line.strip() for line in seen]


def test_scan_journal_one_megabyte_line_of_text() -> None:
    line = ("kubelet x " * 110_000)[:1_000_000]
    started = time.monotonic()
    found, n = scan_journal([line, "PLEG is not healthy: pleg was last seen active 3m ago"])
    assert n == 2
    assert time.monotonic() - started < 10
    counts = {f["pattern"]: f["count"] for f in found}
    assert counts["PLEG is not healthy"] == 1


@pytest.mark.timeout(120)
def test_scan_journal_long_line_of_pattern_heads() -> None:
    """Two-part patterns (a head, later a tail) must not retry from every head: a 1 MB line of
    heads with no tail would take about 15 minutes if they did, and the timeout stops it."""
    line = ("ListContainers Error updating node status rpc error " * 20_000)[:1_000_000]
    found, n = scan_journal([line])
    assert n == 1
    assert not any(f["count"] for f in found if f["pattern"] in (
        "runtime call deadline exceeded", "node status update failed"))


# -- what the node screen shows ----------------------------------------------------------------
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


@FUZZ
@given(st.one_of(lines, st.lists(st.one_of(st.sampled_from(ESCAPES), st.text(max_size=10),
                                           invalid_utf8), max_size=20).map("".join),
                 st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
                 st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_clean_line_leaves_no_control_characters(line: str) -> None:
    shown = clean_line(line)
    assert isinstance(shown, str)
    assert not _UNSAFE.search(shown), repr(shown)
    assert "\t" not in shown
    assert "\x1b" not in shown and "\x9b" not in shown


def test_clean_line_embedded_newline() -> None:
    assert "\n" not in clean_line("kubelet: ok\nJan  1 00:00:00 n kubelet: forged")


def test_clean_line_one_megabyte() -> None:
    line = ("\x1b]0;" + "x" * 100 + "\x1b[" + "1;" * 50) * 5000
    started = time.monotonic()
    shown = clean_line(line[:1_000_000])
    assert time.monotonic() - started < 5
    assert "\x1b" not in shown


def test_journal_patterns_combine_into_one_expression_and_match_any_line():
    import re

    from probes.node_checks import JOURNAL_PATTERNS

    combined = re.compile("|".join(f"(?:{rx})" for _, rx in JOURNAL_PATTERNS), re.I)
    text = ("I1121 10:00:00 kubelet.go:1] fine\n"
            'E1121 10:00:01 kubelet.go:2] "ListContainers with filter from runtime service '
            'failed" err="rpc error: code = DeadlineExceeded desc = context deadline exceeded"')
    assert combined.search(text)
    assert not combined.search("I1121 ListContainers ok\nI1121 context deadline exceeded")
