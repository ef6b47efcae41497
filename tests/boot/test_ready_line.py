"""The ready line: what it says, and its warning when no upstream of the default model answers."""
from app.boot import preflight
from app.config import Settings
from app.llm import load_catalogue
from bench.fake_model import closed_port_url


def catalogue_at(url: str):
    settings = Settings.from_env({"OLLAMA_BASE_URL": url, "DEFAULT_MODEL": "llama3.1", "MODELS_FILE": "",
                                  "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    return settings, load_catalogue(settings, environ={})


def test_no_warning_when_the_default_model_answers(fake_llm):
    settings, catalogue = catalogue_at(fake_llm.ollama_url)

    assert preflight.default_model_unanswered(catalogue) is None
    assert "WARNING" not in preflight.summary(settings, catalogue, workers=2, worker_class="gevent")


def test_the_ready_line_warns_when_no_upstream_of_the_default_model_answers():
    url = closed_port_url()
    settings, catalogue = catalogue_at(url.replace("127.0.0.1", "user:secret@127.0.0.1"))

    unanswered = preflight.default_model_unanswered(catalogue)
    line = preflight.summary(settings, catalogue, workers=2, worker_class="gevent", unanswered=unanswered)

    assert line.startswith("gateway ready: ") and "\n" not in line
    assert line.endswith(f"; WARNING: no upstream of the default model llama3.1 answers (ollama at {url}); "
                         "its chats fail with 502 until one does, and GET /health shows each model server's state")
    assert "secret" not in line
