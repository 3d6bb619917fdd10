"""What every node command opens: the API client, SSH (when configured) and the kubelet client."""

from __future__ import annotations

import argparse
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator


@dataclass
class NodeSession:
    node: str
    kube: Any  # probes.kube.Kube
    ssh: Any | None  # probes.ssh.SshClient, None when no ssh config or bastion is given
    kubelet: Any  # probes.kubelet.KubeletClient
    node_object: dict
    internal_ip: str | None


def ssh_options(args: argparse.Namespace) -> dict:
    return {"bastion": getattr(args, "bastion", None), "target": getattr(args, "ssh_target", None),
            "user": getattr(args, "ssh_user", None), "sudo": getattr(args, "sudo", False)}


@asynccontextmanager
async def node_session(args: argparse.Namespace, node: str) -> AsyncIterator[NodeSession]:
    """Open the clients for NODE from --kubeconfig/--context/--ssh-config and the ssh flags.
    Raises probes.kubeconfig.KubeError (a clear one-line message) when the API cannot be used."""
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.node_checks import ssh_runner
    from probes.ssh import SshClient

    kube = Kube(args.kubeconfig, args.context)
    obj = kube.get_json(f"/api/v1/nodes/{node}", doing=f"get node {node}")
    ip = next((a.get("address") for a in (obj.get("status") or {}).get("addresses") or []
               if a.get("type") == "InternalIP"), None)
    options = {k: v for k, v in ssh_options(args).items() if v}
    has_config = bool(args.ssh_config and os.path.exists(args.ssh_config))
    ssh = SshClient(ssh_config=args.ssh_config if has_config else None, **options) \
        if has_config or options.get("bastion") else None
    try:
        async with KubeletClient(kube, ssh_runner(ssh) if ssh else None) as kubelet:
            yield NodeSession(node, kube, ssh, kubelet, obj, ip)
    finally:
        if ssh is not None:
            await ssh.close()
