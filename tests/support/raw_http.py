"""HTTP/1.1 by hand over a socket, for what no client library will send: broken chunks, bodies that stop."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float          # from `sent_at` (just before the request was sent) to the end of the response
    closed: bool            # the server closed the connection after it

    def json(self):
        return json.loads(self.body)


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(url: str, timeout: float) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(url: str, raw: bytes, *, half_close: bool = False, timeout: float = 20.0) -> RawResponse:
    """Send `raw`, optionally end the sending side (a client that stopped mid-body), read one response."""
    with connect(url, timeout) as sock:
        sent_at = time.monotonic()
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock, sent_at)


def read_response(sock: socket.socket, sent_at: float) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    elapsed = time.monotonic() - sent_at
    return RawResponse(int(status_line.split()[1]), headers, body, elapsed, _closed_after(sock))


def _closed_after(sock: socket.socket) -> bool:
    """Closed at once; an idle keep-alive connection lasts GUNICORN_HEADER_TIMEOUT (5 s), far longer."""
    try:
        sock.settimeout(1)
        return sock.recv(1) == b""
    except ConnectionResetError:  # closed with bytes of ours unread: the kernel resets instead
        return True
    except TimeoutError:
        return False
