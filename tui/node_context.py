"""What the node screen needs from the outside world, injected so tests can pass fakes.

`NodeContext` holds the API connection (a probes.kube.Kube, sync), the SSH client (or None when
no ssh config was given), a factory of KubeletClient, a factory of NodeProbes, `locate` (which
tells both clients a node's InternalIP before they reach it) and a clock. The app builds one with
`live_context`; tests build their own from fakes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class ProbePlan(Protocol):
    """What the node screen uses of probes.node_probes.NodeProbes."""

    def plan(self) -> Sequence[Any]: ...  # [ProbeSpec(id, title, timeout)]

    async def run(self, on_start: Callable[..., Any],
                  on_observation: Callable[[Any], Any]) -> list[Any]: ...


@dataclass
class NodeContext:
    kube: Any | None = None  # probes.kube.Kube: get_json(path, params)
    ssh: Any | None = None  # probes.ssh.SshClient: stream(node, command)
    kubelet: Callable[[], Any] | None = None  # -> probes.kubelet.KubeletClient
    probes: Callable[[str], ProbePlan] | None = None  # node name -> NodeProbes
    # (node name, its InternalIP if known) -> the InternalIP the SSH and kubelet clients now use
    locate: Callable[[str, str | None], Awaitable[str | None]] | None = None
    clock: Callable[[], float] = time.time
    scrape_every: float = 5.0  # seconds between metrics scrapes
    poll_every: float = 2.0  # seconds between node log queries (without SSH)
    journal_command: str = "journalctl -u kubelet -f -n 200"
    attempt: Callable[..., Any] | None = None  # -> triage.workflow.Attempt (default: that class)
    verify_quiet: float | None = None  # seconds of clean journal verification waits for
    extra: dict[str, Any] = field(default_factory=dict)


LOCATE_TIMEOUT = 10.0  # seconds to ask the API server for a node's InternalIP


def live_context(kube_source: Callable[[], Any], ssh_config: str | None,
                 clock: Callable[[], float] = time.time,
                 ssh_options: dict[str, Any] | None = None,
                 kubelet_via: str | None = None) -> Callable[[], NodeContext]:
    """A factory of contexts for the real cluster: `kube_source()` connects (or returns the
    connection the fleet already made); SSH is used when `ssh_config` names an existing file
    or a bastion is given (`ssh_options` go to probes.ssh.SshClient: bastion, target, user,
    sudo; a "kubelet_via" entry among them, or `kubelet_via`, is the kubelet client's default
    path: auto, proxy, direct or ssh). A node is reached as `nodewb diagnose` reaches it: by its
    InternalIP unless the ssh config has a Host block for its name or a target template says
    otherwise. The factory is called on the node screen's first need, never at import."""
    options = dict(ssh_options or {})
    via = options.pop("kubelet_via", None) or kubelet_via or "auto"  # a word of --kubelet-via
    options = {k: v for k, v in options.items() if v not in (None, "", False)}
    cache: dict[str, Any] = {}

    def make() -> NodeContext:
        if "ctx" in cache:
            return cache["ctx"]
        import os

        from probes.kubelet import KubeletClient

        kube = kube_source()
        ssh = None
        has_config = bool(ssh_config and os.path.exists(os.path.expanduser(ssh_config)))
        if has_config or options.get("bastion"):
            from probes.ssh import SshClient

            ssh = SshClient(ssh_config=ssh_config if has_config else None, **options)

        runner = _runner(ssh) if ssh is not None else None
        kubelet = KubeletClient(kube, runner, via=via)

        async def locate(node: str, known: str | None = None) -> str | None:
            ip = known or kubelet.addresses.get(node) or \
                (ssh.addresses.get(node) if ssh is not None else None)
            if not ip and kube is not None:
                try:
                    ip = await asyncio.wait_for(kubelet.node_address(node), LOCATE_TIMEOUT)
                except asyncio.CancelledError:
                    raise
                except Exception:  # no address: SSH falls back to the node's name
                    ip = None
            if ip:
                kubelet.addresses[node] = ip
                if ssh is not None:
                    ssh.addresses[node] = ip
            return ip

        def probes(node: str) -> ProbePlan:
            from probes.node_probes import NodeProbes

            return NodeProbes(kube, ssh, kubelet, node, internal_ip=kubelet.addresses.get(node))

        cache["ctx"] = NodeContext(kube=kube, ssh=ssh, kubelet=lambda: kubelet, probes=probes,
                                   locate=locate, clock=clock)
        cache["close"] = (ssh, kubelet)
        return cache["ctx"]

    async def aclose() -> None:
        """Close the SSH connections and HTTP clients the contexts opened (on app exit)."""
        ssh, kubelet = cache.pop("close", (None, None))
        cache.pop("ctx", None)
        if kubelet is not None:
            await kubelet.aclose()
        if ssh is not None:
            await ssh.close()

    make.aclose = aclose  # type: ignore[attr-defined]
    return make


def _runner(ssh: Any) -> Callable[[str, str, float], Awaitable[tuple]]:
    async def run(node: str, command: str, timeout: float) -> tuple:
        r = await ssh.run(node, command, timeout=timeout)
        return r.exit_status, r.stdout, r.stderr, r.timed_out

    return run
