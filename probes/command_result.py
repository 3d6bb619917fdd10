"""How one command on a node went: what `probes.ssh` returns and what the checks read, kept
apart from the SSH client so that reading captured output never loads asyncssh."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one command went. `exit_status` is None when it was killed by a signal or timed out."""

    exit_status: int | None
    stdout: str
    stderr: str
    duration: float  # seconds from the session opening to the command ending (or giving up)
    timed_out: bool  # did not finish in its time limit: stdout/stderr hold what it printed so far
    truncated: bool = False  # stdout or stderr went past max_output; the rest was dropped
    exit_signal: str | None = None
    node: str = ""
    command: str = ""  # as asked, sudo prefix included
    started: float = 0.0  # epoch seconds
    timeout: float = 0.0
    sent: str = ""  # the line the server ran (under `timeout` when remote_timeout is on)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def describe(self) -> str:
        """One line a person reads."""
        if self.timed_out:
            printed = len(self.stdout) + len(self.stderr)
            return (f"`{self.command}` on {self.node} did not finish in {self.timeout:g} s "
                    f"(hung; printed {printed} characters before it was stopped)")
        if self.exit_signal:
            return f"`{self.command}` on {self.node} was killed by signal {self.exit_signal}"
        return (f"`{self.command}` on {self.node} exited {self.exit_status} "
                f"after {self.duration:.2f} s")
