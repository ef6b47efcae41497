"""Faults under traffic against real gunicorn with two workers: the database going away and coming back,
model servers failing in every way they do, and a worker killed in the middle of a stream.

A model server that hangs is tested in tests/test_concurrency.py (deadlines, clients leaving hung chats).
"""
import http.client
import json
import os
import signal
import time

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, MessageRole
from tests.conftest import IN_CI
from tests.fakes.llm_provider import FakeLLM, Script
from tests.support.client import PASSWORD
from tests.support.databases import normalised
from tests.support.gateway import MODEL, gateway, logged_in
from tests.support.metrics import assert_never_decreases, scrape
from tests.support.pgcluster import PostgresCluster, binaries
from tests.support.servers import wait_until
from tests.support.sse import parse_sse
from tests.support.traffic import Traffic
from tests.support.workers import one_connection_per_worker, send, worker_serving

pytestmark = pytest.mark.slow

SLOW_MODEL = "slow-model"   # served by a second fake, so one long stream can span the outage
RETRY_AFTER = "3"


@pytest.fixture
def cluster():
    bin_dir = binaries()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("initdb and pg_ctl are missing: CI installs the postgresql package")
        pytest.skip("initdb and pg_ctl are not installed (Debian's postgresql package), no private cluster")
    cluster = PostgresCluster(bin_dir).create()
    yield cluster
    cluster.destroy()


def rows_of(database_url: str, user_id: str) -> dict[str, list[Message]]:
    """Every conversation of the user, with its messages in the order they were written."""
    engine = create_engine(normalised(database_url))
    try:
        with Session(engine) as session:
            conversations = session.scalars(select(Conversation.id).where(Conversation.user_id == user_id)).all()
            return {cid: list(session.scalars(select(Message).where(Message.conversation_id == cid)
                                              .order_by(Message.created_at, Message.id)))
                    for cid in conversations}
    finally:
        engine.dispose()


def assert_no_orphan_replies(conversations: dict[str, list[Message]]) -> None:
    """Every assistant message comes right after the user message it answers."""
    for cid, messages in conversations.items():
        for index, message in enumerate(messages):
            if message.role == MessageRole.ASSISTANT:
                assert index > 0 and messages[index - 1].role == MessageRole.USER, (cid, messages)


def assistant_ids(conversations: dict[str, list[Message]]) -> set[str]:
    return {m.id for messages in conversations.values() for m in messages if m.role == MessageRole.ASSISTANT}


class Worker:
    """A keep-alive connection held by one worker, and the requests a user makes on it."""

    def __init__(self, server, pid: int, connection: http.client.HTTPConnection, user):
        self.server, self.pid, self.connection, self.user = server, pid, connection, user
        self.auth = {"Authorization": user.headers["Authorization"]}

    def each_operation(self, conversation: str) -> dict[str, tuple[int, dict, bytes]]:
        calls = {
            "login": ("POST", "/auth/login", {"email": self.user.user["email"], "password": PASSWORD}),
            "list": ("GET", "/conversations", None),
            "create": ("POST", "/conversations", {"title": "pinned"}),
            "chat": ("POST", f"/conversations/{conversation}/messages", {"content": "hi"}),
            "stream": ("POST", f"/conversations/{conversation}/stream", {"content": "hi"}),
        }
        answers = {name: send(self.connection, *call, headers=self.auth) for name, call in calls.items()}
        # Still the same worker: a new connection could have gone to the other one.
        assert worker_serving(self.server, self.connection) == self.pid
        return answers


def test_postgresql_stopped_and_started_under_traffic(tmp_path, cluster, fake_llm):
    slow_tokens = [f"s{i} " for i in range(30)]
    with FakeLLM(script=Script(tokens=slow_tokens, token_delay=0.05)) as slow_llm, \
            gateway(tmp_path, fake_llm, database_url=cluster.url, workers=2,
                    env={"OPENAI_BASE_URL": slow_llm.openai_url, "OPENAI_MODELS": SLOW_MODEL,
                         "RETRY_AFTER_SECONDS": RETRY_AFTER, "GUNICORN_HEADER_TIMEOUT": "30",
                         "LOG_LEVEL": "WARNING", "GUNICORN_ACCESS_LOG": ""}) as server:
        pids = server.wait_for_workers(2)
        prober = logged_in(server)
        probed = prober.conversation(title="probed")
        spanning = prober.conversation(title="spans the outage", model=SLOW_MODEL)
        workers = [Worker(server, pid, connection, prober)
                   for pid, connection in one_connection_per_worker(server, 2).items()]
        users = [logged_in(server) for _ in range(2)]
        traffic = [Traffic(user, user.user["email"]) for user in users]
        for thread in traffic:
            thread.start()
        ended = lambda o: o.stream_ending == "end"  # noqa: E731
        wait_until(lambda: all(t.count(ended) >= 2 for t in traffic), timeout=20, what="traffic to flow")

        # A stream that started before the outage and ends during it.
        long_stream = prober.post(f"/conversations/{spanning}/stream", json={"content": "go", "model": SLOW_MODEL},
                                  stream=True)
        lines = long_stream.iter_lines()
        assert long_stream.status_code == 200 and next(line for line in lines if line.startswith(b"data: "))

        cluster.stop("immediate")
        refused = lambda o: o.status == 503  # noqa: E731
        wait_until(lambda: all(t.count(refused) >= 3 for t in traffic), timeout=10, what="503s during the outage")
        during = [worker.each_operation(probed) for worker in workers]
        long_events = parse_sse(list(lines))   # read to its end while the database is still down
        long_stream.close()

        cluster.start()
        after = [worker.each_operation(probed) for worker in workers]   # the first requests after recovery
        restarted = [t.count(ended) for t in traffic]
        wait_until(lambda: all(t.count(ended) >= n + 2 for t, n in zip(traffic, restarted)), timeout=20,
                   what="traffic to flow again")
        for thread in traffic:
            thread.stop()
        assert server.worker_pids() == pids   # served throughout by the same workers, never restarted
        log = server.log()
        for client in [prober, *users, *(worker.connection for worker in workers)]:
            client.close()

    for answers in during:
        for operation, (status, headers, body) in answers.items():
            assert status == 503, (operation, body)
            assert headers["Content-Type"] == "application/json"
            assert headers["Retry-After"] == RETRY_AFTER
            assert json.loads(body)["error"]["code"] == "database_unavailable"
    for answers in after:
        assert {operation: status for operation, (status, _, _) in answers.items()} == {
            "login": 200, "list": 200, "create": 201, "chat": 200, "stream": 200}
        assert parse_sse(answers["stream"][2])[-1]["type"] == "end"
    # The stream that outlived the database: its tokens, then an error event, and no reply stored.
    assert [e["type"] for e in long_events[:-1]] == ["token"] * len(long_events[:-1])
    assert long_events[-1]["type"] == "error"
    assert long_events[-1]["error"]["code"] == "database_unavailable"

    for thread in traffic:
        statuses = {o.status for o in thread.outcomes}
        assert statuses <= {200, 201, 503}, [o for o in thread.outcomes if o.status not in (200, 201, 503)]
        refusals = [o for o in thread.outcomes if o.status == 503]
        assert {(o.code, o.retry_after) for o in refusals} == {("database_unavailable", RETRY_AFTER)}
        assert {o.stream_ending for o in thread.outcomes if o.operation == "stream" and o.status == 200} \
            <= {"end", "database_unavailable"}
        # What clients were told exists is exactly what the database holds: a 503 wrote nothing.
        stored = rows_of(cluster.url, thread.http.user["id"])
        assert set(stored) == set(thread.created)
        assert_no_orphan_replies(stored)
        assert assistant_ids(stored) == thread.replies

    stored = rows_of(cluster.url, prober.user["id"])
    assert_no_orphan_replies(stored)
    assert [m.role for m in stored[spanning]] == [MessageRole.USER]
    # Only the requests after recovery wrote: two chats and two streams, each a question and its reply.
    assert [m.role for m in stored[probed]] == [MessageRole.USER, MessageRole.ASSISTANT] * 4
    assert len(stored) == 2 + 2
    # One line per refused request, naming neither the server's address nor anyone's words.
    assert "database unavailable: OperationalError on POST /auth/login" in log
    assert f":{cluster.port}" not in log and PASSWORD not in log and "Traceback" not in log
