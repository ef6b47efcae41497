"""A worker stopped with SIGTERM exports the spans of the requests it finished before it exits.

Spans are queued for ten minutes here (OTEL_BSP_SCHEDULE_DELAY): only the exit can have sent them.
"""
import os
import signal

import pytest
import requests

from tests.support.gateway import gateway, logged_in
from tests.support.otlp import trace_id_of
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server, _otlp_receiver):
    directory = tmp_path_factory.mktemp("traced-gateway-exit")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": _otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    with gateway(directory, _fake_llm_server, database_url=module_database_url, workers=2, env=env) as server:
        server.wait_for_workers(2)
        yield server


def test_sigterm_exports_the_finished_requests_spans(server, fake_llm, otlp):
    owner = logged_in(server)
    conversation = owner.conversation()
    traces = set()
    for _ in range(6):  # a new connection each: both workers serve some
        response = requests.post(f"{server.url}/conversations/{conversation}/messages", json={"content": "Hi"},
                                 headers={**owner.headers, "Connection": "close"}, timeout=30)
        assert response.status_code == 200
        traces.add(trace_id_of(response.headers))
    assert not any(otlp.trace(trace_id) for trace_id in traces)  # still queued in the workers

    workers = server.worker_pids()
    for pid in workers:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: all(any(span.kind == "SERVER" for span in otlp.trace(trace_id)) for trace_id in traces),
               what="every chat's SERVER span exported at its worker's exit")
    for trace_id in traces:
        assert {span.kind for span in otlp.trace(trace_id)} == {"SERVER", "CLIENT"}
    wait_until(lambda: len(pids := server.worker_pids()) == 2 and not set(pids) & set(workers),
               what="two new workers")
