"""Hostile journal lines from a lab node, followed over real SSH into the journal panel: escape
sequences (CSI, OSC 52, title), Rich markup, bytes that are not UTF-8 and a 1 MB line are shown
as text, never acted on; the stream's gap is marked on screen."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App, ComposeResult

from probes.ssh import SshClient, StreamGap
from tests.test_faults_lab import faults, inject
from tui.node_journal import MAX_SHOWN, JournalPanel, clean_line

pytestmark = pytest.mark.openssh


class JournalApp(App):
    def compose(self) -> ComposeResult:
        yield JournalPanel(id="journal")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.conftest import start_lab, stop_lab

    served = start_lab(tmp_path_factory.mktemp("journal-faults") / "lab", "--nodes", "3",
                       "--seed", "4")
    yield served
    faults(served, "DELETE")
    stop_lab(served)


def test_clean_line_shows_what_was_sent():
    assert clean_line("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert clean_line("\x1b]52;c;cm0gLXJm\x07") == "\\x1b]52;c;cm0gLXJm\\x07"
    assert clean_line("\x9b2J c1") == "\\x9b2J c1"
    assert clean_line("bad \udcff\udcfe") == "bad \\xff\\xfe"  # bytes kept by surrogateescape
    assert clean_line("abc \u202edcba") == "abc \\u202edcba"  # a bidi override is shown
    assert clean_line("[bold red]x[/]\ttab") == "[bold red]x[/]  tab"
    long = clean_line("A" * 1_000_000)
    assert long.startswith("A" * MAX_SHOWN) and "996,000 more characters not shown" in long


async def test_hostile_lines_over_ssh_are_shown_literally_and_the_gap_is_marked(lab):
    node = "node-0002"
    inject(lab, f"journal-hostile:node={node},every=0.5,for=20")
    app = JournalApp()
    async with app.run_test(size=(140, 40)) as pilot:
        panel = app.query_one(JournalPanel)
        client = SshClient(ssh_config=lab.ssh_config)
        got: list[str] = []
        markers: list[str] = []

        async def follow() -> None:
            async with client.stream(node, "journalctl -u kubelet -f -n 20 -o short-precise") \
                    as stream:
                async for item in stream:
                    if isinstance(item, StreamGap):
                        markers.append(item.describe())
                        panel.add_marker(item.describe())
                    else:
                        got.append(item)
                        panel.add_lines((item,))

        task = asyncio.ensure_future(follow())
        try:
            deadline = time.monotonic() + 20
            while not any("hostile long line" in line for line in got) or \
                    not any("hostile OSC 52" in line for line in got):
                assert time.monotonic() < deadline, f"no hostile lines; got {got[-3:]!r}"
                await pilot.pause(0.1)
            inject(lab, f"ssh-drop:every=0.5,node={node},for=1")
            deadline = time.monotonic() + 20
            while not any("resumed" in m or "restarted" in m for m in markers):
                assert time.monotonic() < deadline, f"no gap closed; markers {markers}"
                await pilot.pause(0.1)
            panel.flush()
            await pilot.pause()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.wait_for(client.close(), 15)

        drawn = "\n".join(strip.text for strip in panel.log_view.lines)
        segments = [seg.text for strip in panel.log_view.lines for seg in strip]
        assert not any(c in text for text in segments for c in "\x1b\x9b\x07\x08"), \
            "a control character reached the screen"
        assert "\\x1b[31mRED\\x1b[0m" in drawn  # CSI colour, shown
        assert "\\x1b[2J\\x1b[H" in drawn  # clear screen, shown
        assert "\\x1b]52;c;" in drawn  # OSC 52 clipboard write, shown
        assert "\\x1b]0;pwned-title\\x07" in drawn  # title set, shown
        assert "[bold red]MARKUP[/bold red]" in drawn  # markup, as text
        assert "[link=file:///etc/shadow]x[/link]" in drawn
        assert "bad \ufffd\ufffd\ufffd( utf-8" in drawn  # bytes that are not UTF-8, replaced
        assert "more characters not shown" in drawn  # the 1 MB line, cut
        assert "stream interrupted" in drawn  # the gap, on screen
        widest = max(len(strip.text) for strip in panel.log_view.lines)
        assert widest <= 140
        svg = app.export_screenshot()  # what a terminal would be sent, as a picture
        assert "\x1b" not in svg and "pwned-title" not in app.title
