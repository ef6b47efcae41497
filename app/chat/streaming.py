"""Streamed replies: server-sent events fed by a thread that reads the provider.

The provider is read in a thread of its own (the relay) so that the response
can send SSE heartbeat comments while the model is silent, e.g. loading.
The first event is awaited before the response starts, so a provider that
fails at once still gets an ordinary JSON 502/504.

A client that leaves shows up as the WSGI server closing our generator
(GeneratorExit at a `yield`): the relay is then cancelled, which shuts the
upstream socket so its HTTP request ends at once, and the text generated so
far is stored as a partial reply. One exception: while the provider has not
even sent its response headers there is no socket to shut yet, and the relay
lets go once they arrive or the read timeout passes.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response
from sqlalchemy.orm import Session, sessionmaker

from .providers import ProviderError, ProviderPool, ProviderStream, Usage
from .service import (Turn, outcome_of, provider_failure, reply_meta, reply_usage, store_reply)
from .telemetry import CompletionTelemetry

log = logging.getLogger(__name__)

HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Token:
    text: str
    at: float


@dataclass(frozen=True)
class End:
    usage: Usage | None
    finish_reason: str | None


@dataclass(frozen=True)
class Failure:
    error: BaseException  # a ProviderError, or our own bug


class Relay:
    """Reads one provider stream in a thread and hands its events over through a queue."""

    def __init__(self, open_stream: Callable[[], ProviderStream]):
        self._open_stream = open_stream
        self._events: queue.SimpleQueue[Token | End | Failure] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._stream: ProviderStream | None = None
        self._thread = threading.Thread(target=self._run, name="chat-relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def next(self, timeout: float) -> Token | End | Failure | None:
        """The next event, or None if nothing came within `timeout` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def received(self) -> list[str]:
        """Text already read from the provider but not yet handed over; does not wait."""
        texts = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return texts
            if isinstance(event, Token):
                texts.append(event.text)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.interrupt()

    def _run(self) -> None:
        try:
            stream = self._open_stream()
            with self._lock:
                self._stream = stream
                cancelled = self._cancelled.is_set()
            with stream:
                if cancelled:
                    return
                for text in stream:
                    if self._cancelled.is_set():
                        return
                    self._events.put(Token(text, time.monotonic()))
                self._events.put(End(stream.usage, stream.finish_reason))
        except Exception as exc:  # a ProviderError, or a bug the response will log and report
            self._events.put(Failure(exc))


def start_stream(*, providers: ProviderPool, db_sessions: sessionmaker[Session], turn: Turn,
                 heartbeat_seconds: float) -> Response:
    client = providers.client_for(turn.model)
    telemetry = CompletionTelemetry(turn.model.name, streaming=True)
    relay = Relay(lambda: client.stream(model=turn.model.upstream_model, messages=turn.prompt,
                                        options=turn.options, timeouts=turn.model.timeouts)).start()
    first = relay.next(timeout=heartbeat_seconds)
    if isinstance(first, Failure):
        if isinstance(first.error, ProviderError):
            telemetry.finish(outcome_of(first.error))
            raise provider_failure(first.error)
        telemetry.finish("internal_error")
        raise first.error
    events = ReplyEvents(relay=relay, first=first, turn=turn, telemetry=telemetry,
                         db_sessions=db_sessions, heartbeat_seconds=heartbeat_seconds)
    return Response(events, mimetype="text/event-stream", headers=SSE_HEADERS)


class ReplyEvents:
    """The SSE body of one reply (a WSGI iterable); stores the assistant's message however the stream ends."""

    def __init__(self, *, relay: Relay, first: Token | End | None, turn: Turn,
                 telemetry: CompletionTelemetry, db_sessions: sessionmaker[Session], heartbeat_seconds: float):
        self.relay, self.first, self.turn, self.telemetry = relay, first, turn, telemetry
        self.db_sessions, self.heartbeat_seconds = db_sessions, heartbeat_seconds
        self.parts: list[str] = []
        self._events: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self._events = self._generate()
        return self._events

    def close(self) -> None:
        """Called by the WSGI server when the response ends, early or not."""
        if self._events is not None:
            self._events.close()
        if not self.telemetry.finished:  # closed before the first byte was asked for
            self.relay.cancel()
            self.telemetry.finish("client_disconnect")

    def _generate(self) -> Iterator[bytes]:
        event: Token | End | Failure | None = self.first
        try:
            while True:
                if event is None:
                    yield HEARTBEAT
                elif isinstance(event, Token):
                    self.parts.append(event.text)
                    self.telemetry.token(event.at)
                    yield sse({"type": "token", "token": event.text})
                elif isinstance(event, End):
                    yield self._finish(event)
                    return
                else:
                    yield self._fail(event.error)
                    return
                event = self.relay.next(timeout=self.heartbeat_seconds)
        except GeneratorExit:
            if self.telemetry.finished:  # left after the end or error event: the reply is already settled
                raise
            self.relay.cancel()
            self.parts.extend(self.relay.received())  # generated, if not yet sent: still part of the reply
            self._store_partial("client_disconnect", outcome="client_disconnect")
            raise
        except Exception:
            self.relay.cancel()
            log.exception("chat stream failed for conversation %s", self.turn.conversation_id)
            self.telemetry.finish("internal_error")
            yield sse({"type": "error", "code": "internal_error", "error": "An unexpected error occurred"})

    def _finish(self, end: End) -> bytes:
        content = "".join(self.parts)
        usage = reply_usage(self.turn, content, end.usage)
        meta = reply_meta(self.turn, usage, end.finish_reason, self.telemetry.timings())
        message = self._store(content, meta)
        self.telemetry.finish("success", prompt_tokens=usage.prompt_tokens,
                              completion_tokens=usage.completion_tokens)
        return sse({
            "type": "end",
            "message": {"id": message.id if message else None, "role": "assistant", "content": content},
            "usage": usage.as_meta(),
        })

    def _fail(self, error: BaseException) -> bytes:
        if not isinstance(error, ProviderError):
            raise error  # _generate reports it as an internal error
        self._store_partial(error.reason, outcome=outcome_of(error))
        failure = provider_failure(error)
        return sse({"type": "error", "code": failure.code, "error": failure.message})

    def _store_partial(self, reason: str, *, outcome: str) -> None:
        """What was generated before the stream broke off, marked partial; nothing if nothing was."""
        content = "".join(self.parts)
        if not content:
            self.telemetry.finish(outcome)
            return
        usage = reply_usage(self.turn, content, None)
        meta = reply_meta(self.turn, usage, None, self.telemetry.timings(), partial_reason=reason)
        try:
            self._store(content, meta)
        except Exception:
            log.exception("could not store the partial reply of conversation %s", self.turn.conversation_id)
            self.telemetry.finish("internal_error")
            return
        self.telemetry.finish(outcome, prompt_tokens=usage.prompt_tokens,
                              completion_tokens=usage.completion_tokens)

    def _store(self, content: str, meta: dict[str, Any]):
        with self.db_sessions() as session:
            return store_reply(session=session, turn=self.turn, content=content, meta=meta)


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
