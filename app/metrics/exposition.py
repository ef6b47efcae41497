"""What a scrape sees, on the API port (through prometheus-flask-exporter) and on the master's own listener."""
import hmac
import importlib
import json
import os
from functools import wraps
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import request
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.registry import Collector
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from ..errors import error_body, error_response
from .collector import LockedMultiProcessCollector
from .multiprocess import directory
from .process import GunicornProcessCollector
from .usage import UsageCollector, collector_for

UNAUTHORIZED = ("unauthorized", "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>")
NOT_ON_API_PORT = ("metrics_not_served", "In production /metrics on the API port needs METRICS_TOKEN; "
                   "scrape the metrics port (METRICS_PORT) instead")


def build_registry(master_pid_getter, usage: UsageCollector | None = None) -> CollectorRegistry:
    """All workers' files plus per-process metrics (the default registry outside gunicorn), and usage."""
    path = directory()
    registry = CollectorRegistry(support_collectors_without_names=True)
    if path is None:
        if usage is None:
            return REGISTRY
        # The default registry is shared by every app of a process; this app's usage is its own.
        registry.register(_Delegate(REGISTRY))
    else:
        LockedMultiProcessCollector(registry, path)
        registry.register(GunicornProcessCollector(master_pid_getter))
    if usage is not None:
        registry.register(usage)
    return registry


class _Delegate(Collector):
    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self):
        return self._registry.collect()


def authorized(header: str | None, token: str) -> bool:
    if not token:
        return True
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def token_required(token: str, *, production: bool = False):
    """The metrics_decorator for prometheus-flask-exporter: open when no token is configured, outside production.

    In production the API port is the public one (behind the load balancer), so
    without a token there is no way to tell a scraper from anyone: 404, and
    the master's metrics port, which is not published, is the scrape path.
    """

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if production and not token:
                return error_response(404, *NOT_ON_API_PORT)
            if not authorized(request.headers.get("Authorization"), token):
                return error_response(401, *UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
            return view(*args, **kwargs)

        return guarded

    return decorate


class _ScrapeFromRegistry:
    """prometheus-flask-exporter serves the endpoint; the registry is ours (locked, with process metrics)."""

    registry_for_scrape: CollectorRegistry

    def generate_metrics(self, accept_header=None, names=None):
        registry = self.registry_for_scrape
        if names:
            registry = registry.restricted_registry(names)
        encoder, content_type = choose_encoder(accept_header)
        return encoder(registry).decode("utf-8"), content_type


class MultiprocessExporter(_ScrapeFromRegistry, GunicornInternalPrometheusMetrics):
    pass


class SingleProcessExporter(_ScrapeFromRegistry, PrometheusMetrics):
    pass


def exporter_for(app, token: str, *, production: bool = False):
    """The /metrics endpoint on the API port, in gunicorn multiprocess mode when under gunicorn."""
    cls = MultiprocessExporter if directory() else SingleProcessExporter
    exporter = cls.for_app_factory(path="/metrics", export_defaults=False,
                                   metrics_decorator=token_required(token, production=production))
    exporter.registry_for_scrape = build_registry(os.getppid, collector_for(app.config["SETTINGS"]))
    exporter.init_app(app)
    return exporter


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve_from_master(host: str, port: int, token: str, usage: UsageCollector | None = None) -> None:
    """A listener in the gunicorn master: answers even when every worker is busy.

    The master forks workers (at start, after a crash, at every max_requests
    recycle) while this listener may be in the middle of a scrape. A lock that
    native code holds at that instant (SQLite's own mutexes, while the usage
    query opens its connection) stays locked in the new worker for ever, and
    that worker's first database access hangs. So a fork waits for the scrape
    in progress (at most the usage query's DB_TIMEOUT_SECONDS), and a scrape
    never starts during a fork.
    """
    metrics_app = make_wsgi_app(build_registry(os.getpid, usage))
    body = json.dumps(error_body(*UNAUTHORIZED)).encode()
    fork_guard = _original("_thread", "allocate_lock")()
    os.register_at_fork(before=fork_guard.acquire, after_in_parent=fork_guard.release,
                        after_in_child=fork_guard.release)

    def guarded(environ, start_response):
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")])
            return [body]
        with fork_guard:
            return metrics_app(environ, start_response)  # the whole body, built here: a list of one bytes

    # The server is built inside the thread that serves it: under gevent a socket
    # belongs to the event loop of the thread that created it. The pipe reports
    # whether it could bind, so a taken port still stops the master with the reason.
    ready_read, ready_write = os.pipe()

    def serve() -> None:
        try:
            server = make_server(host, port, guarded, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            os.write(ready_write, f"cannot listen on {host}:{port}: {exc.strerror}".encode())
            raise
        os.write(ready_write, b"ok")
        server.serve_forever()

    _start_os_thread(serve)
    answer = os.read(ready_read, 512).decode()
    os.close(ready_read)
    os.close(ready_write)
    if answer != "ok":
        raise OSError(answer)


def _start_os_thread(target) -> None:
    """Start `target` in a real OS thread, even when gevent has patched threading.

    A patched Thread is a greenlet, and greenlets are copied into every worker the
    master forks: each worker would then also answer on the master's metrics port,
    reporting itself as the master. An OS thread does not survive fork().
    """
    _original("_thread", "start_new_thread")(target, ())


def _original(module: str, name: str):
    """`module.name` as the standard library defines it, even when gevent has patched it."""
    try:
        from gevent import monkey
    except ImportError:
        return getattr(importlib.import_module(module), name)
    return monkey.get_original(module, name)  # the current one when nothing patched it
