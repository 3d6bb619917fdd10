"""Fuzzing probes.certs: random and mutated PEM/DER bytes, and `openssl x509` text outputs.
`load` and `parse_openssl` never raise and never fall back to their last-resort message (which
names a Python exception); `client_certificate` always gives an Observation whose raw text never
quotes a private key."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes import certs
from probes.observation import Observation, Status

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LAST_RESORT = "the certificate could not be read:"


def _make() -> tuple[bytes, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:node-0001"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes")])
    now = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(12345)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return pem, der, key_pem


PEM, DER, KEY = _make()
KEY_BEGIN = KEY.splitlines()[0]
KEY_LINE = KEY.splitlines()[1]  # 64 characters of the key's base64


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at: at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"-----BEGIN CERTIFICATE-----\n",
                                                b"-----END CERTIFICATE-----\n", b"=", b"\n",
                                                b"\x00", b"\xff", b"-----BEGIN ",
                                                b"-----END RSA PRIVATE KEY-----"]))
        else:
            del data[at:]
    return bytes(data)


blobs = st.one_of(
    st.binary(max_size=2000),
    mutated(PEM), mutated(DER), mutated(PEM + KEY), mutated(KEY + PEM),
    st.builds(lambda label, body: b"-----BEGIN " + label + b"-----\n" + body + b"\n-----END "
              + label + b"-----\n",
              st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY",
                               b"RSA PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"X509 CERTIFICATE"]),
              st.one_of(st.binary(max_size=300).map(base64.encodebytes), st.binary(max_size=80))),
    st.just(PEM + KEY), st.just(DER), st.just(PEM * 3),
)


@FUZZ
@given(blobs)
def test_load_never_falls_back(data: bytes) -> None:
    f = certs.load(data)
    assert isinstance(f, certs.CertFile)
    assert not f.error.startswith(LAST_RESORT), f.error
    assert f.ok == (not f.error)
    if f.ok:
        assert f.leaf is not None and isinstance(f.leaf.not_after, float)
    assert all(isinstance(p, str) for p in f.problems)
    text = certs.load(data.decode("latin-1"))
    assert not text.error.startswith(LAST_RESORT), text.error


OPENSSL_LINES = [
    "notBefore=Mar  4 10:00:00 2024 GMT", "notAfter=Mar  4 10:00:00 2025 GMT",
    "notAfter=Mar  4 10:00:00.123 2025 GMT", "notAfter=2025-03-04 10:00:00Z",
    "notAfter=0001-01-01T00:00:00", "notAfter=9999-12-31T23:59:59+00:00",
    "notBefore=0001-01-01 00:00:00-23:59", "notAfter=9999-12-31T23:59:59-23:59",
    "notAfter=Feb 30 00:00:00 2025 GMT", "notAfter=Jan  1 00:00:00 0001 GMT",
    "notAfter=Dec 31 23:59:59 9999 GMT", "Not After : Mar  4 10:00:00 2025 GMT",
    "            Not Before: Mar  4 10:00:00 2024 GMT", "subject=CN = system:node:x, O = y",
    "issuer=CN = kubernetes", "serial=3039", "Certificate will expire", "notAfter=",
    "notAfter", "=", " : ", "Certificate will not expire",
]


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(OPENSSL_LINES), st.text(max_size=40),
                          st.builds(lambda k, v: f"{k}={v}",
                                    st.sampled_from(["notBefore", "notAfter", "Not After "]),
                                    st.text(max_size=30))),
                max_size=10).map("\n".join))
def test_parse_openssl_never_raises(text: str) -> None:
    dates = certs.parse_openssl(text)
    assert isinstance(dates, certs.OpenSSLDates)
    for value in (dates.not_before, dates.not_after):
        assert value is None or isinstance(value, float)
    assert isinstance(dates.error, str)
    certs.parse_openssl(text.encode("utf-8", "surrogatepass"))


clocks = st.one_of(st.none(), st.floats(-1e11, 1e11), st.sampled_from([0.0, 253402300799.0]))


@FUZZ
@given(st.one_of(blobs, st.lists(st.sampled_from(OPENSSL_LINES), max_size=6)
                 .map(lambda ls: "\n".join(ls).encode())),
       clocks, clocks)
def test_client_certificate_observation(data: bytes, now: float | None,
                                        node_now: float | None) -> None:
    obs = certs.client_certificate("node-0001", data, now=now if now is not None else 1.7e9,
                                   node_now=node_now)
    assert isinstance(obs, Observation)
    assert obs.status in (Status.OK, Status.BAD, Status.ERROR)
    assert isinstance(obs.summary, str) and obs.summary
    begin = data.find(KEY_BEGIN)
    if begin >= 0 and data.find(KEY_LINE, begin) > begin:
        assert KEY_LINE.decode() not in obs.raw, "the private key is quoted as evidence"
    if obs.status is Status.ERROR:
        assert LAST_RESORT not in obs.summary, obs.summary


def test_the_generated_certificate_reads() -> None:
    f = certs.load(PEM + KEY)
    assert f.ok and f.key_matches is True
    assert f.leaf is not None and f.leaf.common_name == "system:node:node-0001"
    assert certs.load(DER).ok
