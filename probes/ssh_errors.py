"""What can go wrong reaching a node over SSH, each with a message a person can act on.

`probes.ssh` re-exports these; import them from there.
"""

from __future__ import annotations


class SshError(Exception):
    """Base of every SSH failure nodewb reports. `str(exc)` is the message for humans: what failed,
    why, and what to try. `node` and `target` ("host:port") say where."""

    def __init__(self, message: str, *, node: str | None = None, target: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.target = target

    def __str__(self) -> str:
        return self.message


class HostKeyError(SshError):
    """The server's host key could not be verified against known_hosts."""

    def __init__(self, message: str, *, node: str | None = None, target: str = "",
                 host: str = "", key_type: str = "", fingerprint: str = "",
                 known_hosts: tuple[str, ...] = ()) -> None:
        super().__init__(message, node=node, target=target)
        self.host = host  # the name looked up in known_hosts (HostKeyAlias when set)
        self.key_type = key_type  # e.g. "ED25519"
        self.fingerprint = fingerprint  # "SHA256:..."
        self.known_hosts = known_hosts  # the files consulted


class HostKeyUnknown(HostKeyError):
    """The server's host key is in no known_hosts file consulted. Never accepted silently."""


class HostKeyChanged(HostKeyError):
    """known_hosts holds a different key for this host: a rebuilt node, or someone in the middle."""

    def __init__(self, message: str, *, known_fingerprints: tuple[str, ...] = (),
                 **kw) -> None:
        super().__init__(message, **kw)
        self.known_fingerprints = known_fingerprints


class AuthFailed(SshError):
    """The server refused every key offered."""


class Unreachable(SshError):
    """No SSH session could be had: refused, timed out, name not resolved, bastion would not
    forward, connection lost. Transient by nature; streams retry it."""


class CommandTimeout(SshError):
    """A command did not finish within its time limit (raised only when asked to; `run` reports
    a hang in its result instead). Carries the partial result."""

    def __init__(self, message: str, *, result=None, **kw) -> None:
        super().__init__(message, **kw)
        self.result = result


__all__ = ["SshError", "HostKeyError", "HostKeyUnknown", "HostKeyChanged", "AuthFailed",
           "Unreachable", "CommandTimeout"]
