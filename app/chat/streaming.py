"""Streamed replies: server-sent events fed by the relay.

The first event is awaited before the response starts, so a provider that
fails at once still gets an ordinary JSON 502/504. Every event is serialised
by the same schemas as the REST responses: `token`, then one `end` carrying
the stored message and usage exactly as `POST .../messages` returns them, or
one `error` carrying the JSON error contract.

A client that leaves shows up as the WSGI server closing our generator
(GeneratorExit at a `yield`): the relay is then cancelled, which shuts the
upstream socket so its HTTP request ends at once, and the text generated so
far is stored as a partial reply. This works before the provider has sent its
response headers too: the socket is shut, not the response.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Response
from sqlalchemy.orm import Session, sessionmaker

from ..errors import error_body
from ..llm import ProviderError, ProviderPool, Usage
from ..models import Message, MessageRole
from .relay import End, Failure, Relay, Token
from .replies import reply_meta, reply_usage
from .schemas import StreamEndSchema
from .telemetry import CompletionTelemetry
from .turns import Turn, store_reply

log = logging.getLogger(__name__)

HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CLIENT_DISCONNECT = "client_disconnect"  # meta.reason and metric outcome alike
_end_schema = StreamEndSchema()


def start_stream(*, providers: ProviderPool, db_sessions: sessionmaker[Session], turn: Turn,
                 heartbeat_seconds: float) -> Response:
    client = providers.client_for(turn.model)
    telemetry = CompletionTelemetry(turn.model.name, streaming=True)
    relay = Relay(lambda call: client.stream(model=turn.model.upstream_model, messages=turn.prompt,
                                             options=turn.options, timeouts=turn.model.timeouts, call=call),
                  total_seconds=turn.model.timeouts.total).start()
    first = relay.next(timeout=heartbeat_seconds)
    if isinstance(first, Failure):
        telemetry.finish(first.error.outcome if isinstance(first.error, ProviderError) else "internal_error")
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
        self.parts: list[str] = []  # one content chunk each, as the provider sent them
        self._taken = time.monotonic()  # when the event being handled came off the relay's queue
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
            self.telemetry.finish(CLIENT_DISCONNECT)

    def _generate(self) -> Iterator[bytes]:
        event: Token | End | Failure | None = self.first
        try:
            while True:
                self._taken = time.monotonic()
                if event is None:
                    yield HEARTBEAT
                elif isinstance(event, Token):
                    self.parts.append(event.text)
                    self.telemetry.token(event.at)
                    data = sse({"type": "token", "token": event.text})
                    self.telemetry.clock.relayed(self._taken)
                    yield data
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
            for token in self.relay.received():  # generated, if not yet sent: still part of the reply
                self.parts.append(token.text)
                self.telemetry.token(token.at)
            self._store_partial(CLIENT_DISCONNECT, outcome=CLIENT_DISCONNECT)
            raise
        except Exception:
            self.relay.cancel()
            log.exception("chat stream failed for conversation %s", self.turn.conversation_id)
            self.telemetry.finish("internal_error")
            yield sse({"type": "error", **error_body("internal_error", "An unexpected error occurred")})

    def _usage(self, reported: Usage | None) -> Usage:
        return reply_usage(self.turn.prompt, "".join(self.parts), reported, chunks=len(self.parts))

    def _finish(self, end: End) -> bytes:
        content = "".join(self.parts)
        usage = self._usage(end.usage)
        meta = reply_meta(self.turn.model, usage, end.finish_reason, self.telemetry.timings())
        # A conversation deleted meanwhile stores nothing; the client still gets the reply, without an id.
        message = self._store(content, meta) or Message(role=MessageRole.ASSISTANT, content=content, meta=meta)
        data = sse(_end_schema.dump({"type": "end", "message": message, "usage": usage}))
        self.telemetry.clock.relayed(self._taken)
        self.telemetry.finish("success", usage=usage)
        return data

    def _fail(self, error: BaseException) -> bytes:
        if not isinstance(error, ProviderError):
            raise error  # _generate reports it as an internal error
        self._store_partial(error.code, outcome=error.outcome)
        return sse({"type": "error", **error_body(error.code, error.message, error.details)})

    def _store_partial(self, reason: str, *, outcome: str) -> None:
        """What was generated before the stream broke off, marked partial; nothing if nothing was."""
        content = "".join(self.parts)
        if not content:
            self.telemetry.finish(outcome)
            return
        usage = self._usage(None)
        meta = reply_meta(self.turn.model, usage, None, self.telemetry.timings(), partial_reason=reason)
        try:
            self._store(content, meta)
        except Exception:
            log.exception("could not store the partial reply of conversation %s", self.turn.conversation_id)
            self.telemetry.finish("internal_error")
            return
        self.telemetry.finish(outcome, usage=usage)

    def _store(self, content: str, meta: dict[str, Any]) -> Message | None:
        with self.db_sessions() as session:
            return store_reply(session=session, turn=self.turn, content=content, meta=meta)


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
