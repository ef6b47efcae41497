"""Tracing fixtures: an OTLP/HTTP receiver for the session, and an app exporting to it."""
import json

import pytest

from app import tracing
from tests.support.otlp import OtlpReceiver

OLLAMA, OPENAI, EMBED = "llama3.1", "gpt-test", "embed-openai"


@pytest.fixture(scope="session")
def _otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otlp(_otlp_receiver):
    """The collector, emptied for this test."""
    _otlp_receiver.reset()
    yield _otlp_receiver


def models_file(directory, fake_llm) -> str:
    """A chat model of each provider kind, and an embeddings model, all on the fake provider."""
    path = directory / "models.json"
    path.write_text(json.dumps({"default_model": OLLAMA, "models": {
        OLLAMA: {"provider": "ollama", "base_url": fake_llm.ollama_url},
        OPENAI: {"provider": "openai", "base_url": fake_llm.openai_url, "upstream_model": "upstream-gpt"},
        EMBED: {"provider": "openai", "base_url": fake_llm.openai_url, "kind": "embeddings",
                "upstream_model": "text-embedding-3-small"},
    }}))
    return str(path)


@pytest.fixture
def app_config(app_config, fake_llm, otlp, tmp_path, app_overrides):
    return {**app_config, "MODELS_FILE": models_file(tmp_path, fake_llm), "SSE_HEARTBEAT_SECONDS": "2",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, **app_overrides}


@pytest.fixture
def app(app):
    yield app
    tracing.shutdown()


@pytest.fixture
def conversation(client, user):
    response = client.post("/conversations", json={"title": "chat"}, headers=user.headers)
    assert response.status_code == 201
    return response.get_json()
