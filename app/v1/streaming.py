"""Streamed completions in OpenAI's chunk format, fed by the chat relay.

As on our own stream route, the first provider event is awaited before the
response starts (a provider failing at once is an ordinary JSON error), a
silent provider gets SSE comments as heartbeats, and a client that leaves
cancels the relay, which closes the upstream request. Nothing is stored; the
chat metrics count the completion exactly as the conversation routes do.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Response

from ..chat.relay import End, Failure, Relay, Token
from ..chat.replies import reply_usage
from ..chat.streaming import CLIENT_DISCONNECT, HEARTBEAT, SSE_HEADERS, sse
from ..chat.telemetry import CompletionTelemetry
from ..llm import ProviderError, ProviderPool, Usage
from .completions import Call, usage_body
from .errors import openai_error

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def start_stream(*, providers: ProviderPool, call: Call, heartbeat_seconds: float) -> Response:
    client = providers.client_for(call.model)
    telemetry = CompletionTelemetry(call.model.name, streaming=True)
    relay = Relay(lambda upstream: client.stream(model=call.model.upstream_model, messages=call.messages,
                                                 options=call.options, timeouts=call.model.timeouts, call=upstream),
                  total_seconds=call.model.timeouts.total).start()
    first = relay.next(timeout=heartbeat_seconds)
    if isinstance(first, Failure):
        telemetry.finish(first.error.outcome if isinstance(first.error, ProviderError) else "internal_error")
        raise first.error
    chunks = CompletionChunks(relay=relay, first=first, call=call, telemetry=telemetry,
                              heartbeat_seconds=heartbeat_seconds)
    return Response(chunks, mimetype="text/event-stream", headers=SSE_HEADERS)


class CompletionChunks:
    """The SSE body of one streamed completion (a WSGI iterable); settles the telemetry however it ends."""

    def __init__(self, *, relay: Relay, first: Token | End | None, call: Call,
                 telemetry: CompletionTelemetry, heartbeat_seconds: float):
        self.relay, self.first, self.call, self.telemetry = relay, first, call, telemetry
        self.heartbeat_seconds = heartbeat_seconds
        self.parts: list[str] = []
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
            yield sse(self._chunk({"role": "assistant", "content": ""}))
            while True:
                self._taken = time.monotonic()
                if event is None:
                    yield HEARTBEAT
                elif isinstance(event, Token):
                    self.parts.append(event.text)
                    self.telemetry.token(event.at)
                    data = sse(self._chunk({"content": event.text}))
                    self.telemetry.clock.relayed(self._taken)
                    yield data
                elif isinstance(event, End):
                    yield from self._finish(event)
                    return
                else:
                    yield self._fail(event.error)
                    return
                event = self.relay.next(timeout=self.heartbeat_seconds)
        except GeneratorExit:
            if self.telemetry.finished:
                raise
            self.relay.cancel()
            for token in self.relay.received():  # generated, if not yet sent: counted like the chat route does
                self.parts.append(token.text)
                self.telemetry.token(token.at)
            self._settle(CLIENT_DISCONNECT)
            raise
        except Exception:
            self.relay.cancel()
            log.exception("chat completion stream %s failed", self.call.id)
            self.telemetry.finish("internal_error")
            yield sse(openai_error(500, "internal_error", "An unexpected error occurred"))

    def _finish(self, end: End) -> Iterator[bytes]:
        usage = self._usage(end.usage)
        self.telemetry.clock.relayed(self._taken)
        self.telemetry.finish("success", usage=usage)
        yield sse(self._chunk({}, finish_reason=end.finish_reason or "stop"))
        if self.call.include_usage:
            yield sse({**self._chunk(None), "choices": [], "usage": usage_body(usage)})
        yield DONE

    def _fail(self, error: BaseException) -> bytes:
        if not isinstance(error, ProviderError):
            raise error  # _generate reports it as an internal error
        self._settle(error.outcome)
        return sse(openai_error(error.status, error.code, error.message))

    def _settle(self, outcome: str) -> None:
        """A stream that broke off: its tokens so far are counted, as the chat route counts a partial reply."""
        self.telemetry.finish(outcome, usage=self._usage(None) if self.parts else None)

    def _usage(self, reported: Usage | None) -> Usage:
        return reply_usage(self.call.messages, "".join(self.parts), reported, chunks=len(self.parts))

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.call.id, "object": "chat.completion.chunk", "created": self.call.created,
            "model": self.call.model.name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.call.include_usage:
            chunk["usage"] = None  # as OpenAI does: every chunk has it, only the last one fills it
        return chunk
