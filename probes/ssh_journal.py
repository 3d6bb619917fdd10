"""Resuming a followed journal (`journalctl ... -f`) after the connection dropped.

While a stream runs, every line's journal timestamp is noted. When the command has to be started
again, it is rewritten to start where the last line was: `--after-cursor=C` when the output carries
cursors (`-o json`), else `--since` the last second seen (`@EPOCH` for `short-iso`, `short-unix`
and `json`; `YYYY-MM-DD HH:MM:SS` in the node's local time for the default `short` and
`short-precise`, whose stamps carry no year or zone). `--since` is inclusive and has whole-second
resolution, so the lines of that last second come again; the ones already delivered are dropped.

Formats without a timestamp (`cat`, `verbose`, ...) and commands that are more than one plain
`journalctl` invocation (pipes, `;`) are restarted as they were: lines may repeat or be lost, and
the gap marker says so.
"""

from __future__ import annotations

import calendar
import json
import re
import shlex
import time
from collections import Counter
from datetime import datetime

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
RESUME_LINES = 100_000  # how many journal lines a resumed follow may replay at most
_SHORT = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)? ")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:[.,]\d+)?"
                  r"(Z|[+-]\d\d(?::?\d\d)?)? ")
_UNIX = re.compile(r"^(\d{9,12})(?:\.\d+)? ")
_OPERATORS = set("|&;<>()`$\n")
_TAKES_ARG = {"-u", "--unit", "-o", "--output", "-p", "--priority", "-g", "--grep", "-t",
              "--identifier", "-S", "--since", "-U", "--until", "-D", "--directory", "-M",
              "--machine", "--after-cursor", "--cursor", "--cursor-file", "-T",
              "--facility", "--output-fields", "--root", "--image", "--namespace", "-I", "-F",
              "--field"}
_STRIP_WITH_ARG = {"-S", "--since", "--after-cursor", "--cursor", "--cursor-file"}
_STRIP_OPTIONAL_NUM = {"-n", "--lines"}
_STRIP_FLAGS = {"-e", "--pager-end"}
SHORT_FORMATS = ("short", "short-precise", "with-unit")
EPOCH_FORMATS = ("short-iso", "short-iso-precise", "short-unix", "json", "json-seq")


class JournalResume:
    """What a followed journalctl printed last, and the command that picks up after it."""

    def __init__(self, tokens: list[str], index: int, fmt: str) -> None:
        self._tokens = tokens  # the command as words
        self._index = index  # where "journalctl" is in them
        self.format = fmt
        self.last_key: tuple | None = None  # comparable stamp of the last line, whole seconds
        self.last_since: str | None = None  # the --since value for that second
        self.cursor: str | None = None
        self._at_last: Counter[str] = Counter()  # lines seen in the last second
        self._dedupe: Counter[str] | None = None
        self._dedupe_key: tuple | None = None
        self._key: tuple | None = None

    # -- which commands ----------------------------------------------------------------------
    @classmethod
    def for_command(cls, command: str) -> JournalResume | None:
        """A resume helper when `command` is one plain `journalctl ... -f`, else None."""
        if any(c in _OPERATORS for c in command):
            return None
        try:
            tokens = shlex.split(command)
        except ValueError:
            return None
        index = next((i for i, t in enumerate(tokens)
                      if t.rsplit("/", 1)[-1] == "journalctl"), None)
        if index is None:
            return None
        args = tokens[index + 1:]
        follow = False
        fmt = "short"
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-f", "--follow"):
                follow = True
            elif a in ("-o", "--output") and i + 1 < len(args):
                fmt = args[i + 1]
                i += 1
            elif a.startswith("--output="):
                fmt = a.split("=", 1)[1]
            elif a.startswith("-o") and not a.startswith("--") and len(a) > 2:
                fmt = a[2:]
            elif a in _TAKES_ARG:
                i += 1
            elif re.fullmatch(r"-[a-zA-Z]+", a) and "f" in a and \
                    not any(c in "uopgtSUDMnbIF" for c in a[1:a.index("f")]):
                follow = True
            i += 1
        if not follow:
            return None
        return cls(tokens, index, fmt)

    @property
    def resumable(self) -> bool:
        return self.format in SHORT_FORMATS or self.format in EPOCH_FORMATS

    # -- watching lines ---------------------------------------------------------------------
    def _stamp(self, line: str) -> tuple[tuple | None, str | None, str | None]:
        """(key, since value, cursor) for one output line; key None when it has no stamp (or
        one that is not a real time: a line never stops the stream)."""
        try:
            return self._read_stamp(line)
        except (ValueError, OverflowError, RecursionError, TypeError):
            return None, None, None

    def _read_stamp(self, line: str) -> tuple[tuple | None, str | None, str | None]:
        fmt = self.format
        if fmt in SHORT_FORMATS:
            m = _SHORT.match(line)
            if not m or m.group(1) not in MONTHS:
                return None, None, None
            month, day = MONTHS[m.group(1)], int(m.group(2))
            h, mi, s = int(m.group(3)), int(m.group(4)), int(m.group(5))
            year = _year_for(month)
            datetime(year, month, day, h, mi, min(s, 59))  # ValueError for Feb 31 or 25:00
            return ((month, day, h, mi, s),
                    f"{year:04d}-{month:02d}-{day:02d} {h:02d}:{mi:02d}:{s:02d}", None)
        if fmt in ("short-iso", "short-iso-precise"):
            m = _ISO.match(line)
            if not m:
                return None, None, None
            epoch = _iso_epoch(m)
            return (epoch,), f"@{epoch}", None
        if fmt == "short-unix":
            m = _UNIX.match(line)
            if not m:
                return None, None, None
            epoch = int(m.group(1))
            return (epoch,), f"@{epoch}", None
        if fmt in ("json", "json-seq"):
            try:
                obj = json.loads(line.lstrip("\x1e"))
                stamp = obj.get("__REALTIME_TIMESTAMP")
                if isinstance(stamp, bool) or not isinstance(stamp, (int, str)) or \
                        not str(stamp).isdigit() or len(str(stamp)) > 19:
                    return None, None, None
                micros = int(stamp)
            except (ValueError, TypeError, AttributeError):
                return None, None, None
            epoch = micros // 1_000_000
            cursor = obj.get("__CURSOR")
            return (epoch,), f"@{epoch}", cursor if isinstance(cursor, str) else None
        return None, None, None

    def accept(self, line: str) -> bool:
        """Note `line`; False when it repeats one delivered before the restart."""
        key, since, cursor = self._stamp(line)
        if self._dedupe is not None:
            effective = key if key is not None else self._key
            if effective is not None and self._dedupe_key is not None:
                if effective < self._dedupe_key:
                    return False
                if effective == self._dedupe_key and self._dedupe[line] > 0:
                    self._dedupe[line] -= 1
                    return False
                if effective > self._dedupe_key:
                    self._dedupe = None
        if key is not None:
            if key != self.last_key:
                self._at_last = Counter()
            self.last_key = key
            self.last_since = since
            self._key = key
            if cursor:
                self.cursor = cursor
        self._at_last[line] += 1
        return True

    # -- restarting --------------------------------------------------------------------------
    def command(self) -> tuple[str, str]:
        """(command to run now, how it resumes: "--after-cursor", "--since ...", "restart")."""
        if not self.resumable or (self.cursor is None and self.last_since is None):
            return shlex.join(self._tokens), "restart"
        head = self._tokens[:self._index + 1]
        args = _strip(self._tokens[self._index + 1:])
        if self.cursor is not None:
            extra = [f"--after-cursor={self.cursor}"]
            how = "--after-cursor"
            self._dedupe = None
        else:
            extra = ["--since", str(self.last_since), f"--lines={RESUME_LINES}"]
            how = f"--since {self.last_since}"
            self._dedupe = Counter(self._at_last)
            self._dedupe_key = self.last_key
        return shlex.join(head + args + extra), how


def _strip(args: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name = a.split("=", 1)[0] if a.startswith("--") else a
        if name in _STRIP_WITH_ARG:
            i += 1 if "=" in a else 2
            continue
        if a.startswith("-S") and len(a) > 2 and not a.startswith("--"):
            i += 1
            continue
        if name in _STRIP_OPTIONAL_NUM:
            if "=" not in a and i + 1 < len(args) and re.fullmatch(r"\+?\d+|all", args[i + 1]):
                i += 1
            i += 1
            continue
        if re.fullmatch(r"-n\+?\d+", a) or a in _STRIP_FLAGS:
            i += 1
            continue
        out.append(a)
        if a in _TAKES_ARG and i + 1 < len(args):
            out.append(args[i + 1])
            i += 1
        i += 1
    return out


def _year_for(month: int) -> int:
    """The year of a yearless stamp: this year, or last year for a month ahead of this one
    (a December line read in January)."""
    now = datetime.now()
    return now.year - 1 if month > now.month + 1 else now.year


def _iso_epoch(m: re.Match) -> int:
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    datetime(y, mo, d, h, mi, min(s, 59))  # ValueError for a date that does not exist
    zone = m.group(7)
    if zone is None:
        return int(time.mktime((y, mo, d, h, mi, s, 0, 0, -1)))
    if zone == "Z":
        offset = 0
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset


__all__ = ["JournalResume", "RESUME_LINES"]
