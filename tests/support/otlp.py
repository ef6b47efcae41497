"""An OTLP/HTTP trace receiver in a thread: the collector the tracing tests export to.

It decodes every export with opentelemetry-proto, as a collector would, and
keeps the spans as plain `ReceivedSpan`s. `refuse` makes it answer 503 (a
collector that is up but not taking spans); `hold` (an Event, set: answer) makes
every export wait until it is released (a collector that is slow).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.servers import wait_until

KINDS = {Span.SPAN_KIND_SERVER: "SERVER", Span.SPAN_KIND_CLIENT: "CLIENT", Span.SPAN_KIND_INTERNAL: "INTERNAL",
         Span.SPAN_KIND_PRODUCER: "PRODUCER", Span.SPAN_KIND_CONSUMER: "CONSUMER"}
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class ReceivedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str
    events: list[str]
    resource: dict[str, Any] = field(repr=False)
    start_ns: int = 0
    end_ns: int = 0


def value(any_value) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(pairs) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


class OtlpReceiver:
    def __init__(self):
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self.refuse = False
        self.hold = threading.Event()
        self.hold.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.hold.wait(30)
                if receiver.refuse or self.path != "/v1/traces":
                    self.send_response(503 if receiver.refuse else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.take(ExportTraceServiceRequest.FromString(body), dict(self.headers))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.headers: list[dict[str, str]] = []
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(ReceivedSpan(
                        name=span.name, kind=KINDS.get(span.kind, str(span.kind)), trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                        attributes=attributes(span.attributes), status=STATUSES[span.status.code],
                        events=[event.name for event in span.events], resource=resource,
                        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano))
        with self._lock:
            self.spans.extend(spans)
            self.headers.append(headers)
            self.exports += 1

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for_trace(self, trace_id: str, *, count: int = 1, where=lambda span: True,
                       timeout: float = 20.0) -> list[ReceivedSpan]:
        """The spans of `trace_id`, once at least `count` of them satisfy `where`."""
        return wait_until(lambda: (spans := self.trace(trace_id)) and
                          sum(1 for span in spans if where(span)) >= count and spans,
                          timeout=timeout, what=f"{count} spans of trace {trace_id}")

    def reset(self) -> None:
        with self._lock:
            self.spans.clear()
            self.headers.clear()
            self.exports = 0
            self.refuse = False
            self.hold.set()

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="otlp-receiver").start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def trace_id_of(response_headers) -> str:
    """The trace id a `traceresponse` header names."""
    return response_headers["traceresponse"].split("-")[1]


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [span for span in spans if span.name == name]
    assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {[span.name for span in spans]}"
    return matches[0]
