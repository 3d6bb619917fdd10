"""Every `nodewb` command, run as a user runs it (the installed `nodewb` script, in a subprocess),
prints nothing on stderr but nodewb's own words: no third-party warning, no traceback.

`make drift` runs this file again in a fresh `pip install .` of today's newest dependencies, so the
next library that starts to warn is caught before a user sees it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import ServedLab, start_lab, stop_lab

NODEWB = Path(sys.executable).with_name("nodewb")
FOREIGN = re.compile(r"Warning\b|Traceback \(most recent call last\)|^\s*File \".*\", line \d+"
                     r"|Exception ignored", re.M)
# On a terminal the app draws the screen on stderr, where a node's events may say "Warning": there
# a warning is Python's "...Warning: " and a traceback its header.
FOREIGN_ON_SCREEN = re.compile(rb"[A-Za-z]Warning: |Traceback \(most recent call last\)"
                               rb"|Exception ignored")
ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
SCENARIOS = ("--scenario=swap-on@node-0002", "--scenario=api-partition@node-0003")


def foreign_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if FOREIGN.search(line)]


def test_the_pattern_sees_a_warning_and_a_traceback():
    seen = ("/x/asyncssh/crypto/misc.py:32: CryptographyDeprecationWarning: DSA is deprecated\n"
            "Traceback (most recent call last):\n  File \"/x/tui/cli.py\", line 3, in main\n")
    assert len(foreign_lines(seen)) == 3
    assert foreign_lines("nodewb diagnose: cannot reach the API server at https://x: refused\n") \
        == []


@pytest.fixture(scope="module")
def quiet_lab(tmp_path_factory) -> ServedLab:
    lab = start_lab(tmp_path_factory.mktemp("quiet") / "lab", "--nodes", "3", "--seed", "5",
                    *SCENARIOS)
    yield lab
    stop_lab(lab)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("quiet-home")
    # pytest-xdist's workers set COLUMNS=80 and LINES=24, which would outrank the terminal's size
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHONWARN", "NODEWB_")) and k not in ("COLUMNS", "LINES")}
    environ.update(XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
                   TERM="xterm-256color")
    return environ


def run(env: dict[str, str], *args: str, stdin: str = "", timeout: float = 120
        ) -> subprocess.CompletedProcess:
    return subprocess.run([str(NODEWB), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


def lab_args(lab: ServedLab) -> list[str]:
    return ["--kubeconfig", str(lab.kubeconfig), "--ssh-config", str(lab.ssh_config)]


def test_nodewb_is_the_installed_script():
    assert NODEWB.exists(), f"no nodewb script beside {sys.executable}"


@pytest.mark.parametrize("args", [["--help"], ["scenarios"], ["scenarios", "--format", "json"],
                                  ["lab", "--help"], ["act", "--help"]])
def test_commands_without_a_cluster_are_quiet(env, args):
    r = run(env, *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_errors_are_nodewbs_own_words(env, tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nclusters: [\n")
    for args in (["diagnose", "node-0001", "--kubeconfig", str(bad)],
                 ["capture", "node-0001", "--kubeconfig", str(tmp_path / "missing")],
                 ["analyze", str(tmp_path / "no-such-bundle")]):
        r = run(env, *args)
        assert r.returncode != 0, args
        assert r.stderr.startswith(f"nodewb {args[0]}: "), r.stderr
        assert foreign_lines(r.stderr) == [], r.stderr


def test_cluster_commands_are_quiet(quiet_lab, env, tmp_path):
    """diagnose, capture, analyze and act against a served lab, then the lab's own stderr."""
    d = run(env, "diagnose", "node-0002", "--format", "json", *lab_args(quiet_lab))
    assert d.returncode == 0, d.stderr
    assert json.loads(d.stdout)["verdict"] == "kubelet_config"
    bundle = tmp_path / "node-0002.tar.gz"
    c = run(env, "capture", "node-0002", "--out", str(bundle), *lab_args(quiet_lab))
    assert c.returncode == 0 and bundle.exists(), c.stderr
    a = run(env, "analyze", str(bundle))
    assert a.returncode == 0, a.stderr
    refused = run(env, "act", "node-0003", "restart-kubelet", "--yes", "--allow-actions",
                  *lab_args(quiet_lab))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    healed = run(env, "act", "node-0002", "disable-swap", "--yes", "--allow-actions",
                 *lab_args(quiet_lab), timeout=180)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    for r in (d, c, a, refused, healed):
        assert foreign_lines(r.stderr) == [], r.stderr
    log = quiet_lab.dir.parent / f"{quiet_lab.dir.name}.log"
    assert foreign_lines(log.read_text(errors="replace")) == []


def test_lab_serve_is_quiet_from_start_to_stop(env, tmp_path):
    err = tmp_path / "serve.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([str(NODEWB), "lab", "serve", "--dir", str(tmp_path / "lab"),
                                 "--nodes", "2"], stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert foreign_lines(err.read_text(errors="replace")) == []


class Terminal:
    """The app in a pseudo-terminal of 120x40, as a person runs it: stdin, stdout and stderr. A
    thread reads the screen as it comes, so the app never waits on a full terminal."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen([str(NODEWB), *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.output = b""  # everything the app wrote, as it came
        self.seen = 0  # where wait_for looks from
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:  # the app closed the terminal
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                window = self.output[self.seen:]
            if text.encode() in ESCAPES.sub(b"", window):
                break
            assert self.proc.poll() is None, f"the app exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, \
                f"{text!r} not on screen after {timeout}s; the screen's last words:\n" + \
                ESCAPES.sub(b"", window)[-1500:].decode(errors="replace")
            time.sleep(0.1)
        with self._lock:
            self.seen = len(self.output)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> int:
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        os.close(self.master)
        return code


@pytest.mark.parametrize("how", ["against-a-served-lab", "embedded-lab"])
def test_the_tui_is_quiet(quiet_lab, env, how):
    """The fleet, a node opened (SSH, the kubelet client and the actions load then) until its
    probes have answered, back to the fleet, quit."""
    args = lab_args(quiet_lab) if how == "against-a-served-lab" else ["lab", "--nodes", "3"]
    term = Terminal(args, env)
    try:
        term.wait_for("node-0003", 60)  # the fleet
        term.press("\r")  # the node on the first row
        term.wait_for("Journal", 60)
        term.wait_for("finished at", 120)  # every probe has answered
        term.press("\x1b")
        term.wait_for("NAME", 30)
        term.press("q")
    finally:
        code = term.close()
    plain = ESCAPES.sub(b"", term.output)
    assert code == 0, plain[-3000:].decode(errors="replace")
    assert FOREIGN_ON_SCREEN.findall(plain) == [], plain[-3000:].decode(errors="replace")
