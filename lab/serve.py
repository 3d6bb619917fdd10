"""`Lab`: the whole simulated cluster on loopback, and the client files that reach it."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import random
import secrets
import socket
import sys
import time
from pathlib import Path

from lab.cluster import Cluster

TICK = 1.0
COMPACTION = 300.0  # the API server compacts its storage every five minutes, as etcd is told to


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def reserve_ip_block() -> tuple[int, socket.socket]:
    """A 127.B.0.0/16 block for this lab's nodes, held by a listener on 127.B.0.1:10250 (an
    address no node uses) until the lab stops, so two labs never take the same block."""
    rng = random.SystemRandom()
    blocks = list(range(2, 252))
    rng.shuffle(blocks)
    for block in blocks:
        lock = socket.socket()
        try:
            lock.bind((f"127.{block}.0.1", 10250))
            lock.listen(1)
        except OSError:
            lock.close()
            continue
        return block, lock
    raise RuntimeError("no free 127.B.0.0/16 block on loopback for the lab's nodes")


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Lab:
    def __init__(
        self,
        directory: str | Path,
        nodes: int = 40,
        scenarios: list[str] | None = None,
        seed: int = 1,
        node_ssh_port: int = 22,
        quiet: bool = True,
        faults: list[str] | None = None,
    ) -> None:
        from lab.faults import parse_fault

        self.faults = [parse_fault(spec) for spec in faults or ()]  # FaultError: a clear line
        self.dir = Path(directory)
        self.node_count = nodes
        self.scenarios = scenarios
        self.seed = seed
        self.node_ssh_port = node_ssh_port
        self.quiet = quiet
        self.cluster: Cluster | None = None
        self.api = None
        self.kubelets = None
        self.ssh = None
        self._ticker: asyncio.Task | None = None
        self._block_lock: socket.socket | None = None
        self.api_port = 0
        self.admin_token = secrets.token_hex(16)
        self.viewer_token = secrets.token_hex(16)

    async def start(self) -> None:
        from lab.apiserver import ApiServer
        from lab.kubelet import KubeletServers, proxy_request
        from lab.sshd import SshLab

        self.dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        block, self._block_lock = reserve_ip_block()
        self.cluster = cluster = Cluster(
            nodes=self.node_count, scenarios=self.scenarios, seed=self.seed, ip_block=block,
            server=f"https://127.0.0.1:{port}",
        )
        cluster.tokens[self.admin_token] = ("nodewb-admin", ["system:masters",
                                                             "system:authenticated"])
        cluster.tokens[self.viewer_token] = ("viewer", ["system:authenticated"])
        self.api = ApiServer(cluster)
        self.api_port = await self.api.start("127.0.0.1", port)
        machines = {name: s.machine for name, s in cluster.nodes.items()}
        self.kubelets = KubeletServers(machines, cluster.ca,
                                       authenticate_token=self._kubelet_token)
        await self.kubelets.start()
        cluster.kubelet_proxy = proxy_request
        self.ssh = SshLab()
        client_key = self._client_key()
        await self.ssh.start(machines, client_key.export_public_key().decode(),
                             node_port=self.node_ssh_port)
        self._write_files(client_key)
        self._arm_faults(machines)
        # Hundreds of thousands of long-lived objects: keep the cyclic collector from walking
        # them all (a full collection would stall every listener for a good part of a second).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        self._ticker = asyncio.create_task(self._tick_loop())

    def _arm_faults(self, machines: dict) -> None:
        from lab.faults import flood_journal

        faults = self.cluster.faults
        faults.runners["api-down"] = self.api.outage
        faults.runners["journal-hostile"] = lambda fault: flood_journal(fault, machines)
        self.ssh.attach_faults(faults)
        for m in machines.values():
            m.lab_faults = faults
        for fault in self.faults:
            faults.add(fault)

    async def _kubelet_token(self, token: str) -> bool:
        """The kubelet's webhook authentication: a token the API server knows."""
        return self.cluster is not None and token in self.cluster.tokens

    def _client_key(self):
        from lab.quiet_asyncssh import asyncssh

        path = self.dir / "id_ed25519"
        if path.exists():
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519", comment="nodewb-lab")
        _write(path, key.export_private_key())
        _write(self.dir / "id_ed25519.pub", key.export_public_key(), 0o644)
        return key

    def _write_files(self, client_key) -> None:
        cluster = self.cluster
        assert cluster is not None
        now = time.time()
        admin = cluster.ca.issue("nodewb-admin", orgs=("system:masters",), client=True,
                                 not_before=now - 3600, not_after=now + 30 * 86400)
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        server = f"https://127.0.0.1:{self.api_port}"
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "nodewb-lab", "cluster": {
                "server": server, "certificate-authority-data": b64(cluster.ca.cert_pem)}}],
            "users": [
                {"name": "nodewb-admin", "user": {
                    "client-certificate-data": b64(admin.cert_pem),
                    "client-key-data": b64(admin.key_pem)}},
                {"name": "nodewb-viewer", "user": {"token": self.viewer_token}},
            ],
            "contexts": [
                {"name": "nodewb-lab", "context": {"cluster": "nodewb-lab",
                                                   "user": "nodewb-admin"}},
                {"name": "nodewb-lab-viewer", "context": {"cluster": "nodewb-lab",
                                                          "user": "nodewb-viewer"}},
            ],
            "current-context": "nodewb-lab",
        }
        _write(self.dir / "kubeconfig", json.dumps(kubeconfig, indent=2))
        _write(self.dir / "ca.crt", cluster.ca.cert_pem, 0o644)
        self.ssh.write_client_files(self.dir, self.dir / "id_ed25519")
        _write(self.dir / "lab.json", json.dumps({
            "api": server, "api_port": self.api_port, "admin_token": self.admin_token,
            "viewer_token": self.viewer_token, "nodes": len(cluster.nodes),
            "bastion": ["127.0.0.1", self.ssh.bastion_port], "node_ssh_port": self.ssh.node_port,
            "scenarios": {name: s.name for name, s in cluster.assignments.items()},
            "ips": {name: s.machine.ip for name, s in cluster.nodes.items()},
        }, indent=2))

    async def _tick_loop(self) -> None:
        assert self.cluster is not None
        store = self.cluster.store
        next_compaction = time.monotonic() + COMPACTION
        compact_to = store.rv
        while True:
            started = time.monotonic()
            if started >= next_compaction:
                store.compact(compact_to)  # keeps the last five minutes of history
                compact_to = store.rv
                next_compaction = started + COMPACTION
            try:
                self.cluster.tick(time.time())
            except Exception as exc:  # the lab keeps running; the fault is reported
                print(f"nodewb lab: tick failed: {exc!r}", file=sys.stderr)
            await asyncio.sleep(max(0.05, TICK - (time.monotonic() - started)))

    async def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.faults.stop()
        if self._ticker:
            self._ticker.cancel()
        if self._block_lock is not None:
            self._block_lock.close()
        for part in (self.ssh, self.kubelets, self.api):
            if part is not None:
                try:
                    await part.stop()
                except Exception as exc:
                    print(f"nodewb lab: stopping {type(part).__name__}: {exc!r}", file=sys.stderr)


async def serve_forever(lab: Lab) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await lab.start()
    print("ready", flush=True)
    await stop.wait()
    await lab.stop()
