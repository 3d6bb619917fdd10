"""probes.certs: certificate files, openssl's text, TLS handshakes, judged against a clock."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lab.pki import CA, server_context
from probes import certs
from probes.observation import Status

NOW = time.time()


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA("kubernetes", NOW)


def client_pem(ca: CA, not_before: float, not_after: float) -> bytes:
    issued = ca.issue("system:node:node-0007", orgs=("system:nodes",), client=True,
                      not_before=not_before, not_after=not_after)
    return issued.cert_pem + issued.key_pem  # as kubelet-client-current.pem holds them


def test_client_file_with_its_key(ca):
    pem = client_pem(ca, NOW - 300 * 86400, NOW + 65 * 86400)
    f = certs.load(pem)
    assert f.ok and len(f.certs) == 1
    info = f.leaf
    assert info.common_name == "system:node:node-0007"
    assert info.organizations == ("system:nodes",)
    assert info.subject == "CN=system:node:node-0007,O=system:nodes"
    assert info.issuer == "CN=kubernetes"
    assert info.key_type == "EC P-256" and info.usages == ("client",)
    assert info.not_after == pytest.approx(NOW + 65 * 86400, abs=1)
    assert int(info.serial, 16) > 0 and len(info.sha256) == 64
    assert f.key_type == "EC P-256" and f.key_matches is True
    obs = certs.client_certificate("node-0007", pem, now=NOW)
    assert obs.status == Status.OK and "valid for 65.0 days" in obs.summary
    assert obs.data["state"] == "valid" and obs.data["ttl"] == pytest.approx(65 * 86400, abs=2)
    # the key is never quoted as evidence
    assert "PRIVATE KEY-----\n(redacted)" in obs.raw
    assert pem.split(b"-----BEGIN EC PRIVATE KEY-----")[1][:40].decode() not in obs.raw


def test_chain_der_sans_and_rsa(ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = ca.issue("node-0003@1700000000", not_before=NOW - 3600, not_after=NOW + 86400,
                      dns=("node-0003",), ips=("10.0.3.7", "fd00::7"), server=True, key=key)
    f = certs.load(server.cert_pem + ca.cert_pem)
    assert [c.common_name for c in f.certs] == ["node-0003@1700000000", "kubernetes"]
    assert f.leaf.dns_names == ("node-0003",)
    assert f.leaf.ip_addresses == ("10.0.3.7", "fd00::7")
    assert f.leaf.key_type == "RSA 2048" and not f.leaf.is_ca
    assert f.certs[1].is_ca
    der = server.cert.public_bytes(serialization.Encoding.DER)
    g = certs.load(der)
    assert g.ok and g.leaf.sha256 == f.leaf.sha256 and g.key_type == ""


def test_a_key_that_does_not_belong_to_the_certificate(ca):
    issued = ca.issue("system:node:node-0007", client=True, not_before=NOW - 60,
                      not_after=NOW + 30 * 86400)
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    f = certs.load(issued.cert_pem + other)
    assert f.key_type == "EC P-384" and f.key_matches is False
    obs = certs.client_certificate("node-0007", issued.cert_pem + other, now=NOW)
    assert obs.status == Status.BAD and "does not belong" in obs.summary


def test_expired_is_not_the_same_as_not_yet_valid(ca):
    expired = client_pem(ca, NOW - 365 * 86400, NOW - 3600)
    obs = certs.client_certificate("node-0007", expired, now=NOW)
    assert obs.status == Status.BAD and obs.data["state"] == "expired"
    assert "expired 60 minutes ago" in obs.summary
    assert obs.data["ttl"] == pytest.approx(-3600, abs=2)

    fresh = client_pem(ca, NOW - 600, NOW + 365 * 86400)
    behind = NOW - 2 * 86400  # the node's clock two days behind
    obs = certs.client_certificate("node-0019", fresh, now=NOW, node_now=behind)
    assert obs.status == Status.BAD and obs.data["state"] == "not_yet_valid"
    assert "not yet valid" in obs.summary and "clock running behind" in obs.summary
    assert obs.data["judged_on"] == "the node's clock"
    assert obs.data["local_view"] == "valid"
    assert obs.data["node_clock_offset"] == pytest.approx(-2 * 86400)

    soon = client_pem(ca, NOW - 86400, NOW + 2 * 86400)
    obs = certs.client_certificate("node-0007", soon, now=NOW)
    assert obs.status == Status.BAD and obs.data["state"] == "expiring"
    assert "warning below 7.0 days" in obs.summary


@pytest.mark.parametrize("text, nb, na, subject", [
    ("notBefore=Nov 21 07:07:00 2025 GMT\nnotAfter=Nov 21 07:07:00 2026 GMT\n"
     "subject=O = system:nodes, CN = system:node:node-0007\n",
     "2025-11-21T07:07:00", "2026-11-21T07:07:00", "O = system:nodes, CN = system:node:node-0007"),
    ("notAfter=Feb  3 01:02:03 2027 GMT\n", None, "2027-02-03T01:02:03", ""),  # -enddate
    ("subject= /O=system:nodes/CN=system:node:node-0001\nnotBefore=Jan  1 00:00:00 2024 GMT\n"
     "notAfter=Jan  1 00:00:00 2025 GMT\n",  # OpenSSL 1.1
     "2024-01-01T00:00:00", "2025-01-01T00:00:00", "/O=system:nodes/CN=system:node:node-0001"),
    ("        Validity\n            Not Before: Mar  4 05:06:07 2024 GMT\n"
     "            Not After : Mar  4 05:06:07 2025 GMT\n",  # -text
     "2024-03-04T05:06:07", "2025-03-04T05:06:07", ""),
])
def test_openssl_text(text, nb, na, subject):
    import datetime as dt

    def ts(iso):
        return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()

    d = certs.parse_openssl(text)
    assert not d.error
    assert d.not_before == (ts(nb) if nb else None)
    assert d.not_after == ts(na)
    assert d.subject == subject


def test_openssl_text_judged_and_checkend():
    text = ("notBefore=Nov 21 07:07:00 2023 GMT\nnotAfter=Nov 21 07:07:00 2024 GMT\n"
            "subject=O = system:nodes, CN = system:node:node-0007\n")
    obs = certs.client_certificate("node-0007", text, now=NOW)
    assert obs.status == Status.BAD and obs.data["state"] == "expired"
    assert obs.data["cert"]["common_name"] == "system:node:node-0007"
    assert obs.data["from"] == "openssl text"
    assert certs.parse_openssl("Certificate will expire\n").will_expire is True
    assert certs.parse_openssl("Certificate will not expire\n").will_expire is False


@pytest.mark.parametrize("garbage, words", [
    (b"", "empty"),
    (None, "no data"),
    (b"<html><body>403</body></html>", "neither PEM nor a DER"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB", "cut short"),
    (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "no certificate"),
    (b"\x30\x82\x01\x00" + b"\x00" * 40, "neither PEM nor a DER"),
    ("caf\u00e9 \udcff", "neither PEM nor a DER"),
])
def test_garbage_gives_a_clear_error(garbage, words):
    f = certs.load(garbage)
    assert not f.ok and words in f.error + " ".join(f.problems)
    obs = certs.client_certificate("node-0001", garbage, now=NOW)
    assert obs.status == Status.ERROR and obs.reason


def test_garbage_openssl_output():
    for text in ("", "unable to load certificate\n140:error:0906D06C:PEM routines",
                 "notAfter=sometime next week\n", None, b"\xff\xfe"):
        d = certs.parse_openssl(text)
        assert d.error
        obs = certs.client_certificate("n", text if text is not None else "", now=NOW)
        assert obs.status == Status.ERROR


def test_redact_only_touches_private_keys(ca):
    pem = client_pem(ca, NOW - 60, NOW + 60).decode()
    secret = "not-base64!"  # '-' and '!' never occur in the certificate's base64
    out = certs.redact(pem + f"-----BEGIN RSA PRIVATE KEY-----\n{secret}")  # cut short too
    assert out.count("(redacted)") == 2
    assert "-----BEGIN CERTIFICATE-----" in out and secret not in out


# -- a handshake ----------------------------------------------------------------------------------
@asynccontextmanager
async def tls_server(ca: CA, issued) -> AsyncIterator[int]:
    """A TLS listener on loopback serving `issued` (a handshake is all it answers); its port."""

    async def handle(reader, writer):
        try:
            await reader.read(100)
        except (ConnectionError, ssl.SSLError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context(ca, issued))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_serving_certificate_from_a_handshake(ca, tmp_path):
    issued = ca.issue("node-0003@1700000000", not_before=NOW - 3600, not_after=NOW + 86400 * 365,
                      dns=("node-0003",), ips=("127.0.0.1",), server=True)
    async with tls_server(ca, issued) as port:
        obs = await certs.serving_certificate("node-0003", "127.0.0.1", port, now=NOW,
                                              expect_names=("node-0003", "127.0.0.1"))
        assert obs.status == Status.OK and obs.via == "direct"
        assert obs.data["cert"]["dns_names"] == ["node-0003"]
        assert "valid for" in obs.summary
        skewed = await certs.serving_certificate("node-0003", "127.0.0.1", port, now=NOW,
                                                 node_now=NOW - 2 * 86400)
        assert skewed.status == Status.BAD and skewed.data["state"] == "not_yet_valid"
        wrong = await certs.serving_certificate("node-0003", "127.0.0.1", port, now=NOW,
                                                expect_names=("node-0004",))
        assert wrong.status == Status.BAD and "lack node-0004" in wrong.summary


async def test_serving_certificate_refused_and_hung():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = await certs.serving_certificate("node-0001", "127.0.0.1", port, timeout=2)
    assert refused.status == Status.ERROR and "connection refused" in refused.reason

    async def silent(reader, writer):  # accepts, never speaks TLS
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hung = await certs.serving_certificate("node-0001", "127.0.0.1", port, timeout=0.5)
        assert hung.status == Status.HUNG and "did not finish" in hung.summary
    finally:
        server.close()


async def test_read_over_a_runner_with_the_node_clock(ca):
    pem = client_pem(ca, NOW - 365 * 86400, NOW - 7200).decode()

    async def runner(node, command, timeout):
        assert "date -u +%s" in command and certs.CLIENT_CERT_PATH in command
        return 0, f"{int(NOW - 30)}\n{pem}", "", False

    obs = await certs.read_client_certificate(runner, "node-0007", now=NOW)
    assert obs.status == Status.BAD and obs.data["state"] == "expired"
    assert obs.data["node_time"] == int(NOW - 30) and obs.via == "ssh"

    async def slow(node, command, timeout):
        return None, "", "", True

    assert (await certs.read_client_certificate(slow, "n", timeout=1)).status == Status.HUNG

    async def broken(node, command, timeout):
        raise OSError("ssh: connect to host bastion port 22: Connection refused")

    err = await certs.read_client_certificate(broken, "n")
    assert err.status == Status.ERROR and "Connection refused" in err.summary
