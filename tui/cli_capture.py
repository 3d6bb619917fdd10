"""`nodewb capture NODE [--out FILE]`: write a node's evidence bundle, verified, mode 0600."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tui.cli_session import node_session


async def _capture(args: argparse.Namespace):
    from triage.capture import capture_node

    async with node_session(args, args.node) as s:
        return await capture_node(s.kube, s.ssh, s.kubelet, s.node, internal_ip=s.internal_ip,
                                  out=Path(args.out) if args.out else None)


def cmd_capture(args: argparse.Namespace) -> int:
    from probes.kubeconfig import KubeError
    from triage.evidence import EvidenceError

    try:
        bundle = asyncio.run(_capture(args))
    except (KubeError, EvidenceError) as err:
        lines = str(err).strip().splitlines()
        print(f"nodewb capture: {lines[0] if lines else type(err).__name__}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"nodewb capture: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nodewb capture: interrupted; no bundle written", file=sys.stderr)
        return 1
    print(f"bundle:   {bundle.path}")
    print(f"sha256:   {bundle.sha256}")
    print(f"node:     {bundle.node}")
    print(f"files:    {len(bundle.files) + 1} (manifest.json and {len(bundle.files)} captured, "
          f"verified)")
    if bundle.problems:
        print(f"problems: {len(bundle.problems)}")
        for p in bundle.problems:
            print(f"  - {p}")
    else:
        print("problems: none")
    return 0
