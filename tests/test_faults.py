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
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.models import Conversation, Message, MessageRole
from tests.conftest import IN_CI
from bench.fake_model import FakeModelServer, Script
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
    with FakeModelServer(script=Script(tokens=slow_tokens, token_delay=0.05)) as slow_llm, \
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
        # A restart no request noticed: the pools still hold connections to the old server, used moments ago
        # (so not pinged). Each costs its worker at most one 503, which drops the whole pool: no retry loop.
        cluster.stop("fast")
        cluster.start()
        second_restart = [[send(worker.connection, "GET", "/conversations", headers=worker.auth)[0]
                           for _ in range(3)] for worker in workers]
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
    assert all(statuses in ([200] * 3, [503, 200, 200]) for statuses in second_restart), second_restart
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


# Provider faults and a killed worker: the faults hit the default model (Ollama's protocol, the shared
# fake), while other users keep chatting with a healthy model on a fake of its own.
HEALTHY_MODEL = "healthy-model"
OUTCOMES = ("success", "provider_error", "timeout", "client_disconnect", "internal_error")


@pytest.fixture(scope="module")
def healthy_llm():
    with FakeModelServer(script=Script(tokens=["fine", "."])) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server, healthy_llm):
    env = {"OPENAI_BASE_URL": healthy_llm.openai_url, "OPENAI_MODELS": HEALTHY_MODEL,
           # A model silent for longer than this starts its stream as a 200: a later failure is an SSE event.
           "SSE_HEARTBEAT_SECONDS": "0.2", "LOG_LEVEL": "WARNING", "GUNICORN_ACCESS_LOG": ""}
    with gateway(tmp_path_factory.mktemp("gateway"), _fake_llm_server, database_url=module_database_url,
                 workers=2, env=env) as server:
        server.wait_for_workers(2)
        yield server


class Background:
    """Two users chatting with the healthy model while a test breaks something else."""

    def __init__(self, server):
        users = [logged_in(server) for _ in range(2)]
        self.traffic = [Traffic(user, user.user["email"], model=HEALTHY_MODEL) for user in users]
        for thread in self.traffic:
            thread.start()
        wait_until(lambda: all(t.count(lambda o: o.stream_ending == "end") for t in self.traffic),
                   what="traffic to flow")

    def finish(self) -> list[list]:
        """Stop; the failures each user saw."""
        for thread in self.traffic:
            if thread.is_alive():
                thread.stop()
                thread.http.close()
        return [thread.failures() for thread in self.traffic]


@pytest.fixture
def background(server):
    background = Background(server)
    yield background
    background.finish()


def outcome_deltas(before, after, model: str, streaming: str) -> dict[str, float]:
    labels = {"model": model, "streaming": streaming}
    return {outcome: after.value("chat_completions_total", outcome=outcome, **labels)
            - before.value("chat_completions_total", outcome=outcome, **labels) for outcome in OUTCOMES}


TOKENS = [f"t{i} " for i in range(6)]
# (script, endpoint, what the client gets, what is stored after the user's message)
PROVIDER_FAULTS = {
    "500, whole reply": (Script(status=500), "messages", (502, "provider_error"), None),
    "500, stream": (Script(status=500), "stream", (502, "provider_error"), None),
    # Silent past the heartbeat: the stream has started as a 200, so the failure is its last event.
    "500 after a silence, stream": (Script(status=500, headers_delay=0.6), "stream", ("sse", "provider_error"), None),
    "connection cut before answering, whole reply": (Script(refuse=True), "messages", (502, "provider_error"), None),
    "connection cut mid-stream": (Script(tokens=TOKENS, fail_after=3, fail_mode="drop"), "stream",
                                  ("sse", "provider_error"), "t0 t1 t2 "),
    "not JSON, whole reply": (Script(fail_after=0, fail_mode="garbage"), "messages", (502, "provider_error"), None),
    "not JSON mid-stream": (Script(tokens=TOKENS, fail_after=2, fail_mode="garbage"), "stream",
                            ("sse", "provider_error"), "t0 t1 "),
}


@pytest.mark.parametrize("fault", PROVIDER_FAULTS)
def test_provider_faults_mid_traffic(server, fake_llm, background, fault):
    script, endpoint, (status, code), partial = PROVIDER_FAULTS[fault]
    http = logged_in(server)
    conversation = http.conversation()
    fake_llm.queue(script)
    before = scrape(server.metrics_url)

    response = http.post(f"/conversations/{conversation}/{endpoint}", json={"content": "Hi there"})
    if status == "sse":
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        events = parse_sse(response.content)
        assert [e["type"] for e in events] == ["token"] * len(TOKENS[:len(events) - 1]) + ["error"]
        assert "".join(e["token"] for e in events[:-1]) == (partial or "")
        assert events[-1]["error"]["code"] == code
    else:
        assert (response.status_code, response.headers["Content-Type"]) == (status, "application/json")
        assert response.json()["error"]["code"] == code
    after = scrape(server.metrics_url)

    stored = http.messages(conversation)
    assert [(m["role"], m["content"]) for m in stored][:1] == [("USER", "Hi there")]
    if partial is None:
        assert len(stored) == 1   # the question alone: no reply, not even an empty one
    else:
        [reply] = stored[1:]
        assert (reply["role"], reply["content"]) == ("ASSISTANT", partial)
        assert reply["meta"]["partial"] is True and reply["meta"]["reason"] == code
    streaming = "true" if endpoint == "stream" else "false"
    assert outcome_deltas(before, after, MODEL, streaming) == {**dict.fromkeys(OUTCOMES, 0), "provider_error": 1}

    # The next chat with the same model, in the same conversation, is answered.
    assert http.message(conversation, "again")["assistantMessage"]["content"] == "Hello, world!"
    http.close()
    assert background.finish() == [[], []]   # the other model's users noticed nothing


def test_a_worker_killed_mid_stream(server, fake_llm, background):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(400)], token_delay=0.05)
    user = logged_in(server)
    conversation = user.conversation()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert send(connection, "GET", "/livez")[0] == 200
    victim = worker_serving(server, connection)
    connection.request("POST", f"/conversations/{conversation}/stream", body=json.dumps({"content": "count"}),
                       headers={**user.headers, "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")    # streaming: a token has come through
    snapshots = [scrape(server.metrics_url)]

    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        while response.read(1024):   # the stream ends, cut short: no hang until some timeout
            pass
    assert time.monotonic() - killed < 5
    connection.close()

    replaced = wait_until(lambda: len(pids := server.worker_pids()) == 2 and victim not in pids and pids,
                          what="gunicorn to replace the worker")
    # The model server's request was let go of: the dead worker's socket closed with it.
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=5)
    fake_llm.script = Script()
    again = logged_in(server)
    assert again.message(again.conversation(), "hello")["assistantMessage"]["content"] == "Hello, world!"
    assert [e["type"] for e in again.stream_events(again.conversation())][-1] == "end"
    # Other users lose what the dead worker was serving for them at that moment (one request each at most).
    for failures in background.finish():
        assert len(failures) <= 1 and all(f.status is None for f in failures), failures
    settled = lambda: (s := scrape(server.metrics_url)).value("http_requests_in_flight") == 0 and s  # noqa: E731
    snapshots.append(wait_until(settled, what="in-flight requests to settle"))

    # The question was stored when the stream began; the dead worker stored no reply, partial or not.
    assert [m["role"] for m in user.messages(conversation)] == ["USER"]
    assert_never_decreases(snapshots)
    assert snapshots[-1].total("chat_completions_in_flight") == 0   # the dead worker's stream is not still open
    assert str(victim) not in {s["pid"] for s in snapshots[-1].series("process_resident_memory_bytes")}
    assert len(replaced) == 2
    user.close()
    again.close()
