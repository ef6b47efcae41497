"""Streamed completions in OpenAI's chunk format, fed by the chat relay.

As on our own stream route, the first provider event is awaited before the
response starts (a provider failing at once is an ordinary JSON error), a
silent provider gets SSE comments as heartbeats, and a client that leaves
cancels the relay, which closes the upstream request. No message is stored;
the completion's usage row is written by its tally when it ends, and the
chat metrics count it exactly as the conversation routes do.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response

from ..chat.events import SSE_HEADERS, RelayedEvents, sse, start_relay
from ..chat.relay import End, Relay, Token
from ..chat.tally import CompletionTally
from ..upstreams import Router
from ..llm.types import ToolCallDelta
from .completions import Call, usage_body
from .errors import openai_error

DONE = b"data: [DONE]\n\n"


def start_stream(*, router: Router, call: Call, heartbeat_seconds: float) -> Response:
    tally = CompletionTally(call.model.name, streaming=True, ledger=call.ledger)
    relay, first = start_relay(router=router, model=call.model, messages=call.messages, options=call.options,
                               tally=tally, heartbeat_seconds=heartbeat_seconds)
    chunks = CompletionChunks(relay=relay, first=first, call=call, tally=tally,
                              heartbeat_seconds=heartbeat_seconds)
    return Response(chunks, mimetype="text/event-stream", headers=SSE_HEADERS)


class CompletionChunks(RelayedEvents):
    """OpenAI's `chat.completion.chunk` events, then `[DONE]`; only the usage row is stored."""

    def __init__(self, *, relay: Relay, first: Token | End | None, call: Call,
                 tally: CompletionTally, heartbeat_seconds: float):
        super().__init__(relay=relay, first=first, tally=tally, heartbeat_seconds=heartbeat_seconds,
                         prompt=call.messages)
        self.call, self.model = call, call.model

    def opening(self) -> Iterator[bytes]:
        yield sse(self._chunk({"role": "assistant", "content": ""}))

    def token(self, text: str) -> bytes:
        return sse(self._chunk({"content": text}))

    def delta(self, token: Token) -> bytes:
        """Tool-call pieces as OpenAI streams them: the first of a call with its id and name, then arguments."""
        if not token.tool_calls and token.logprobs is None:
            return self.token(token.text)
        delta: dict[str, Any] = {"content": token.text} if token.text or not token.tool_calls else {}
        if token.tool_calls:
            delta["tool_calls"] = [_tool_call_delta(piece) for piece in token.tool_calls]
        chunk = self._chunk(delta)
        chunk["choices"][0]["logprobs"] = token.logprobs
        return sse(chunk)

    def finish(self, end: End) -> Iterator[bytes]:
        usage = self.usage(end.usage)
        self.relayed()
        self.tally.finish("success", usage=usage)
        yield sse(self._chunk({}, finish_reason=end.finish_reason or "stop"))
        if self.call.include_usage:
            yield sse({**self._chunk(None), "choices": [], "usage": usage_body(usage)})
        yield DONE

    def error(self, status: int, code: str, message: str, details: dict) -> bytes:
        return sse(openai_error(status, code, message))

    def broke_off(self, reason: str, *, outcome: str) -> None:
        """Its tokens so far are counted, as the chat route counts a partial reply."""
        self.tally.finish(outcome, usage=self.usage(None) if self.parts else None)

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.call.id, "object": "chat.completion.chunk", "created": self.call.created,
            "model": self.answered_by.name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.call.include_usage:
            chunk["usage"] = None  # as OpenAI does: every chunk has it, only the last one fills it
        return chunk


def _tool_call_delta(piece: ToolCallDelta) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": piece.index}
    function: dict[str, Any] = {"arguments": piece.arguments}
    if piece.id is not None:
        delta.update(id=piece.id, type="function")
    if piece.name is not None:
        function["name"] = piece.name
    delta["function"] = function
    return delta
