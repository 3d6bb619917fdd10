"""A context's credentials and TLS settings, read straight from the kubeconfig.

It answers the few questions our requests ask of a kubernetes client Configuration (the bearer
token, the CA, the client certificate, whether to verify), so the common kubeconfigs (client
certificates, tokens, token files, exec plugins, basic auth) need no import of the kubernetes
package, whose client modules take a fifth of a second to load: time a person waits for the
first rows. Users with an `auth-provider` still go through the package's loader.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable
from typing import Any

from probes.kubeconfig import KubeError


class Credentials:
    """The attributes of kubernetes.client.Configuration that nodewb reads, filled from a
    resolved kubeconfig context."""

    def __init__(self, server: str, cluster: dict, user: dict, context: str, where: str) -> None:
        self.host = server
        self.api_key: dict[str, str] = {}
        self.api_key_prefix: dict[str, str] = {}
        self.refresh_api_key_hook: Callable[[Any], None] | None = None
        self.username = str(user.get("username") or "")
        self.password = str(user.get("password") or "")
        self.verify_ssl = not bool(cluster.get("insecure-skip-tls-verify"))
        self.tls_server_name = str(cluster.get("tls-server-name") or "")
        self.proxy = str(cluster.get("proxy-url") or "") or None
        self.retries: Any = None
        self._files: list[str] = []
        where_ctx = f"context {context!r} in {where}"
        self.ssl_ca_cert = self._file(cluster, "certificate-authority", where_ctx)
        self.cert_file = self._file(user, "client-certificate", where_ctx)
        self.key_file = self._file(user, "client-key", where_ctx)
        token = user.get("token")
        if not token and user.get("tokenFile"):
            if not isinstance(user["tokenFile"], str):
                raise KubeError(f"{where_ctx}: tokenFile must be a path, not "
                                f"{type(user['tokenFile']).__name__}")
            try:
                with open(user["tokenFile"], encoding="utf-8") as handle:
                    token = handle.read().strip()
            except (OSError, ValueError) as err:  # ValueError: not UTF-8, a NUL in the path
                raise KubeError(f"{where_ctx}: tokenFile {user['tokenFile']!r} cannot be read: "
                                f"{getattr(err, 'strerror', None) or err}") from None
        if token:
            self.api_key["BearerToken"] = "Bearer " + str(token).strip()

    def _file(self, holder: dict, key: str, where: str) -> str | None:
        """The path of a PEM the kubeconfig gives as a file, or as `-data` written to a
        private temporary file."""
        data = holder.get(f"{key}-data")
        if data:
            if not isinstance(data, (str, bytes)):
                raise KubeError(f"{where}: {key}-data must be base64 text, not "
                                f"{type(data).__name__}")
            try:
                pem = base64.b64decode(data, validate=False)
            except (ValueError, TypeError):
                raise KubeError(f"{where}: {key}-data is not base64") from None
            fd, path = tempfile.mkstemp(prefix="nodewb-", suffix=".pem")
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            self._files.append(path)
            return path
        named = holder.get(key)
        if named:
            if not isinstance(named, str):
                raise KubeError(f"{where}: {key} must be a path, not {type(named).__name__}")
            if not os.path.exists(named):
                raise KubeError(f"{where}: {key} {named} does not exist")
            return named
        return None

    def get_api_key_with_prefix(self, identifier: str, alias: str | None = None) -> str | None:
        if self.refresh_api_key_hook is not None:
            self.refresh_api_key_hook(self)
        key = self.api_key.get(identifier)
        if key and identifier in self.api_key_prefix:
            return f"{self.api_key_prefix[identifier]} {key}"
        return key

    def get_basic_auth_token(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __del__(self) -> None:
        for path in self._files:
            try:
                os.unlink(path)
            except OSError:
                pass
