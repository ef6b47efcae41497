"""OpenTelemetry traces: a SERVER span per request, GenAI CLIENT spans per upstream call, SQL spans, all exported over OTLP.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, and
then nothing is installed: no WSGI layer, no database listeners, and the
model layer's hooks (`upstream_call`, `inject`, `record_outcome`) return at
their first line. The provider is built per worker after the fork (export.py).
"""
from __future__ import annotations

from flask import Flask, request, request_started
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpUpDownCounter

from . import export, genai, server
from .export import flush, shutdown, start_worker
from .genai import Attempt


def init_app(app: Flask) -> None:
    if not export.configure(app.config["SETTINGS"]):
        return
    app.wsgi_app = server.TracingMiddleware(app.wsgi_app)
    request_started.connect(_name_by_route, app)
    # OpenTelemetry's SQLAlchemy listeners on this app's engine: a span per statement, inside a request's trace.
    EngineTracer(_InRequestTracer(), app.extensions["db_engine"], NoOpUpDownCounter("db.client.connections.usage"))


def upstream_call(operation: str, **call) -> Attempt | _NoAttempt:
    """The span of one call to a model server (`with` it around the call); see genai.Attempt."""
    return Attempt(operation, **call) if export.enabled() else NO_ATTEMPT


def inject(headers: dict[str, str]) -> None:
    """`traceparent` (of the current attempt) into an upstream request's headers."""
    if export.enabled():
        genai.inject(headers)


def record_outcome(outcome: str) -> None:
    """A chat's outcome on its request's span (a failed stream fails the span, though its status was 200)."""
    if export.enabled():
        server.record_outcome(outcome)


def name_by_route(method: str, route: str) -> None:
    """For requests answered outside Flask (app/health/edge.py): the span's name and route, as Flask's would be."""
    if export.enabled():
        server.name_by_route(method, route)


def _name_by_route(sender, **extra) -> None:
    rule = request.url_rule
    server.name_by_route(request.method, rule.rule if rule is not None else None)


class _NoAttempt:
    """Tracing is off: the call goes on untouched."""

    def __enter__(self) -> _NoAttempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def replied(self, completion):
        return completion

    def embedded(self, embeddings):
        return embeddings

    def follow(self) -> None:
        return None


NO_ATTEMPT = _NoAttempt()


class _InRequestTracer:
    """Gives the SQL listeners spans only inside a traced request: no root spans for probes or the master."""

    def start_span(self, name: str, **kwargs) -> trace.Span:
        if not trace.get_current_span().is_recording():
            return trace.INVALID_SPAN
        return export.tracer().start_span(name, **kwargs)

__all__ = ["flush", "init_app", "inject", "record_outcome", "shutdown", "start_worker", "upstream_call"]
