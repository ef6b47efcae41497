"""X-Request-ID: echoed or generated, forwarded to the provider, and on the one log line per completion."""
import logging
import re

import pytest

from tests.chat.conftest import OLLAMA_MODEL, OPENAI_MODEL
from bench.fake_model import Script

GENERATED = re.compile(r"[0-9a-f]{32}")


def completion_records(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "app.chat.telemetry" and hasattr(r, "fields")]


def test_a_well_formed_id_is_echoed_and_any_other_is_replaced(client):
    assert client.get("/livez", headers={"X-Request-ID": "client-id_1.2"}).headers["X-Request-ID"] == "client-id_1.2"
    assert GENERATED.fullmatch(client.get("/livez").headers["X-Request-ID"])
    for bad in ("has spaces", "x" * 129, "line\\nbreak", "ünïcode"):
        echoed = client.get("/livez", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert GENERATED.fullmatch(echoed), bad
    # Error responses carry it too.
    assert client.get("/nowhere", headers={"X-Request-ID": "on-a-404"}).headers["X-Request-ID"] == "on-a-404"


@pytest.mark.parametrize("path", ["messages", "stream"])
@pytest.mark.parametrize(("model", "provider"), [(OLLAMA_MODEL, "ollama"), (OPENAI_MODEL, "openai")])
def test_the_id_reaches_the_provider_and_the_completion_log_line(client, user, conversation, fake_llm, caplog,
                                                                path, model, provider):
    caplog.set_level(logging.INFO, logger="app.chat.telemetry")
    response = client.post(f"/conversations/{conversation['id']}/{path}", headers={**user.headers, "X-Request-ID": "trace-42"},
                           json={"content": "a secret question", "model": model})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "trace-42"
    response.get_data()  # a stream ends (and logs) once its body has been read
    assert fake_llm.last_request.headers["X-Request-ID"] == "trace-42"
    [line] = completion_records(caplog)
    assert line["requestId"] == "trace-42" and line["model"] == model and line["provider"] == provider
    assert line["outcome"] == "success" and line["streaming"] == (path == "stream")
    assert line["promptTokens"] == 17 and line["completionTokens"] == len(Script().tokens)
    assert line["durationMs"] >= 0 and (line["timeToFirstTokenMs"] is not None) == (path == "stream")
    text = next(r.getMessage() for r in caplog.records if r.name == "app.chat.telemetry")
    assert "secret" not in text and "trace-42" in text and "sk-" not in text


def test_a_failed_completion_is_logged_once_with_its_outcome(client, user, conversation, fake_llm, caplog):
    caplog.set_level(logging.INFO, logger="app.chat.telemetry")
    fake_llm.reset(Script(status=500))
    response = client.post(f"/conversations/{conversation['id']}/messages", headers=user.headers, json={"content": "hi"})
    assert response.status_code == 502
    [line] = completion_records(caplog)
    assert line["outcome"] != "success" and line["requestId"] == response.headers["X-Request-ID"]
    assert line["completionTokens"] is None
