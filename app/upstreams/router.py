"""Which upstream each call goes to, and where it goes next when one fails before the first token.

The choice: the available upstream with the fewest calls in progress in this
worker per unit of `weight`, ties broken by the lower latency (an EWMA of the
time to an answer), every upstream scanned. A model has a handful of
upstreams and this worker's counts are exact, so a full scan costs nothing
and is never misled; power-of-two-choices exists for many servers and stale,
shared load figures, neither of which we have. Counting calls in progress
steers by speed already (a server ten times slower holds its calls ten times
longer), but not in a burst, where every server gets its share of the first
calls: so one answering at least twice as slowly as the fastest has its load
counted that many times over, for as long as that figure is recent.

Failover: an attempt that fails with a RETRYABLE reason (connect, idle
timeout, reset, 5xx, 429, 408) is retried on the model's next upstream, then
on each fallback model's, all within the first model's total deadline and at
most PROVIDER_MAX_ATTEMPTS attempts. Any other failure (another 4xx, an
unreadable answer, the deadline, the client leaving) ends the call at once.
One attempt is one call of a ChatProvider method on that upstream's client.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

from ..llm import (PROVIDER_KINDS, Catalogue, Completion, Embeddings, GenerationOptions, ModelSpec, ProviderError,
                   ProviderPool, UnsupportedParameter)
from ..llm.calls import UpstreamCall
from ..llm.errors import RETRYABLE, cut_short
from ..metrics.definitions import FAILOVERS, UPSTREAM_DURATION, UPSTREAM_OUTCOMES, UPSTREAM_REQUESTS
from .failures import Attempt, all_failed
from .health import HealthBoard

Result = TypeVar("Result")


class Router:
    def __init__(self, *, catalogue: Catalogue, providers: ProviderPool, board: HealthBoard, max_attempts: int,
                 record: bool = True):
        self.catalogue, self.providers, self.board = catalogue, providers, board
        self.max_attempts = max_attempts  # 0: every upstream of the model once, then every fallback's
        self.record = record
        self._chains: dict[str, tuple[str, ...]] = {}  # see _chain_of

    def complete(self, model: ModelSpec, *, messages: list[dict[str, Any]], options: GenerationOptions,
                 call: UpstreamCall | None = None) -> tuple[Completion, ModelSpec]:
        """The whole reply, and the upstream that gave it. Cancelling `call` (a client that left) cuts every attempt."""
        return self._whole(model, "complete", lambda spec: PROVIDER_KINDS[spec.provider].refuse_unsupported(
            options, messages), call, messages=messages, options=options)

    def embed(self, model: ModelSpec, *, inputs: list[str] | list[list[int]], dimensions: int | None,
              call: UpstreamCall | None = None) -> tuple[Embeddings, ModelSpec]:
        token_input = not isinstance(inputs[0], str)
        return self._whole(model, "embed", lambda spec: PROVIDER_KINDS[spec.provider].refuse_unsupported_embedding(
            token_input=token_input, dimensions=dimensions), call, inputs=inputs, dimensions=dimensions)

    def plan(self, model: ModelSpec) -> Iterator[ModelSpec]:
        """The upstreams to try, in order, each chosen when its turn comes (and counted as a call in progress).

        Every upstream of a model ejected: its least recently failed one is tried all the same, once.
        """
        for name in self._chain_of(model.name):
            untried = list(self.catalogue.get(name).routes)
            anyway = True
            while untried:
                chosen = self.board.choose(untried, anyway=anyway)
                if chosen is None:
                    break
                anyway = False
                untried = [spec for spec in untried if spec.upstream != chosen.upstream]
                yield chosen

    def may_try(self, attempts: list[Attempt], model: ModelSpec, spec: ModelSpec, check: Callable) -> bool:
        """Whether `spec` gets an attempt: within the cap, and able to honour the request (fallbacks may be
        of another provider kind). A failover is counted when one does."""
        if self.max_attempts and len(attempts) >= self.max_attempts:
            return False
        try:
            check(spec)
        except UnsupportedParameter:
            return False
        if attempts and self.record:
            FAILOVERS.labels(model.name, attempts[-1].reason).inc()
        return True

    def failed(self, spec: ModelSpec, error: ProviderError, attempts: list[Attempt]) -> None:
        self.board.ended(spec, failed=error.reason in RETRYABLE)
        self.count(spec, error.reason)
        attempts.append(Attempt(spec.name, spec.upstream, error.reason))

    def count(self, spec: ModelSpec, outcome: str, latency: float | None = None) -> None:
        if outcome not in UPSTREAM_OUTCOMES:  # label values from a bounded set only
            raise ValueError(f"unknown upstream outcome {outcome!r}")
        if not self.record:
            return
        UPSTREAM_REQUESTS.labels(spec.name, spec.upstream, outcome).inc()
        if latency is not None:
            UPSTREAM_DURATION.labels(spec.name, spec.upstream).observe(latency)

    def _whole(self, model: ModelSpec, method: str, check: Callable[[ModelSpec], None], call: UpstreamCall | None,
               **arguments: Any) -> tuple[Result, ModelSpec]:
        """Each attempt is one call of the ChatProvider `method` on one upstream's client, with `arguments`."""
        def attempt(spec: ModelSpec, remaining: float) -> Result:
            timeouts = _within(spec, remaining)
            return getattr(self.providers.client_for(spec), method)(
                model=spec.upstream_model, timeouts=timeouts, call=call.attempt(timeouts.total) if call else None,
                **arguments)

        deadline = time.monotonic() + (model.timeouts.total or float("inf"))
        attempts: list[Attempt] = []
        last: ProviderError | None = None
        for spec in self.plan(model):
            started = time.monotonic()
            if call is not None and call.cancelled:
                self.board.ended(spec)
                break
            if started >= deadline or not self.may_try(attempts, model, spec, check):
                self.board.ended(spec)
                continue
            try:
                result = attempt(spec, deadline - started)
            except ProviderError as exc:
                self.failed(spec, exc, attempts)
                last = exc
                if exc.reason not in RETRYABLE:
                    break
                continue
            except BaseException:
                self.board.ended(spec)
                raise
            latency = time.monotonic() - started
            self.board.ended(spec, latency=latency)
            self.count(spec, "success", latency)
            return result, spec
        raise cut_short(call) or all_failed(model, attempts, last)

    def _chain_of(self, name: str) -> tuple[str, ...]:
        """`_chain` worked out once per model: the catalogue never changes."""
        chain = self._chains.get(name)
        if chain is None:
            chain = self._chains[name] = tuple(self._chain(name, []))
        return chain

    def _chain(self, name: str, seen: list[str]) -> list[str]:
        """The model, then its fallbacks in order, depth first (the catalogue refuses cycles)."""
        if name in seen:
            return seen
        seen.append(name)
        for fallback in self.catalogue.get(name).fallbacks:
            self._chain(fallback, seen)
        return seen


def _within(spec: ModelSpec, remaining: float):
    """The upstream's timeouts, its total cut to what is left of the call's deadline."""
    total = min(spec.timeouts.total or remaining, remaining)
    return replace(spec.timeouts, total=total)
