"""The SERVER span of each request: opened by a WSGI layer, ended at the response's last byte.

OpenTelemetry's Flask instrumentation ends its span when the request context
pops, which for a stream is before the first event is sent; its WSGI
middleware ends it after iterating, but not when the server closes a body it
never iterated (a client gone before the first byte). So the span is kept
here, as the request metrics are (app/metrics/accounting.py), with the WSGI
instrumentation's own request and response attributes. The span is current
while the app runs and while each chunk of the body is produced, and when the
body is closed: everything the request logs or calls, the usage written
after a stream's last event included, is part of its trace.
"""
from __future__ import annotations

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.instrumentation.wsgi import add_response_attributes, collect_request_attributes, wsgi_getter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Status, StatusCode

from .export import tracer

# The stable HTTP conventions (http.request.method, url.path, http.response.status_code...), not the old names.
HTTP_CONVENTIONS = _StabilityMode.HTTP
REQUEST_ID_ATTRIBUTE = "http.response.header.x-request-id"
# Chat outcomes (app/metrics/definitions.CHAT_OUTCOMES) that mean the request failed, even after a 200.
FAILED_OUTCOMES = {"provider_error", "timeout", "internal_error", "shutting_down"}


class TracingMiddleware:
    """Wraps the WSGI app: a SERVER span per request, a `traceresponse` header naming it."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        parent = propagate.extract(environ, getter=wsgi_getter)  # traceparent / tracestate of the caller
        span = tracer().start_span(environ.get("REQUEST_METHOD", "GET"), context=parent,
                                   kind=trace.SpanKind.SERVER,
                                   attributes=collect_request_attributes(environ, HTTP_CONVENTIONS))
        active = trace.set_span_in_context(span, parent)

        def traced_start_response(status_line, headers, exc_info=None):
            add_response_attributes(span, status_line, headers, sem_conv_opt_in_mode=HTTP_CONVENTIONS)
            request_id = next((value for name, value in headers if name.lower() == "x-request-id"), None)
            if request_id:
                span.set_attribute(REQUEST_ID_ATTRIBUTE, (request_id,))
            ids = span.get_span_context()
            # W3C Trace Context level 2: the trace this request became part of, for the client to quote.
            headers.append(("traceresponse", f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"))
            return start_response(status_line, headers, exc_info)

        token = context.attach(active)
        try:
            body = self.wsgi_app(environ, traced_start_response)
        except BaseException as exc:
            span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            raise
        finally:
            context.detach(token)
        return TracedBody(body, span, active)


class TracedBody:
    """The app's response body, produced with the request's span current; the span ends when it closes."""

    def __init__(self, body, span: trace.Span, active: context.Context):
        self._body, self._chunks, self._span, self._active = body, iter(body), span, active

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        token = context.attach(self._active)
        try:
            return next(self._chunks)
        finally:
            context.detach(token)

    def close(self) -> None:
        token = context.attach(self._active)
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            context.detach(token)
            self._span.end()


def name_by_route(method: str, route: str | None) -> None:
    """Before the view runs: the span takes the route template's name (`POST /conversations/<id>/messages`)."""
    span = trace.get_current_span()
    if route is not None and span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


def record_outcome(outcome: str) -> None:
    """A chat ended: its outcome on the request's span, which fails when the chat did, streamed after a 200 or not."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("gateway.chat.outcome", outcome)
    if outcome in FAILED_OUTCOMES:
        span.set_attribute(ERROR_TYPE, outcome)
        span.set_status(Status(StatusCode.ERROR))
