"""One client connection to the fake model server: HTTP/1.1 requests in, bytes out, and when the client left.

An asyncio protocol rather than a thread per connection, so one process holds
thousands of open streams. The client's leaving is known the moment its FIN
arrives (`gone`), which is what lets the fake say when a gateway let go of it.
"""
from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024


class ClientGone(Exception):
    """The client closed its connection before the answer's last byte."""


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # as the client spelled them

    body: bytes

    def header(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), default)


Handler = Callable[["Connection", HttpRequest], Awaitable[bool]]


class Connection(asyncio.Protocol):
    """Reads requests one after another (keep-alive) and hands each to `handler`, which says whether to go on."""

    def __init__(self, handler: Handler, on_open: Callable[[Connection], None],
                 on_close: Callable[[Connection], None]):
        self._handler, self._on_open, self._on_close = handler, on_open, on_close
        self._buffer = bytearray()
        self._more: asyncio.Future | None = None
        self._writable: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None
        self.gone: asyncio.Future
        self.task: asyncio.Task | None = None

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        loop = asyncio.get_running_loop()
        self.transport, self.gone = transport, loop.create_future()
        # asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and the listener made by hand says 0:
        # without it a stream's second chunk waited ~40 ms for the client's delayed ACK of the first (Nagle).
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._on_open(self)
        self.task = loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._leave()
        return False  # and so the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave()

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _leave(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        self._wake()
        self.resume_writing()

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    # Reading
    async def _fill(self) -> None:
        if self.gone.done():
            raise ClientGone
        self._more = asyncio.get_running_loop().create_future()
        await self._more

    async def _read_until(self, separator: bytes, limit: int) -> bytes:
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > limit:
                raise ValueError("request head too large")
            await self._fill()
        data = bytes(self._buffer[:end + len(separator)])
        del self._buffer[:end + len(separator)]
        return data

    async def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def _read_request(self) -> HttpRequest:
        head = (await self._read_until(b"\r\n\r\n", MAX_HEAD_BYTES)).decode("latin-1").split("\r\n")
        method, target, _version = head[0].split(" ", 2)
        headers = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:] if line))
        request = HttpRequest(method, target.split("?", 1)[0], headers, b"")
        if request.header("Transfer-Encoding").lower() == "chunked":
            parts = []
            while size := int((await self._read_until(b"\r\n", MAX_HEAD_BYTES)).split(b";")[0], 16):
                parts.append((await self._read_exactly(size + 2))[:-2])
            await self._read_until(b"\r\n", MAX_HEAD_BYTES)
            request.body = b"".join(parts)
        else:
            request.body = await self._read_exactly(int(request.header("Content-Length", "0") or 0))
        return request

    async def _serve(self) -> None:
        try:
            while True:
                request = await self._read_request()
                if not await self._handler(self, request) or request.header("Connection").lower() == "close":
                    break
        except (ClientGone, ValueError, ConnectionError):
            pass
        finally:
            self.transport.close()
            self._on_close(self)

    # Writing
    async def write(self, data: bytes, *, last: bool = False) -> None:
        """Send bytes; before the last byte of an answer, a client that closed has left early."""
        if self.gone.done() or self.transport.is_closing():
            raise ClientGone
        self.transport.write(data)
        if self._writable is not None:
            await asyncio.wait({self._writable, self.gone}, return_when=asyncio.FIRST_COMPLETED)
        if not last and self.gone.done():
            raise ClientGone

    async def send(self, status: int, content_type: str, data: bytes, *, close: bool = False) -> None:
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n" \
               f"Content-Length: {len(data)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        await self.write(head.encode("latin-1") + data, last=True)

    async def start_chunked(self, content_type: str) -> None:
        await self.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
                         .encode("latin-1"))

    async def chunk(self, data: bytes) -> None:
        await self.write(b"%X\r\n%s\r\n" % (len(data), data))

    async def end_chunked(self) -> None:
        await self.write(b"0\r\n\r\n", last=True)

    async def pause(self, seconds: float) -> None:
        """Wait, but notice at once a client that hangs up meanwhile (math.inf: until it does)."""
        if seconds > 0 and not self.gone.done():
            await asyncio.wait({self.gone}, timeout=None if math.isinf(seconds) else seconds)
        if self.gone.done():
            raise ClientGone

    async def wait(self, event: asyncio.Future) -> None:
        """Wait for `event`, unless the client hangs up first."""
        await asyncio.wait({event, self.gone}, return_when=asyncio.FIRST_COMPLETED)
        if not event.done():
            raise ClientGone

    def hang_up(self) -> None:
        self.transport.close()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
