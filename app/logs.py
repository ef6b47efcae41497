"""One log format for gunicorn's error and access logs and the app's own: text or JSON lines.

gunicorn.conf.py calls `configure()` and names `GunicornLogger` as gunicorn's
logger class, whose loggers then write through the root handler configured
here; create_app() calls `configure()` again, which reuses that handler (or
installs it when the app runs without gunicorn). Every record carries the id
of the request it is about and, when traces are exported, the trace and span
ids current where it was written.
"""
import hashlib
import json
import logging
import sys
from datetime import datetime, timezone

from flask import Flask, Response, request
from gunicorn.glogging import Logger as GunicornLoggerBase
from opentelemetry import trace

from .http import request_id

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s [%(request_id)s]: %(message)s"
TRACED_TEXT_FORMAT = ("%(asctime)s [%(process)d] %(levelname)s %(name)s "
                      "[%(request_id)s trace_id=%(trace_id)s span_id=%(span_id)s]: %(message)s")
# Read back from the response headers gunicorn has already sent; the same atoms feed the JSON line.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
# Alembic logs every step (plugins, context, DDL mode, each revision); a migration logs one summary line instead.
# The OpenTelemetry SDK logs every span it drops and every failed export: app/tracing says so once instead.
QUIET_LOGGERS = {"alembic": "WARNING", "opentelemetry.exporter": "CRITICAL",
                 "opentelemetry.sdk._shared_internal": "CRITICAL"}
_ACCESS_FIELDS = {"h": "remote", "m": "method", "U": "path", "q": "query", "s": "status", "B": "bytes", "M": "durationMs"}


def fingerprint(data: bytes | str) -> str:
    """Text someone else wrote (a model server's error body, which may echo the prompt), as a log may show it.

    Its length and the start of its SHA-256: enough to tell two answers apart or
    match one a provider reports, and no message content in the log.
    """
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else bytes(data)
    return f"<{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}>"


class RequestIdFilter(logging.Filter):
    """The request id on every record; with `traced`, the current trace and span ids too ("-" outside a span)."""

    def __init__(self, traced: bool = False):
        super().__init__()
        self.traced = traced

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _access_request_id(record) or request_id.current.get() or "-"
        if self.traced and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = _access_trace_ids(record) or _current_trace_ids()
        return True


def _current_trace_ids() -> tuple[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "-", "-"
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _access_trace_ids(record: logging.LogRecord) -> tuple[str, str] | None:
    """gunicorn writes its access line after the request's span has ended: the ids come from `traceresponse`."""
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        parts = str(record.args.get("{traceresponse}o", "")).split("-")
        if len(parts) == 4:
            return parts[1], parts[2]
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; gunicorn's access records become fields, not a formatted string."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "requestId": getattr(record, "request_id", None),
        }
        if getattr(record, "trace_id", "-") != "-":
            line["trace_id"], line["span_id"] = record.trace_id, record.span_id
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            line["message"] = "request"
            line.update({name: record.args.get(atom) for atom, name in _ACCESS_FIELDS.items()})
        else:
            line["message"] = record.getMessage()
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class GatewayHandler(logging.StreamHandler):
    """Marks the root handler as ours, so a second configure() adjusts it instead of adding another."""

    def __init__(self, stream=None):
        super().__init__(stream or sys.stderr)


def make_formatter(log_format: str, *, traced: bool = False) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TRACED_TEXT_FORMAT if traced else TEXT_FORMAT)


class GunicornLogger(GunicornLoggerBase):
    """gunicorn's error and access logs in the gateway's format.

    Lines for "-" (the default) go through the root handler; a file named by
    --error-logfile or --access-logfile keeps its file, in our format. Which
    access lines are written at all stays gunicorn's choice (GUNICORN_ACCESS_LOG
    empty: none), which a logconfig_dict would override.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        ours = next((h for h in logging.getLogger().handlers if isinstance(h, GatewayHandler)), None)
        if ours is None:
            return
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                if isinstance(handler, logging.FileHandler):
                    handler.setFormatter(ours.formatter)
                    handler.addFilter(next(f for f in ours.filters if isinstance(f, RequestIdFilter)))
                else:
                    log.removeHandler(handler)
                    log.propagate = True


def configure(log_format: str, level: str, *, traced: bool = False) -> None:
    """`traced`: traces are exported, so every line names its trace and span (app/tracing)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, GatewayHandler)), None)
    if handler is None:
        handler = GatewayHandler()
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    next(f for f in handler.filters if isinstance(f, RequestIdFilter)).traced = traced
    handler.setFormatter(make_formatter(log_format, traced=traced))
    root.setLevel(level)
    for name, quiet_level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet_level)


def init_app(app: Flask) -> None:
    """Every request gets an id before anything logs about it; the response carries it back."""

    @app.before_request
    def assign_request_id() -> None:
        # Not reset at teardown: a streamed body is sent after it and still logs under this id.
        request_id.current.set(request_id.accept(request.headers.get(request_id.HEADER)))

    @app.after_request
    def return_request_id(response: Response) -> Response:
        response.headers[request_id.HEADER] = request_id.current.get() or request_id.accept(None)
        return response


def _access_request_id(record: logging.LogRecord) -> str | None:
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        value = record.args.get("{x-request-id}o")
        return value if value and value != "-" else None
    return None
