"""The tracer provider of this process: built after the fork, exporting over OTLP/HTTP, never in a request's way.

With preload_app the app is built in the gunicorn master, which must hold no
provider: its batch thread (a greenlet under gevent) would not survive the
fork, and every worker would share one queue. So `configure()` only notes the
settings, and each process builds its own provider the first time it needs one
(gunicorn.conf.py asks in post_worker_init). Spans wait in a bounded queue and
a background thread exports them; a full queue or a failed export drops them,
counted in gateway_trace_spans_dropped_total, with one log line per outage.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

from ..config import Settings
from ..metrics.definitions import TRACE_SPANS_DROPPED

log = logging.getLogger(__name__)

TRACER_NAME = "app.tracing"


class _State:
    settings: Settings | None = None  # None: tracing is off in this app
    provider: TracerProvider | None = None
    pid: int | None = None


_state = _State()
_lock = threading.Lock()


def configure(settings: Settings) -> bool:
    """Note the settings (a provider comes later, per process); whether traces are exported at all."""
    enabled = bool(settings.traces_endpoint)
    with _lock:
        if _state.provider is not None and _state.pid == os.getpid() and _state.settings != settings:
            _state.provider.shutdown()  # another app in this process (tests): its spans go where it said
            _state.provider = None
        _state.settings = settings if enabled else None
    return enabled


def enabled() -> bool:
    return _state.settings is not None


def capture_content() -> bool:
    settings = _state.settings
    return settings is not None and settings.otel_capture_content


def tracer() -> trace.Tracer:
    """This process's tracer, built on first use after a fork; a no-op one when tracing is off."""
    provider = _state.provider
    if provider is None or _state.pid != os.getpid():
        provider = start_worker()
    return provider.get_tracer(TRACER_NAME) if provider is not None else trace.NoOpTracer()


def start_worker() -> TracerProvider | None:
    with _lock:
        if _state.settings is None:
            return None
        if _state.provider is None or _state.pid != os.getpid():
            # A provider inherited through fork is the master's (preload_app never builds one, a test might):
            # left alone, as its thread did not come along.
            _state.provider, _state.pid = build_provider(_state.settings), os.getpid()
        return _state.provider


def flush() -> None:
    """Export what is queued now (tests; the exit hook calls shutdown)."""
    if _state.provider is not None and _state.pid == os.getpid():
        _state.provider.force_flush()


def shutdown() -> None:
    """At a worker's graceful exit: export what is queued, then stop; a dead collector costs one export timeout."""
    with _lock:
        provider, _state.provider = (_state.provider, None) if _state.pid == os.getpid() else (None, None)
        _state.settings = None  # a span after this would build a new provider in an exiting process
    if provider is not None:
        provider.shutdown()


def build_provider(settings: Settings) -> TracerProvider:
    attributes = parse_env_headers(settings.otel_resource_attributes, liberal=True)
    # OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES, as the specification says.
    if "service.name" not in attributes or os.environ.get("OTEL_SERVICE_NAME") or \
            settings.otel_service_name != Settings.otel_service_name:
        attributes["service.name"] = settings.otel_service_name
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler(settings))
    exporter = OTLPSpanExporter(endpoint=settings.traces_endpoint,
                                headers=parse_env_headers(settings.otel_headers, liberal=True))
    provider.add_span_processor(BoundedSpanProcessor(CountingExporter(exporter, settings.traces_endpoint)))
    return provider


def sampler(settings: Settings) -> sampling.Sampler:
    name = settings.otel_traces_sampler
    root = {"always_on": sampling.ALWAYS_ON, "always_off": sampling.ALWAYS_OFF}.get(
        name.removeprefix("parentbased_")) or sampling.TraceIdRatioBased(settings.otel_traces_sampler_arg)
    return sampling.ParentBased(root) if name.startswith("parentbased_") else root


class _Drops:
    """Counts dropped spans, and says so in one log line until exports succeed again."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.said = False

    def dropped(self, count: int, *, reason: str) -> None:
        TRACE_SPANS_DROPPED.labels(reason).inc(count)
        if not self.said:
            self.said = True
            log.warning("traces: spans dropped (%s) for the collector at %s; counted in "
                        "gateway_trace_spans_dropped_total, said again only after it recovers",
                        reason.replace("_", " "), self.endpoint)

    def recovered(self) -> None:
        if self.said:
            self.said = False
            log.info("traces: the collector at %s takes spans again", self.endpoint)


class CountingExporter(SpanExporter):
    """The OTLP exporter, counting the spans of every batch it could not deliver."""

    def __init__(self, exporter: SpanExporter, endpoint: str):
        self.exporter = exporter
        self.drops = _Drops(endpoint)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.exporter.export(spans)
        except Exception:  # the exporter's own bug: the spans are lost all the same
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.drops.recovered()
        else:
            self.drops.dropped(len(spans), reason="export_failed")
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class BoundedSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor (queue of OTEL_BSP_MAX_QUEUE_SIZE), counting the spans a full queue drops."""

    def __init__(self, exporter: CountingExporter):
        super().__init__(exporter)
        # The SDK's queue is a bounded deque that silently pushes out its oldest span when full: ours counts it.
        queue = self._batch_processor._queue
        self._batch_processor._queue = _CountingQueue(queue, queue.maxlen, exporter.drops)


class _CountingQueue(collections.deque):
    """A bounded deque that counts what it pushes out; a lock makes "full" and the push one step."""

    def __init__(self, items, maxlen: int, drops: _Drops):
        super().__init__(items, maxlen)
        self._lock = threading.Lock()
        self._drops = drops

    def appendleft(self, item) -> None:
        with self._lock:
            full = len(self) == self.maxlen
            super().appendleft(item)
        if full:
            self._drops.dropped(1, reason="queue_full")

    def pop(self):
        with self._lock:
            return super().pop()
