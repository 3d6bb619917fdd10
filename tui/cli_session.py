"""What every node command opens: the API client, SSH (when configured) and the kubelet client."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probes.kube import Kube
    from probes.kubelet import KubeletClient
    from probes.ssh import SshClient


@dataclass
class NodeSession:
    node: str
    kube: Kube
    ssh: SshClient | None  # None when no ssh config or bastion is given
    kubelet: KubeletClient
    node_object: dict
    internal_ip: str | None


def ssh_options(args: argparse.Namespace) -> dict:
    return {"bastion": getattr(args, "bastion", None), "target": getattr(args, "ssh_target", None),
            "user": getattr(args, "ssh_user", None), "sudo": getattr(args, "sudo", False)}


def kubelet_via(args: argparse.Namespace) -> str:
    """The kubelet client's default path from --kubelet-via (auto when not given)."""
    from probes.kubelet import path_named

    return path_named(getattr(args, "kubelet_via", None) or "auto")


def session_options(args: argparse.Namespace) -> dict:
    """What the TUI's node contexts take (tui.node_context.live_context's `ssh_options`): the
    ssh options and the --kubelet-via word (read when a node is first opened, so the kubelet
    client is not imported before the first rows are on screen)."""
    return dict(ssh_options(args), kubelet_via=getattr(args, "kubelet_via", None) or "auto")


@asynccontextmanager
async def node_session(args: argparse.Namespace, node: str) -> AsyncIterator[NodeSession]:
    """Open the clients for NODE from --kubeconfig/--context/--ssh-config, the ssh flags and
    --kubelet-via; both clients reach the node by its InternalIP (unless the ssh config or
    --ssh-target says otherwise for SSH).
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
    addresses = {node: ip} if ip else {}
    ssh = SshClient(ssh_config=args.ssh_config if has_config else None, addresses=addresses,
                    **options) if has_config or options.get("bastion") else None
    try:
        async with KubeletClient(kube, ssh_runner(ssh) if ssh else None, addresses=addresses,
                                 via=kubelet_via(args)) as kubelet:
            yield NodeSession(node, kube, ssh, kubelet, obj, ip)
    finally:
        if ssh is not None:
            await ssh.close()
