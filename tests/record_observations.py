"""Record what the node probes observe on lab scenario nodes, for the node screen's snapshots.

    python -m tests.record_observations [SCENARIO ...]

writes tests/data/observations/<scenario>.json: the observations in the order they arrived,
each with `started` made relative to the run's start (the snapshots replay them on a frozen
clock). The probes are the real ones, over the lab's HTTPS API and SSH.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import SCENARIO_NODES, start_lab, stop_lab

OUT = Path(__file__).resolve().parent / "data" / "observations"
HEALTHY_NODE = "node-0002"


async def record(lab_dir: Path, node: str) -> list[dict]:
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.node_checks import ssh_runner
    from probes.node_probes import NodeProbes
    from probes.ssh import SshClient

    kube = Kube(str(lab_dir / "kubeconfig"), None)
    obj = kube.get_json(f"/api/v1/nodes/{node}")
    ip = next(a["address"] for a in obj["status"]["addresses"] if a["type"] == "InternalIP")
    ssh = SshClient(ssh_config=str(lab_dir / "ssh_config"))
    got: list[dict] = []
    t0 = time.time()
    try:
        async with KubeletClient(kube, ssh_runner(ssh)) as kubelet:
            def keep(o):
                d = o.as_dict()
                d["started"] = round(o.started - t0, 3)
                d["duration"] = round(o.duration, 3)
                d["arrived"] = round(time.time() - t0, 3)
                got.append(d)
            await NodeProbes(kube, ssh, kubelet, node, internal_ip=ip).run(on_observation=keep)
    finally:
        await ssh.close()
    return got


def main(names: list[str]) -> int:
    names = names or ["containerd-deadlock", "healthy", "disk-full", "api-partition"]
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lab_dir = Path(tmp) / "lab"
        specs = [f"--scenario={n}@{SCENARIO_NODES[n]}" for n in names if n in SCENARIO_NODES]
        lab = start_lab(lab_dir, "--nodes", "30", "--seed", "7", *specs)
        try:
            time.sleep(8)  # past the kubelet's warm-up, so conditions and leases are settled
            for name in names:
                node = SCENARIO_NODES.get(name, HEALTHY_NODE)
                obs = asyncio.run(record(lab_dir, node))
                (OUT / f"{name}.json").write_text(json.dumps(obs, indent=1) + "\n")
                print(f"{name}: {len(obs)} observations from {node}")
        finally:
            stop_lab(lab)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
