"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` needs no other flags or variables.

The master validates the settings, migrates the database once (before any
worker exists), and owns the metrics plumbing shared by all workers.
"""
import gc
import os

# gevent must patch the standard library before anything imports ssl, socket,
# threading, requests or urllib3 from this process: with preload_app the app is
# imported here in the master, and the workers inherit it already imported.
# Patching later (as the gevent worker does after the fork) leaves modules
# holding the unpatched classes they imported. psycogreen makes psycopg2 yield
# to other greenlets while it waits on PostgreSQL instead of blocking the worker.
# Settings parses GUNICORN_WORKER_CLASS (below, with every other setting); importing it now would
# import the app before the patch, so this peek only decides whether to patch, the same way it parses.
PATCHED_FOR_GEVENT = (os.environ.get("GUNICORN_WORKER_CLASS", "").strip().lower() or "gevent") == "gevent"
if PATCHED_FOR_GEVENT:
    import gevent
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

import logging  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

# Before anything imports prometheus_client: it picks multiprocess mode at import
# time from this variable, and workers inherit the master's environment.
OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]
os.makedirs(METRICS_DIR, exist_ok=True)

from app import logs, tracing  # noqa: E402
from app.boot import draining, preflight  # noqa: E402
from app.config import ConfigError, Settings  # noqa: E402
from app.llm import load_catalogue  # noqa: E402
from app.metrics import multiprocess as metrics_dir  # noqa: E402

# Start from zero, once per master: files of an earlier run would be summed into
# this one. Not again when SIGHUP re-reads this file, or counters would go backwards.
FIRST_LOAD = os.environ.get("GATEWAY_METRICS_MASTER") != str(os.getpid())
if FIRST_LOAD:
    os.environ["GATEWAY_METRICS_MASTER"] = str(os.getpid())
    metrics_dir.wipe(METRICS_DIR)

GENERATED_JWT_SECRET = (os.environ.get("APP_ENV", "development").strip().lower() != "production"
                        and not os.environ.get("JWT_SECRET_KEY"))
if GENERATED_JWT_SECRET:
    # One generated key for every worker, or each would reject its siblings' tokens.
    os.environ["JWT_SECRET_KEY"] = secrets.token_urlsafe(48)

try:
    settings = Settings.from_env()
    catalogue = load_catalogue(settings)
    if FIRST_LOAD:  # not again on SIGHUP: the ports are ours by then
        preflight.check_port("API_PORT", settings.api_host, settings.api_port, reuse_port=settings.gunicorn_reuse_port)
        if settings.metrics_port:
            preflight.check_port("METRICS_PORT", settings.metrics_host, settings.metrics_port)
        preflight.check_database(settings.database_url)
except ConfigError as exc:
    # One line naming the setting, instead of gunicorn's traceback around it.
    sys.stderr.write(f"gateway: cannot start: {exc}\n")
    if OWN_METRICS_DIR:
        metrics_dir.remove(METRICS_DIR)
    sys.exit(1)

logs.configure(settings.log_format, settings.log_level, traced=bool(settings.traces_endpoint))
logger_class = "app.logs.GunicornLogger"
access_log_format = logs.ACCESS_LOG_FORMAT
if GENERATED_JWT_SECRET:
    logging.getLogger("gunicorn.error").warning(
        "JWT_SECRET_KEY is not set: generated one for this run (development only; tokens die with the server)"
    )

bind = f"{settings.api_host}:{settings.api_port}"
worker_class = settings.gunicorn_worker_class
workers = settings.gunicorn_workers
# gthread only: requests one worker serves at once. gevent ignores it.
threads = settings.gunicorn_threads
# gevent only: open connections (streams, idle keep-alives, slow clients) per worker.
worker_connections = settings.gunicorn_worker_connections
# The worker heartbeats from its own loop (a thread, or a greenlet), so a long stream never trips this.
timeout = settings.gunicorn_timeout
# A stopping worker's open streams may run this long (app/draining.py); those still open then end
# with an `error` event. gunicorn kills the worker STOP_MARGIN_SECONDS later: time for those last
# events to be written and the partial replies stored.
stream_grace_seconds = settings.gunicorn_graceful_timeout
STOP_MARGIN_SECONDS = 5
graceful_timeout = stream_grace_seconds + STOP_MARGIN_SECONDS
# Under gevent this is also the request-header timeout: gunicorn reads every
# request's line and headers (the first one too) under a gevent.Timeout of this
# many seconds and closes the connection when it expires, so a client sending
# headers at 1 byte/s holds a socket for at most this long.
keepalive = settings.gunicorn_header_timeout
# gunicorn's largest request line (its default is 4094): a cursor or period percent-encoded from multi-byte
# characters can pass 4 KiB, and the app then answers it with a JSON 400 instead of gunicorn's HTML 414.
limit_request_line = 8190
# Workers fork from a master that has already imported and built the app: a
# recycled worker (max_requests) is serving again in milliseconds, not a second.
preload_app = settings.gunicorn_preload
max_requests = settings.gunicorn_max_requests
max_requests_jitter = settings.gunicorn_max_requests_jitter
# Each worker gets its own listening socket and the kernel spreads new connections
# evenly over them; with one shared socket under gevent, whichever worker wakes
# first takes most of a burst. Off by default: see docs/performance.md before turning it on.
reuse_port = settings.gunicorn_reuse_port
# Several gateways (and test servers) may run side by side; none needs the control socket.
control_socket_disable = True
# Empty turns the access log off (a load test would otherwise write a line per request).
accesslog = settings.gunicorn_access_log or None
loglevel = settings.log_level.lower()


draining.share()  # before the first fork: every worker must see the master's "draining" at once


def on_starting(server):
    from app.migrate import describe, upgrade

    server.log.info(describe(*upgrade(settings.database_url)))


def post_fork(server, worker):
    # With preload_app the engine was built in the master: drop any pooled
    # connection it may hold, so no two workers ever share a database socket.
    app = getattr(server.app, "callable", None)
    if app is not None:
        app.extensions["db_engine"].dispose(close=False)


def when_ready(server):
    # Once, before the first fork: keep the preloaded heap out of the garbage collector.
    # A collection in a forked worker, or at its exit, touches every object and copies
    # every page, which made a worker recycle take ~300 ms instead of ~50 ms. Objects
    # the master creates later stay collectable.
    gc.freeze()
    if PATCHED_FOR_GEVENT:
        # Let greenlets the preloaded app started (the in-memory rate-limit storage's expiry Timer)
        # finish here: one still pending at the fork runs in each worker and dies there with a
        # KeyError traceback on stderr, outside every log format.
        gevent.sleep(0.05)
    if settings.metrics_port and settings.metrics_enabled:
        from app.metrics.exposition import serve_from_master
        from app.metrics.usage import collector_for

        serve_from_master(settings.metrics_host, settings.metrics_port, settings.metrics_token, collector_for(settings))
    unanswered = preflight.default_model_unanswered(catalogue)
    ready = preflight.summary(settings, catalogue, workers=workers, worker_class=worker_class, unanswered=unanswered)
    (server.log.warning if unanswered else server.log.info)(ready)
    server.handle_term = lambda: drain_then_stop(server)


def drain_then_stop(server):
    """SIGTERM: not ready at once, still serving for DRAIN_DELAY_SECONDS, then gunicorn's graceful stop."""
    draining.start()
    server.log.info("SIGTERM: draining (/readyz answers 503); accepting new connections for %.1f s more",
                    settings.drain_delay_seconds)
    time.sleep(settings.drain_delay_seconds)
    raise StopIteration  # what gunicorn's own handler does: close the listeners, SIGTERM the workers, wait


def post_worker_init(worker):
    # The tracer provider and its export thread, in this worker (never the master: threads do not survive fork).
    tracing.start_worker()
    # The provider probe runs from each worker's start, so its first /health already knows what answers.
    from app.health.probe import probe_for

    probe_for(worker.wsgi).start()
    # SIGTERM reaches a worker at the end of the drain delay, or when a HUP reload replaces it:
    # its streams' grace starts then, and gunicorn's own handler stops the worker accepting.
    stop = signal.getsignal(signal.SIGTERM)

    def stopping(signum, frame):
        draining.worker_stopping(stream_grace_seconds)
        stop(signum, frame)

    signal.signal(signal.SIGTERM, stopping)


def worker_exit(server, worker):
    # A graceful exit (SIGTERM, max_requests, HUP): the spans of the requests it finished are exported first.
    tracing.shutdown()


def child_exit(server, worker):
    # Never raises: a bad metrics file is logged and set aside, the master lives on.
    metrics_dir.fold_dead_worker(worker.pid, METRICS_DIR)


def on_exit(server):
    if OWN_METRICS_DIR:
        metrics_dir.remove(METRICS_DIR)
