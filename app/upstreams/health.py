"""What this worker knows of each upstream: its calls in progress, its latency, and whether it is ejected.

Per worker process, like the connection pools: nothing is shared between
workers, so with N workers a dead server is ejected by each worker after K
failures of its own (at most N x K failed attempts, each one failed over, so
clients see none), and the background probe ejects and restores it in every
worker that runs it.

An upstream that fails EJECT_AFTER calls in a row (connect errors, 5xx, 429,
408, idle timeouts, resets; never a 4xx, a client leaving or the call's own
deadline) is ejected for a cooldown. When the cooldown ends it is half-open:
one trial call at a time decides; success makes it healthy (and resets the
cooldown), failure ejects it again for twice as long, up to the cap.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from ..llm import ModelSpec
from ..metrics.definitions import UPSTREAM_EJECTIONS, UPSTREAM_UP

HEALTHY, EJECTED, HALF_OPEN = "healthy", "ejected", "half_open"
EWMA_WEIGHT = 0.3  # a faster answer's share in the moving average: a few are enough to trust a server again
# An upstream answering this many times slower than the fastest available one has its load counted that many
# times over (up to SLOW_CAP): least-outstanding alone gives a 10x slower server its share of every burst.
SLOW_RATIO, SLOW_CAP = 2.0, 20.0
# A latency not measured for this long no longer counts against an upstream: it gets calls, hence a new figure.
LATENCY_MEMORY = 10.0


@dataclass(frozen=True)
class HealthRules:
    eject_after: int  # consecutive failures
    cooldown: float  # seconds, the first time
    max_cooldown: float


class UpstreamState:
    """One upstream of one model, as this worker sees it."""

    def __init__(self, spec: ModelSpec, rules: HealthRules):
        self.spec, self.rules = spec, rules
        self.outstanding = 0
        self.measured_at = float("-inf")
        self.latency = 0.0  # peak EWMA of the time to an answer (a whole reply, or a stream's first token), seconds
        self.failures = 0  # in a row
        self.cooldown = rules.cooldown
        self.ejected_until: float | None = None
        self.last_failure_at = float("-inf")
        self.trial = False  # a half-open trial call is under way
        UPSTREAM_UP.labels(spec.name, spec.upstream).set(1)

    def state(self, now: float) -> str:
        if self.ejected_until is None:
            return HEALTHY
        return EJECTED if now < self.ejected_until else HALF_OPEN

    def available(self, now: float) -> bool:
        state = self.state(now)
        return state == HEALTHY or (state == HALF_OPEN and not self.trial)

    def score(self, fastest: float, now: float) -> tuple[float, float]:
        """Lower is better: calls in progress per unit of weight (times its slowness, if clearly slow), then latency."""
        load = (self.outstanding + 1) / self.spec.weight
        ratio = self.latency / fastest if fastest > 0 and now - self.measured_at < LATENCY_MEMORY else 1.0
        return load * (min(ratio, SLOW_CAP) if ratio >= SLOW_RATIO else 1.0), self.latency

    def began(self, now: float) -> None:
        self.outstanding += 1
        if self.state(now) == HALF_OPEN:
            self.trial = True

    def ended(self) -> None:
        self.outstanding -= 1

    def succeeded(self, latency: float) -> None:
        now = time.monotonic()
        # A peak EWMA: a slower answer counts at once (one slow reply is enough to stop sending a burst its way),
        # a faster one is blended in; an old figure is replaced, so a server that recovered gets its share back.
        fresh = now - self.measured_at < LATENCY_MEMORY
        if fresh and latency < self.latency:
            self.latency = EWMA_WEIGHT * latency + (1 - EWMA_WEIGHT) * self.latency
        else:
            self.latency = latency
        self.measured_at = now
        self.failures, self.trial = 0, False
        if self.ejected_until is not None:
            self.restore()

    def failed(self, now: float) -> None:
        self.failures += 1
        self.last_failure_at = now
        if self.trial:  # the half-open trial failed: out again, for longer
            self.trial = False
            self.cooldown = min(self.cooldown * 2, self.rules.max_cooldown)
            self.eject(now)
        elif self.ejected_until is None and self.failures >= self.rules.eject_after:
            self.eject(now)

    def eject(self, now: float) -> None:
        if self.state(now) != EJECTED:
            UPSTREAM_EJECTIONS.labels(self.spec.name, self.spec.upstream).inc()
        self.ejected_until = now + self.cooldown
        UPSTREAM_UP.labels(self.spec.name, self.spec.upstream).set(0)

    def restore(self) -> None:
        self.ejected_until, self.failures, self.trial = None, 0, False
        self.cooldown = self.rules.cooldown
        UPSTREAM_UP.labels(self.spec.name, self.spec.upstream).set(1)

    def end_cooldown(self, now: float) -> None:
        """The probe reached it: the next call is its trial, without waiting out the cooldown."""
        if self.state(now) == EJECTED:
            self.ejected_until = now


class HealthBoard:
    """Every upstream's state in this worker; one lock, held for a few assignments at a time."""

    def __init__(self, rules: HealthRules):
        self.rules = rules
        self.lock = threading.Lock()
        self._states: dict[tuple[str, str], UpstreamState] = {}
        self._pid = os.getpid()

    def of(self, spec: ModelSpec) -> UpstreamState:
        """The caller holds `lock`."""
        if self._pid != os.getpid():  # a forked worker starts with no knowledge, and its own gauges
            self._states.clear()
            self._pid = os.getpid()
        key = (spec.name, spec.upstream)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = UpstreamState(spec, self.rules)
        return state

    def choose(self, candidates: list[ModelSpec], *, anyway: bool) -> ModelSpec | None:
        """The available candidate with the best score; with `anyway`, if none is, the least recently failed."""
        now = time.monotonic()
        with self.lock:
            states = [self.of(spec) for spec in candidates]
            available = [state for state in states if state.available(now)]
            if available:
                fastest = min((state.latency for state in available if state.latency > 0), default=0.0)
                chosen = min(available, key=lambda state: state.score(fastest, now))
            elif anyway and states:
                chosen = min(states, key=lambda state: state.last_failure_at)
            else:
                return None
            chosen.began(now)
            return chosen.spec

    def ended(self, spec: ModelSpec, *, latency: float | None = None, failed: bool = False) -> None:
        """A call began by `choose` is over: a success (with its latency), a failure, or neither."""
        now = time.monotonic()
        with self.lock:
            state = self.of(spec)
            state.ended()
            if failed:
                state.failed(now)
            elif latency is not None:
                state.succeeded(latency)
            else:  # the client left, or a stream already judged by its first token: a trial is no longer under way
                state.trial = False

    def answered(self, spec: ModelSpec, latency: float) -> None:
        """A stream's first token came: the upstream is fine, though the call goes on."""
        with self.lock:
            self.of(spec).succeeded(latency)

    def probed(self, spec: ModelSpec, *, up: bool) -> None:
        now = time.monotonic()
        with self.lock:
            state = self.of(spec)
            if up:
                state.end_cooldown(now)
            elif state.state(now) == HEALTHY:
                state.last_failure_at = now
                state.eject(now)

    def snapshot(self, spec: ModelSpec) -> dict:
        now = time.monotonic()
        with self.lock:
            state = self.of(spec)
            ejected_for = max(0.0, state.ejected_until - now) if state.ejected_until is not None else None
            return {"model": spec.name, "name": spec.upstream, "provider": spec.provider, "weight": spec.weight,
                    "state": state.state(now), "outstanding": state.outstanding,
                    "latency_ms": round(state.latency * 1000, 1),
                    "cooldown_left_seconds": round(ejected_for, 1) if ejected_for is not None else None}
