"""Cluster access from a kubeconfig, and node lists read as raw JSON into slim records."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class KubeError(Exception):
    """A problem reaching or using the cluster, worded for the person at the terminal."""


@dataclass(slots=True)
class NodeRecord:
    name: str
    ready: str  # True | False | Unknown
    ready_reason: str
    ready_message: str
    ready_by: str  # kubelet | node-controller
    heartbeat: float
    roles: str
    unschedulable: bool
    kubelet_version: str
    runtime: str
    kernel: str
    os_image: str
    internal_ip: str
    zone: str
    pool: str
    created: float
    pods_capacity: int
    conditions: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)
    resource_version: str = ""

    @property
    def status(self) -> str:
        text = {"True": "Ready", "False": "NotReady"}.get(self.ready, "Unknown")
        return text + (",SchedulingDisabled" if self.unschedulable else "")


def _ts(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def node_record(obj: dict[str, Any]) -> NodeRecord:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = meta.get("labels") or {}
    info = status.get("nodeInfo") or {}
    conditions = {c.get("type", ""): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready", {})
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    ip = next((a.get("address", "") for a in status.get("addresses") or []
               if a.get("type") == "InternalIP"), "")
    try:
        pods = int((status.get("capacity") or {}).get("pods", "0"))
    except ValueError:
        pods = 0
    return NodeRecord(
        name=meta.get("name", ""),
        ready=ready.get("status", "Unknown"),
        ready_reason=ready.get("reason", ""),
        ready_message=ready.get("message", ""),
        ready_by="node-controller" if ready.get("reason") == "NodeStatusUnknown" else "kubelet",
        heartbeat=_ts(ready.get("lastHeartbeatTime")),
        roles=",".join(roles) or "<none>",
        unschedulable=bool(spec.get("unschedulable")),
        kubelet_version=info.get("kubeletVersion", ""),
        runtime=info.get("containerRuntimeVersion", ""),
        kernel=info.get("kernelVersion", ""),
        os_image=info.get("osImage", ""),
        internal_ip=ip,
        zone=labels.get("topology.kubernetes.io/zone", ""),
        pool=labels.get("eks.amazonaws.com/nodegroup")
        or labels.get("cloud.google.com/gke-nodepool")
        or labels.get("kubernetes.azure.com/agentpool", ""),
        created=_ts(meta.get("creationTimestamp")),
        pods_capacity=pods,
        conditions={t: c.get("status", "") for t, c in conditions.items()},
        taints=[f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or []],
        resource_version=meta.get("resourceVersion", ""),
    )


class Kube:
    """One cluster connection made from a kubeconfig."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        first = path.split(os.pathsep)[0]
        if not any(os.path.exists(p) for p in path.split(os.pathsep)):
            raise KubeError(f"no kubeconfig at {first}: pass --kubeconfig, set KUBECONFIG, "
                            f"or try `nodewb lab` for a simulated cluster")
        try:
            contexts, current = config.list_kube_config_contexts(config_file=path)
            chosen = context or (current or {}).get("name")
            if context and context not in {c["name"] for c in contexts}:
                raise KubeError(f"context {context!r} is not in {path}; it has: "
                                + ", ".join(c["name"] for c in contexts))
            configuration = client.Configuration()
            config.load_kube_config(config_file=path, context=chosen,
                                    client_configuration=configuration)
        except KubeError:
            raise
        except (ConfigException, ValueError, TypeError, KeyError, AttributeError) as err:
            raise KubeError(f"kubeconfig {path} could not be used: {err}") from None
        except Exception as err:  # yaml errors and friends
            raise KubeError(f"kubeconfig {path} is malformed: {err}") from None
        self.path = path
        self.context = chosen or ""
        self.server = configuration.host
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)

    def list_nodes(self, chunk: int = 500, timeout: float = 20.0) -> list[NodeRecord]:
        """All nodes, read in chunks as raw JSON (no full client models)."""
        records: list[NodeRecord] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": chunk, "_preload_content": False,
                                      "_request_timeout": timeout}
            if token:
                kwargs["_continue"] = token
            try:
                response = self.core.list_node(**kwargs)
                body = json.loads(response.data)
            except Exception as err:
                raise KubeError(_explain(err, self.server)) from None
            records.extend(node_record(item) for item in body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return records


def _explain(err: Exception, server: str) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(err, ApiException):
        if err.status == 401:
            return f"the API server at {server} refused our credentials (401 Unauthorized)"
        if err.status == 403:
            return f"the API server at {server} forbids listing nodes (403): check RBAC"
        return f"the API server at {server} answered {err.status} {err.reason}"
    text = str(err)
    if "Connection refused" in text or "Max retries" in text or "timed out" in text.lower():
        return f"cannot reach the API server at {server}: {text.splitlines()[0][:200]}"
    return f"listing nodes from {server} failed: {text.splitlines()[0][:200] if text else err!r}"


def age(seconds_ago_ts: float, now: float | None = None) -> str:
    seconds = max(0, int((now or time.time()) - seconds_ago_ts))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
