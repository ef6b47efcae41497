"""SIGTERM and SIGHUP against the real server: not-ready at once, streams finish or end with `shutting_down`."""
import os
import signal
import time

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import Message, MessageRole
from bench.fake_model import Script
from tests.support.gateway import gateway, logged_in
from tests.support.servers import wait_until
from tests.support.streams import OpenStream

pytestmark = pytest.mark.slow

DRAIN_DELAY, GRACE = 2, 6
TOKEN_DELAY = 0.05
# Open when its worker is told to stop, done well within the grace.
SHORT = Script(tokens=[f"s{i} " for i in range(80)], token_delay=TOKEN_DELAY)
# Still going when the grace is over.
LONG = Script(tokens=[f"l{i} " for i in range(600)], token_delay=TOKEN_DELAY)


def stored_reply(database_url: str, conversation: str) -> Message:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return session.scalars(select(Message).where(Message.conversation_id == conversation,
                                                         Message.role == MessageRole.ASSISTANT)).one()
    finally:
        engine.dispose()


def assert_ended_by_the_stop(stream: OpenStream, database_url: str):
    assert stream.broken is None and stream.status == 200
    *tokens, last = stream.events
    assert last["type"] == "error" and last["error"]["code"] == "shutting_down", last
    assert 0 < len(tokens) < len(LONG.tokens)
    reply = stored_reply(database_url, stream.conversation)
    assert reply.content == stream.text  # every token the client got is stored, and nothing else
    assert reply.meta["partial"] is True and reply.meta["reason"] == "shutting_down"


def test_sigterm_reports_unready_at_once_serves_the_delay_then_lets_streams_finish_or_end_them(
        tmp_path, database_url, fake_llm):
    env = {"DRAIN_DELAY_SECONDS": str(DRAIN_DELAY), "GUNICORN_GRACEFUL_TIMEOUT": str(GRACE)}
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=1, env=env) as server:
        http = logged_in(server)
        fake_llm.queue(SHORT, LONG)
        short = OpenStream(http, http.conversation(title="short")).open()
        long = OpenStream(http, http.conversation(title="long")).open()
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200

        server.process.send_signal(signal.SIGTERM)
        told = time.monotonic()

        def unready():
            response = requests.get(f"{server.url}/readyz", timeout=5)
            return response.status_code == 503 and response.json()
        # As soon as the master has read the signal, and long before it stops accepting.
        assert wait_until(unready, timeout=DRAIN_DELAY / 2, what="/readyz 503")["reason"] == "draining"
        assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200
        assert time.monotonic() - told < DRAIN_DELAY  # that was still the load balancer's window

        short.finished(timeout=GRACE + DRAIN_DELAY + 5)
        assert short.broken is None and short.events[-1]["type"] == "end"
        assert short.events[-1]["message"]["content"] == "".join(SHORT.tokens)

        long.finished(timeout=GRACE + DRAIN_DELAY + 5)
        ended = time.monotonic() - told
        assert DRAIN_DELAY + GRACE - 0.5 <= ended <= DRAIN_DELAY + GRACE + 2, ended
        assert server.process.wait(timeout=10) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/livez", timeout=2)
    assert_ended_by_the_stop(long, database_url)


def test_hup_replaces_the_worker_with_the_same_guarantees(tmp_path, database_url, fake_llm):
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=1,
                 env={"GUNICORN_GRACEFUL_TIMEOUT": str(GRACE)}) as server:
        http = logged_in(server)
        [old] = server.wait_for_workers(1)
        fake_llm.queue(SHORT, LONG)
        short = OpenStream(http, http.conversation(title="short")).open()
        long = OpenStream(http, http.conversation(title="long")).open()

        server.process.send_signal(signal.SIGHUP)
        told = time.monotonic()
        wait_until(lambda: [pid for pid in server.worker_pids() if pid != old], timeout=10, what="a new worker")
        # The new worker serves, and says it is ready, while the old one finishes its streams.
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
        assert http.message(http.conversation(title="new"), "hi")["assistantMessage"]["content"]

        short.finished(timeout=GRACE + 5)
        assert short.broken is None and short.events[-1]["type"] == "end"
        long.finished(timeout=GRACE + 5)
        assert GRACE - 0.5 <= time.monotonic() - told <= GRACE + 2
        wait_until(lambda: old not in server.worker_pids(), timeout=10, what="the old worker gone")
        assert server.process.poll() is None
    assert_ended_by_the_stop(long, database_url)


def test_a_stream_cut_by_a_killed_worker_is_never_a_clean_ending(tmp_path, database_url, fake_llm):
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=1) as server:
        http = logged_in(server)
        [worker] = server.wait_for_workers(1)
        fake_llm.queue(LONG)
        long = OpenStream(http, http.conversation(title="cut")).open()
        os.kill(worker, signal.SIGKILL)  # no handler runs: nothing can write a last event
        long.finished(timeout=10)
        # No `end`, no `error`, and the body's chunked framing is unfinished: requests raises.
        assert isinstance(long.broken, requests.exceptions.ChunkedEncodingError), long.broken
        assert {event["type"] for event in long.events} == {"token"}
