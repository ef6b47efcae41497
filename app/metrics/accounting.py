"""HTTP request metrics, recorded once per request when its last byte has gone (or the client has)."""
import time

from flask import request
from werkzeug.wsgi import ClosingIterator

from .definitions import HTTP_IN_FLIGHT, HTTP_REQUEST_DURATION, HTTP_REQUESTS, UNMATCHED_ROUTE

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


ROUTE_KEY = "gateway.route"


def remember_route(sender, **extra) -> None:
    """On request_started: note the URL rule template Flask matched, for the middleware to read at the end.

    Flask drops the request from the environ when its context pops, which
    happens before a streamed response ends, so the template is copied here.
    """
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Wraps the WSGI app so streamed responses are timed to their end, not to when the view returned.

    prometheus-flask-exporter's own timing stops when the response object is
    built; this closes the books in the response iterable's close(), which the
    server calls after the last byte or when the client goes away.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status = {"code": "500"}

        def recording_start_response(status_line, headers, exc_info=None):
            status["code"] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        finished = []

        def finish():
            if finished:
                return
            finished.append(True)
            method = environ.get("REQUEST_METHOD", "GET").upper()
            labels = (method if method in KNOWN_METHODS else "OTHER", environ.get(ROUTE_KEY, UNMATCHED_ROUTE), status["code"])
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)
            HTTP_IN_FLIGHT.dec()

        HTTP_IN_FLIGHT.inc()
        try:
            body = self.wsgi_app(environ, recording_start_response)
        except BaseException:
            finish()
            raise
        return ClosingIterator(body, finish)
