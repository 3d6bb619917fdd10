"""Writes to the Kubernetes API (POST, PUT, PATCH, DELETE) through probes.kube.Kube.send, off the
event loop: the safe actions and access reviews write here.

    answer = await send(kube, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                        review)
"""

from __future__ import annotations

import asyncio
from typing import Any

from probes.kubeconfig import KubeError

__all__ = ["send", "send_sync", "KubeError", "MERGE_PATCH", "JSON"]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


def send_sync(kube: Any, method: str, path: str, body: Any = None, *,
              content_type: str = JSON, doing: str = "",
              timeout: tuple[float, float] | None = None) -> dict:
    """One write; the parsed JSON answer (2xx). Anything else raises KubeError (with `status`)."""
    return kube.send(method, path, body, content_type=content_type, doing=doing,
                     timeout=timeout or (CONNECT_TIMEOUT, READ_TIMEOUT))


async def send(kube: Any, method: str, path: str, body: Any = None, *,
               content_type: str = JSON, doing: str = "",
               timeout: tuple[float, float] | None = None) -> dict:
    """`send_sync` off the event loop."""
    return await asyncio.to_thread(send_sync, kube, method, path, body,
                                   content_type=content_type, doing=doing, timeout=timeout)
