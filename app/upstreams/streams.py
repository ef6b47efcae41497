"""A streamed reply that fails over until its first token, and is bound to its upstream from then on.

Before the first token, nothing of the reply has reached the client (only the
headers and heartbeats may have), so a failed attempt is retried as a whole
reply's is. After it, a failure ends the stream: the relay turns it into the
stream's error event and the partial reply is kept.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..llm import PROVIDER_KINDS, GenerationOptions, ModelSpec, ProviderError
from ..llm.calls import UpstreamCall
from ..llm.errors import RETRYABLE, cut_short
from ..llm.stream import ProviderStream
from ..llm.types import StreamPiece, Usage
from .failures import Attempt, all_failed
from .router import Router


class RoutedStream:
    """What the relay reads: the deltas of whichever upstream answered first (`answered_by`)."""

    def __init__(self, router: Router, model: ModelSpec, *, messages: list[dict[str, Any]],
                 options: GenerationOptions, call: UpstreamCall):
        self.router, self.model, self.call = router, model, call
        self.messages, self.options = messages, options
        self.answered_by: ModelSpec | None = None
        self._stream: ProviderStream | None = None
        self._deltas = self._read()

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage if self._stream else None

    @property
    def finish_reason(self) -> str | None:
        return self._stream.finish_reason if self._stream else None

    def __iter__(self) -> Iterator[str | StreamPiece]:
        return self._deltas

    def _read(self) -> Iterator[str | StreamPiece]:
        spec, first = self._open()
        failed = False
        try:
            if first is not None:
                yield first
            yield from self._stream
        except ProviderError as exc:  # after the first token: no retry, the stream ends with an error
            failed = exc.reason in RETRYABLE
            self.router.count(spec, exc.reason)
            raise
        finally:
            self.router.board.ended(spec, failed=failed)

    def _open(self) -> tuple[ModelSpec, str | StreamPiece | None]:
        """Try upstreams until one sends its first delta (or ends at once, whole); returns it and that delta."""
        attempts: list[Attempt] = []
        last: ProviderError | None = None
        check = lambda spec: PROVIDER_KINDS[spec.provider].refuse_unsupported(self.options, self.messages)  # noqa: E731
        for spec in self.router.plan(self.model):
            if self.call.cancelled or not self.router.may_try(attempts, self.model, spec, check):
                self.router.board.ended(spec)
                if self.call.cancelled:
                    break
                continue
            started = time.monotonic()
            stream = None
            try:
                stream = self.router.providers.client_for(spec).stream(
                    model=spec.upstream_model, messages=self.messages, options=self.options, timeouts=spec.timeouts,
                    call=self.call.attempt())
                first = next(iter(stream), None)
            except ProviderError as exc:
                if stream is not None:
                    stream.close()
                self.router.failed(spec, exc, attempts)
                last = exc
                if exc.reason not in RETRYABLE:
                    break
                continue
            except BaseException:
                if stream is not None:
                    stream.close()
                self.router.board.ended(spec)
                raise
            latency = time.monotonic() - started
            self.router.board.answered(spec, latency)
            self.router.count(spec, "success", latency)
            self._stream, self.answered_by = stream, spec
            return spec, first
        raise cut_short(self.call) or all_failed(self.model, attempts, last)

    def close(self) -> None:
        self._deltas.close()
        if self._stream is not None:
            self._stream.close()
        self.call.finish()

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
