"""Clients leaving, against the real server as deployed (2 gevent workers, both databases): mid-stream, and
while waiting for a whole reply. Either way the upstream call is freed within a second."""
import json
import socket
import time

import pytest
from sqlalchemy import select

from app.models import Message, UsageRecord
from bench.fake_model import Script
from tests.support.gateway import MODEL, gateway, logged_in
from tests.support.metrics import scrape
from tests.support.raw_http import connect, request_head
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow

WHOLE_CHATS, WHOLE_V1, EMBEDDINGS = 12, 12, 4


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    directory = tmp_path_factory.mktemp("disconnect-gateway")
    # A read timeout far beyond the test: an upstream freed in time was freed by the client leaving, not by it.
    env = {"LOG_LEVEL": "WARNING", "CHAT_MAX_CONCURRENT": "1000", "PROVIDER_READ_TIMEOUT": "60"}
    with gateway(directory, _fake_llm_server, database_url=module_database_url, workers=2, env=env) as server:
        server.wait_for_workers(2)
        yield server


def test_leaving_mid_stream_closes_upstream_within_a_second_and_stores_the_partial_reply(server, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(400)], token_delay=0.05)
    http = logged_in(server)
    conversation = http.conversation(title="leaving")

    events = http.stream_events(conversation, "count slowly", limit=2)  # then leaves: the connection closes
    left = time.monotonic()

    assert [event["token"] for event in events] == ["t0 ", "t1 "]
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1.5), server.log()
    assert fake_llm.last_request.client_closed_at - left < 1
    assert fake_llm.last_request.tokens_sent < 400

    def partial_reply():
        return next((m for m in http.messages(conversation) if m["role"] == "ASSISTANT"), None)

    reply = wait_until(partial_reply, timeout=5, what="the partial reply")
    assert reply["content"].startswith("t0 t1 ")
    assert reply["meta"]["partial"] is True and reply["meta"]["reason"] == "client_disconnect"


def test_clients_leaving_whole_replies_free_every_upstream_within_a_second(server, fake_llm, database):
    fake_llm.script = Script(hang=True)  # a stuck model server: it answers nobody
    http = logged_in(server)
    conversation = http.conversation(title="whole")
    token = http.headers["Authorization"]
    before = scrape(server.metrics_url)
    requests_to_send = (
        [(f"/conversations/{conversation}/messages", {"content": f"question {i}"}) for i in range(WHOLE_CHATS)]
        + [("/v1/chat/completions", {"model": MODEL, "stream": False,
                                     "messages": [{"role": "user", "content": f"question {i}"}]})
           for i in range(WHOLE_V1)]
        + [("/v1/embeddings", {"model": MODEL, "input": f"text {i}"}) for i in range(EMBEDDINGS)])
    total = len(requests_to_send)

    clients = [_send(server.url, path, body, token) for path, body in requests_to_send]
    assert fake_llm.wait_until(lambda: len(fake_llm.requests) == total, timeout=20), server.log()
    left = time.monotonic()
    for client in clients:
        client.close()  # the clients give up: FIN, with no byte of an answer read

    freed = fake_llm.wait_until(lambda: all(r.client_closed_at for r in fake_llm.requests), timeout=5)
    still_open = [r for r in fake_llm.requests if not r.client_closed_at]
    assert freed, f"{len(still_open)} of {total} upstream calls still open 5 s after their clients left"
    slowest = max(r.client_closed_at for r in fake_llm.requests) - left
    print(f"\n{total} abandoned whole replies: every upstream call freed {slowest * 1000:.0f} ms after the clients left")
    assert slowest < 1, f"the last upstream call was freed {slowest:.2f} s after its client left"

    def rows():
        with database.connect() as db:
            found = db.execute(select(UsageRecord.outcome, UsageRecord.conversation_id)
                               .where(UsageRecord.user_id == http.user["id"])).all()
        return found if len(found) == total else None

    recorded = wait_until(rows, timeout=10, what=f"{total} usage rows")
    assert {outcome for outcome, _ in recorded} == {"client_disconnect"}
    assert sum(1 for _, conversation_id in recorded if conversation_id == conversation) == WHOLE_CHATS
    with database.connect() as db:  # each question is kept, alone, as when the provider fails
        roles = db.execute(select(Message.role).where(Message.conversation_id == conversation)).scalars().all()
    assert len(roles) == WHOLE_CHATS and {role.name for role in roles} == {"USER"}

    def counted(name: str, **labels) -> float:
        return scrape(server.metrics_url).total(name, **labels) - before.total(name, **labels)

    wait_until(lambda: counted("chat_completions_total", outcome="client_disconnect") == WHOLE_CHATS + WHOLE_V1,
               timeout=10, what="the chat counters")
    assert counted("chat_completions_total", streaming="false", outcome="client_disconnect") == WHOLE_CHATS + WHOLE_V1
    assert counted("chat_completions_total", outcome="timeout") == 0
    assert counted("chat_completions_total", outcome="provider_error") == 0
    assert counted("embedding_requests_total", outcome="client_disconnect") == EMBEDDINGS
    # Not the gateway failing: 499 (nobody reads it), never a 5xx the alerts would count.
    assert counted("http_requests_total", method="POST", status_code="499") == total
    assert sum(counted("http_requests_total", status_code=f"50{digit}") for digit in range(10)) == 0


def _send(url: str, path: str, body: dict, authorization: str) -> socket.socket:
    """A request whose client will leave: sent whole on a connection of its own, its answer never read."""
    data = json.dumps(body).encode()
    sock = connect(url, timeout=10)
    sock.sendall(request_head("POST", path, {"Authorization": authorization, "Content-Type": "application/json",
                                             "Content-Length": str(len(data))}) + data)
    return sock


def test_under_gthread_workers_a_thread_watches_and_frees_the_upstream_as_well(tmp_path, fake_llm):
    # The watch's other half; what is stored and counted does not depend on the worker class, and is
    # proved above on both databases, so this one runs on SQLite alone.
    fake_llm.script = Script(hang=True)
    env = {"LOG_LEVEL": "WARNING", "GUNICORN_WORKER_CLASS": "gthread", "PROVIDER_READ_TIMEOUT": "60"}
    with gateway(tmp_path, fake_llm, workers=1, threads=8, env=env) as server:
        http = logged_in(server)
        conversation = http.conversation(title="gthread")
        before = scrape(server.metrics_url)
        clients = [_send(server.url, f"/conversations/{conversation}/messages", {"content": f"q{i}"},
                         http.headers["Authorization"]) for i in range(4)]
        assert fake_llm.wait_until(lambda: len(fake_llm.requests) == 4, timeout=20), server.log()
        left = time.monotonic()
        for client in clients:
            client.close()

        assert fake_llm.wait_until(lambda: all(r.client_closed_at for r in fake_llm.requests), timeout=5)
        slowest = max(r.client_closed_at for r in fake_llm.requests) - left
        print(f"\ngthread: 4 abandoned whole replies, every upstream call freed {slowest * 1000:.0f} ms after")
        assert slowest < 1
        wait_until(lambda: scrape(server.metrics_url).total("chat_completions_total", outcome="client_disconnect")
                   - before.total("chat_completions_total", outcome="client_disconnect") == 4,
                   timeout=10, what="the chat counters")
