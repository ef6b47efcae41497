"""The AI chat gateway: create_app() builds the Flask application."""
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from flask import Flask

from .config import Settings
from .version import __version__


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app; `config` overrides environment variables (same names, same validation)."""
    settings = Settings.from_env({**os.environ, **(config or {})})
    app = Flask(__name__, static_folder=None)
    app.config.update(settings.as_flask_config())
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=settings.jwt_access_minutes)
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=settings.jwt_refresh_days)
    configure_logging(app)
    register_api_docs(app)
    register_extensions(app)
    register_error_handlers(app)
    register_security(app)
    register_limits(app)
    register_blueprints(app)
    register_commands(app)
    register_liveness_edge(app)
    register_metrics(app)
    register_tracing(app)
    register_overhead_clock(app)
    return app


def configure_logging(app: Flask) -> None:
    from . import logs

    settings = app.config["SETTINGS"]
    logs.configure(settings.log_format, settings.log_level, traced=bool(settings.traces_endpoint))
    logs.init_app(app)


def register_api_docs(app: Flask) -> None:
    app.config.update(
        API_TITLE="AI Chat Gateway",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": (
            "Every error is `{\"error\": {\"code\", \"message\", \"details\"}}` (OpenAI's error shape under /v1), "
            "and each operation lists the statuses it can return. Bodies are strict JSON: duplicate keys, NUL "
            "characters (in any text, and in URLs) and lone surrogates are refused with 400.")}},
    )


def register_extensions(app: Flask) -> None:
    from . import db, llm, upstreams
    from .admission import chat_cap, stream_cap
    from .auth import tokens
    from .extensions import api
    from .http.openapi import MarshmallowPlugin
    from .http.schemas import ErrorSchema

    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        Path(app.config["DATABASE_URL"][len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    chat_cap.init_app(app)
    stream_cap.init_app(app)
    tokens.init_app(app)
    llm.init_app(app)
    upstreams.init_app(app)
    # No catch-all `default` response: every operation lists its own errors (http.openapi.Blueprint), in our contract.
    api.DEFAULT_ERROR_RESPONSE_NAME, api.ERROR_SCHEMA = None, ErrorSchema
    model_names = [spec.name for spec in app.extensions["llm"].catalogue]
    api.init_app(app, spec_kwargs={"marshmallow_plugin": MarshmallowPlugin(model_names)})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})


def register_error_handlers(app: Flask) -> None:
    from . import errors
    from .http import bodies

    bodies.init_app(app)  # before routing: what every body and URL must be, or an error from the handlers
    errors.init_app(app)


def register_security(app: Flask) -> None:
    from .http import security

    security.init_app(app)


def register_limits(app: Flask) -> None:
    from .admission import rate_limits

    rate_limits.init_app(app)


def register_commands(app: Flask) -> None:
    from . import cli

    cli.init_app(app)


def register_blueprints(app: Flask) -> None:
    from .apikeys.routes import bp as apikeys_bp
    from .auth.routes import bp as auth_bp
    from .chat.routes import bp as chat_bp
    from .conversations.routes import bp as conversations_bp
    from .docs.routes import bp as docs_bp
    from .extensions import api
    from .health.routes import bp as health_bp
    from .orgs.routes import bp as orgs_bp
    from .usage.routes import bp as usage_bp
    from .v1.routes import bp as v1_bp
    from .web.routes import bp as web_bp

    for bp in (health_bp, auth_bp, orgs_bp, usage_bp, apikeys_bp, conversations_bp, chat_bp, v1_bp):
        api.register_blueprint(bp)
    app.register_blueprint(docs_bp)  # the Swagger UI page: not part of the API it documents
    app.register_blueprint(web_bp)  # the chat page: a client of the API, not part of it


def register_liveness_edge(app: Flask) -> None:
    from .health.edge import LivenessEdge

    # Inside the metrics and tracing layers (installed after it), so the probe is still counted and traced.
    app.wsgi_app = LivenessEdge(app.wsgi_app, hsts_seconds=app.config["SETTINGS"].hsts_seconds)


def register_metrics(app: Flask) -> None:
    from .metrics import instrument

    instrument.init_app(app)


def register_tracing(app: Flask) -> None:
    from . import tracing

    tracing.init_app(app)  # nothing at all unless an OTLP endpoint is set


def register_overhead_clock(app: Flask) -> None:
    from .chat import overhead

    overhead.init_app(app)  # the outermost WSGI layer: it must come after every other one
