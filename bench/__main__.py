"""`python -m bench`: run every benchmark, each in its own process, show its report, then print
one table of the headline figures: figure | ours | peer | ratio.

    python -m bench [--quick] [--only NAME ...] [--markdown FILE]

--quick runs smaller sizes (for a check that everything still runs, not for figures to quote).
--markdown also writes the table, with the machine it ran on, to FILE.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import table

ROOT = Path(__file__).resolve().parent.parent

# name -> (full arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "metrics_reduce": (["--size-mb", "2", "--runs", "9"], ["--size-mb", "0.5", "--runs", "3"]),
    "kubectl_get_nodes": (["--nodes", "5000", "--runs", "5"], ["--nodes", "500", "--runs", "2"]),
    "fleet": (["--nodes", "5000", "--runs", "3", "--seconds", "10"],
              ["--nodes", "500", "--runs", "1", "--seconds", "3", "--churn", "500"]),
    "ssh_fanout": (["--nodes", "200", "--sample", "0"], ["--nodes", "200", "--sample", "20"]),
}
TIME_LIMIT = 900  # seconds per benchmark


def machine() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{os.cpu_count()} CPUs" + (f" ({cpu})" if cpu else ""), mem,
             f"Python {platform.python_version()}", platform.platform(), load]
    return "; ".join(p for p in parts if p)


def run(name: str, args: list[str]) -> tuple[str, float, str]:
    """(stdout, seconds, problem) of one benchmark; its output is shown as it comes."""
    cmd = [sys.executable, "-m", f"bench.{name}", *args]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    out: list[str] = []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            out.append(line)
        proc.wait(timeout=TIME_LIMIT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()
        raise
    problem = "" if proc.returncode == 0 else f"exit status {proc.returncode}"
    return "".join(out), time.monotonic() - started, problem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run just these")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    where = machine()
    print(f"machine: {where}")
    rows: list[table.Row] = []
    failed = []
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        text, seconds, problem = run(name, quick if args.quick else full)
        found = table.READERS[name](text)
        if problem or not found:
            failed.append(f"{name}: {problem or 'no figures found in its output'}")
        rows.extend(found)
        print(f"=== {name} took {seconds:.0f} s")
    result = table.render(rows)
    print(f"\n{result}")
    for f in failed:
        print(f"FAILED {f}")
    if args.markdown:
        args.markdown.write_text(f"machine: {where}\n\n{result}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
