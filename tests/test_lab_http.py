"""lab.http: the small HTTP/1.1 server under the lab's API server and kubelets."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from lab import pki
from lab.http import Request, Response, close_server, serve_http


async def _echo(req: Request) -> Response:
    if req.path == "/stream":
        async def chunks():
            for i in range(3):
                yield f"chunk {i}\n".encode()
        return Response(200, chunks(), content_type="text/plain")
    if req.path == "/forever":
        async def forever():
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.01)
            finally:
                _state["closed"] = True
        return Response(200, forever(), content_type="text/plain")
    if req.path == "/boom":
        raise RuntimeError("handler failed")
    text = (f"{req.method} {req.path} {sorted(req.query.items())} "
            f"{req.headers.get('x-test')} {len(req.body)} {req.body[:20]!r}")
    return Response(200, text.encode(), content_type="text/plain")


_state: dict = {}


async def _open(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.read()
    return status, headers, body


@pytest.fixture
async def server():
    srv = await serve_http(_echo, "127.0.0.1", 0, None)
    port = srv.sockets[0].getsockname()[1]
    yield port
    await close_server(srv)


async def test_keep_alive_query_and_headers(server):
    reader, writer = await _open(server)
    for i in range(3):
        writer.write(f"GET /a/b%20c?x=1&x=2&y= HTTP/1.1\r\nHost: h\r\nX-Test: v{i}\r\n\r\n"
                     .encode())
        status, headers, body = await _read_response(reader)
        assert status == 200
        assert body.decode() == f"GET /a/b c [('x', ['1', '2']), ('y', [''])] v{i} 0 b''"
        assert headers["content-length"] == str(len(body))
    writer.close()


async def test_content_length_and_chunked_bodies(server):
    reader, writer = await _open(server)
    writer.write(b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    status, _, body = await _read_response(reader)
    assert status == 200 and body.endswith(b"5 b'hello'")
    writer.write(b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert status == 200 and body.endswith(b"7 b'abcdefg'")
    writer.close()


@pytest.mark.parametrize("garbage", [
    b"NONSENSE\r\n\r\n",
    b"GET /x HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
])
async def test_garbage_gets_400(server, garbage):
    reader, writer = await _open(server)
    writer.write(garbage)
    status, headers, _ = await _read_response(reader)
    assert status == 400
    assert headers.get("connection") == "close"
    writer.close()


async def test_head_too_large_gets_400(server):
    reader, writer = await _open(server)
    writer.write(b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    status, _, _ = await _read_response(reader)
    assert status == 400
    writer.close()


async def test_handler_error_is_500_without_traceback(server, capsys):
    reader, writer = await _open(server)
    writer.write(b"GET /boom HTTP/1.1\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert status == 500
    assert b"Traceback" not in body and b"handler failed" not in body
    assert "handler failed" in capsys.readouterr().err
    # the connection survives
    writer.write(b"GET /ok HTTP/1.1\r\n\r\n")
    status, _, _ = await _read_response(reader)
    assert status == 200
    writer.close()


async def test_chunked_stream_then_keep_alive(server):
    reader, writer = await _open(server)
    writer.write(b"GET /stream HTTP/1.1\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    writer.write(b"GET /after HTTP/1.1\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert status == 200 and body.startswith(b"GET /after")
    writer.close()


async def test_stream_closed_when_client_goes_away(server):
    _state.clear()
    reader, writer = await _open(server)
    writer.write(b"GET /forever HTTP/1.1\r\n\r\n")
    await reader.readuntil(b"tick\n")
    writer.close()
    deadline = time.monotonic() + 5
    while not _state.get("closed") and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert _state.get("closed"), "the stream's iterator was not closed after the disconnect"


async def test_abrupt_disconnect_mid_request(server):
    reader, writer = await _open(server)
    writer.write(b"POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")
    writer.close()
    await asyncio.sleep(0.05)
    reader, writer = await _open(server)
    writer.write(b"GET /still-up HTTP/1.1\r\n\r\n")
    status, _, _ = await _read_response(reader)
    assert status == 200
    writer.close()


async def test_tls_offers_http11_only_and_exposes_peer_cert(tmp_path: Path):
    now = time.time()
    ca = pki.CA("test-ca", now)
    srv_cert = ca.issue("server", not_before=now - 60, not_after=now + 3600, ips=("127.0.0.1",),
                        server=True)
    client = ca.issue("alice", orgs=("team-a", "team-b"), not_before=now - 60,
                      not_after=now + 3600, client=True)
    seen = {}

    async def handler(req: Request) -> Response:
        seen["cert"] = req.peercert
        return Response(200, b"ok")

    srv = await serve_http(handler, "127.0.0.1", 0, pki.server_context(ca, srv_cert))
    port = srv.sockets[0].getsockname()[1]
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "c.pem").write_bytes(client.cert_pem)
    (tmp_path / "k.pem").write_bytes(client.key_pem)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        status, _, _ = await _read_response(reader)
        assert status == 200
        subject = dict(x for rdn in seen["cert"]["subject"] for x in rdn)
        assert subject["commonName"] == "alice"
        orgs = [v for rdn in seen["cert"]["subject"] for k, v in rdn if k == "organizationName"]
        assert orgs == ["team-a", "team-b"]
        writer.close()
    finally:
        await close_server(srv)
