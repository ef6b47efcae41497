"""The relay: reads one provider stream in a thread of its own and hands its events over through a queue.

Reading in another thread lets the response send SSE heartbeats while the
model is silent (loading, say), and lets a client that leaves interrupt a
read that is blocked on the provider.
"""
from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..llm.calls import UpstreamCall
from ..llm.stream import ProviderStream
from ..llm.tokenizer import PromptCount
from ..llm.types import StreamPiece, ToolCallDelta, Usage


@dataclass(frozen=True)
class Token:
    """One delta of the reply: its text, and the tool-call pieces or logprobs that came with it."""

    text: str
    at: float
    tool_calls: tuple[ToolCallDelta, ...] = ()
    logprobs: dict | None = None


@dataclass(frozen=True)
class End:
    usage: Usage | None
    finish_reason: str | None


@dataclass(frozen=True)
class Failure:
    error: BaseException  # a ProviderError, or our own bug


class Relay:
    """Reads one provider stream in a thread and hands its events over through a queue."""

    def __init__(self, open_stream: Callable[[UpstreamCall], ProviderStream], total_seconds: float | None,
                 prompt_count: PromptCount | None = None):
        self._open_stream = open_stream
        self.prompt_count = prompt_count  # the server counting the prompt meanwhile, where it can
        self._events: queue.SimpleQueue[Token | End | Failure] = queue.SimpleQueue()
        # Created here, not in the thread, so cancel() reaches the socket from the first byte on.
        self._call = UpstreamCall(total_seconds)
        self._stream: ProviderStream | None = None
        # In the request's context, so the provider call and its log lines carry the request id.
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                        name="chat-relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def next(self, timeout: float) -> Token | End | Failure | None:
        """The next event, or None if nothing came within `timeout` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def received(self) -> list[Token]:
        """Tokens already read from the provider but not yet handed over; does not wait."""
        tokens = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return tokens
            if isinstance(event, Token):
                tokens.append(event)

    @property
    def answered_by(self):
        """The upstream whose reply this is (a ModelSpec), once one has answered; None before."""
        return getattr(self._stream, "answered_by", None)

    def cancel(self) -> None:
        """Stop reading: shuts the upstream socket, whether the provider has answered yet or not."""
        self._call.cancel()

    def _run(self) -> None:
        try:
            with self._open_stream(self._call) as stream:
                self._stream = stream
                for delta in stream:
                    if self._call.abandoned:
                        return
                    self._events.put(_token(delta))
                self._events.put(End(stream.usage, stream.finish_reason))
        except Exception as exc:  # a ProviderError, or a bug the response will log and report
            if not self._call.abandoned:
                self._events.put(Failure(exc))


def _token(delta: str | StreamPiece) -> Token:
    if isinstance(delta, str):
        return Token(delta, time.monotonic())
    return Token(delta.text, time.monotonic(), delta.tool_calls, delta.logprobs)
