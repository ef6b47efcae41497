import json

import pytest

from app.llm import CatalogueError, Timeouts, load_catalogue
from app.config import Settings


def settings(**environ):
    return Settings.from_env({"JWT_SECRET_KEY": "unused-here", **environ})


def test_defaults_without_any_setting():
    catalogue = load_catalogue(settings(), environ={})

    assert catalogue.names == ["llama3.1"] and catalogue.default_model == "llama3.1"
    spec = catalogue.get("llama3.1")
    assert (spec.provider, spec.base_url, spec.upstream_model) == ("ollama", "http://localhost:11434", "llama3.1")
    assert spec.api_key is None and spec.timeouts == Timeouts(connect=5.0, read=120.0, total=600.0)


def test_openai_models_join_when_a_key_is_set():
    catalogue = load_catalogue(settings(OPENAI_API_KEY="sk-1", OLLAMA_BASE_URL="http://gpu-box:11434/",
                                        PROVIDER_READ_TIMEOUT="30"), environ={})

    assert catalogue.names == ["gpt-4o-mini", "llama3.1"]
    openai = catalogue.get("gpt-4o-mini")
    assert (openai.provider, openai.base_url, openai.api_key) == ("openai", "https://api.openai.com/v1", "sk-1")
    assert catalogue.get("llama3.1").base_url == "http://gpu-box:11434"
    assert openai.timeouts.read == 30.0


def test_openai_compatible_server_as_the_default():
    catalogue = load_catalogue(settings(OPENAI_BASE_URL="http://localhost:8000/v1",
                                        OPENAI_MODELS="qwen2.5, mistral", DEFAULT_MODEL="qwen2.5"), environ={})

    assert catalogue.names == ["mistral", "qwen2.5"] and catalogue.default_model == "qwen2.5"
    assert catalogue.get("qwen2.5").api_key is None


def test_more_ollama_models():
    catalogue = load_catalogue(settings(OLLAMA_MODELS="mistral,phi3"), environ={})

    assert catalogue.names == ["llama3.1", "mistral", "phi3"]


def test_api_key_is_not_in_repr():
    spec = load_catalogue(settings(OPENAI_API_KEY="sk-secret"), environ={}).get("gpt-4o-mini")

    assert "sk-secret" not in repr(spec)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_yaml_file(tmp_path):
    path = write(tmp_path, "models.yaml", """
default_model: qwen
models:
  qwen:
    provider: openai
    base_url: http://localhost:8000/v1
    upstream_model: Qwen/Qwen2.5-7B-Instruct
    api_key_env: VLLM_KEY
    read_timeout: 300
  llama3.1:
    provider: ollama
    base_url: http://localhost:11434
""")
    catalogue = load_catalogue(settings(MODELS_FILE=path, PROVIDER_CONNECT_TIMEOUT="2"),
                               environ={"VLLM_KEY": "k-1"})

    assert catalogue.names == ["llama3.1", "qwen"] and catalogue.default_model == "qwen"
    qwen = catalogue.get("qwen")
    assert (qwen.upstream_model, qwen.api_key) == ("Qwen/Qwen2.5-7B-Instruct", "k-1")
    assert qwen.timeouts == Timeouts(connect=2.0, read=300.0, total=600.0)
    assert catalogue.get("llama3.1").upstream_model == "llama3.1"


def test_json_file_uses_default_model_setting(tmp_path):
    path = write(tmp_path, "models.json", json.dumps(
        {"models": {"m1": {"provider": "ollama", "base_url": "http://127.0.0.1:1"}}}))

    catalogue = load_catalogue(settings(MODELS_FILE=path, DEFAULT_MODEL="m1"), environ={})

    assert catalogue.names == ["m1"]


@pytest.mark.parametrize("entry, message", [
    ({"provider": "cohere", "base_url": "http://x"}, "provider must be one of"),
    ({"provider": "ollama", "base_url": "localhost:11434"}, r"expected an http\(s\) URL"),
    ({"provider": "ollama", "base_url": "http://x", "api_key": "sk-inline"}, "unknown keys"),
    ({"provider": "openai", "base_url": "http://x", "api_key_env": "MISSING_KEY"}, "MISSING_KEY is not set"),
    ({"provider": "ollama", "base_url": "http://x", "read_timeout": 0}, "must be positive"),
    ({"provider": "ollama", "base_url": "http://x", "default_max_tokens": 0}, "default_max_tokens: expected a whole"),
    ({"provider": "ollama", "base_url": "http://x", "default_max_tokens": "512"}, "default_max_tokens: expected"),
    ({"provider": "ollama", "base_url": "http://x", "default_max_tokens": 1.5}, "default_max_tokens: expected"),
    ({"provider": "ollama", "base_url": "http://x", "default_max_tokens": True}, "default_max_tokens: expected"),
])
def test_bad_file_entries_fail_at_start(tmp_path, entry, message):
    path = write(tmp_path, "models.json", json.dumps({"default_model": "m", "models": {"m": entry}}))

    with pytest.raises(CatalogueError, match=message):
        load_catalogue(settings(MODELS_FILE=path), environ={})


def test_default_model_must_be_in_the_file(tmp_path):
    path = write(tmp_path, "models.yaml", "models:\n  m:\n    provider: ollama\n    base_url: http://x\n")

    with pytest.raises(CatalogueError, match="default model 'llama3.1'"):
        load_catalogue(settings(MODELS_FILE=path), environ={})


def test_unreadable_file(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read MODELS_FILE"):
        load_catalogue(settings(MODELS_FILE=str(tmp_path / "missing.yaml")), environ={})


def test_default_max_tokens_is_per_model_and_unset_by_default(tmp_path):
    path = write(tmp_path, "models.yaml", """
models:
  llama3.1:
    provider: ollama
    base_url: http://localhost:11434
    default_max_tokens: 512
  other:
    provider: ollama
    base_url: http://localhost:11434
""")
    catalogue = load_catalogue(settings(MODELS_FILE=path), environ={})

    assert catalogue.get("llama3.1").default_max_tokens == 512
    assert catalogue.get("other").default_max_tokens is None
    assert load_catalogue(settings(), environ={}).get("llama3.1").default_max_tokens is None


def test_upstreams_fallbacks_and_per_upstream_fields(tmp_path):
    path = write(tmp_path, "models.yaml", """
models:
  llama3.1:
    provider: ollama
    read_timeout: 30
    input_price: 1
    upstreams:
      - {name: gpu-1, base_url: http://gpu-1:11434}
      - {name: gpu-2, base_url: http://gpu-2:11434, weight: 2, read_timeout: 60, provider: openai, api_key_env: K}
    fallbacks: [small]
  small:
    provider: ollama
    base_url: http://cpu:11434
""")
    catalogue = load_catalogue(settings(MODELS_FILE=path), environ={"K": "k-2"})

    llama = catalogue.get("llama3.1")
    one, two = llama.upstreams
    assert (one.upstream, one.weight, one.timeouts.read, one.provider, one.api_key) == ("gpu-1", 1.0, 30, "ollama", None)
    assert (two.upstream, two.weight, two.timeouts.read, two.provider, two.api_key) == ("gpu-2", 2.0, 60, "openai", "k-2")
    assert one.input_price == two.input_price == 1 and llama.fallbacks == ("small",)
    assert [spec.upstream for spec in catalogue.get("small").routes] == ["cpu:11434"]  # base_url alone: host:port


@pytest.mark.parametrize("models, message", [
    ({"a": {"provider": "ollama", "base_url": "http://x", "fallbacks": ["b"]},
      "b": {"provider": "ollama", "base_url": "http://y", "fallbacks": ["a"]}}, r"model 'a': fallback cycle a -> b -> a"),
    ({"a": {"provider": "ollama", "base_url": "http://x", "fallbacks": ["nope"]}}, "model 'a': unknown fallback model 'nope'"),
    ({"a": {"provider": "ollama", "upstreams": [{"name": "g", "base_url": "http://x"}, {"name": "g", "base_url": "http://y"}]}},
     "model 'a': duplicate upstream name 'g'"),
    ({"a": {"provider": "ollama", "upstreams": [{"base_url": "http://x:1"}, {"base_url": "http://x:1/v1"}]}},
     "model 'a': duplicate upstream name 'x:1'"),
    ({"a": {"provider": "ollama", "upstreams": [{"base_url": "http://x", "weight": 0}]}}, "upstream 1: weight: must be positive"),
    ({"a": {"provider": "ollama", "base_url": "http://x", "upstreams": [{"base_url": "http://y"}]}}, "not both"),
])
def test_bad_upstreams_and_fallbacks_fail_at_start_naming_the_entry(tmp_path, models, message):
    path = write(tmp_path, "models.json", json.dumps({"default_model": "a", "models": models}))

    with pytest.raises(CatalogueError, match=message):
        load_catalogue(settings(MODELS_FILE=path), environ={})


def test_comma_separated_base_urls_are_upstreams_of_every_model():
    catalogue = load_catalogue(settings(OLLAMA_BASE_URL="http://gpu-1:11434, http://gpu-2:11434", OLLAMA_MODELS="m2",
                                        OPENAI_BASE_URL="http://v1:8000/v1,http://v2:8000/v1"))

    assert [s.upstream for s in catalogue.get("m2").routes] == ["gpu-1:11434", "gpu-2:11434"]
    assert [s.base_url for s in catalogue.get("gpt-4o-mini").routes] == ["http://v1:8000/v1", "http://v2:8000/v1"]
    with pytest.raises(CatalogueError, match="OLLAMA_BASE_URL: the same host and port is listed twice"):
        load_catalogue(settings(OLLAMA_BASE_URL="http://gpu-1:11434,http://gpu-1:11434/"))
