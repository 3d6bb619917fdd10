"""Time formats the Kubernetes API and node tools print."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def rfc3339_micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    text = text.strip().replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 3m5.2s, 1h2m0s, 850ms."""
    if seconds < 0:
        return "-" + go_duration(-seconds)
    if seconds < 1:
        ms = seconds * 1000
        if ms >= 1:
            return f"{ms:.6g}ms"
        return f"{seconds * 1e6:.6g}µs" if seconds else "0s"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    secs_text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}"
    if minutes:
        return f"{int(minutes)}m{secs_text}"
    return secs_text


def kube_age(seconds: float) -> str:
    """kubectl's human duration (duration.HumanDuration): 45s, 5m30s, 3h, 12d."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        rs = s % 60
        return f"{m}m{rs}s" if rs else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        rm = m % 60
        return f"{h}h{rm}m" if rm else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        rh = h % 24
        return f"{d}d{rh}h" if rh else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def journal_stamp(ts: float) -> str:
    """journalctl's short format: 'Nov 21 07:07:38'."""
    return time.strftime("%b %d %H:%M:%S", time.localtime(ts))


def klog_stamp(ts: float) -> str:
    """klog's header time: 'I1121 07:07:38.123456' without the severity letter."""
    t = time.localtime(ts)
    micros = int((ts % 1) * 1e6)
    return time.strftime("%m%d %H:%M:%S", t) + f".{micros:06d}"


def stable_hash(value: object) -> int:
    """A hash that is the same in every process (str hashes are salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(value).encode(), digest_size=16).digest(), "big")
