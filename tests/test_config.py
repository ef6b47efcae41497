import pytest

from app.config import ConfigError, Settings

STRONG = "s" * 40


def test_defaults_run_on_embedded_sqlite():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("instance/gateway.db")
    assert (settings.api_host, settings.api_port, settings.default_model) == ("0.0.0.0", 4000, "llama3.1")
    assert settings.app_env == "development" and len(settings.jwt_secret_key) >= 32


def test_postgres_urls_use_the_shipped_driver():
    assert Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"API_PORT": "eighty"}, "API_PORT must be an integer"),
        ({"API_PORT": "70000"}, "API_PORT must be between"),
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be"),
        ({"APP_ENV": "production"}, "JWT_SECRET_KEY is required"),
        ({"APP_ENV": "production", "JWT_SECRET_KEY": "too-short"}, "at least 32 bytes"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE must be between"),
        ({"DB_POOL_TIMEOUT": "forever"}, "DB_POOL_TIMEOUT must be a number"),
        ({"CHAT_MAX_CONCURRENT": "0"}, "CHAT_MAX_CONCURRENT must be between"),
        ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY must be an integer"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be between 1 and"),
        ({"GUNICORN_THREADS": "x"}, "GUNICORN_THREADS must be an integer"),
        ({"GUNICORN_MAX_REQUESTS": "abc"}, "GUNICORN_MAX_REQUESTS must be an integer"),
        ({"GUNICORN_MAX_REQUESTS_JITTER": "-1"}, "GUNICORN_MAX_REQUESTS_JITTER must be between"),
        ({"GUNICORN_GRACEFUL_TIMEOUT": "soon"}, "GUNICORN_GRACEFUL_TIMEOUT must be an integer"),
        ({"GUNICORN_HEADER_TIMEOUT": "0"}, "GUNICORN_HEADER_TIMEOUT must be between 1 and"),
        ({"GUNICORN_WORKER_CLASS": "sync"}, "GUNICORN_WORKER_CLASS must be one of gevent, gthread, got 'sync'"),
        ({"GUNICORN_PRELOAD": "maybe"}, "GUNICORN_PRELOAD must be true or false, got 'maybe'"),
        ({"GUNICORN_REUSE_PORT": "on"}, "GUNICORN_REUSE_PORT must be true or false"),
        ({"REGISTRATION_OPEN": "closed"}, "REGISTRATION_OPEN must be true or false"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https://"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER must be one of always_on"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG must be between 0 and 1"),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "yes please"}, "must be true or false"),
    ],
)
def test_bad_values_stop_start_up_with_a_clear_message(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize("env, endpoint", [
    ({}, ""),  # tracing off
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://vendor.example/otlp/traces"}, "https://vendor.example/otlp/traces"),
])
def test_the_traces_endpoint_is_the_specific_one_or_the_base_one_with_its_path(env, endpoint):
    assert Settings.from_env(env).traces_endpoint == endpoint


def test_gunicorn_settings_are_typed_with_their_defaults():
    settings = Settings.from_env({})
    assert (settings.gunicorn_worker_class, settings.gunicorn_workers, settings.gunicorn_threads) == ("gevent", 2, 8)
    assert (settings.gunicorn_preload, settings.gunicorn_reuse_port, settings.gunicorn_access_log) == (True, False, "-")
    parsed = Settings.from_env({"GUNICORN_WORKER_CLASS": " GThread ", "GUNICORN_PRELOAD": "no",
                                "GUNICORN_REUSE_PORT": "1", "WEB_CONCURRENCY": "4"})
    assert (parsed.gunicorn_worker_class, parsed.gunicorn_workers) == ("gthread", 4)
    assert (parsed.gunicorn_preload, parsed.gunicorn_reuse_port) == (False, True)


def test_an_empty_access_log_variable_turns_it_off_and_an_unset_one_keeps_stdout():
    assert Settings.from_env({"GUNICORN_ACCESS_LOG": ""}).gunicorn_access_log == ""
    assert Settings.from_env({"GUNICORN_ACCESS_LOG": "/var/log/gw.log"}).gunicorn_access_log == "/var/log/gw.log"
    # Elsewhere an empty variable still means the default.
    assert Settings.from_env({"API_PORT": ""}).api_port == 4000


def test_production_accepts_a_real_secret():
    settings = Settings.from_env({"APP_ENV": "production", "JWT_SECRET_KEY": STRONG})
    assert settings.jwt_secret_key == STRONG


@pytest.mark.slow
def test_gunicorn_refuses_to_start_with_a_bad_setting(tmp_path):
    import subprocess
    import sys

    from tests.support.servers import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "APP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}, timeout=60,
    )
    assert result.returncode != 0
    assert "JWT_SECRET_KEY is required when APP_ENV=production" in result.stderr
