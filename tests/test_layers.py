"""The layer arrows of DESIGN.md, checked on the source: a dependency only ever points down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = {"tui", "probes", "triage", "lab"}
# package -> top-level modules it must never import
FORBIDDEN = {
    "probes": {"textual", "tui", "triage", "lab"},
    "triage": {"textual", "tui", "lab"},
    "lab": {"textual", "tui", "triage", "probes"},
    "bench": {"textual"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layer_arrows(package: str) -> None:
    offenders = []
    for path in sources(package):
        bad = imports_of(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "\n".join(offenders)


def test_nothing_imports_tui() -> None:
    offenders = [str(p.relative_to(ROOT)) for pkg in ("probes", "triage", "lab", "bench")
                 for p in sources(pkg) if "tui" in imports_of(p)]
    assert not offenders


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import os\nfrom textual.app import App\nimport tui.cli\n")
    assert {"textual", "tui"} <= imports_of(bad)


def test_the_fleet_screen_starts_without_the_node_screens_machinery():
    """Start-up time is first rows on screen: SSH, the actions and the node screen load when a
    node is first opened, not when the app starts."""
    import subprocess
    import sys

    code = ("import sys, tui.app, tui.cli, tui.cli_session, tui.feed; "
            "options = tui.cli_session.session_options(tui.cli.build_parser().parse_args([])); "
            "tui.app.NodewbApp(tui.feed.FleetSource(None, None), ssh_config=None, "
            "ssh_options=options); "
            "print(sorted(m for m in ('asyncssh', 'httpx', 'probes.kubelet', 'tui.node_screen', "
            "'triage.workflow', 'textual.widgets._markdown') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
