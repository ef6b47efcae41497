"""An asyncio load client: plain HTTP/1.1 on raw sockets, so one process holds thousands of streams.

Everything here targets loopback servers the bench started itself.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class StreamResult:
    status: int = 0
    started: float = 0.0
    first_token: float | None = None  # seconds after start
    done: float | None = None  # seconds after start
    tokens: int = 0
    ended: bool = False  # saw the protocol's end marker
    error: str | None = None
    body: bytes = b""  # the start of an answer that was not a 200: the server's reason

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.ended and self.error is None


async def _open(host: str, port: int):
    return await asyncio.open_connection(host, port, limit=1 << 20)


def _request_bytes(method: str, host: str, port: int, path: str, headers: dict | None, body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    return status, headers


async def body_chunks(reader: asyncio.StreamReader, headers: dict[str, str]):
    """The body's bytes as they arrive: chunked, by length, or until close."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while data := await reader.read(65536):
            yield data


async def request(host: str, port: int, method: str, path: str, *, json_body=None,
                  headers: dict | None = None, timeout: float = 30.0, raw_body: bytes | None = None,
                  content_type: str = "application/json") -> Response:
    """One request on a fresh connection; `raw_body` sends bytes as they are (crafted or malformed input)."""
    body = raw_body if raw_body is not None else json.dumps(json_body).encode() if json_body is not None else None
    headers = {**(headers or {}), **({"Content-Type": content_type} if body is not None else {})}

    async def go():
        reader, writer = await _open(host, port)
        try:
            writer.write(_request_bytes(method, host, port, path, headers, body))
            status, response_headers = await _read_head(reader)
            data = b"".join([chunk async for chunk in body_chunks(reader, response_headers)])
            return Response(status, response_headers, data)
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout)


async def stream(host: str, port: int, path: str, payload: dict, *, headers: dict | None = None,
                 protocol: str = "sse", timeout: float = 60.0) -> StreamResult:
    """One streamed chat: `sse` for the gateway's events, `ndjson` for Ollama straight from the fake."""
    result = StreamResult(started=time.monotonic())
    body = json.dumps(payload).encode()
    headers = {**(headers or {}), "Content-Type": "application/json", "Accept": "text/event-stream"}
    writer = None

    async def go():
        nonlocal writer
        reader, writer = await _open(host, port)
        writer.write(_request_bytes("POST", host, port, path, headers, body))
        result.status, response_headers = await _read_head(reader)
        buffer = b""
        if result.status != 200:
            result.body = b"".join([chunk async for chunk in body_chunks(reader, response_headers)])[:1000]
            return
        async for chunk in body_chunks(reader, response_headers):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                _count(result, line, protocol)
        if buffer:
            _count(result, buffer, protocol)

    try:
        await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        result.error = "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    result.done = time.monotonic() - result.started
    if result.status != 200 and result.error is None:
        result.error = f"http_{result.status}"
    return result


def _count(result: StreamResult, line: bytes, protocol: str) -> None:
    if protocol == "sse":
        if not line.startswith(b"data: "):
            return
        kind = json.loads(line[6:]).get("type")
        if kind == "token":
            _token_seen(result)
        elif kind == "end":
            result.ended = True
        elif kind == "error":
            result.error = "sse_error"
    elif line.strip():
        event = json.loads(line)
        if event.get("done"):
            result.ended = True
        else:
            _token_seen(result)


def _token_seen(result: StreamResult) -> None:
    result.tokens += 1
    if result.first_token is None:
        result.first_token = time.monotonic() - result.started


async def slow_header_socket(host: str, port: int, *, seconds: float, bytes_per_second: float = 1.0) -> float | None:
    """Send a request's headers at `bytes_per_second`; return when the server closed the socket (or None)."""
    opened = time.monotonic()
    reader, writer = await _open(host, port)
    trickle = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in trickle:
            if time.monotonic() - opened > seconds:
                return None
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                # A close from the server shows up as EOF here while we wait to send the next byte.
                if await asyncio.wait_for(reader.read(1024), 1 / bytes_per_second) == b"":
                    return time.monotonic() - opened
            except asyncio.TimeoutError:
                pass
        return None
    except OSError:
        return time.monotonic() - opened
    finally:
        writer.close()


@dataclass
class Probe:
    """/livez latencies sampled during a run."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict:
        return {"probes": len(self.latencies) + self.failures, "failed": self.failures,
                **{f"p{q}": percentile(self.latencies, q) for q in (50, 99)},
                "max": max(self.latencies) if self.latencies else None}


async def probe_livez(host: str, port: int, stop: asyncio.Event, *, interval: float = 0.05,
                      timeout: float = 2.0) -> Probe:
    probe = Probe()
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await request(host, port, "GET", "/livez", timeout=timeout)
            if response.status == 200:
                probe.latencies.append(time.monotonic() - started)
            else:
                probe.failures += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            probe.failures += 1
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass
    return probe


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(int(q), 99) - 1]
