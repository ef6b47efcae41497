"""Chat metrics under a real three-worker gunicorn: whole-stream timings, token truth, bounded labels, saturation."""
import threading
import time
import uuid

import pytest
import requests

from bench.fake_model import Script
from tests.support.gateway import MODEL, gateway, logged_in
from tests.support.metrics import scrape
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow
STREAM_ROUTE = "/conversations/<id>/stream"


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    """One three-worker gateway for the tests that read metric deltas; each test brings its own user."""
    with gateway(tmp_path_factory.mktemp("gateway"), _fake_llm_server, database_url=module_database_url) as server:
        yield server


def test_a_20_token_stream_is_timed_to_its_last_byte(server, fake_llm):
    fake_llm.script = Script(tokens=[f"w{i} " for i in range(20)], first_token_delay=0.1, token_delay=0.1)
    http = logged_in(server)
    conversation = http.conversation()
    before = scrape(server.metrics_url)
    events = http.stream_events(conversation)
    http_labels = {"method": "POST", "route": STREAM_ROUTE, "status_code": "200"}
    # The request is counted when the worker closes it, which may come just after the client read the end.
    # Its counter and its histogram are two files: a scrape can fall between the two writes.
    after = wait_until(lambda: counted_after(server, before, http_labels, "http_requests_total",
                                             "http_request_duration_seconds_count"),
                       timeout=5, interval=0.05, what="the stream to be counted")

    assert [e["type"] for e in events] == ["token"] * 20 + ["end"]

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("http_request_duration_seconds_count", **http_labels) == 1
    assert delta("http_request_duration_seconds_sum", **http_labels) >= 2.0
    assert delta("http_request_duration_seconds_bucket", le="1.0", **http_labels) == 0
    chat_labels = {"model": MODEL, "streaming": "true"}
    assert delta("chat_completion_duration_seconds_count", **chat_labels) == 1
    assert delta("chat_completion_duration_seconds_sum", **chat_labels) >= 2.0
    assert delta("chat_completion_duration_seconds_bucket", le="1.0", **chat_labels) == 0
    assert delta("chat_completions_total", outcome="success", **chat_labels) == 1
    assert delta("chat_time_to_first_token_seconds_count", model=MODEL) == 1
    assert 0.1 <= delta("chat_time_to_first_token_seconds_sum", model=MODEL) < 0.5
    assert delta("chat_time_to_first_token_seconds_bucket", model=MODEL, le="0.08") == 0
    assert delta("chat_time_per_output_token_seconds_count", model=MODEL) == 1
    assert 0.09 <= delta("chat_time_per_output_token_seconds_sum", model=MODEL) < 0.2


def test_token_counters_equal_the_usage_stored_in_assistant_messages(server, fake_llm):
    fake_llm.queue(
        Script(tokens=["a", "b", "c"], prompt_tokens=11, completion_tokens=3),
        Script(tokens=["abcd", "efgh"], report_usage=False),
        Script(tokens=["x"] * 5, prompt_tokens=7, completion_tokens=5),
    )
    http = logged_in(server)
    conversation = http.conversation()
    before = scrape(server.metrics_url)
    http.stream_events(conversation)
    http.stream_events(conversation, content="estimate me")
    reply = http.post(f"{server.url}/conversations/{conversation}/messages", json={"content": "whole"}, timeout=30)
    assert reply.status_code == 200
    after = scrape(server.metrics_url)
    messages = http.get(f"{server.url}/conversations/{conversation}", timeout=10).json()["messages"]

    stored = [m["meta"]["usage"] for m in messages if m["role"] == "ASSISTANT"]
    assert len(stored) == 3 and any(u["estimated"] for u in stored)
    for kind, key in (("prompt", "promptTokens"), ("completion", "completionTokens")):
        counted = after.value("chat_completion_tokens_total", model=MODEL, type=kind) - before.value(
            "chat_completion_tokens_total", model=MODEL, type=kind)
        assert counted == sum(u[key] for u in stored) > 0


def test_streams_without_usage_are_counted_by_their_chunks(server, fake_llm):
    # As llama.cpp's server streams: one character per chunk, no usage at all.
    fake_llm.script = Script(tokens=list("abcdefghijklmnopqrstuvwxyz"), token_delay=0.05, report_usage=False)
    http = logged_in(server)
    conversation = http.conversation()
    before = scrape(server.metrics_url)
    started = time.monotonic()
    end = http.stream_events(conversation)[-1]
    elapsed = time.monotonic() - started
    after = scrape(server.metrics_url)

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert end["usage"]["completionTokens"] == 26 and end["usage"]["method"] == "chunks"
    assert http.messages(conversation)[-1]["meta"]["usage"] == end["usage"]
    assert delta("chat_completion_tokens_total", model=MODEL, type="completion") == 26
    assert delta("chat_completion_usage_source_total", model=MODEL, source="chunks") == 1
    assert delta("chat_time_per_output_token_seconds_count", model=MODEL) == 1
    # The fake paces its 26 chunks 0.05 s apart, so the 25 gaps after the first token are at least that; a loaded
    # machine only stretches them, never beyond the whole stream as the client timed it.
    assert 0.045 <= delta("chat_time_per_output_token_seconds_sum", model=MODEL) <= elapsed / 25


def test_invented_model_names_never_become_series(server, fake_llm):
    http = logged_in(server)
    conversation = http.conversation()
    http.stream_events(conversation)  # the real model's series exist
    before = scrape(server.metrics_url)
    for _ in range(40):
        invented = f"made-up-{uuid.uuid4().hex}"
        for path in ("messages", "stream"):
            response = http.post(f"{server.url}/conversations/{conversation}/{path}",
                                 json={"content": "hi", "model": invented}, timeout=10)
            assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_model"
    after = scrape(server.metrics_url)

    def model_series(samples):
        return {key for key in samples if any(name == "model" for name, _ in key[1])}

    assert model_series(after) == model_series(before)
    assert {dict(key[1])["model"] for key in model_series(after)} == {MODEL}


def test_a_saturated_gateway_still_answers_scrapes_within_a_second(tmp_path, database_url, fake_llm):
    # One worker: with two, the kernel may hand every connection to the same one and leave the other idle.
    workers, threads = 1, 2
    # Streams that outlast the test: saturation holds while it looks, and ends when the server stops.
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(40)], token_delay=0.5)
    # gthread, whose workers run out of threads: a gevent worker is not saturated by
    # a few streams (tests/test_concurrency.py scrapes the master during 200 of them).
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=workers, threads=threads,
                 env={"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_GRACEFUL_TIMEOUT": "1"}) as server:
        # gthread workers accept more connections than they have threads: twice as many streams as
        # threads keep every thread busy.
        clients = [logged_in(server) for _ in range(2 * workers * threads)]
        streams = [threading.Thread(target=stream_until_stopped, args=(http, http.conversation())) for http in clients]
        for thread in streams:
            thread.start()
        wait_until(lambda: scrape(server.metrics_url).total("chat_completions_in_flight") == workers * threads,
                   timeout=20, interval=0.05, what="every worker thread to be streaming")
        with pytest.raises(requests.Timeout):
            requests.get(f"{server.url}/livez", timeout=1)  # the API port is saturated...
        started = time.perf_counter()
        samples = scrape(server.metrics_url, timeout=1)  # ...the master's listener is not
        elapsed = time.perf_counter() - started
    for thread in streams:
        thread.join(timeout=10)
    assert elapsed < 1.0
    assert samples.total("chat_completions_in_flight", streaming="true") == workers * threads
    assert samples.value("http_requests_in_flight") == workers * threads


def counted_after(server, before, labels: dict, *names: str):
    """A scrape in which each of `names{labels}` went up since `before`, or None."""
    samples = scrape(server.metrics_url)
    return samples if all(samples.value(name, **labels) > before.value(name, **labels) for name in names) else None


def stream_until_stopped(http, conversation: str) -> None:
    """A client that streams until the server goes away; its end is not what the test looks at."""
    try:
        http.stream_events(conversation)
    except (requests.RequestException, AssertionError):
        pass


def test_a_client_leaving_mid_stream_is_counted_once_with_the_time_it_stayed(server, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(100)], token_delay=0.1)
    http = logged_in(server)
    conversation = http.conversation()
    before = scrape(server.metrics_url)
    started = time.monotonic()
    with http.post(f"{server.url}/conversations/{conversation}/stream", json={"content": "go"},
                   stream=True, timeout=30) as response:
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith(b"data: ")
            if seen == 10:
                break
    stayed = time.monotonic() - started
    labels = {"method": "POST", "route": STREAM_ROUTE, "status_code": "200"}
    wait_until(lambda: scrape(server.metrics_url).value("http_requests_total", **labels)
               > before.value("http_requests_total", **labels), timeout=5, what="the request to be counted")
    time.sleep(0.5)  # anything counted twice would show up by now
    after = scrape(server.metrics_url)

    def delta(name, **more):
        return after.value(name, **more) - before.value(name, **more)

    assert delta("http_requests_total", **labels) == 1
    assert delta("chat_completions_total", model=MODEL, streaming="true", outcome="client_disconnect") == 1
    assert delta("chat_completions_total", model=MODEL, streaming="true", outcome="success") == 0
    assert stayed - 0.5 < delta("http_request_duration_seconds_sum", **labels) < stayed + 1.0
    assert stayed - 0.5 < delta("chat_completion_duration_seconds_sum", model=MODEL, streaming="true") < stayed + 1.0
    assert after.value("http_requests_in_flight") == 0 and after.total("chat_completions_in_flight") == 0
