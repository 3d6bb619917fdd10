"""A small HTTP/1.1 server on asyncio streams: TLS, keep-alive, chunked request bodies and
chunked streaming responses (watch, log follow).

The handler is `async def handler(request: Request) -> Response`. A Response body is either bytes
(sent with Content-Length) or an async iterator of byte chunks (sent chunked; the stream ends when
the iterator ends or the client goes away, and the iterator is then closed so it can clean up).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 120.0  # keep-alive connection waiting for its next request
HEAD_TIMEOUT = 30.0  # a request whose head has started arriving
BODY_TIMEOUT = 60.0
WRITE_TIMEOUT = 60.0  # a client that reads nothing for this long is dropped


class Headers:
    """Case-insensitive, multi-valued header map."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, list[str]] = {}
        for k, v in items:
            self._items.setdefault(k.lower(), []).append(v)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._items.get(name.lower())
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._items.get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, vs in self._items.items() for v in vs]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


@dataclass(slots=True)
class Request:
    method: str
    target: str  # the raw request target, path and query
    path: str  # percent-decoded path
    raw_path: str  # path as sent
    query_string: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes = b""
    peercert: dict | None = None  # getpeercert(): set only when the chain verified against the CA
    peercert_der: bytes | None = None
    remote: tuple | None = None
    version: str = "HTTP/1.1"

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


Body = bytes | AsyncIterator[bytes]


@dataclass(slots=True)
class Response:
    status: int = 200
    body: Body = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json"

    @property
    def streaming(self) -> bool:
        return not isinstance(self.body, (bytes, bytearray, memoryview))


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    pass


class DropConnection(Exception):
    """Raised by a streaming body to cut the connection at once (a reset, no final chunk)."""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _date() -> str:
    import email.utils

    return email.utils.formatdate(usegmt=True)


def make_ssl_context(certfile: str, keyfile: str, cafile: str | None = None) -> ssl.SSLContext:
    """A server context offering only HTTP/1.1, asking for (not requiring) a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())


class _Connection:
    def __init__(self, handler: Handler, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.handler = handler
        self.reader = reader
        self.writer = writer
        self.peercert: dict | None = None
        self.peercert_der: bytes | None = None
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is not None:
            try:
                self.peercert = sslobj.getpeercert() or None
                self.peercert_der = sslobj.getpeercert(binary_form=True)
            except (ValueError, ssl.SSLError):
                pass
        self.remote = writer.get_extra_info("peername")

    async def run(self) -> None:
        try:
            while True:
                try:
                    request = await self._read_request()
                except BadRequest as exc:
                    await self._send_simple(400, str(exc) or "Bad Request")
                    return
                if request is None:
                    return
                keep = await self._respond(request)
                if not keep:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:  # the server is stopping: drop the connection now
            self.writer.transport.abort()
            raise
        finally:
            self.writer.close()
            if not _cancelling():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def _read_request(self) -> Request | None:
        # Wait for the first byte with the idle timeout, then for the head with the head timeout.
        try:
            first = await asyncio.wait_for(self.reader.read(1), IDLE_TIMEOUT)
        except TimeoutError:
            return None
        if not first:
            return None
        try:
            rest = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise BadRequest("request head too large") from None
        except asyncio.IncompleteReadError:
            return None
        head = first + rest
        if len(head) > MAX_HEAD:
            raise BadRequest("request head too large")
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise BadRequest("bad request head") from None
        lines = text.split("\r\n")
        while lines and lines[0] == "":  # tolerate stray CRLF between requests
            lines.pop(0)
        if not lines:
            raise BadRequest("empty request")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest("malformed request line")
        method, target, version = parts
        if not method.isalpha() or not method.isupper() or not target:
            raise BadRequest("malformed request line")
        header_items = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or " " in name:
                raise BadRequest("malformed header line")
            header_items.append((name, value.strip()))
        headers = Headers(header_items)

        if target.startswith("/"):
            raw_path, _, query_string = target.partition("?")
        elif target.startswith(("http://", "https://")):
            rest_target = target.split("://", 1)[1]
            slash = rest_target.find("/")
            rest_target = rest_target[slash:] if slash >= 0 else "/"
            raw_path, _, query_string = rest_target.partition("?")
        elif target == "*":
            raw_path, query_string = "*", ""
        else:
            raise BadRequest("malformed request target")
        try:
            query = parse_qs(query_string, keep_blank_values=True)
        except ValueError:
            raise BadRequest("malformed query") from None

        body = await self._read_body(headers)
        return Request(
            method=method,
            target=target,
            path=unquote(raw_path),
            raw_path=raw_path,
            query_string=query_string,
            query=query,
            headers=headers,
            body=body,
            peercert=self.peercert,
            peercert_der=self.peercert_der,
            remote=self.remote,
            version=version,
        )

    async def _read_body(self, headers: Headers) -> bytes:
        te = (headers.get("transfer-encoding") or "").lower()
        length = headers.get("content-length")
        expect = (headers.get("expect") or "").lower()
        if (te or length) and expect == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self.writer.drain()
        if te:
            if te.split(",")[-1].strip() != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            return await asyncio.wait_for(self._read_chunked(), BODY_TIMEOUT)
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest("bad content-length") from None
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad content-length")
        if n == 0:
            return b""
        return await asyncio.wait_for(self.reader.readexactly(n), BODY_TIMEOUT)

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                # trailers until an empty line
                while True:
                    trailer = await self.reader.readuntil(b"\r\n")
                    if trailer == b"\r\n":
                        return bytes(out)
            if len(out) + size > MAX_BODY:
                raise BadRequest("body too large")
            out += await self.reader.readexactly(size)
            if await self.reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk terminator")

    async def _send_simple(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.writer.write(_head(status, [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]) + body)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 5)

    async def _drain(self) -> None:
        await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)

    async def _respond(self, request: Request) -> bool:
        close = (request.headers.get("connection") or "").lower() == "close" or (
            request.version == "HTTP/1.0"
            and (request.headers.get("connection") or "").lower() != "keep-alive"
        )
        try:
            response = await self.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = Response(500, b"Internal Server Error\n", content_type="text/plain")
        headers = list(response.headers)
        names = {k.lower() for k, _ in headers}
        if response.content_type and "content-type" not in names:
            headers.append(("Content-Type", response.content_type))
        headers.append(("Date", _date()))
        if not response.streaming:
            body = bytes(response.body)
            headers.append(("Content-Length", str(len(body))))
            if close:
                headers.append(("Connection", "close"))
            head = _head(response.status, headers)
            if request.method == "HEAD":
                self.writer.write(head)
            else:
                self.writer.write(head + body)
            await self._drain()
            return not close
        headers.append(("Transfer-Encoding", "chunked"))
        if close:
            headers.append(("Connection", "close"))
        self.writer.write(_head(response.status, headers))
        complete = await self._stream(response.body)  # type: ignore[arg-type]
        return complete and not close

    async def _stream(self, body: AsyncIterator[bytes]) -> bool:
        """Send chunks until the iterator ends (True) or the client goes away (False)."""
        writer = self.writer
        iterator = body.__aiter__()
        # A read that completes means the client closed (or sent something, which for a
        # streaming response we treat the same way: the stream belongs to this request).
        eof = asyncio.ensure_future(self.reader.read(1))
        step: asyncio.Future | None = None
        try:
            await self._drain()
            while True:
                step = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({step, eof}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    return False
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    break
                if not chunk:
                    continue
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                await self._drain()
            writer.write(b"0\r\n\r\n")
            await self._drain()
            return not eof.done()
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError):
            return False
        except DropConnection:
            writer.transport.abort()
            return False
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return False
        finally:
            # Whatever ended the stream (the client, an error, the server stopping), the
            # iterator's pending step is cancelled so its cleanup (closing a watcher) runs.
            for pending in (step, eof):
                if pending is None:
                    continue
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                elif not pending.cancelled():
                    pending.exception()  # retrieved: a client's TLS alert is how it left
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()


async def serve_http(handler: Handler, host: str = "127.0.0.1", port: int = 0,
                     ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Start serving; the caller reads the port from `server.sockets[0].getsockname()[1]`."""
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["http/1.1"])
    connections: set[asyncio.Task] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            connections.add(task)
        try:
            await _Connection(handler, reader, writer).run()
        except asyncio.CancelledError:
            writer.close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            writer.close()
        finally:
            if task is not None:
                connections.discard(task)

    server = await asyncio.start_server(
        on_connect, host, port, ssl=ssl_context, limit=MAX_HEAD,
        ssl_handshake_timeout=30 if ssl_context else None,
    )
    server._nodewb_connections = connections  # type: ignore[attr-defined]
    return server


async def close_server(server: asyncio.Server) -> None:
    """Stop listening and end every open connection (streams included)."""
    server.close()
    connections: set[asyncio.Task] = getattr(server, "_nodewb_connections", set())
    for task in list(connections):
        task.cancel()
    if connections:  # a connection stuck in a TLS shutdown must not hold the stop up
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*connections, return_exceptions=True), 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 5)
