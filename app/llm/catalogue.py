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
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..config import ConfigError, Settings
from ..errors import ApiError
from .pool import PROVIDER_KINDS
from .types import CHAT, EMBEDDINGS, ModelSpec, Timeouts

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODELS = "gpt-4o-mini"
_ENTRY_KEYS = {"provider", "base_url", "upstream_model", "api_key_env", "connect_timeout", "read_timeout",
               "total_timeout", "input_price", "output_price", "kind", "count_prompt_tokens",
               "default_max_tokens"}
MODEL_KINDS = (CHAT, EMBEDDINGS)


class CatalogueError(ConfigError):
    """The model configuration is unusable; raised at start-up."""


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
    models: dict[str, ModelSpec] = {}
    if settings.openai_base_url or settings.openai_api_key:
        base_url = _url(settings.openai_base_url or OPENAI_DEFAULT_BASE_URL, "OPENAI_BASE_URL")
        for name in _names(settings.openai_models or OPENAI_DEFAULT_MODELS):
            models[name] = ModelSpec(name=name, provider="openai", base_url=base_url,
                                     upstream_model=name, timeouts=timeouts,
                                     api_key=settings.openai_api_key or None)
    ollama_names = _names(settings.ollama_models)
    if settings.default_model not in models and settings.default_model not in ollama_names:
        ollama_names.insert(0, settings.default_model)
    ollama_url = _url(settings.ollama_base_url, "OLLAMA_BASE_URL")
    for name in ollama_names:
        models[name] = ModelSpec(name=name, provider="ollama", base_url=ollama_url,
                                 upstream_model=name, timeouts=timeouts)
    return Catalogue(models, settings.default_model)


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
        str(name): _entry(str(name), entry, timeouts, environ, path)
        for name, entry in document["models"].items()
    }
    return Catalogue(models, str(document.get("default_model") or default_model))


def _entry(name: str, entry: Any, timeouts: Timeouts, environ: Mapping[str, str], path: Path) -> ModelSpec:
    where = f"{path}: model {name!r}"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: expected a mapping")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
    provider = entry.get("provider")
    if provider not in PROVIDER_KINDS:
        raise CatalogueError(f"{where}: provider must be one of {sorted(PROVIDER_KINDS)}")
    kind = entry.get("kind", CHAT)
    if kind not in MODEL_KINDS:
        raise CatalogueError(f"{where}: kind must be one of {list(MODEL_KINDS)}")
    count_prompt_tokens = entry.get("count_prompt_tokens", True)
    if not isinstance(count_prompt_tokens, bool):
        raise CatalogueError(f"{where}: count_prompt_tokens must be true or false")
    api_key = None
    if entry.get("api_key_env"):
        api_key = environ.get(entry["api_key_env"])
        if not api_key:
            raise CatalogueError(f"{where}: environment variable {entry['api_key_env']} is not set")
    return ModelSpec(
        name=name,
        provider=provider,
        base_url=_url(entry.get("base_url"), f"{where}: base_url"),
        upstream_model=str(entry.get("upstream_model") or name),
        timeouts=Timeouts(
            connect=_positive(entry.get("connect_timeout", timeouts.connect), f"{where}: connect_timeout"),
            read=_positive(entry.get("read_timeout", timeouts.read), f"{where}: read_timeout"),
            total=_positive(entry.get("total_timeout", timeouts.total), f"{where}: total_timeout"),
        ),
        api_key=api_key,
        input_price=_price(entry.get("input_price"), f"{where}: input_price"),
        output_price=_price(entry.get("output_price"), f"{where}: output_price"),
        kind=kind,
        count_prompt_tokens=count_prompt_tokens,
        default_max_tokens=_token_count(entry.get("default_max_tokens"), f"{where}: default_max_tokens"),
    )


def _names(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _url(value: Any, what: str) -> str:
    parts = urlsplit(str(value or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CatalogueError(f"{what}: expected an http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CatalogueError(f"{what}: expected a number of seconds, got {value!r}") from None
    if number <= 0:
        raise CatalogueError(f"{what}: must be positive")
    return number


def _token_count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogueError(f"{what}: expected a whole number of tokens, 1 or more, got {value!r}")
    return value


def _price(value: Any, what: str) -> Decimal | None:
    """USD per million tokens, exactly as written: str() first, so 0.1 stays 0.1 and not its float."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CatalogueError(f"{what}: expected USD per million tokens, got {value!r}")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise CatalogueError(f"{what}: expected USD per million tokens, got {value!r}") from None
    if not price.is_finite() or price < 0:
        raise CatalogueError(f"{what}: must be a non-negative number")
    return price
