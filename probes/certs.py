"""Certificates as the node sees them: the kubelet's client certificate, its serving certificate,
and the API server's, each judged against a given clock (the node's, when it is known).

- `load(data)` reads PEM (one or many certificates, with or without a private key in the same
  file, as /var/lib/kubelet/pki/kubelet-client-current.pem holds) or DER into `CertInfo`s: subject,
  issuer, validity, SANs, serial, key type. The private key is only checked (its type, and whether
  it belongs to the certificate); it is never kept or quoted.
- `parse_openssl(text)` reads `openssl x509 -noout -dates/-startdate/-enddate/-subject/-issuer/
  -serial` (and `-text`'s validity lines, and `-checkend`'s verdict).
- `judge(...)` says valid / expired / not yet valid against a clock. "Not yet valid" (notBefore
  after the node's clock: the clock is behind) is a different finding from "expired".
- Observations: `client_certificate(...)` from a file's bytes or openssl text;
  `serving_certificate(...)` from a TLS handshake to IP:10250 without verification;
  `read_client_certificate(runner, node)` fetches the file and the node's clock over SSH in one
  command.

Nothing here raises on bad input: `load` and `parse_openssl` return an `error` text instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import re
import shlex
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from probes.observation import Observation, Status

__all__ = ["CertInfo", "CertFile", "OpenSSLDates", "Judgement", "load", "parse_openssl", "judge",
           "redact", "client_certificate", "serving_certificate", "fetch_peer_certificate",
           "read_client_certificate", "CLIENT_CERT_PATH", "TTL_WARNING"]

CLIENT_CERT_PATH = "/var/lib/kubelet/pki/kubelet-client-current.pem"
SERVING_CERT_PATH = "/var/lib/kubelet/pki/kubelet-server-current.pem"
TTL_WARNING = 7 * 86400.0  # the runbook: below 7 days is a warning

Runner = Callable[[str, str, float], Awaitable[tuple[int | None, str, str, bool]]]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str  # RFC 4514, e.g. "CN=system:node:node-0007,O=system:nodes"
    issuer: str
    common_name: str
    organizations: tuple[str, ...]
    not_before: float  # epoch seconds
    not_after: float
    serial: str  # hex, upper case, as openssl prints it
    key_type: str  # "EC P-256", "RSA 2048", "Ed25519", ...
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    is_ca: bool = False
    usages: tuple[str, ...] = ()  # extended key usages: "client", "server", ...
    sha256: str = ""  # fingerprint of the DER

    def ttl(self, now: float) -> float:
        return self.not_after - now

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("organizations", "dns_names", "ip_addresses", "usages"):
            out[key] = list(out[key])
        out["not_before_text"] = _iso(self.not_before)
        out["not_after_text"] = _iso(self.not_after)
        return out


@dataclass(slots=True)
class CertFile:
    """What one file (or one handshake) held."""

    certs: list[CertInfo] = field(default_factory=list)
    key_type: str = ""  # the private key's type when the file holds one
    key_matches: bool | None = None  # the key belongs to the first certificate
    error: str = ""  # why nothing could be read
    problems: list[str] = field(default_factory=list)  # blocks that could not be read

    @property
    def leaf(self) -> CertInfo | None:
        return self.certs[0] if self.certs else None

    @property
    def ok(self) -> bool:
        return bool(self.certs) and not self.error


@dataclass(slots=True)
class OpenSSLDates:
    not_before: float | None = None
    not_after: float | None = None
    subject: str = ""
    issuer: str = ""
    serial: str = ""
    will_expire: bool | None = None  # `-checkend N`'s verdict, when present
    error: str = ""


@dataclass(frozen=True, slots=True)
class Judgement:
    state: str  # "valid" | "expiring" | "expired" | "not_yet_valid"
    ttl: float | None  # seconds left on the clock used (negative once expired)
    clock: float  # the clock it was judged against
    words: str  # one line for a person

    @property
    def ok(self) -> bool:
        return self.state == "valid"


def _iso(ts: float) -> str:
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _duration(seconds: float) -> str:
    s = abs(seconds)
    if s >= 2 * 86400:
        return f"{s / 86400:.1f} days"
    if s >= 7200:
        return f"{s / 3600:.1f} hours"
    if s >= 120:
        return f"{s / 60:.0f} minutes"
    return f"{s:.0f} s"


# -- reading certificates --------------------------------------------------------------------------
def _key_type(public_key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public_key.curve.name, public_key.curve.name)
        return f"EC {curve}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}"
    return type(public_key).__name__


def _info(cert: Any) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def attrs(name: Any, oid: Any) -> list[str]:
        return [str(a.value) for a in name.get_attributes_for_oid(oid)]

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    is_ca = False
    usages: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        pass
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        names = {ExtendedKeyUsageOID.CLIENT_AUTH: "client",
                 ExtendedKeyUsageOID.SERVER_AUTH: "server"}
        for oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value:
            usages.append(names.get(oid, oid.dotted_string))
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        key_type = _key_type(cert.public_key())
    except Exception as err:  # an algorithm cryptography cannot load
        key_type = f"unknown ({err})"
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        subject = cert.subject.rfc4514_string()
        cn = attrs(cert.subject, NameOID.COMMON_NAME)
        orgs = attrs(cert.subject, NameOID.ORGANIZATION_NAME)
    except ValueError:
        subject, cn, orgs = "(unreadable subject)", [], []
    try:
        issuer = cert.issuer.rfc4514_string()
    except ValueError:
        issuer = "(unreadable issuer)"
    return CertInfo(
        subject=subject, issuer=issuer, common_name=cn[0] if cn else "",
        organizations=tuple(orgs),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        serial=f"{cert.serial_number:X}", key_type=key_type, dns_names=dns, ip_addresses=ips,
        is_ca=is_ca, usages=tuple(usages), sha256=hashlib.sha256(der).hexdigest())


def load(data: bytes | str | None) -> CertFile:
    """Certificates (and whether a private key is there) from PEM or DER. Never raises."""
    try:
        return _load(data)
    except Exception as err:
        return CertFile(error=f"the certificate could not be read: {type(err).__name__}: {err}")


def _load(data: bytes | str | None) -> CertFile:
    from cryptography import x509

    if data is None:
        return CertFile(error="no data")
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    out = CertFile()
    if not data.strip():
        out.error = "the file is empty"
        return out
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        if b"-----BEGIN" in data:
            out.error = "a PEM block starts but never ends (the file is cut short)"
            return out
        try:
            out.certs.append(_info(x509.load_der_x509_certificate(data)))
        except ValueError as err:
            shown = data[:40]
            out.error = (f"neither PEM nor a DER certificate ({len(data)} bytes starting "
                         f"{shown!r}): {err}")
        return out
    key_der: tuple[str, bytes] | None = None
    for kind, body in blocks:
        label = kind.decode("ascii", "replace")
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
        except (binascii.Error, ValueError):
            out.problems.append(f"{label}: not valid base64")
            continue
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            try:
                out.certs.append(_info(x509.load_der_x509_certificate(der)))
            except ValueError as err:
                out.problems.append(f"{label}: {err}")
        elif label.endswith("PRIVATE KEY"):
            key_der = (label, der)
    if key_der is not None:
        out.key_type, out.key_matches = _check_key(key_der, data, out)
    if not out.certs:
        out.error = ("no certificate in the file" + (f" ({'; '.join(out.problems)})"
                                                      if out.problems else
                                                      " (only a private key)" if key_der else ""))
    return out


def _check_key(key: tuple[str, bytes], data: bytes, out: CertFile) -> tuple[str, bool | None]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    label, der = key
    if "ENCRYPTED" in label:
        return "encrypted", None
    try:
        pem = b"-----BEGIN " + label.encode() + b"-----\n" + base64.encodebytes(der) + \
            b"-----END " + label.encode() + b"-----\n"
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        out.problems.append(f"{label}: {err}")
        return "unreadable", None
    kind = _key_type(private.public_key())
    if not out.certs:
        return kind, None
    try:
        first = _PEM_BLOCK.search(data)
        cert = None
        for m in _PEM_BLOCK.finditer(data):
            if m.group(1) in (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"):
                cert = x509.load_pem_x509_certificate(m.group(0))
                break
        if cert is None or first is None:
            return kind, None
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return kind, cert.public_key().public_bytes(*fmt) == private.public_key().public_bytes(*fmt)
    except (ValueError, TypeError):
        return kind, None


def redact(text: str) -> str:
    """The text with any private key block replaced: safe to quote as evidence."""
    return re.sub(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(-----END \1-----|\Z)",
                  r"-----BEGIN \1-----\n(redacted)\n-----END \1-----", text, flags=re.S)


# -- openssl's text --------------------------------------------------------------------------------
_OPENSSL_DATE = ("%b %d %H:%M:%S %Y %Z", "%b %d %H:%M:%S.%f %Y %Z", "%b %d %H:%M:%S %Y")


def _openssl_time(text: str) -> float | None:
    text = " ".join(text.split())
    for fmt in _OPENSSL_DATE:
        try:
            when = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return when.replace(tzinfo=dt.UTC).timestamp()
    try:  # openssl 3 with -dateopt iso_8601
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):  # not a date, or one the platform cannot place
        return None


def parse_openssl(text: str | bytes | None) -> OpenSSLDates:
    """`openssl x509 -noout -dates -subject ...` (or `-text`) output. Never raises."""
    out = OpenSSLDates()
    if text is None:
        out.error = "no output"
        return out
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    bad: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            key, sep, value = line.partition(" : ")
            if not sep:
                key, sep, value = line.partition(": ")
            key = key.strip()
        value = value.strip()
        low = key.lower()
        if low in ("notbefore", "not before"):
            out.not_before = _openssl_time(value)
            if out.not_before is None:
                bad.append(line)
        elif low in ("notafter", "not after"):
            out.not_after = _openssl_time(value)
            if out.not_after is None:
                bad.append(line)
        elif low == "subject" and sep:
            out.subject = value
        elif low == "issuer" and sep:
            out.issuer = value
        elif low == "serial" and sep:
            out.serial = value.upper()
        elif line == "Certificate will expire":
            out.will_expire = True
        elif line == "Certificate will not expire":
            out.will_expire = False
    if bad:
        out.error = f"unreadable dates: {'; '.join(bad)[:200]}"
    elif out.not_before is None and out.not_after is None and out.will_expire is None:
        first = text.strip().splitlines()[0][:160] if text.strip() else ""
        out.error = ("no notBefore/notAfter in the output" +
                     (f" (it says: {first!r})" if first else " (it is empty)"))
    return out


# -- judging ---------------------------------------------------------------------------------------
def judge(not_before: float | None, not_after: float | None, clock: float,
          warn: float = TTL_WARNING) -> Judgement:
    """Valid, expiring (under `warn` left), expired, or not yet valid, against `clock`."""
    if not_before is not None and clock < not_before:
        return Judgement("not_yet_valid", None if not_after is None else not_after - clock, clock,
                         f"not yet valid: it starts {_iso(not_before)}, "
                         f"{_duration(not_before - clock)} "
                         f"after the clock it was checked against ({_iso(clock)}); a clock "
                         f"running behind")
    if not_after is None:
        return Judgement("valid", None, clock, "no expiry date seen")
    ttl = not_after - clock
    if ttl <= 0:
        return Judgement("expired", ttl, clock, f"expired {_duration(ttl)} ago "
                                                f"(notAfter {_iso(not_after)})")
    if ttl < warn:
        return Judgement("expiring", ttl, clock, f"expires in {_duration(ttl)} "
                                                 f"(notAfter {_iso(not_after)}; warning below "
                                                 f"{_duration(warn)})")
    return Judgement("valid", ttl, clock, f"valid for {_duration(ttl)} more "
                                          f"(notAfter {_iso(not_after)})")


def _clock(now: float | None, node_now: float | None) -> tuple[float, str]:
    if node_now is not None:
        return node_now, "the node's clock"
    return (time.time() if now is None else now), "the local clock"


def _observation(probe: str, node: str | None, started: float, duration: float, via: str,
                 info: CertInfo | None, j: Judgement | None, which: str, raw: str,
                 extra: dict[str, Any], error: str = "", now: float | None = None,
                 node_now: float | None = None) -> Observation:
    if info is None or j is None:
        return Observation(probe, node, Status.ERROR, started, duration,
                           f"{which} certificate could not be read: {error}", dict(extra),
                           via, redact(raw)[:4000], error)
    status = Status.OK if j.state == "valid" else Status.BAD
    who = info.common_name or info.subject or "certificate"
    data = dict(extra)
    data.update(cert=info.as_dict(), state=j.state, ttl=j.ttl, clock=j.clock)
    if node_now is not None:
        local = time.time() if now is None else now
        data["node_clock_offset"] = node_now - local
        # a clock far off makes the local view differ from the node's: say both
        data["local_view"] = judge(info.not_before, info.not_after, local).state
    summary = f"{which} certificate {who}: {j.words}"
    return Observation(probe, node, status, started, duration, summary, data, via,
                       redact(raw)[:4000])


def client_certificate(node: str | None, data: bytes | str | None, *, now: float | None = None,
                       node_now: float | None = None, via: str = "ssh",
                       started: float | None = None,
                       duration: float = 0.0, probe: str = "node.client_cert") -> Observation:
    """The kubelet client certificate file (PEM with its key) or `openssl x509 -noout -dates
    -subject` text, judged against the node's clock when given."""
    started = time.time() if started is None else started
    clock, which_clock = _clock(now, node_now)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    if "-----BEGIN" in text or (isinstance(data, bytes) and data[:1] == b"\x30"):
        f = load(data)
        if not f.ok:
            return _observation(probe, node, started, duration, via, None, None, "client",
                                text, {"problems": f.problems}, f.error)
        info = f.leaf
        assert info is not None
        j = judge(info.not_before, info.not_after, clock)
        extra = {"key_type": f.key_type, "key_matches": f.key_matches, "chain": len(f.certs),
                 "judged_on": which_clock}
        if f.key_matches is False:
            j = Judgement(j.state if j.state != "valid" else "key_mismatch", j.ttl, j.clock,
                          j.words + "; the private key in the file does not belong to it")
        return _observation(probe, node, started, duration, via, info, j, "client", text, extra,
                            now=now, node_now=node_now)
    dates = parse_openssl(text)
    if dates.error:
        return _observation(probe, node, started, duration, via, None, None, "client", text, {},
                            dates.error)
    j = judge(dates.not_before, dates.not_after, clock)
    cn = ""
    m = re.search(r"CN\s*=\s*([^,/]+)", dates.subject)
    if m:
        cn = m.group(1).strip()
    info = CertInfo(subject=dates.subject, issuer=dates.issuer, common_name=cn, organizations=(),
                    not_before=dates.not_before or 0.0, not_after=dates.not_after or 0.0,
                    serial=dates.serial, key_type="")
    return _observation(probe, node, started, duration, via, info, j, "client", text,
                        {"judged_on": which_clock, "from": "openssl text"}, now=now,
                        node_now=node_now)


# -- the serving certificate, from a handshake -----------------------------------------------------
async def fetch_peer_certificate(host: str, port: int = 10250, *, timeout: float = 5.0,
                                 server_name: str | None = None) -> bytes:
    """The DER certificate a TLS server presents, without verifying it (no client
    certificate is sent). Raises OSError/asyncio.TimeoutError/ssl.SSLError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    extra: dict[str, Any] = {"server_hostname": server_name} if server_name else {}
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, ssl_handshake_timeout=timeout, **extra),
        timeout)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if not der:
            raise ssl.SSLError("the server presented no certificate")
        return der
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


async def serving_certificate(node: str | None, host: str, port: int = 10250, *,
                              now: float | None = None, node_now: float | None = None,
                              timeout: float = 5.0, probe: str = "kubelet.serving_cert",
                              expect_names: tuple[str, ...] = ()) -> Observation:
    """The kubelet's serving certificate from a handshake to host:port, judged against the
    node's clock when given; `expect_names` (node name, IP) are checked against its SANs."""
    started = time.time()
    t0 = time.monotonic()
    try:
        der = await fetch_peer_certificate(host, port, timeout=timeout)
    except TimeoutError:
        return Observation(probe, node, Status.HUNG, started, time.monotonic() - t0,
                           f"TLS handshake with {host}:{port} did not finish in {timeout:g} s",
                           {}, "direct", "", f"timeout after {timeout:g} s")
    except (OSError, ssl.SSLError, EOFError) as err:
        reason = _os_reason(err, host, port)
        return Observation(probe, node, Status.ERROR, started, time.monotonic() - t0,
                           f"no serving certificate from {host}:{port}: {reason}", {}, "direct",
                           "", reason)
    duration = time.monotonic() - t0
    f = load(der)
    if not f.ok or f.leaf is None:
        return _observation(probe, node, started, duration, "direct", None, None, "serving", "",
                            {}, f.error)
    info = f.leaf
    clock, which_clock = _clock(now, node_now)
    j = judge(info.not_before, info.not_after, clock)
    extra: dict[str, Any] = {"judged_on": which_clock, "address": f"{host}:{port}"}
    missing = [n for n in expect_names if n and n not in info.dns_names + info.ip_addresses]
    if missing:
        extra["missing_names"] = missing
    obs = _observation(probe, node, started, duration, "direct", info, j, "serving",
                       f"subject={info.subject}\nissuer={info.issuer}\n"
                       f"notBefore={_iso(info.not_before)}\nnotAfter={_iso(info.not_after)}\n"
                       f"SANs={', '.join(info.dns_names + info.ip_addresses)}", extra,
                       now=now, node_now=node_now)
    if missing and obs.status == Status.OK:
        return Observation(obs.probe, obs.node, Status.BAD, obs.started, obs.duration,
                           obs.summary + f"; its SANs lack {', '.join(missing)}", obs.data,
                           obs.via, obs.raw)
    return obs


def _os_reason(err: BaseException, host: str, port: int) -> str:
    import errno as _errno

    if isinstance(err, ConnectionRefusedError):
        return f"connection refused: nothing listens on {host}:{port} (is the kubelet running?)"
    if isinstance(err, OSError) and err.errno:
        name = _errno.errorcode.get(err.errno, str(err.errno))
        return f"{err.strerror or err} ([Errno {err.errno}] {name})"
    return f"{type(err).__name__}: {err}"


# -- over SSH --------------------------------------------------------------------------------------
async def read_client_certificate(runner: Runner, node: str, *, path: str = CLIENT_CERT_PATH,
                                  timeout: float = 15.0, now: float | None = None,
                                  sudo: bool = True) -> Observation:
    """The node's clock and the certificate file in one command; falls back to openssl's text
    when the file cannot be read as root."""
    started = time.time()
    t0 = time.monotonic()
    quoted = shlex.quote(path)
    cat = f"sudo -n cat {quoted}" if sudo else f"cat {quoted}"
    command = (f"date -u +%s; {cat} 2>/dev/null || openssl x509 -in {quoted} -noout -dates "
               f"-subject -issuer -serial")
    try:
        status, out, err, timed_out = await runner(node, command, timeout)
    except Exception as exc:  # the runner itself failed (no SSH config, auth refused, ...)
        return Observation("node.client_cert", node, Status.ERROR, started,
                           time.monotonic() - t0, f"could not run a command on {node}: {exc}",
                           {}, "ssh", "", str(exc))
    duration = time.monotonic() - t0
    if timed_out:
        return Observation("node.client_cert", node, Status.HUNG, started, duration,
                           f"reading {path} on {node} did not finish in {timeout:g} s",
                           {"command": command}, "ssh", redact(out)[:2000],
                           f"timeout after {timeout:g} s")
    first, _, rest = out.partition("\n")
    node_now: float | None
    try:
        node_now = float(first.strip())
    except ValueError:
        node_now, rest = None, out
    if not rest.strip():
        reason = (err.strip() or f"exit status {status}")[:300]
        return Observation("node.client_cert", node, Status.ERROR, started, duration,
                           f"{path} could not be read on {node}: {reason}",
                           {"command": command, "exit_status": status}, "ssh",
                           redact(out + err)[:2000], reason)
    obs = client_certificate(node, rest, now=now, node_now=node_now, via="ssh", started=started,
                             duration=duration)
    data = dict(obs.data, command=command, path=path, exit_status=status)
    if node_now is not None:
        data["node_time"] = node_now
    return Observation(obs.probe, obs.node, obs.status, obs.started, obs.duration, obs.summary,
                       data, obs.via, obs.raw, obs.reason)
