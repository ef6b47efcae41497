"""The soak's traffic: every request it sends, and what it saw, recorded for the checks at the end.

Each simulated client has an address of its own, sent as X-Forwarded-For (the
gateway runs with TRUSTED_PROXIES=1, as behind HAProxy), so the per-address
login and sign-up limits apply to each client as they would in production, and
the password flood trips them from its one address without touching the others.
Every request carries an X-Request-ID, which the gateway forwards upstream: the
fake upstream fails exactly the requests whose id asks for a fault.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from ..common import client
from ..common.servers import HOST
from ..fake_model import FAULT_500, FAULT_HANG, LONG_REPLY

REQUEST_TIMEOUT = 60.0  # above the gateway's upstream read timeout (3 s) and pool wait (30 s) in the soak
TRANSPORT_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError)


@dataclass
class Sent:
    """One request and its answer, as the client saw it."""

    kind: str
    status: int  # 0: no HTTP answer (connection failed, timed out)
    expected: tuple[int, ...]
    fault: str | None = None  # FAULT_500 or FAULT_HANG when the fake upstream was asked to fail it
    completion: str | None = None  # the chat_completions_total outcome this request should have counted
    abuse: bool = False
    error: str | None = None  # the transport error, or the error code of a 5xx
    seconds: float = 0.0


@dataclass
class Chat:
    """A chat the client saw succeed: both of its messages must be in the database."""

    conversation_id: str
    user_content: str
    assistant_id: str


@dataclass
class Record:
    sent: list[Sent] = field(default_factory=list)
    chats: list[Chat] = field(default_factory=list)
    _ids: int = 0

    def request_id(self, marker: str | None = None) -> str:
        """A unique id; `marker` (a fault, or a long reply) tells the fake upstream what to do with the chat."""
        self._ids += 1
        return f"soak-{self._ids}" + (f"-{marker}" if marker else "")

    def by_status_class(self) -> Counter:
        return Counter(f"{s.status // 100}xx" for s in self.sent if s.status)

    def completions(self) -> Counter:
        return Counter(s.completion for s in self.sent if s.completion)


@dataclass
class StreamSeen:
    status: int = 0
    body: bytes = b""  # a JSON error, when the stream never started
    tokens: int = 0
    ended: bool = False
    end_event: dict | None = None
    error_code: str | None = None
    left: bool = False


class Gateway:
    """Requests to one gateway, each recorded in `record` with what the soak expected of it."""

    def __init__(self, port: int, record: Record):
        self.port, self.record = port, record

    async def call(self, kind: str, method: str, path: str, *, expected: tuple[int, ...], address: str,
                   headers: dict | None = None, json_body=None, raw_body: bytes | None = None,
                   content_type: str = "application/json", fault: str | None = None, abuse: bool = False,
                   completion_on: dict[int, str] | None = None) -> client.Response | None:
        """One request; `completion_on` maps a status to the chat outcome that status means."""
        headers = {**(headers or {}), "X-Forwarded-For": address, "X-Request-ID": self.record.request_id(fault)}
        sent = Sent(kind, 0, expected, fault, abuse=abuse)
        self.record.sent.append(sent)
        started = time.monotonic()
        try:
            response = await client.request(HOST, self.port, method, path, json_body=json_body, headers=headers,
                                            raw_body=raw_body, content_type=content_type, timeout=REQUEST_TIMEOUT)
        except TRANSPORT_ERRORS as exc:
            sent.error = type(exc).__name__
            return None
        finally:
            sent.seconds = time.monotonic() - started
        sent.status = response.status
        if response.status >= 500:
            sent.error = _error_code(response.body)
        sent.completion = (completion_on or {}).get(response.status)
        return response

    async def stream(self, kind: str, path: str, payload: dict, *, address: str, headers: dict,
                     fault: str | None = None, leave_after: int | None = None) -> StreamSeen:
        """A streamed chat (ours or /v1's), read to its end, or left after `leave_after` tokens.

        A stream to be left asks for a long reply, so the gateway is still sending
        when the client goes, whatever the load: otherwise a client slow to read
        could find it had left a stream the gateway had already finished.
        """
        marker = LONG_REPLY if leave_after is not None else fault
        headers = {**headers, "X-Forwarded-For": address, "X-Request-ID": self.record.request_id(marker),
                   "Accept": "text/event-stream"}
        sent = Sent(kind, 0, (200, 502, 504) if fault else (200,), fault)
        self.record.sent.append(sent)
        seen = StreamSeen()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._read_stream(path, payload, headers, seen, leave_after), REQUEST_TIMEOUT)
        except TRANSPORT_ERRORS as exc:
            sent.error = type(exc).__name__
        sent.seconds = time.monotonic() - started
        sent.status = seen.status
        if seen.status >= 500:
            sent.error = _error_code(seen.body)
        sent.completion = _stream_outcome(seen)
        return seen

    async def _read_stream(self, path, payload, headers, seen: StreamSeen, leave_after) -> None:
        reader, writer = await client._open(HOST, self.port)
        try:
            body = json.dumps(payload).encode()
            headers = {**headers, "Content-Type": "application/json"}
            writer.write(client._request_bytes("POST", HOST, self.port, path, headers, body))
            seen.status, response_headers = await client._read_head(reader)
            buffer = b""
            async for chunk in client.body_chunks(reader, response_headers):
                if seen.status != 200:
                    seen.body += chunk
                    continue
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    _event(seen, line)
                if leave_after is not None and seen.tokens >= leave_after and not seen.ended:
                    seen.left = True
                    return
        finally:
            writer.close()


def _error_code(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _event(seen: StreamSeen, line: bytes) -> None:
    if not line.startswith(b"data: "):
        return  # blank separators and `: keep-alive` comments
    if line.strip() == b"data: [DONE]":
        seen.ended = True
        return
    event = json.loads(line[6:])
    if "error" in event:  # ours: {"type": "error", "error": {...}}; /v1: {"error": {...}}
        seen.error_code = event["error"].get("code")
    elif event.get("type") == "token" or any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
        seen.tokens += 1
    elif event.get("type") == "end":
        seen.ended, seen.end_event = True, event


OUTCOME_BY_CODE = {"provider_error": "provider_error", "provider_timeout": "timeout"}
OUTCOME_BY_STATUS = {200: "success", 201: "success", 502: "provider_error", 504: "timeout"}


def _stream_outcome(seen: StreamSeen) -> str | None:
    if seen.status != 200:
        return OUTCOME_BY_STATUS.get(seen.status)
    if seen.ended:
        return "success"
    if seen.error_code:
        return OUTCOME_BY_CODE.get(seen.error_code, seen.error_code)
    if seen.left:
        return "client_disconnect"
    return None  # broke off without an end: the transport error is recorded on its own


class Pacer:
    """Starts `rate` actions a second, evenly spaced, each as a task; at most `limit` run at once."""

    def __init__(self, rate: float, limit: int = 400):
        self.interval = 1.0 / rate
        self.gate = asyncio.Semaphore(limit)
        self.tasks: set[asyncio.Task] = set()
        self.started = 0
        self.crashed: list[BaseException] = []  # bugs in the soak itself: re-raised by drain()

    async def run(self, deadline: float, next_action) -> None:
        tick = time.monotonic()
        while tick < deadline:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            await self.gate.acquire()
            task = asyncio.create_task(next_action())
            self.started += 1
            self.tasks.add(task)
            task.add_done_callback(self._done)
            tick += self.interval

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.gate.release()
        if not task.cancelled() and task.exception() is not None:
            self.crashed.append(task.exception())

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        if self.crashed:
            raise self.crashed[0]


__all__ = ["FAULT_500", "FAULT_HANG", "Gateway", "Pacer", "Record", "Sent", "StreamSeen", "Chat"]
