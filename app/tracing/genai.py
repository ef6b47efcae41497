"""CLIENT spans for calls to model servers, named and described by OpenTelemetry's GenAI conventions.

One span per attempt: one call of a provider's complete, stream or embed, on
one upstream. A whole call's span ends with the call; a stream's when the
ProviderStream is exhausted or closed, with the time to its first chunk. The
span is current while the request is sent, so its `traceparent` goes with it.

Message content is recorded only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true,
and then at most CONTENT_LIMIT characters each way.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Status, StatusCode

from . import export

CONTENT_LIMIT = 16 * 1024
# GenerationOptions field -> attribute, for the request parameters that were sent.
REQUEST_PARAMETERS = {
    "temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens", "seed": "gen_ai.request.seed",
    "presence_penalty": "gen_ai.request.presence_penalty", "frequency_penalty": "gen_ai.request.frequency_penalty",
}


class Attempt:
    """One upstream call's span; used as a `with` block around the call."""

    def __init__(self, operation: str, *, provider: str, base_url: str, model: str, options=None,
                 messages: list[dict[str, Any]] | None = None, dimensions: int | None = None):
        self.model = model
        self.kept_open = False
        self.started = time.monotonic()
        self.first_chunk_at: float | None = None
        self.output: list[str] = []
        self.capture = export.capture_content()
        host, port = _server(base_url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider,
            "gen_ai.request.model": model, "server.address": host, "server.port": port,
        }
        if options is not None:
            attributes.update(_parameters(options))
        if dimensions is not None:
            attributes["gen_ai.embeddings.dimension.count"] = dimensions
        if self.capture and messages is not None:
            attributes["gen_ai.input.messages"] = _bounded(json.dumps(messages, ensure_ascii=False, default=str))
        self.span = export.tracer().start_span(f"{operation} {model}", kind=trace.SpanKind.CLIENT,
                                               attributes=attributes)
        self._current = trace.use_span(self.span, end_on_exit=False)
        self.ended = False

    def __enter__(self) -> Attempt:
        self._current.__enter__()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._current.__exit__(kind, error, traceback)
        if error is not None:
            self.end(error=error)
        elif not self.kept_open:
            self.end()

    def replied(self, completion):
        """A whole reply came: its usage, finish reason and (if captured) content on the span; returns it."""
        self.usage(completion.usage)
        self.finished([completion.finish_reason] if completion.finish_reason else [])
        if self.capture:
            self.output.append(completion.content)
        return completion

    def embedded(self, embeddings):
        if embeddings.prompt_tokens is not None:
            self.span.set_attribute("gen_ai.usage.input_tokens", embeddings.prompt_tokens)
        return embeddings

    def follow(self) -> Attempt:
        """The span outlives the `with` block: a ProviderStream ends it (follow_stream, end)."""
        self.kept_open = True
        return self

    def follow_stream(self, stream, deltas: Iterator) -> Iterator:
        """The stream's deltas as they come: the first one's time, then the ending."""
        try:
            for delta in deltas:
                if self.first_chunk_at is None:
                    self.first_chunk_at = time.monotonic()
                    self.span.add_event("gen_ai.first_chunk")
                if self.capture:
                    self.output.append(delta if isinstance(delta, str) else delta.text)
                yield delta
        except GeneratorExit:
            deltas.close()
            self.end_stream(stream)
            raise
        except BaseException as exc:
            self.end_stream(stream, error=exc)
            raise
        self.end_stream(stream)

    def end_stream(self, stream, *, error: BaseException | None = None) -> None:
        if not self.ended:
            self.usage(stream.usage)
            self.finished([stream.finish_reason] if stream.finish_reason else [])
        self.end(error=error)

    def usage(self, usage) -> None:
        if usage is not None and not usage.estimated:
            self.span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            self.span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)

    def finished(self, reasons: list[str]) -> None:
        if reasons:
            self.span.set_attribute("gen_ai.response.finish_reasons", reasons)

    def end(self, *, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        # Our providers do not read back the model the server names in its answer: it is the one asked for.
        self.span.set_attribute("gen_ai.response.model", self.model)
        if self.first_chunk_at is not None:
            self.span.set_attribute("gateway.gen_ai.time_to_first_chunk", self.first_chunk_at - self.started)
        if self.output:
            self.span.set_attribute("gen_ai.output.messages", _bounded("".join(self.output)))
        if error is not None:
            self.span.set_attribute(ERROR_TYPE, type(error).__qualname__)
            # The provider errors' messages are written for API clients: no upstream text, no content.
            self.span.set_status(Status(StatusCode.ERROR, getattr(error, "message", None)))
        self.span.end()


def inject(headers: dict[str, str]) -> None:
    """The current span (an attempt's, while its request is sent) as `traceparent` in `headers`."""
    propagate.inject(headers)


def _parameters(options) -> Mapping[str, Any]:
    attributes = {name: getattr(options, field) for field, name in REQUEST_PARAMETERS.items()
                  if getattr(options, field) is not None}
    if options.max_tokens is None and options.max_completion_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = options.max_completion_tokens
    if options.stop:
        attributes["gen_ai.request.stop_sequences"] = list(options.stop)
    if options.response_format and options.response_format.get("type") in ("json_object", "json_schema"):
        attributes["gen_ai.output.type"] = "json"
    return attributes


@lru_cache(maxsize=256)
def _server(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _bounded(text: str) -> str:
    return text if len(text) <= CONTENT_LIMIT else text[:CONTENT_LIMIT] + "...[truncated]"
