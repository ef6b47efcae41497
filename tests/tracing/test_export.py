"""Export that fails never touches a request: drops are counted, said once, and log lines carry the trace ids."""
import json
import logging
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import REGISTRY

from app import logs, tracing
from app.tracing.export import BoundedSpanProcessor, CountingExporter
from bench.fake_model import Script
from tests.support.servers import free_port

DROPPED = "gateway_trace_spans_dropped_total"


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value(DROPPED, {"reason": reason}) or 0.0


def drop_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "spans dropped" in record.getMessage()]


@pytest.fixture
def quick_exports(monkeypatch):
    """An export gives up after half a second (the SDK reads this when the provider is built)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")


@pytest.mark.parametrize("app_overrides", [{"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}])
def test_a_collector_down_leaves_requests_alone_and_counts_the_drops(quick_exports, client, user, fake_llm, caplog):
    caplog.set_level(logging.INFO, "app.tracing")
    before = dropped("export_failed")
    for _ in range(3):
        response = client.post("/v1/chat/completions", headers=user.headers,
                               json={"model": "llama3.1", "messages": [{"role": "user", "content": "Hi"}]})
        assert response.status_code == 200
        response.close()
        tracing.flush()
    assert dropped("export_failed") - before >= 3 * 2  # at least the SERVER and CLIENT span of each chat
    assert len(drop_lines(caplog)) == 1, drop_lines(caplog)


def test_a_refusing_collector_is_said_once_and_again_after_it_recovered(quick_exports, client, user, fake_llm,
                                                                       otlp, caplog):
    caplog.set_level(logging.INFO, "app.tracing")
    tracing.flush()  # the user's sign-up, before the outage
    otlp.reset()
    otlp.refuse = True
    before = dropped("export_failed")
    for _ in range(2):
        response = client.get("/livez")
        assert response.status_code == 200
        response.close()  # the span ends with the body
        tracing.flush()
    assert dropped("export_failed") - before == 2 and len(drop_lines(caplog)) == 1
    otlp.refuse = False
    client.get("/livez").close()
    tracing.flush()
    assert any("takes spans again" in record.getMessage() for record in caplog.records)
    assert [span.name for span in otlp.spans] == ["GET /livez"]


def test_a_slow_collector_holds_up_no_request(client, user, fake_llm, otlp):
    tracing.flush()  # the user's sign-up
    otlp.hold.clear()
    client.get("/livez").close()
    # An export of the /livez span, stuck on the collector (or waiting for the export thread's own stuck one).
    exporting = threading.Thread(target=tracing.flush)
    exporting.start()
    try:
        for _ in range(3):  # each ends its spans meanwhile: they queue
            response = client.post("/v1/chat/completions", headers=user.headers,
                                   json={"model": "llama3.1", "messages": [{"role": "user", "content": "Hi"}]})
            assert response.status_code == 200
            response.close()
        # All three answered while the export still waited.
        assert exporting.is_alive() and not [span for span in otlp.spans if span.name == "POST /v1/chat/completions"]
    finally:
        otlp.hold.set()
        exporting.join(10)
    tracing.flush()
    assert sum(1 for span in otlp.spans if span.name == "POST /v1/chat/completions") == 3


class HeldExporter(SpanExporter):
    """Exports nothing until released: the collector is slow."""

    def __init__(self):
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans):
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def test_a_full_queue_drops_spans_and_counts_each(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    held = HeldExporter()
    provider = TracerProvider()
    provider.add_span_processor(BoundedSpanProcessor(CountingExporter(held, "http://collector")))
    before = dropped("queue_full")
    for number in range(10):
        provider.get_tracer("test").start_span(f"span {number}").end()  # never waits for the collector
    held.release.set()
    provider.shutdown()
    assert held.exported + (dropped("queue_full") - before) == 10
    assert dropped("queue_full") - before >= 10 - 2 * 2  # at most one batch in export and one queued


def test_log_lines_in_a_span_carry_its_ids():
    record_filter = logs.RequestIdFilter(traced=True)
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("request") as span:
        inside = logging.LogRecord("app.chat", logging.INFO, __file__, 1, "settled", None, None)
        record_filter.filter(inside)
    outside = logging.LogRecord("app.chat", logging.INFO, __file__, 1, "idle", None, None)
    record_filter.filter(outside)

    ids = span.get_span_context()
    line = json.loads(logs.JsonFormatter().format(inside))
    assert (line["trace_id"], line["span_id"]) == (f"{ids.trace_id:032x}", f"{ids.span_id:016x}")
    assert "trace_id" not in json.loads(logs.JsonFormatter().format(outside))
    text = logs.make_formatter("text", traced=True).format(inside)
    assert f"trace_id={ids.trace_id:032x} span_id={ids.span_id:016x}]: settled" in text
    assert "trace_id=- span_id=-]: idle" in logs.make_formatter("text", traced=True).format(outside)


def test_the_upstreams_log_lines_in_a_traced_request_name_its_trace(client, user, fake_llm, otlp, caplog):
    fake_llm.script = Script(status=500)  # the provider layer logs the failure
    caplog.handler.addFilter(logs.RequestIdFilter(traced=True))
    response = client.post("/v1/chat/completions", headers=user.headers,
                           json={"model": "llama3.1", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 502
    trace_id = response.headers["traceresponse"].split("-")[1]
    failures = [record for record in caplog.records if "answered 500" in record.getMessage()]
    assert failures and all(record.trace_id == trace_id for record in failures)
