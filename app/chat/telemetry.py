"""Chat metrics and the log line of one completion, recorded in one place so the chat code reads as logic."""
from __future__ import annotations

import logging
import time
from decimal import Decimal

from flask import current_app, has_app_context

from ..http import request_id
from ..llm import Usage
from ..metrics.definitions import (CHAT_COMPLETIONS, CHAT_COST, CHAT_DURATION, CHAT_IN_FLIGHT, CHAT_OUTCOMES,
                                   CHAT_TIME_PER_OUTPUT_TOKEN, CHAT_TIME_TO_FIRST_TOKEN, CHAT_TOKENS,
                                   CHAT_USAGE_SOURCE)
from .overhead import ChatClock

log = logging.getLogger(__name__)


class CompletionTelemetry:
    """Started just before the upstream call (in the request), finished once when the reply (or stream) ends."""

    def __init__(self, model: str, *, streaming: bool):
        self.model = model  # a catalogue name: unknown models never get this far
        self.streaming = "true" if streaming else "false"
        self.record = current_app.config["METRICS_ENABLED"]
        self.clock = ChatClock(model, streaming=streaming, record=self.record)
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._finished = False
        # Read now, in the request: a stream finishes after the request context is gone.
        self.request_id = request_id.current.get()
        self.provider = _provider_of(model)
        if self.record:
            CHAT_IN_FLIGHT.labels(self.streaming).inc()

    @property
    def finished(self) -> bool:
        return self._finished

    def token(self, at: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = at
        self.last_token_at = at

    def finish(self, outcome: str, *, usage: Usage | None = None, cost: Decimal | None = None) -> None:
        """`usage` is what was counted (None: nothing), `cost` what it cost (None: no price)."""
        if outcome not in CHAT_OUTCOMES:
            raise ValueError(f"unknown chat outcome {outcome!r}")
        if self._finished:
            return
        self._finished = True
        if self.streaming == "true":
            self.clock.observe()  # a whole reply's is observed as its headers leave, serialisation included
        if self.record:
            self._record(outcome, usage, cost)
        self._log(outcome, usage)

    def _record(self, outcome: str, usage: Usage | None, cost: Decimal | None) -> None:
        CHAT_IN_FLIGHT.labels(self.streaming).dec()
        CHAT_DURATION.labels(self.model, self.streaming).observe(time.monotonic() - self.started_at)
        CHAT_COMPLETIONS.labels(self.model, self.streaming, outcome).inc()
        completion_tokens = 0
        if usage is not None:
            completion_tokens = usage.completion_tokens
            CHAT_TOKENS.labels(self.model, "prompt").inc(usage.prompt_tokens)
            CHAT_TOKENS.labels(self.model, "completion").inc(completion_tokens)
            CHAT_USAGE_SOURCE.labels(self.model, usage.method).inc()
            if cost is not None:
                CHAT_COST.labels(self.model).inc(float(cost))  # the row keeps the exact Decimal
        if self.first_token_at is not None:
            CHAT_TIME_TO_FIRST_TOKEN.labels(self.model).observe(self.first_token_at - self.started_at)
            if completion_tokens > 1 and self.last_token_at is not None:
                CHAT_TIME_PER_OUTPUT_TOKEN.labels(self.model).observe(
                    (self.last_token_at - self.first_token_at) / (completion_tokens - 1))

    def _log(self, outcome: str, usage: Usage | None) -> None:
        """One line per completion: what an operator needs to find it, never its content."""
        timings = self.timings()
        fields = {"requestId": self.request_id, "model": self.model, "provider": self.provider,
                  "streaming": self.streaming == "true", "outcome": outcome,
                  "promptTokens": usage.prompt_tokens if usage else None,
                  "completionTokens": usage.completion_tokens if usage else None,
                  "timeToFirstTokenMs": timings["timeToFirstTokenMs"], "durationMs": timings["totalMs"]}
        log.info("chat completion %s", " ".join(f"{key}={value}" for key, value in fields.items()),
                 extra={"fields": fields, "request_id": self.request_id or "-"})

    def timings(self, *, ended_at: float | None = None) -> dict[str, int | None]:
        """For the assistant message's meta, in milliseconds."""
        ended_at = time.monotonic() if ended_at is None else ended_at
        first = None if self.first_token_at is None else round((self.first_token_at - self.started_at) * 1000)
        return {"timeToFirstTokenMs": first, "totalMs": round((ended_at - self.started_at) * 1000),
                "gatewayOverheadMs": self.clock.milliseconds()}


def _provider_of(model: str) -> str | None:
    if not has_app_context():
        return None
    spec = current_app.extensions["llm"].catalogue.get(model)
    return spec.provider if spec else None
