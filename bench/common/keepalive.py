"""A keep-alive HTTP/1.1 connection for latency runs: one per simulated client, reused for every request.

A new TCP connection per request would add a connect (and, under gevent, an
accept race between workers) to every sample, on both sides of a comparison.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from .client import body_chunks


@dataclass
class Timed:
    status: int
    headers: dict[str, str]
    first_byte: float  # seconds from sending to the first body event (the response head for whole replies)
    first_token: float | None  # streams: seconds to the first token event
    total: float  # seconds from sending to the end of the body
    body: bytes


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _ensure(self) -> None:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def request(self, method: str, path: str, *, json_body=None, headers: dict | None = None,
                      token_marker: bytes | None = None, timeout: float = 30.0) -> Timed:
        """One request; `token_marker` is a byte string whose first appearance in the body counts as the first token."""
        try:
            return await asyncio.wait_for(self._request(method, path, json_body, headers or {}, token_marker), timeout)
        except BaseException:
            self.close()  # a half-read response leaves the connection unusable
            raise

    async def _request(self, method, path, json_body, headers, token_marker) -> Timed:
        await self._ensure()
        body = json.dumps(json_body).encode() if json_body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if json_body is not None:
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in headers.items()]
        started = time.perf_counter()
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        first_byte = time.perf_counter() - started
        status = int(raw[0].split(" ", 2)[1])
        response_headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in raw[1:] if h)}
        first_token, parts = None, []
        async for chunk in self._chunks(response_headers):
            if first_token is None and token_marker is not None and token_marker in chunk:
                first_token = time.perf_counter() - started
            parts.append(chunk)
        total = time.perf_counter() - started
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return Timed(status, response_headers, first_byte, first_token, total, b"".join(parts))

    async def _chunks(self, headers: dict[str, str]):
        async for chunk in body_chunks(self._reader, headers):
            yield chunk
        if not ("transfer-encoding" in headers or "content-length" in headers):
            self.close()  # the body ran until the server closed
