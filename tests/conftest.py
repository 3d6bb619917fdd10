"""Shared fixtures: a served lab for the real-client tests, and the snapshot folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
# Screens repaint at most 20 times a second instead of 60: what a test asserts is the same, and
# the suite's Textual apps (several at once on two cores) spend a fifth less CPU drawing.
os.environ.setdefault("TEXTUAL_FPS", "20")

# Every scenario on a node of its own, so one served lab covers them all.
SCENARIO_NODES = {
    "pleg-slow-io": "node-0003",
    "containerd-deadlock": "node-0004",
    "runtime-dead": "node-0006",
    "cert-expired": "node-0007",
    "cni-binary-missing": "node-0009",
    "inode-exhaustion": "node-0010",
    "disk-full": "node-0012",
    "kubelet-oom": "node-0013",
    "too-many-pods": "node-0015",
    "pid-exhaustion": "node-0016",
    "api-partition": "node-0018",
    "clock-skew": "node-0019",
    "cgroup-driver-mismatch": "node-0021",
    "swap-on": "node-0022",
    "vxlan-missing": "node-0023",
}
LAB_NODES = 30


try:  # keep UI snapshots in the top-level snapshots/ folder
    import pytest_textual_snapshot as _snap

    def _snapshot_dirname(cls, *, test_location) -> str:
        return str(ROOT / "snapshots" / Path(test_location.filepath).stem)

    _snap.SVGImageExtension.dirname = classmethod(_snapshot_dirname)  # type: ignore[assignment]
except ImportError:  # the plugin is only needed for the UI snapshot tests
    pass


@dataclass
class ServedLab:
    dir: Path
    process: subprocess.Popen
    info: dict

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True,
                context: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig)]
        if context:
            cmd += ["--context", context]
        result = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ssh(self, node: str, command: str, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", node,
                                 command], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {node} {command!r} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


def start_lab(directory: Path, *args: str, timeout: float = 120) -> ServedLab:
    cmd = [sys.executable, "-m", "tui.cli", "lab", "serve", "--dir", str(directory), *args]
    log = open(directory.parent / f"{directory.name}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read() or b""
        buf += chunk
        if b"ready" in buf:
            break
        if proc.poll() is not None:
            log.flush()
            tail = (directory.parent / f"{directory.name}.log").read_text()[-3000:]
            raise RuntimeError(f"lab exited with {proc.returncode}: {tail}")
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("lab did not print ready in time")
    info = json.loads((directory / "lab.json").read_text())
    return ServedLab(directory, proc, info)


def stop_lab(lab: ServedLab, sig: signal.Signals = signal.SIGTERM) -> int:
    """Stop the lab with `sig`; its exit code (-9: it did not stop in time and was killed)."""
    lab.process.send_signal(sig)
    try:
        return lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        return -9


@pytest.fixture(scope="session")
def served_lab(tmp_path_factory) -> ServedLab:
    """One lab for the session: every scenario on its own node, the rest healthy."""
    directory = tmp_path_factory.mktemp("lab") / "served"
    specs = [f"--scenario={name}@{node}" for name, node in SCENARIO_NODES.items()]
    lab = start_lab(directory, "--nodes", str(LAB_NODES), "--seed", "7", *specs)
    yield lab
    assert_stops_cleanly(lab, signal.SIGTERM)


def assert_stops_cleanly(lab: ServedLab, sig: signal.Signals) -> None:
    """A lab stopped by `sig` exits 0 (the service manager and ctrl+c in a terminal)."""
    code = stop_lab(lab, sig)
    log = lab.dir.parent / f"{lab.dir.name}.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    assert code == 0, f"the lab exited with {code} on {sig.name}:\n{tail}"


@pytest.fixture
def fresh_lab(tmp_path):
    """A lab of one's own, for tests that change state: call with the serve arguments."""
    labs: list[ServedLab] = []

    def make(*args: str) -> ServedLab:
        lab = start_lab(tmp_path / f"lab{len(labs)}", *args)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        stop_lab(lab)


# -- how the suite is shared among pytest-xdist's workers (`make test` runs `--dist loadgroup`) --
# A file that builds a module-scoped fixture (a lab of its own, heals run all at once) stays on
# one worker, so the fixture is built once; other tests go wherever a worker is free. The longest
# go first, so no worker is left alone with a long tail: `--durations` shows which they are.
SPREAD = {"test_tui_heal.py"}  # a module lab per worker is cheap next to one heal after another
LONGEST_FIRST = ["test_tui_heal.py", "test_cli_act.py", "test_lab_remediation.py",
                 "test_analyze_bundles.py", "test_faults_tui.py", "test_tui_node.py",
                 "test_lab_kubectl.py", "test_faults_lab.py", "test_faults_fleet.py",
                 "test_faults_ssh.py", "test_lab_control.py", "test_fuzz_metrics.py",
                 "test_quiet_commands.py", "test_probes_node_checks.py"]


_MODULE_FIXTURES: dict[Path, bool] = {}


def _builds_module_fixtures(path: Path) -> bool:
    if path not in _MODULE_FIXTURES:
        _MODULE_FIXTURES[path] = 'scope="module"' in path.read_text()
    return _MODULE_FIXTURES[path]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPREAD and _builds_module_fixtures(item.path):
            item.add_marker(pytest.mark.xdist_group(item.path.name))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
