"""Chat fixtures: the fake provider, and an app whose models all point at it."""
import pytest


OLLAMA_MODEL = "llama3.1"
OPENAI_MODEL = "gpt-test"
OPENAI_KEY = "sk-test-key"


@pytest.fixture
def app_config(app_config, fake_llm, app_overrides):
    return {
        **app_config,
        "DEFAULT_MODEL": OLLAMA_MODEL,
        "OLLAMA_BASE_URL": fake_llm.ollama_url,
        "OPENAI_BASE_URL": fake_llm.openai_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_MODELS": OPENAI_MODEL,
        "PROVIDER_READ_TIMEOUT": "0.5",  # the hang cases wait this long, 16 of them
        "SSE_HEARTBEAT_SECONDS": "2",
        **app_overrides,
    }


@pytest.fixture
def conversation(client, user):
    response = client.post("/conversations", json={"title": "chat"}, headers=user.headers)
    assert response.status_code == 201
    return response.get_json()

