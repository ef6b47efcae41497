"""One catalogue entry: its fields, its upstreams and its fallbacks, each checked with a one-line error.

Every field an upstream may set (provider, upstream_model, api_key_env, the
timeouts, the prices) may also be set on its model, for all its upstreams; an
upstream's own value wins. A model with `base_url` alone has one upstream,
named after that URL's host and port.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from ..config import ConfigError
from .pool import PROVIDER_KINDS
from .types import CHAT, EMBEDDINGS, ModelSpec, Timeouts

MODEL_KINDS = (CHAT, EMBEDDINGS)
_SHARED_KEYS = {"provider", "upstream_model", "api_key_env", "connect_timeout", "read_timeout", "total_timeout",
                "input_price", "output_price"}
_MODEL_KEYS = _SHARED_KEYS | {"base_url", "kind", "count_prompt_tokens", "default_max_tokens", "upstreams", "fallbacks"}
_UPSTREAM_KEYS = _SHARED_KEYS | {"name", "base_url", "weight"}


class CatalogueError(ConfigError):
    """The model configuration is unusable; raised at start-up."""


def model_entry(name: str, entry: Any, defaults: Timeouts, environ: Mapping[str, str], where: str) -> ModelSpec:
    """The model `name` as its file entry describes it; `where` starts every error line."""
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: expected a mapping")
    _no_unknown_keys(entry, _MODEL_KEYS, where)
    kind = entry.get("kind", CHAT)
    if kind not in MODEL_KINDS:
        raise CatalogueError(f"{where}: kind must be one of {list(MODEL_KINDS)}")
    count_prompt_tokens = entry.get("count_prompt_tokens", True)
    if not isinstance(count_prompt_tokens, bool):
        raise CatalogueError(f"{where}: count_prompt_tokens must be true or false")
    default_max_tokens = _token_count(entry.get("default_max_tokens"), f"{where}: default_max_tokens")
    if "upstreams" in entry and "base_url" in entry:
        raise CatalogueError(f"{where}: give base_url or upstreams, not both")
    listed = entry.get("upstreams", [{"base_url": entry.get("base_url")}])
    if not isinstance(listed, list) or not listed:
        raise CatalogueError(f"{where}: upstreams must be a non-empty list")
    shared = {key: entry[key] for key in _SHARED_KEYS if key in entry}
    specs: list[ModelSpec] = []
    for number, upstream in enumerate(listed, start=1):
        upstream_where = f"{where}: upstream {number}" if "upstreams" in entry else where
        if not isinstance(upstream, dict):
            raise CatalogueError(f"{upstream_where}: expected a mapping")
        _no_unknown_keys(upstream, _UPSTREAM_KEYS, upstream_where)
        spec = _upstream(name, {**shared, **upstream}, defaults, environ, upstream_where)
        if any(spec.upstream == other.upstream for other in specs):
            raise CatalogueError(f"{where}: duplicate upstream name {spec.upstream!r}")
        specs.append(replace(spec, kind=kind, count_prompt_tokens=count_prompt_tokens,
                             default_max_tokens=default_max_tokens))
    return with_upstreams(specs, fallbacks=_fallbacks(entry.get("fallbacks", []), name, where))


def with_upstreams(specs: list[ModelSpec], fallbacks: tuple[str, ...] = ()) -> ModelSpec:
    """A model served by `specs`: its own fields are the first upstream's."""
    return replace(specs[0], upstreams=tuple(specs), fallbacks=fallbacks)


def upstream_name(base_url: str) -> str:
    """host:port, the name of an upstream given by its URL alone."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def check_fallbacks(models: Mapping[str, ModelSpec], where: str) -> None:
    """Every fallback names a model of the catalogue, and following fallbacks never comes back to a model."""
    for spec in models.values():
        for fallback in spec.fallbacks:
            if fallback not in models:
                raise CatalogueError(f"{where}: model {spec.name!r}: unknown fallback model {fallback!r}")
    for spec in models.values():
        path = _cycle_from(spec.name, models, ())
        if path:
            raise CatalogueError(f"{where}: model {spec.name!r}: fallback cycle {' -> '.join(path)}")


def _cycle_from(name: str, models: Mapping[str, ModelSpec], path: tuple[str, ...]) -> tuple[str, ...]:
    if name in path:
        return path + (name,)
    for fallback in models[name].fallbacks:
        cycle = _cycle_from(fallback, models, path + (name,))
        if cycle:
            return cycle
    return ()


def _upstream(name: str, fields: dict[str, Any], defaults: Timeouts, environ: Mapping[str, str],
              where: str) -> ModelSpec:
    provider = fields.get("provider")
    if provider not in PROVIDER_KINDS:
        raise CatalogueError(f"{where}: provider must be one of {sorted(PROVIDER_KINDS)}")
    base_url = url(fields.get("base_url"), f"{where}: base_url")
    api_key = None
    if fields.get("api_key_env"):
        api_key = environ.get(fields["api_key_env"])
        if not api_key:
            raise CatalogueError(f"{where}: environment variable {fields['api_key_env']} is not set")
    label = fields.get("name", upstream_name(base_url))
    if not isinstance(label, str) or not label.strip():
        raise CatalogueError(f"{where}: name must be a non-empty string")
    return ModelSpec(
        name=name,
        provider=provider,
        base_url=base_url,
        upstream_model=str(fields.get("upstream_model") or name),
        timeouts=Timeouts(
            connect=_positive(fields.get("connect_timeout", defaults.connect), f"{where}: connect_timeout"),
            read=_positive(fields.get("read_timeout", defaults.read), f"{where}: read_timeout"),
            total=_positive(fields.get("total_timeout", defaults.total), f"{where}: total_timeout"),
        ),
        api_key=api_key,
        input_price=_price(fields.get("input_price"), f"{where}: input_price"),
        output_price=_price(fields.get("output_price"), f"{where}: output_price"),
        upstream=label.strip(),
        weight=_positive(fields.get("weight", 1), f"{where}: weight", expected="a positive number"),
    )


def _fallbacks(value: Any, name: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CatalogueError(f"{where}: fallbacks must be a list of model names")
    if name in value:
        raise CatalogueError(f"{where}: fallback cycle {name} -> {name}")
    return tuple(value)


def _no_unknown_keys(entry: dict, known: set[str], where: str) -> None:
    unknown = set(entry) - known
    if unknown:
        raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")


def url(value: Any, what: str) -> str:
    parts = urlsplit(str(value or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CatalogueError(f"{what}: expected an http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def _positive(value: Any, what: str, *, expected: str = "a number of seconds") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CatalogueError(f"{what}: expected {expected}, got {value!r}") from None
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
