"""A gunicorn gateway wired to the fake LLM provider, and logged-in clients for it."""
from bench.fake_model import FakeModelServer
from tests.support.client import GatewayClient
from tests.support.servers import Gunicorn

MODEL = "llama3.1"


def chat_env(fake_llm: FakeModelServer, **models) -> dict:
    """Settings that make the fake provider serve every model: Ollama's `MODEL`, plus `models` overrides."""
    return {"DEFAULT_MODEL": MODEL, "OLLAMA_BASE_URL": fake_llm.ollama_url, "OPENAI_BASE_URL": "",
            "OPENAI_API_KEY": "", "MODELS_FILE": "", "OPENAI_MODELS": "", "OLLAMA_MODELS": "", **models}


def gateway(tmp_path, fake_llm: FakeModelServer, *, database_url=None, workers=3, threads=4, env=None) -> Gunicorn:
    return Gunicorn(tmp_path, database_url=database_url, workers=workers, threads=threads,
                    env={**chat_env(fake_llm), **(env or {})})


def logged_in(server: Gunicorn, email: str | None = None) -> GatewayClient:
    """A new user of `server`, registered and holding its real access token."""
    return GatewayClient(server.url).register(email)
