"""A client leaving a stream, against the real server: gunicorn's gthread workers, as deployed."""
import json
import time

import pytest
import requests

from tests.chat.conftest import OLLAMA_MODEL
from tests.fakes.llm_provider import Script
from tests.support.servers import Gunicorn, wait_until


@pytest.mark.slow
def test_leaving_mid_stream_closes_upstream_within_a_second_and_stores_the_partial_reply(
        tmp_path, database_url, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(400)], token_delay=0.05)
    env = {"DEFAULT_MODEL": OLLAMA_MODEL, "OLLAMA_BASE_URL": fake_llm.ollama_url,
           "OPENAI_BASE_URL": "", "OPENAI_API_KEY": "", "MODELS_FILE": "", "LOG_LEVEL": "WARNING"}
    with Gunicorn(tmp_path, database_url=database_url, workers=1, threads=4, env=env) as server, \
            requests.Session() as http:
        registered = http.post(f"{server.url}/auth/register",
                               json={"email": "streamer@example.com", "password": "correct horse battery"})
        assert registered.status_code == 201, registered.text
        http.headers["Authorization"] = f"Bearer {registered.json()['accessToken']}"
        conversation = http.post(f"{server.url}/conversations", json={"title": "leaving"}).json()

        with http.post(f"{server.url}/conversations/{conversation['id']}/stream",
                       json={"content": "count slowly"}, stream=True, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            tokens = []
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    tokens.append(json.loads(line[len(b"data: "):])["token"])
                if len(tokens) == 2:
                    break
            left = time.monotonic()
        # Leaving the block closed the connection.

        assert tokens == ["t0 ", "t1 "]
        assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1.5), server.log()
        assert fake_llm.last_request.client_closed_at - left < 1
        assert fake_llm.last_request.tokens_sent < 400

        def partial_reply():
            messages = http.get(f"{server.url}/conversations/{conversation['id']}").json()["messages"]
            return next((m for m in messages if m["role"] == "ASSISTANT"), None)

        reply = wait_until(partial_reply, timeout=5, what="the partial reply")
        assert reply["content"].startswith("t0 t1 ")
        assert reply["meta"]["partial"] is True and reply["meta"]["reason"] == "client_disconnect"
