"""Typed settings read from the environment and validated at start-up."""
import logging
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

APP_ENVS = ("development", "production", "test")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Secrets that must never reach production, whatever their length.
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development"}
MIN_SECRET_BYTES = 32

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting has a value the gateway cannot start with."""


def default_database_url() -> str:
    return f"sqlite:///{Path('instance').resolve() / 'gateway.db'}"


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    api_host: str = "0.0.0.0"
    api_port: int = 4000
    log_level: str = "INFO"
    app_env: str = "development"
    jwt_secret_key: str = ""
    jwt_access_minutes: int = 15
    jwt_refresh_days: int = 30
    default_model: str = "llama3.1"
    max_content_length: int = 1024 * 1024
    metrics_token: str = ""
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 4001
    ollama_base_url: str = "http://localhost:11434"
    ollama_models: str = ""
    openai_base_url: str = ""
    openai_api_key: str = ""
    openai_models: str = ""
    models_file: str = ""
    provider_connect_timeout: float = 5.0
    provider_read_timeout: float = 120.0
    context_token_budget: int = 4000
    heartbeat_seconds: float = 10.0
    # Per worker process: connections kept open, extra ones opened under load, and
    # how long a request waits for a free one before it gets a 503 with Retry-After.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: float = 10.0
    # Per worker process: chats (whole or streamed) served at once; the next gets a 503.
    chat_max_concurrent: int = 1000
    # What a 503 for lack of capacity tells the client to wait, in seconds.
    retry_after_seconds: int = 2

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        """Read every setting from the environment; raise ConfigError on a bad value."""
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        app_env = get("APP_ENV", "development").lower()
        if app_env not in APP_ENVS:
            raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVS)}, got {app_env!r}")
        log_level = get("LOG_LEVEL", "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        database_url = get("DATABASE_URL") or default_database_url()
        if not database_url.startswith(("sqlite", "postgresql", "postgres://")):
            raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        # SQLAlchemy 2.1 defaults to psycopg 3; the gateway ships psycopg2.
        for scheme in ("postgres://", "postgresql://"):
            if database_url.startswith(scheme):
                database_url = "postgresql+psycopg2://" + database_url[len(scheme):]
        settings = cls(
            database_url=database_url,
            api_host=get("API_HOST", "0.0.0.0"),
            api_port=_int("API_PORT", get("API_PORT", "4000"), 1, 65535),
            log_level=log_level,
            app_env=app_env,
            jwt_secret_key=_jwt_secret(app_env, get("JWT_SECRET_KEY")),
            jwt_access_minutes=_int("JWT_ACCESS_MINUTES", get("JWT_ACCESS_MINUTES", "15"), 1, 24 * 60),
            jwt_refresh_days=_int("JWT_REFRESH_DAYS", get("JWT_REFRESH_DAYS", "30"), 1, 365),
            default_model=get("DEFAULT_MODEL", "llama3.1") or "llama3.1",
            max_content_length=_int("MAX_CONTENT_LENGTH", get("MAX_CONTENT_LENGTH", str(1024 * 1024)), 1024, 64 * 1024 * 1024),
            metrics_token=get("METRICS_TOKEN"),
            metrics_host=get("METRICS_HOST") or get("API_HOST", "0.0.0.0"),
            metrics_port=_int("METRICS_PORT", get("METRICS_PORT", "4001"), 0, 65535),
            ollama_base_url=get("OLLAMA_BASE_URL", "http://localhost:11434").rstrip("/"),
            ollama_models=get("OLLAMA_MODELS"),
            openai_base_url=get("OPENAI_BASE_URL").rstrip("/"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_models=get("OPENAI_MODELS"),
            models_file=get("MODELS_FILE"),
            provider_connect_timeout=_float("PROVIDER_CONNECT_TIMEOUT", get("PROVIDER_CONNECT_TIMEOUT", "5"), 0.1, 600),
            provider_read_timeout=_float("PROVIDER_READ_TIMEOUT", get("PROVIDER_READ_TIMEOUT", "120"), 0.1, 3600),
            context_token_budget=_int("CONTEXT_TOKEN_BUDGET", get("CONTEXT_TOKEN_BUDGET", "4000"), 100, 2_000_000),
            heartbeat_seconds=_float("SSE_HEARTBEAT_SECONDS", get("SSE_HEARTBEAT_SECONDS", "10"), 0.05, 300),
            db_pool_size=_int("DB_POOL_SIZE", get("DB_POOL_SIZE", "10"), 1, 1000),
            db_max_overflow=_int("DB_MAX_OVERFLOW", get("DB_MAX_OVERFLOW", "10"), 0, 1000),
            db_pool_timeout=_float("DB_POOL_TIMEOUT", get("DB_POOL_TIMEOUT", "10"), 0.01, 300),
            chat_max_concurrent=_int("CHAT_MAX_CONCURRENT", get("CHAT_MAX_CONCURRENT", "1000"), 1, 1_000_000),
            retry_after_seconds=_int("RETRY_AFTER_SECONDS", get("RETRY_AFTER_SECONDS", "2"), 1, 3600),
        )
        if app_env == "production" and settings.metrics_token and len(settings.metrics_token) < 16:
            raise ConfigError("METRICS_TOKEN must be at least 16 characters in production")
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
