"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` needs no other flags or variables.

The master validates the settings, migrates the database once (before any
worker exists), and owns the metrics plumbing shared by all workers.
"""
import logging
import os
import secrets

from app.config import Settings

if os.environ.get("APP_ENV", "development").strip().lower() != "production" and not os.environ.get("JWT_SECRET_KEY"):
    # One generated key for every worker, or each would reject its siblings' tokens.
    os.environ["JWT_SECRET_KEY"] = secrets.token_urlsafe(48)
    logging.getLogger("gunicorn.error").warning(
        "JWT_SECRET_KEY is not set: generated one for this run (development only; tokens die with the server)"
    )

settings = Settings.from_env()  # a bad value stops the master here, with the reason

bind = f"{settings.api_host}:{settings.api_port}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# With gthread the worker heartbeats from its main thread, so a long stream never trips this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Several gateways (and test servers) may run side by side; none needs the control socket.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
loglevel = settings.log_level.lower()


def on_starting(server):
    from app.migrate import upgrade

    before, after = upgrade(settings.database_url)
    if before == after:
        server.log.info("database schema already at %s: nothing to migrate", after)
    else:
        server.log.info("database schema migrated from %s to %s", before or "empty", after)
