"""A gunicorn gateway wired to the fake LLM provider, and a logged-in HTTP client for it."""
import json

import requests

from tests.fakes.llm_provider import FakeLLM
from tests.support.servers import Gunicorn

MODEL = "llama3.1"


def chat_env(fake_llm: FakeLLM) -> dict:
    return {"DEFAULT_MODEL": MODEL, "OLLAMA_BASE_URL": fake_llm.ollama_url, "OPENAI_BASE_URL": "",
            "OPENAI_API_KEY": "", "MODELS_FILE": "", "OPENAI_MODELS": "", "OLLAMA_MODELS": ""}


def gateway(tmp_path, fake_llm: FakeLLM, *, database_url=None, workers=3, threads=4, env=None) -> Gunicorn:
    return Gunicorn(tmp_path, database_url=database_url, workers=workers, threads=threads,
                    env={**chat_env(fake_llm), **(env or {})})


def logged_in(server: Gunicorn, email: str = "metrics@example.com") -> requests.Session:
    http = requests.Session()
    registered = http.post(f"{server.url}/auth/register", json={"email": email, "password": "correct horse battery"})
    assert registered.status_code == 201, registered.text
    http.headers["Authorization"] = f"Bearer {registered.json()['accessToken']}"
    return http


def new_conversation(http: requests.Session, server: Gunicorn, **body) -> str:
    response = http.post(f"{server.url}/conversations", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stream_events(http: requests.Session, server: Gunicorn, conversation_id: str, **body) -> list[dict]:
    body.setdefault("content", "hello")
    with http.post(f"{server.url}/conversations/{conversation_id}/stream", json=body, stream=True, timeout=60) as response:
        assert response.status_code == 200, response.text
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith(b"data: ")]
