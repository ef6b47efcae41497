"""Tracing fixtures: an OTLP/HTTP receiver for the session, and an app exporting to it."""
import pytest

from app import tracing
from tests.chat.conftest import OLLAMA_MODEL, OPENAI_KEY, OPENAI_MODEL
from tests.support.otlp import OtlpReceiver


@pytest.fixture(scope="session")
def _otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otlp(_otlp_receiver):
    """The collector, emptied for this test."""
    _otlp_receiver.reset()
    yield _otlp_receiver


@pytest.fixture
def app_config(app_config, fake_llm, otlp, app_overrides):
    return {
        **app_config,
        "DEFAULT_MODEL": OLLAMA_MODEL,
        "OLLAMA_BASE_URL": fake_llm.ollama_url,
        "OPENAI_BASE_URL": fake_llm.openai_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_MODELS": OPENAI_MODEL,
        "SSE_HEARTBEAT_SECONDS": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        **app_overrides,
    }


@pytest.fixture
def app(app):
    yield app
    app.extensions["llm"].providers.close()
    tracing.shutdown()


@pytest.fixture
def conversation(client, user):
    response = client.post("/conversations", json={"title": "chat"}, headers=user.headers)
    assert response.status_code == 201
    return response.get_json()
