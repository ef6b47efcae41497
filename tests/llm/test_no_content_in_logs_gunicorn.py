"""No message content in the logs, whatever a model server echoes back (issue 20, 6).

Some model servers quote the prompt in their errors. Distinctive text goes
through every chat path (a conversation's whole and streamed replies, /v1
whole and streamed) to both protocols, against a fake that echoes it into a
500 body, into an error object mid-stream and into a line that is not JSON;
then every line gunicorn's processes wrote, at DEBUG, is searched for it.
"""
import uuid

import pytest

from bench.fake_model import Script
from tests.support.gateway import MODEL, gateway, logged_in

pytestmark = pytest.mark.slow

OPENAI_MODEL = "gpt-test"
FAILURES = {
    "500 body": Script(status=500, echo_prompt=True),
    "error object": Script(fail_after=1, fail_mode="error", echo_prompt=True),
    "unreadable line": Script(fail_after=1, fail_mode="garbage", echo_prompt=True),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    env = {"OPENAI_BASE_URL": _fake_llm_server.openai_url, "OPENAI_MODELS": OPENAI_MODEL, "LOG_LEVEL": "DEBUG"}
    with gateway(tmp_path_factory.mktemp("logs"), _fake_llm_server, database_url=module_database_url,
                 workers=2, env=env) as server:
        yield server


def chat_paths(http, api_key: str, model: str):
    """Each chat path, as a function sending one message and reading the whole answer."""
    conversation = http.conversation(model=model)
    v1 = {"Authorization": f"Bearer {api_key}"}

    def v1_call(stream: bool):
        return lambda text: http.post("/v1/chat/completions", headers=v1, json={
            "model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})

    return {
        "conversation whole": lambda text: http.post(f"/conversations/{conversation}/messages", json={"content": text}),
        "conversation stream": lambda text: http.post(f"/conversations/{conversation}/stream", json={"content": text}),
        "v1 whole": v1_call(stream=False),
        "v1 stream": v1_call(stream=True),
    }


def test_echoed_prompts_never_reach_the_logs(server, _fake_llm_server):
    http = logged_in(server)
    api_key = http.post("/api-keys", json={"name": "logs"}).json()["key"]
    secrets, answered = [], 0
    for model in (MODEL, OPENAI_MODEL):
        for path, send in chat_paths(http, api_key, model).items():
            for failure, script in FAILURES.items():
                _fake_llm_server.reset(script)
                secret = f"zebra{uuid.uuid4().hex}"
                secrets.append(secret)
                response = send(f"my private words {secret}")
                text = response.text
                assert response.status_code in (200, 502) and secret not in text, (model, path, failure, text)
                assert _fake_llm_server.requests and secret in str(_fake_llm_server.requests[-1].body), (path, failure)
                answered += 1
    log = server.log()
    assert answered == 24
    assert not [secret for secret in secrets if secret in log]
    # The failures were logged, each by its length and hash; all but two: in an OpenAI stream a line
    # that is not `data:` is not an event (SSE ignores it), and the stream ends cut short instead.
    assert log.count("sha256") >= 22, log[-3000:]
