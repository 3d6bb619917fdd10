"""Writes to the Kubernetes API (POST, PUT, PATCH, DELETE) through a probes.kube.Kube's connection
pool and credentials. Kube itself only reads; the safe actions and access reviews write here.

    answer = await send(kube, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                        review)
"""

from __future__ import annotations

import asyncio
import json
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
    import urllib3

    doing = doing or f"{method} {path}"
    data = None if body is None else json.dumps(body).encode()
    connect, read = timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
    for attempt in (0, 1):
        headers = kube._headers(JSON)
        headers.pop("Accept-Encoding", None)
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            response = kube.pool.request(method, kube.server + path, body=data, headers=headers,
                                         preload_content=True, retries=False,
                                         timeout=urllib3.Timeout(connect=connect, read=read))
        except Exception as err:
            raise kube.explain(err, doing) from None
        if 200 <= response.status < 300:
            try:
                return json.loads(response.data or b"{}")
            except ValueError:
                return {}
        if response.status == 401 and attempt == 0 and kube.reauthenticate():
            continue
        raise kube._status_error(response.status, response.reason or "", response.data or b"",
                                 doing)
    raise AssertionError("unreachable")


async def send(kube: Any, method: str, path: str, body: Any = None, *,
               content_type: str = JSON, doing: str = "",
               timeout: tuple[float, float] | None = None) -> dict:
    """`send_sync` off the event loop."""
    return await asyncio.to_thread(send_sync, kube, method, path, body,
                                   content_type=content_type, doing=doing, timeout=timeout)
