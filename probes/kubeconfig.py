"""Kubeconfig files read and merged the way kubectl merges them, the client configuration that one
context makes, and exec credential plugins run without a terminal.

Merging (`KUBECONFIG=a:b:c`): files that do not exist are skipped; the first file that names a
cluster, user or context wins for that name; the first file that sets `current-context` wins.
Relative file paths (certificate-authority, client-certificate, client-key, tokenFile, and an exec
command that contains a path separator) are resolved against the file that holds them.

Exec plugins (client.authentication.k8s.io/v1 and v1beta1) run with stdin closed and stderr
captured, so they never draw on the terminal an application owns; their token is cached until its
`expirationTimestamp` and fetched again by the client's refresh hook on the next request after it
expires (or at once after a 401, see `Credentials.refresh`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EXEC_TIMEOUT = 30.0
EXEC_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class KubeError(Exception):
    """A problem reaching or using the cluster, worded for the person at the terminal.

    `status` is the HTTP status when the API server answered (401, 403, 410, ...), else 0."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ContextInfo:
    name: str
    cluster: str
    user: str
    namespace: str
    current: bool  # the kubeconfig's current-context


@dataclass(slots=True)
class _Entry:
    value: dict
    source: str  # the file that defined it


def _default_paths(kubeconfig: str | None) -> tuple[list[str], bool, str]:
    """(paths, explicit, how they were chosen)."""
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)], True, "--kubeconfig"
    env = os.environ.get("KUBECONFIG", "")
    if env.strip(os.pathsep).strip():
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p], False, "KUBECONFIG"
    return [os.path.expanduser("~/.kube/config")], False, "the default"


def _yaml_problem(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


class Kubeconfig:
    """One or more kubeconfig files, merged."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        import yaml

        paths, explicit, how = _default_paths(kubeconfig)
        self.paths = paths
        self.files: list[str] = []
        self.clusters: dict[str, _Entry] = {}
        self.users: dict[str, _Entry] = {}
        self.contexts_: dict[str, _Entry] = {}
        self.current_context = ""
        for path in paths:
            if not os.path.exists(path):
                if explicit:
                    break
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    doc = yaml.safe_load(handle)
            except yaml.YAMLError as err:
                raise KubeError(f"kubeconfig {path} is malformed: {_yaml_problem(err)}") from None
            except RecursionError:
                raise KubeError(f"kubeconfig {path} is malformed: it nests too deeply") from None
            except (OSError, UnicodeDecodeError) as err:
                raise KubeError(f"kubeconfig {path} cannot be read: {err}") from None
            self.files.append(path)
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise KubeError(f"kubeconfig {path} is malformed: expected a mapping with "
                                f"clusters, users and contexts, found {type(doc).__name__}")
            self._merge(doc, path)
        if not self.files:
            where = os.pathsep.join(paths)
            raise KubeError(f"no kubeconfig at {where} (from {how}): pass --kubeconfig, set "
                            f"KUBECONFIG, or try `nodewb lab` for a simulated cluster")

    @property
    def where(self) -> str:
        return os.pathsep.join(self.files)

    def _merge(self, doc: dict, path: str) -> None:
        for key, table in (("clusters", self.clusters), ("users", self.users),
                           ("contexts", self.contexts_)):
            items = doc.get(key) or []
            if not isinstance(items, list):
                raise KubeError(f"kubeconfig {path} is malformed: {key} must be a list")
            inner = key[:-1]
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise KubeError(f"kubeconfig {path} is malformed: an entry in {key} has no "
                                    f"name")
                value = item.get(inner) or {}
                if not isinstance(value, dict):
                    raise KubeError(f"kubeconfig {path} is malformed: {key} entry "
                                    f"{item['name']!r} has no {inner} mapping")
                table.setdefault(item["name"], _Entry(value, path))
        current = doc.get("current-context")
        if current and not self.current_context:
            self.current_context = str(current)

    def contexts(self) -> list[ContextInfo]:
        out = []
        for name, entry in self.contexts_.items():
            ctx = entry.value
            out.append(ContextInfo(name, str(ctx.get("cluster") or ""), str(ctx.get("user") or ""),
                                   str(ctx.get("namespace") or ""), name == self.current_context))
        return out

    # -- one context ------------------------------------------------------------------------------
    def resolve(self, context: str | None = None) -> Resolved:
        name = context or self.current_context
        if not name:
            raise KubeError(f"no context chosen: {self.where} has no current-context; pass "
                            f"--context (one of: {', '.join(self.contexts_) or 'none defined'})")
        entry = self.contexts_.get(name)
        if entry is None:
            raise KubeError(f"context {name!r} is not in {self.where}; it has: "
                            f"{', '.join(self.contexts_) or 'no contexts'}")
        ctx = entry.value
        cluster_name = str(ctx.get("cluster") or "")
        cluster = self.clusters.get(cluster_name)
        if cluster is None:
            raise KubeError(f"context {name!r} names cluster {cluster_name!r}, which is not "
                            f"defined in {self.where}")
        server = str(cluster.value.get("server") or "")
        if not server:
            raise KubeError(f"cluster {cluster_name!r} in {cluster.source} has no server address")
        user_name = str(ctx.get("user") or "")
        user = self.users.get(user_name) if user_name else None
        if user_name and user is None:
            raise KubeError(f"context {name!r} names user {user_name!r}, which is not defined "
                            f"in {self.where}")
        user_value = _absolute(user.value, user.source, ("client-certificate", "client-key",
                                                         "tokenFile")) if user else {}
        if not _has_credentials(user_value):
            who = f"user {user_name!r}" if user_name else "no user"
            raise KubeError(f"context {name!r} has {who} with no credentials (token, tokenFile, "
                            f"client certificate and key, exec plugin, auth-provider or username "
                            f"and password) in {self.where}; add them, or pick another context")
        if "exec" in user_value:
            spec = user_value["exec"] or {}
            if not isinstance(spec, dict):
                raise KubeError(f"user {user_name!r} in {user.source if user else self.where} is "
                                f"malformed: exec must be a mapping (command, args, apiVersion)")
            for key, kind in (("args", list), ("env", list)):
                if spec.get(key) is not None and not isinstance(spec[key], kind):
                    raise KubeError(f"user {user_name!r} in {user.source if user else self.where}"
                                    f" is malformed: exec {key} must be a list")
            spec = dict(spec)
            command = str(spec.get("command") or "")
            if os.sep in command and not os.path.isabs(command):
                where = user.source if user else self.where
                spec["command"] = os.path.join(os.path.dirname(os.path.abspath(where)), command)
            user_value = dict(user_value, exec=spec)
        cluster_value = _absolute(cluster.value, cluster.source, ("certificate-authority",))
        return Resolved(name, cluster_name, user_name, server.rstrip("/"), cluster_value,
                        user_value, self.where)


def _absolute(value: dict, source: str, keys: tuple[str, ...]) -> dict:
    out = dict(value)
    base = os.path.dirname(os.path.abspath(source))
    for key in keys:
        path = out.get(key)
        if isinstance(path, str) and path and not os.path.isabs(path):
            out[key] = os.path.join(base, os.path.expanduser(path))
    return out


def _has_credentials(user: dict) -> bool:
    if user.get("token") or user.get("tokenFile") or user.get("exec") or user.get("auth-provider"):
        return True
    if (user.get("client-certificate") or user.get("client-certificate-data")) and \
            (user.get("client-key") or user.get("client-key-data")):
        return True
    return bool(user.get("username") and user.get("password"))


@dataclass(slots=True)
class Resolved:
    context: str
    cluster_name: str
    user_name: str
    server: str
    cluster: dict
    user: dict
    where: str

    def configuration(self) -> tuple[Any, ExecCredential | None]:
        """The context's credentials (a `probes.credentials.Credentials`, or a kubernetes
        client Configuration for auth-provider users), and the exec plugin behind them."""
        plain_user = {k: v for k, v in self.user.items() if k != "exec"}
        if plain_user.get("auth-provider"):
            configuration = self._client_configuration(plain_user)
        else:
            from probes.credentials import Credentials

            configuration = Credentials(self.server, self.cluster, plain_user, self.context,
                                        self.where)
        exec_cred = None
        has_static = bool(plain_user.get("token") or plain_user.get("tokenFile")
                          or plain_user.get("client-certificate")
                          or plain_user.get("client-certificate-data"))
        if self.user.get("exec") and not has_static:
            exec_cred = ExecCredential(self.user["exec"], self.user_name, self.cluster,
                                       self.server)
            exec_cred.apply(configuration, exec_cred.status())

            def refresh(cfg: Any, cred: ExecCredential = exec_cred) -> None:
                if cred.expired():
                    cred.apply(cfg, cred.status(force=True))

            configuration.refresh_api_key_hook = refresh
        return configuration, exec_cred

    def _client_configuration(self, plain_user: dict) -> Any:
        from kubernetes import client
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader

        doc = {
            "clusters": [{"name": self.cluster_name, "cluster": self.cluster}],
            "users": [{"name": self.user_name or "-", "user": plain_user}],
            "contexts": [{"name": self.context, "context": {
                "cluster": self.cluster_name, "user": self.user_name or "-"}}],
            "current-context": self.context,
        }
        configuration = client.Configuration()
        try:
            KubeConfigLoader(doc, active_context=self.context,
                             config_base_path="").load_and_set(configuration)
        except (ConfigException, OSError, ValueError, TypeError, KeyError,
                AttributeError) as err:  # a field of the wrong type deep in the loader
            raise KubeError(f"context {self.context!r} in {self.where} could not be used: "
                            f"{err}") from None
        configuration.host = self.server
        return configuration


def _parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass(eq=False)
class ExecCredential:
    """A client-go exec credential plugin, run without a terminal."""

    spec: dict
    user: str
    cluster: dict
    server: str
    runs: int = 0
    expires: float = 0.0  # 0: does not expire
    _status: dict | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _files: list[str] = field(default_factory=list)

    @property
    def command_line(self) -> str:
        args = [str(a) for a in self.spec.get("args") or []]
        return " ".join([str(self.spec.get("command") or "")] + args)

    def expired(self, now: float | None = None) -> bool:
        return bool(self.expires) and (now or time.time()) >= self.expires - 5.0

    def status(self, force: bool = False) -> dict:
        with self._lock:
            if self._status is None or force or self.expired():
                self._status = self._run()
            return self._status

    def refresh(self, configuration: Any) -> None:
        """Run the plugin again now (after a 401) and put its credential into `configuration`."""
        self.apply(configuration, self.status(force=True))

    def _run(self) -> dict:
        spec = self.spec
        command = str(spec.get("command") or "")
        version = str(spec.get("apiVersion") or "")
        who = f"exec plugin `{self.command_line}` for user {self.user!r}"
        if not command:
            raise KubeError(f"the exec plugin for user {self.user!r} has no command")
        if version not in EXEC_VERSIONS:
            raise KubeError(f"{who} asks for apiVersion {version or '(none)'}; nodewb speaks "
                            f"{' and '.join(EXEC_VERSIONS)}")
        info: dict[str, Any] = {"apiVersion": version, "kind": "ExecCredential",
                                "spec": {"interactive": False}}
        if spec.get("provideClusterInfo"):
            c = self.cluster
            cluster: dict[str, Any] = {"server": self.server}
            for src, dst in (("certificate-authority-data", "certificate-authority-data"),
                             ("insecure-skip-tls-verify", "insecure-skip-tls-verify"),
                             ("tls-server-name", "tls-server-name"), ("proxy-url", "proxy-url")):
                if c.get(src):
                    cluster[dst] = c[src]
            for ext in c.get("extensions") or []:
                if isinstance(ext, dict) and ext.get("name") == \
                        "client.authentication.k8s.io/exec":
                    cluster["config"] = ext.get("extension")
            info["spec"]["cluster"] = cluster
        env = dict(os.environ)
        for item in spec.get("env") or []:
            if isinstance(item, dict) and "name" in item:
                env[str(item["name"])] = str(item.get("value", ""))
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        args = [command] + [str(a) for a in spec.get("args") or []]
        self.runs += 1
        try:
            done = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=EXEC_TIMEOUT, text=True)
        except FileNotFoundError:
            hint = str(spec.get("installHint") or "").strip()
            raise KubeError(f"{who} was not found" + (f": {hint}" if hint else
                            "; install it or fix `command` in the kubeconfig")) from None
        except PermissionError:
            raise KubeError(f"{who} is not executable") from None
        except subprocess.TimeoutExpired:
            raise KubeError(f"{who} did not finish within {EXEC_TIMEOUT:.0f} s (does it wait "
                            f"for a browser or a prompt? run it once in a shell)") from None
        except OSError as err:
            raise KubeError(f"{who} could not start: {err}") from None
        stderr = done.stderr.strip()
        if done.returncode != 0:
            tail = stderr[-600:] if stderr else "(no stderr)"
            raise KubeError(f"{who} failed with exit status {done.returncode}: {tail}")
        try:
            data = json.loads(done.stdout)
        except ValueError:
            raise KubeError(f"{who} printed something that is not an ExecCredential: "
                            f"{done.stdout.strip()[:200]!r}") from None
        if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
            raise KubeError(f"{who} printed JSON that is not an ExecCredential")
        if data.get("apiVersion") != version:
            raise KubeError(f"{who} answered apiVersion {data.get('apiVersion')!r}, "
                            f"expected {version}")
        status = data.get("status")
        if not isinstance(status, dict) or not (
                status.get("token") or (status.get("clientCertificateData")
                                        and status.get("clientKeyData"))):
            raise KubeError(f"{who} returned neither a token nor a client certificate and key")
        stamp = status.get("expirationTimestamp")
        self.expires = _parse_time(stamp) if stamp else 0.0
        return status

    def apply(self, configuration: Any, status: dict) -> None:
        if status.get("token"):
            configuration.api_key["BearerToken"] = "Bearer " + str(status["token"])
            configuration.api_key_prefix.pop("BearerToken", None)
            return
        cert = self._temp(status["clientCertificateData"])
        key = self._temp(status["clientKeyData"])
        configuration.cert_file, configuration.key_file = cert, key

    def _temp(self, data: str) -> str:
        fd, path = tempfile.mkstemp(prefix="nodewb-exec-", suffix=".pem")
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        self._files.append(path)
        return path

    def __del__(self) -> None:
        for path in self._files:
            try:
                os.unlink(path)
            except OSError:
                pass


def list_contexts(kubeconfig: str | None = None) -> list[ContextInfo]:
    """The contexts of the kubeconfig (even when the current one does not work)."""
    return Kubeconfig(kubeconfig).contexts()
