"""The models the gateway accepts, and where each one is served.

Built once at start-up from settings: either the file named by MODELS_FILE
(YAML or JSON), or, without one, from the environment: DEFAULT_MODEL and
OLLAMA_MODELS served by Ollama at OLLAMA_BASE_URL, plus OPENAI_MODELS at
OPENAI_BASE_URL (OpenAI itself by default) when OPENAI_BASE_URL or
OPENAI_API_KEY is set. API keys never live in the file: an entry names the
environment variable that holds its key (`api_key_env`).

    default_model: llama3.1
    models:
      llama3.1:
        provider: ollama
        base_url: http://localhost:11434
      qwen2.5-7b:
        provider: openai              # any OpenAI-compatible server
        base_url: http://localhost:8000/v1
        upstream_model: Qwen/Qwen2.5-7B-Instruct
        api_key_env: VLLM_API_KEY
        connect_timeout: 3
        read_timeout: 300           # idle: the longest silence before headers or between chunks
        total_timeout: 900          # the whole call
        input_price: 0.15           # USD per million prompt tokens (optional: no price, no cost)
        output_price: "0.60"        # USD per million completion tokens; strings keep every digit
        count_prompt_tokens: true   # ask the server's /tokenize when a stream reports no usage (default true)
        default_max_tokens: 1024    # the reply's token limit when a request sets none (default: the server's)
      nomic-embed-text:
        provider: ollama
        base_url: http://localhost:11434
        kind: embeddings            # /v1/embeddings only; the chat routes refuse it (default: chat)
      llama3.1-pair:
        provider: ollama            # every field but kind, count_prompt_tokens and fallbacks may also be per upstream
        upstream_model: llama3.1
        upstreams:                  # several servers of one model; names are unique and are metric labels
          - {name: gpu-1, base_url: http://gpu-1:11434}
          - {name: gpu-2, base_url: http://gpu-2:11434, weight: 2}
        fallbacks: [qwen2.5-7b]     # tried in order when every upstream failed before the first token

Upstream calls are routed by app/upstreams (spread, failover, health).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from ..config import Settings
from ..errors import ApiError
from .entries import CatalogueError, check_fallbacks, model_entry, upstream_name, url, with_upstreams
from .types import CHAT, ModelSpec, Timeouts

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODELS = "gpt-4o-mini"
__all__ = ["Catalogue", "CatalogueError", "NotAChatModel", "UnknownModel", "load_catalogue"]


class NotAChatModel(ApiError):
    def __init__(self, name: str):
        super().__init__(400, "not_a_chat_model", f"Model {name!r} is an embeddings model: it cannot chat.",
                         {"param": "model"})


class UnknownModel(ApiError):
    def __init__(self, name: str, accepted: list[str]):
        super().__init__(400, "unknown_model", f"Model {name!r} is not available; use one of: {', '.join(accepted)}",
                         {"model": [f"Not one of: {', '.join(accepted)}."], "acceptedModels": accepted})


class Catalogue:
    def __init__(self, models: Mapping[str, ModelSpec], default_model: str):
        if not models:
            raise CatalogueError("no models are configured")
        if default_model not in models:
            raise CatalogueError(f"default model {default_model!r} is not in the catalogue")
        self._models = dict(models)
        self.default_model = default_model

    def get(self, name: str) -> ModelSpec | None:
        return self._models.get(name)

    def resolve(self, name: str | None) -> ModelSpec:
        """The named model, or the default for None; an unknown name is a 400 listing the accepted ones."""
        spec = self._models.get(name or self.default_model)
        if spec is None:
            raise UnknownModel(name, self.names)
        return spec

    def resolve_chat(self, name: str | None) -> ModelSpec:
        """As `resolve`, and a model of kind `embeddings` is a 400: it cannot chat."""
        spec = self.resolve(name)
        if spec.kind != CHAT:
            raise NotAChatModel(spec.name)
        return spec

    @property
    def names(self) -> list[str]:
        return sorted(self._models)

    def __iter__(self):
        return iter(self._models[name] for name in self.names)

    def __len__(self) -> int:
        return len(self._models)


def load_catalogue(settings: Settings, environ: Mapping[str, str] = os.environ) -> Catalogue:
    timeouts = Timeouts(connect=settings.provider_connect_timeout, read=settings.provider_read_timeout,
                        total=settings.provider_total_timeout)
    if settings.models_file:
        return _from_file(Path(settings.models_file), settings.default_model, timeouts, environ)
    return _from_settings(settings, timeouts)


def _from_settings(settings: Settings, timeouts: Timeouts) -> Catalogue:
    """Each of OLLAMA_BASE_URL and OPENAI_BASE_URL may list several servers, comma-separated: one upstream each."""
    models: dict[str, ModelSpec] = {}
    if settings.openai_base_url or settings.openai_api_key:
        urls = _urls(settings.openai_base_url or OPENAI_DEFAULT_BASE_URL, "OPENAI_BASE_URL")
        for name in _names(settings.openai_models or OPENAI_DEFAULT_MODELS):
            models[name] = with_upstreams([
                ModelSpec(name=name, provider="openai", base_url=base_url, upstream_model=name, timeouts=timeouts,
                          api_key=settings.openai_api_key or None, upstream=upstream_name(base_url))
                for base_url in urls])
    ollama_names = _names(settings.ollama_models)
    if settings.default_model not in models and settings.default_model not in ollama_names:
        ollama_names.insert(0, settings.default_model)
    ollama_urls = _urls(settings.ollama_base_url, "OLLAMA_BASE_URL")
    for name in ollama_names:
        models[name] = with_upstreams([
            ModelSpec(name=name, provider="ollama", base_url=base_url, upstream_model=name, timeouts=timeouts,
                      upstream=upstream_name(base_url))
            for base_url in ollama_urls])
    return Catalogue(models, settings.default_model)


def _urls(value: str, setting: str) -> list[str]:
    urls = [url(item, setting) for item in _names(value)] or [url(value, setting)]
    names = [upstream_name(item) for item in urls]
    if len(set(names)) != len(names):
        raise CatalogueError(f"{setting}: the same host and port is listed twice")
    return urls


def _from_file(path: Path, default_model: str, timeouts: Timeouts,
               environ: Mapping[str, str]) -> Catalogue:
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CatalogueError(f"cannot read MODELS_FILE {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise CatalogueError(f"{path}: expected a mapping with a 'models' mapping")
    models = {
        str(name): model_entry(str(name), entry, timeouts, environ, f"{path}: model {str(name)!r}")
        for name, entry in document["models"].items()
    }
    check_fallbacks(models, str(path))
    return Catalogue(models, str(document.get("default_model") or default_model))


def _names(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
