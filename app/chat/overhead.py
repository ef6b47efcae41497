"""The time the gateway itself adds to a chat: everything except waiting for the model provider.

Whole replies: from the moment the WSGI app is called (before any middleware,
routing, authentication or query) to the upstream call, plus from the
provider's parsed answer to the response headers being sent; the body is
built by then, only the socket write is left.

Streams: arrival to the upstream call (the only part the response header can
carry, since it leaves before the first token), plus for each relayed event the
time from taking it off the relay's queue to its SSE bytes being ready, plus
storing the reply at the end. Time an event waits in the queue or on the
client's socket is backpressure, not gateway work, and is not counted.

The figure goes to the `X-Gateway-Overhead-Ms` header and to the stored
message's `meta.timings.gatewayOverheadMs` (for a stored message: up to the
moment it is written, as nothing later can be stored in it), which are part of
the chat API whether metrics are on or not; and, when they are, to the
`chat_gateway_overhead_seconds` metric.
"""
from __future__ import annotations

import time

from flask import Flask, request

from ..admission import start_queue
from ..metrics.definitions import CHAT_GATEWAY_OVERHEAD

ARRIVED = "gateway.arrived"
CHAT_CLOCK = "gateway.chat_clock"
HEADER = "X-Gateway-Overhead-Ms"


class ChatClock:
    """Started at the upstream call; knows when the request arrived and how long the provider took."""

    def __init__(self, model: str, *, streaming: bool, record: bool):
        now = time.monotonic()
        environ = request.environ
        self.model, self.streaming, self.record = model, "true" if streaming else "false", record
        self.arrived = environ.get(ARRIVED, now)
        self.before_upstream = now - self.arrived
        self._upstream_since: float | None = now
        self._waited = 0.0
        self._relayed = 0.0  # streams: per-event work after the upstream call
        self._observed = False
        environ[CHAT_CLOCK] = self
        start_queue.started()  # the provider call starts now: the next chat in line may start

    def upstream_done(self) -> None:
        """Whole replies: the provider's answer is in; from here on the time is ours again."""
        if self._upstream_since is not None:
            self._waited = time.monotonic() - self._upstream_since
            self._upstream_since = None

    def relayed(self, since: float) -> None:
        """Streams: one event's work, from taking it off the queue (`since`) to now."""
        self._relayed += time.monotonic() - since

    def seconds(self) -> float:
        if self.streaming == "true":
            return self.before_upstream + self._relayed
        if self._upstream_since is not None:  # still waiting, or failed before an answer came
            return self.before_upstream
        return time.monotonic() - self.arrived - self._waited

    def milliseconds(self) -> float:
        return round(self.seconds() * 1000, 2)

    def observe(self) -> float:
        """Record the figure once (when metrics are on); returns it in seconds."""
        seconds = self.seconds()
        if self.record and not self._observed:
            self._observed = True
            CHAT_GATEWAY_OVERHEAD.labels(self.model, self.streaming).observe(seconds)
        return seconds


def init_app(app: Flask) -> None:
    # The outermost WSGI layer: installed after every other one, so arrival is stamped before any of them runs.
    app.wsgi_app = OverheadMiddleware(app.wsgi_app)


class OverheadMiddleware:
    """The outermost WSGI layer: stamps each request's arrival, and puts a chat's overhead in its headers."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ[ARRIVED] = time.monotonic()

        def with_overhead(status_line, headers, exc_info=None):
            clock = environ.get(CHAT_CLOCK)
            if clock is not None:
                # A stream's header leaves before its first token: it can only carry the part before the call.
                seconds = clock.before_upstream if clock.streaming == "true" else clock.observe()
                headers.append((HEADER, f"{seconds * 1000:.2f}"))
            return start_response(status_line, headers, exc_info)

        return self.wsgi_app(environ, with_overhead)
