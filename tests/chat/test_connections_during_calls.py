"""No chat holds a database connection while it waits for the model (found by bench.soak).

A connection held through the call is idle in transaction for as long as the model
takes; with as many slow chats as the pool has connections, every other request
of the worker waits, then gets 503 database_busy.
"""
import threading

import pytest

from tests.chat.conftest import OLLAMA_MODEL
from bench.fake_model import Script
from tests.apikeys.test_api_keys import bearer, create_key


def checked_out_while_the_model_thinks(app, fake_llm, send) -> int:
    """Connections checked out of the pool while the provider has the request and has not answered yet."""
    fake_llm.script = Script(headers_delay=0.25)  # under the read timeout (0.5 s)
    sender = threading.Thread(target=send)
    sender.start()
    assert fake_llm.wait_until(lambda: fake_llm.requests)
    checked_out = app.extensions["db_engine"].pool.checkedout()
    sender.join()
    return checked_out


@pytest.mark.parametrize("credential", ["access token", "api key"])
@pytest.mark.parametrize("route", ["whole", "stream", "v1", "v1 stream"])
def test_no_connection_is_held_during_the_provider_call(app, client, user, conversation, fake_llm, credential, route):
    headers = user.headers if credential == "access token" else bearer(create_key(client, user)["key"])
    if credential == "api key":  # the key's first use writes lastUsedAt; the chat's use only reads
        assert client.get("/conversations", headers=headers).status_code == 200
    paths = {"whole": f"/conversations/{conversation['id']}/messages",
             "stream": f"/conversations/{conversation['id']}/stream", "v1": "/v1/chat/completions",
             "v1 stream": "/v1/chat/completions"}
    body = ({"model": OLLAMA_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": route == "v1 stream"}
            if route.startswith("v1") else {"content": "hi"})
    statuses = []

    def send():
        response = client.post(paths[route], json=body, headers=headers)
        statuses.append(response.status_code)
        response.get_data()

    assert checked_out_while_the_model_thinks(app, fake_llm, send) == 0
    assert statuses == [200]
