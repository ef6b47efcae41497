"""Checks the gunicorn master runs before anything starts, and the one line it logs once it is ready.

Each failure is a StartupError whose message is one line naming the setting
to fix; gunicorn.conf.py prints it and exits non-zero, before any worker exists.
"""
from __future__ import annotations

import socket
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..config import ConfigError, Settings
from ..llm import Catalogue
from ..llm.reach import answers, without_credentials

DATABASE_CONNECT_TIMEOUT = 5
READY_CHECK_SECONDS = 2.0


class StartupError(ConfigError):
    """The gateway cannot start; the message names the setting to change."""


def check_port(setting: str, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Bind and release the port the way gunicorn will, so a clash is named before gunicorn retries it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(f"{setting}={port}: cannot listen on {host}:{port} ({exc.strerror}); "
                               f"another program holds it, or choose another {setting}") from None


def check_database(url: str) -> None:
    if url.startswith("sqlite"):
        return  # a file the migration creates, with its directory, if it is not there yet
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": DATABASE_CONNECT_TIMEOUT})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StartupError(f"DATABASE_URL: cannot connect to {describe_database(url)}: {reason}") from None
    finally:
        engine.dispose()


def describe_database(url: str) -> str:
    """The database's kind and place, never its credentials."""
    parsed = make_url(url)
    kind = parsed.get_backend_name()
    if kind == "sqlite":
        return f"sqlite {parsed.database}"
    return f"{kind} {parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"


def summary(settings: Settings, catalogue: Catalogue, *, workers: int, worker_class: str,
            unanswered: str | None = None) -> str:
    """The ready line; `unanswered` (from default_model_unanswered) ends it with its warning."""
    metrics = (f"http://{settings.metrics_host}:{settings.metrics_port}/metrics" if settings.metrics_port
               else "off (METRICS_PORT=0)")
    models = ", ".join(f"{spec.name} ({spec.provider})" for spec in catalogue)
    line = (f"gateway ready: API http://{settings.api_host}:{settings.api_port}, metrics {metrics}, "
            f"database {describe_database(settings.database_url)}, models {models}, "
            f"default {catalogue.default_model}, {workers} {worker_class} workers, log format {settings.log_format}")
    return f"{line}; WARNING: {unanswered}" if unanswered else line


def default_model_unanswered(catalogue: Catalogue) -> str | None:
    """None when an upstream of the default model answers; else what to tell whoever just started the gateway.

    Asked once, before the workers start, within the model's connect timeout
    and at most READY_CHECK_SECONDS: a server away costs the start that long. The
    check runs in a thread given that long, as a name lookup obeys no timeout.
    """
    spec = catalogue.resolve(None)
    upstreams = [route.base_url for route in spec.routes]
    timeout = min(spec.timeouts.connect, READY_CHECK_SECONDS)
    found: list[bool] = []
    check = threading.Thread(target=lambda: found.append(any(answers(url, timeout) for url in upstreams)),
                             name="ready-check", daemon=True)
    check.start()
    check.join(READY_CHECK_SECONDS + 1)
    if found and found[0]:
        return None
    where = ", ".join(f"{spec.provider} at {without_credentials(url)}" for url in upstreams)
    return (f"no upstream of the default model {spec.name} answers ({where}); its chats fail with 502 "
            "until one does, and GET /health shows each model server's state")
