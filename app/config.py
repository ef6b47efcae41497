"""Typed settings read from the environment and validated at start-up."""
import logging
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

APP_ENVS = ("development", "production", "test")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
# gunicorn's `sync` worker is refused rather than run: with more than one thread gunicorn silently
# swaps it for gthread, and with one it serves a single request at a time, a stream blocking the rest.
WORKER_CLASSES = ("gevent", "gthread")
# OpenTelemetry's sampler names (OTEL_TRACES_SAMPLER); the ratio ones read OTEL_TRACES_SAMPLER_ARG.
TRACE_SAMPLERS = ("always_on", "always_off", "traceidratio",
                  "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio")
# Secrets that must never reach production, whatever their length.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development"}
MIN_SECRET_BYTES = 32

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting has a value the gateway cannot start with."""


def default_database_url() -> str:
    return f"sqlite:///{Path('instance').resolve() / 'gateway.db'}"


def _parse(name: str, raw: str, check: dict):
    value = check["parse"](name, raw, check) if check["parse"] else raw
    if "choices" in check and value not in check["choices"]:
        raise ConfigError(f"{name} must be one of {', '.join(check['choices'])}, got {value!r}")
    return value


def _url(_name: str, raw: str, _check: dict) -> str:
    return raw.rstrip("/")


def _bool(name: str, raw: str, _check: dict) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return value in ("true", "1", "yes")


def _limits(name: str, raw: str, _check: dict) -> str:
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate such as 60/minute or 10/minute;100/hour, got {raw!r}") from None
    return raw


def _http_url(name: str, raw: str, _check: dict) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _upper(_name: str, raw: str, _check: dict) -> str:
    return raw.upper()


def _lower(_name: str, raw: str, _check: dict) -> str:
    return raw.lower()


def _database_url(url: str) -> str:
    url = url or default_database_url()
    if not url.startswith(("sqlite", "postgresql", "postgres://")):
        raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    # SQLAlchemy 2.1 defaults to psycopg 3; the gateway ships psycopg2.
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            url = "postgresql+psycopg2://" + url[len(scheme):]
    return url


def _int(name: str, raw: str, check: dict) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    low, high = check["low"], check["high"]
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(name: str, raw: str, check: dict) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    low, high = check["low"], check["high"]
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _setting(env: str, default, parse=None, **check):
    """A field read from environment variable `env`; the default is written here and nowhere else.

    An empty variable means the default, unless `empty` is given: the value an empty variable stands for.
    """
    return field(default=default, metadata={"env": env, "parse": parse, **check})


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting("DATABASE_URL", "")  # empty: the embedded SQLite file
    api_host: str = _setting("API_HOST", "0.0.0.0")
    api_port: int = _setting("API_PORT", 4000, _int, low=1, high=65535)
    log_level: str = _setting("LOG_LEVEL", "INFO", _upper, choices=LOG_LEVELS)
    log_format: str = _setting("LOG_FORMAT", "text", _lower, choices=LOG_FORMATS)
    app_env: str = _setting("APP_ENV", "development", _lower, choices=APP_ENVS)
    jwt_secret_key: str = _setting("JWT_SECRET_KEY", "")
    jwt_access_minutes: int = _setting("JWT_ACCESS_MINUTES", 15, _int, low=1, high=24 * 60)
    jwt_refresh_days: int = _setting("JWT_REFRESH_DAYS", 30, _int, low=1, high=365)
    # scrypt's N = 2**cost. Tests lower it to run fast; the algorithm is the same (not an auth bypass).
    password_hash_cost: int = _setting("PASSWORD_HASH_COST", 15, _int, low=10, high=20)
    default_model: str = _setting("DEFAULT_MODEL", "llama3.1")
    max_content_length: int = _setting("MAX_CONTENT_LENGTH", 1024 * 1024, _int, low=1024, high=64 * 1024 * 1024)
    metrics_token: str = _setting("METRICS_TOKEN", "")
    metrics_host: str = _setting("METRICS_HOST", "")  # empty: API_HOST
    metrics_port: int = _setting("METRICS_PORT", 4001, _int, low=0, high=65535)
    metrics_enabled: bool = _setting("METRICS_ENABLED", True, _bool)  # false: for benchmarking the cost of metrics
    ollama_base_url: str = _setting("OLLAMA_BASE_URL", "http://localhost:11434", _url)
    ollama_models: str = _setting("OLLAMA_MODELS", "")
    openai_base_url: str = _setting("OPENAI_BASE_URL", "", _url)
    openai_api_key: str = _setting("OPENAI_API_KEY", "")
    openai_models: str = _setting("OPENAI_MODELS", "")
    models_file: str = _setting("MODELS_FILE", "")
    provider_connect_timeout: float = _setting("PROVIDER_CONNECT_TIMEOUT", 5.0, _float, low=0.1, high=600)
    provider_read_timeout: float = _setting("PROVIDER_READ_TIMEOUT", 120.0, _float, low=0.1, high=3600)
    provider_total_timeout: float = _setting("PROVIDER_TOTAL_TIMEOUT", 600.0, _float, low=0.1, high=24 * 3600)
    # Attempts per call, over the model's upstreams and then its fallbacks' (0: each of them once).
    provider_max_attempts: int = _setting("PROVIDER_MAX_ATTEMPTS", 0, _int, low=0, high=100)
    # Consecutive failures that eject an upstream (per worker), and how long: doubling on each repeat, up to the max.
    upstream_eject_after: int = _setting("UPSTREAM_EJECT_AFTER", 3, _int, low=1, high=1000)
    upstream_cooldown_seconds: float = _setting("UPSTREAM_COOLDOWN_SECONDS", 10.0, _float, low=0.1, high=3600)
    upstream_max_cooldown_seconds: float = _setting("UPSTREAM_MAX_COOLDOWN_SECONDS", 300.0, _float, low=0.1,
                                                    high=24 * 3600)
    context_token_budget: int = _setting("CONTEXT_TOKEN_BUDGET", 4000, _int, low=100, high=2_000_000)
    # /v1 requests: messages, and characters of content over all of them. 512,000 is ~128k tokens at ~4
    # characters a token, the largest context windows served today: a longer prompt fits no model.
    v1_max_messages: int = _setting("V1_MAX_MESSAGES", 1000, _int, low=1, high=1_000_000)
    v1_max_total_chars: int = _setting("V1_MAX_TOTAL_CHARS", 512_000, _int, low=1000, high=100_000_000)
    # Also how soon a client that left a silent stream is noticed (a write is what finds out), and
    # how long a stream waits for the provider's first event before it starts as a 200.
    heartbeat_seconds: float = _setting("SSE_HEARTBEAT_SECONDS", 0.5, _float, low=0.05, high=300)
    cors_origins: str = _setting("CORS_ORIGINS", "")  # comma-separated origins; empty: no CORS
    hsts_seconds: int = _setting("HSTS_SECONDS", 0, _int, low=0, high=2 * 365 * 24 * 3600)
    registration_open: bool = _setting("REGISTRATION_OPEN", True, _bool)
    rate_limits_enabled: bool = _setting("RATE_LIMITS_ENABLED", True, _bool)
    rate_limit_storage_uri: str = _setting("RATE_LIMIT_STORAGE_URI", "memory://")
    # true: while the storage is unreachable, count in each worker's memory (a limit N workers times looser);
    # false: limited routes (login, sign-up, chat) answer 503 with Retry-After until it is back.
    rate_limit_fail_open: bool = _setting("RATE_LIMIT_FAIL_OPEN", False, _bool)
    rate_limit_login_address: str = _setting("RATE_LIMIT_LOGIN_ADDRESS", "30/minute", _limits)
    rate_limit_login_account: str = _setting("RATE_LIMIT_LOGIN_ACCOUNT", "10/minute;50/hour", _limits)
    rate_limit_register_address: str = _setting("RATE_LIMIT_REGISTER_ADDRESS", "10/hour", _limits)
    rate_limit_chat_user: str = _setting("RATE_LIMIT_CHAT_USER", "60/minute", _limits)
    trusted_proxies: int = _setting("TRUSTED_PROXIES", 0, _int, low=0, high=5)
    db_pool_size: int = _setting("DB_POOL_SIZE", 10, _int, low=1, high=1000)
    db_max_overflow: int = _setting("DB_MAX_OVERFLOW", 10, _int, low=0, high=1000)
    # How long a request waits for a free connection before it gets a 503 with Retry-After.
    db_pool_timeout: float = _setting("DB_POOL_TIMEOUT", 10.0, _float, low=0.01, high=300)
    # Per worker process: chats (whole or streamed) served at once; the next gets a 503.
    chat_max_concurrent: int = _setting("CHAT_MAX_CONCURRENT", 1000, _int, low=1, high=1_000_000)
    # Per worker process: chats in their start (checks and history, up to the provider call) at once; the
    # others wait in line, first in first served, and get a 503 after CHAT_QUEUE_TIMEOUT seconds.
    chat_start_limit: int = _setting("CHAT_START_LIMIT", 32, _int, low=1, high=1_000_000)
    chat_queue_timeout: float = _setting("CHAT_QUEUE_TIMEOUT", 10.0, _float, low=0.01, high=3600)
    # Per user, across workers and instances when the rate-limit storage is Redis: chat streams open at once (0: no cap).
    chat_max_streams_per_user: int = _setting("CHAT_MAX_STREAMS_PER_USER", 8, _int, low=0, high=100_000)
    # What a 503 for lack of capacity tells the client to wait, in seconds.
    retry_after_seconds: int = _setting("RETRY_AFTER_SECONDS", 2, _int, low=1, high=3600)
    # How often each worker checks that every model provider answers (for /health only).
    provider_probe_seconds: float = _setting("PROVIDER_PROBE_SECONDS", 30.0, _float, low=0.1, high=3600)
    # Per-org usage gauges: the K orgs shown by name (the rest are one `other` series), and how
    # often a scrape may recompute them from the database (0: on every scrape).
    usage_metrics_top_orgs: int = _setting("USAGE_METRICS_TOP_ORGS", 20, _int, low=1, high=1000)
    # The same for the per-API-key usage gauges.
    usage_metrics_top_api_keys: int = _setting("USAGE_METRICS_TOP_API_KEYS", 20, _int, low=1, high=1000)
    usage_metrics_refresh_seconds: float = _setting("USAGE_METRICS_REFRESH_SECONDS", 30.0, _float, low=0, high=3600)
    # gunicorn's settings: gunicorn.conf.py only reads these, so a bad value stops the start with one line.
    gunicorn_worker_class: str = _setting("GUNICORN_WORKER_CLASS", "gevent", _lower, choices=WORKER_CLASSES)
    # 0 workers would start a master that serves nothing.
    gunicorn_workers: int = _setting("WEB_CONCURRENCY", 2, _int, low=1, high=256)
    gunicorn_threads: int = _setting("GUNICORN_THREADS", 8, _int, low=1, high=10_000)
    gunicorn_worker_connections: int = _setting("GUNICORN_WORKER_CONNECTIONS", 2000, _int, low=1, high=1_000_000)
    gunicorn_timeout: int = _setting("GUNICORN_TIMEOUT", 60, _int, low=0, high=24 * 3600)
    gunicorn_graceful_timeout: int = _setting("GUNICORN_GRACEFUL_TIMEOUT", 30, _int, low=0, high=24 * 3600)
    # At least 1: 0 would let slow clients hold sockets forever.
    gunicorn_header_timeout: int = _setting("GUNICORN_HEADER_TIMEOUT", 5, _int, low=1, high=3600)
    # Read by the app, not gunicorn: a request's whole body must arrive within this many seconds (else 408),
    # before anything opens a transaction (app/http/bodies.py).
    gunicorn_body_timeout: float = _setting("GUNICORN_BODY_TIMEOUT", 10.0, _float, low=0.1, high=3600)
    gunicorn_max_requests: int = _setting("GUNICORN_MAX_REQUESTS", 0, _int, low=0, high=1_000_000_000)
    gunicorn_max_requests_jitter: int = _setting("GUNICORN_MAX_REQUESTS_JITTER", 0, _int, low=0, high=1_000_000_000)
    gunicorn_preload: bool = _setting("GUNICORN_PRELOAD", True, _bool)
    gunicorn_reuse_port: bool = _setting("GUNICORN_REUSE_PORT", False, _bool)
    # "-" is standard output; set but empty turns the access log off.
    gunicorn_access_log: str = _setting("GUNICORN_ACCESS_LOG", "-", empty="")
    # After SIGTERM: how long /readyz answers 503 while everything is still served, so load balancers
    # stop sending new requests before the listening socket closes.
    drain_delay_seconds: float = _setting("DRAIN_DELAY_SECONDS", 2.0, _float, low=0, high=300)
    # OpenTelemetry traces (app/tracing), under the SDK's own variable names: off unless an endpoint is set.
    otel_endpoint: str = _setting("OTEL_EXPORTER_OTLP_ENDPOINT", "", _http_url)  # the collector; traces go to /v1/traces
    otel_traces_endpoint: str = _setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", _http_url)  # the full URL, first if set
    otel_headers: str = _setting("OTEL_EXPORTER_OTLP_HEADERS", "")  # key=value,... sent with every export
    otel_service_name: str = _setting("OTEL_SERVICE_NAME", "ai-chat-gateway")
    otel_resource_attributes: str = _setting("OTEL_RESOURCE_ATTRIBUTES", "")
    otel_traces_sampler: str = _setting("OTEL_TRACES_SAMPLER", "parentbased_always_on", _lower, choices=TRACE_SAMPLERS)
    otel_traces_sampler_arg: float = _setting("OTEL_TRACES_SAMPLER_ARG", 1.0, _float, low=0, high=1)
    otel_capture_content: bool = _setting("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", False, _bool)

    @property
    def traces_endpoint(self) -> str:
        """Where spans are sent; empty: tracing is off."""
        if self.otel_traces_endpoint:
            return self.otel_traces_endpoint
        return f"{self.otel_endpoint}/v1/traces" if self.otel_endpoint else ""

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        """Read every setting from the environment; raise ConfigError on a bad value."""
        env = os.environ if environ is None else environ
        values = {}
        for spec in fields(cls):
            name, raw = spec.metadata["env"], env.get(spec.metadata["env"], "").strip()
            if raw:
                values[spec.name] = _parse(name, raw, spec.metadata)
            elif name in env and "empty" in spec.metadata:
                values[spec.name] = spec.metadata["empty"]
            else:
                values[spec.name] = spec.default
        values["database_url"] = _database_url(values["database_url"])
        values["metrics_host"] = values["metrics_host"] or values["api_host"]
        values["jwt_secret_key"] = _jwt_secret(values["app_env"], values["jwt_secret_key"])
        settings = cls(**values)
        if settings.app_env == "production" and settings.metrics_token and len(settings.metrics_token) < 16:
            raise ConfigError("METRICS_TOKEN must be at least 16 characters in production")
        if settings.app_env == "production" and settings.password_hash_cost < 14:
            raise ConfigError("PASSWORD_HASH_COST must be at least 14 in production")
        return settings

    def as_flask_config(self) -> dict:
        """Upper-case keys for app.config, plus the settings object itself."""
        config = {f.name.upper(): getattr(self, f.name) for f in fields(self)}
        config["SETTINGS"] = self
        return config


def _jwt_secret(app_env: str, value: str) -> str:
    if app_env == "production":
        if not value:
            raise ConfigError("JWT_SECRET_KEY is required when APP_ENV=production")
        if len(value.encode()) < MIN_SECRET_BYTES or value.lower() in PLACEHOLDER_SECRETS:
            raise ConfigError(f"JWT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes of real secret in production")
        return value
    if value:
        return value
    # Each worker would otherwise invent its own key and reject its siblings' tokens,
    # so the gunicorn config exports one generated key before forking.
    log.warning("JWT_SECRET_KEY is not set: using a random key, tokens will not survive a restart")
    return secrets.token_urlsafe(48)
