"""Wiring metrics into an app: request accounting around the WSGI app, and /metrics."""
import platform

from flask import Flask, request_started

from ..version import __version__
from .accounting import RequestMetricsMiddleware, remember_route
from .definitions import BUILD_INFO
from .exposition import exporter_for


def init_app(app: Flask) -> None:
    # METRICS_ENABLED=false exists to measure what the instrumentation costs: no
    # accounting, no /metrics. (The chat's overhead header and meta are the chat's: app/chat/overhead.py.)
    if app.config["METRICS_ENABLED"]:
        app.wsgi_app = RequestMetricsMiddleware(app.wsgi_app)
        request_started.connect(remember_route, app)
        exporter_for(app, app.config["METRICS_TOKEN"], production=app.config["APP_ENV"] == "production")
        BUILD_INFO.labels(__version__, platform.python_version()).set(1)
