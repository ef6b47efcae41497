"""/v1 through the test client: two chat models and two embeddings models, one of each kind, on the fake provider."""
import json

import pytest

OLLAMA, OPENAI = "llama3.1", "gpt-test"
EMBED_OLLAMA, EMBED_OPENAI = "embed-ollama", "embed-openai"
CHAT_MODELS = [OLLAMA, OPENAI]


@pytest.fixture
def app_config(app_config, fake_llm, tmp_path):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"default_model": OLLAMA, "models": {
        OLLAMA: {"provider": "ollama", "base_url": fake_llm.ollama_url},
        OPENAI: {"provider": "openai", "base_url": fake_llm.openai_url, "upstream_model": "upstream-gpt"},
        EMBED_OLLAMA: {"provider": "ollama", "base_url": fake_llm.ollama_url, "kind": "embeddings",
                       "upstream_model": "nomic-embed-text"},
        EMBED_OPENAI: {"provider": "openai", "base_url": fake_llm.openai_url, "kind": "embeddings",
                       "upstream_model": "text-embedding-3-small", "input_price": "0.02"},
    }}))
    return {**app_config, "MODELS_FILE": str(path), "SSE_HEARTBEAT_SECONDS": "2"}


@pytest.fixture
def v1(client, user):
    """POST to /v1 as `user`: (status, JSON body or the raw stream's bytes)."""
    def post(path, body):
        response = client.post(f"/v1{path}", json=body, headers=user.headers)
        if response.mimetype == "text/event-stream":
            return response.status_code, response.get_data()
        return response.status_code, response.get_json()
    return post


def chunks(data: bytes) -> list[dict]:
    """The JSON chunks of an OpenAI stream, up to [DONE] (which must end it)."""
    events = [line[len(b"data: "):] for line in data.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    return [json.loads(event) for event in events[:-1]]
