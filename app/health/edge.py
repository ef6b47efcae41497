"""`GET /livez` answered before Flask: the probe costs about what a bare hello does.

A liveness probe's answer never changes, yet through Flask it paid for every
request's machinery (a request context, URL matching, the body and request-id
hooks, the security headers, the response object): twice a bare Flask hello's
CPU, measured under gunicorn. Orchestrators probe every instance every few
seconds, and during a burst the probe is what must still answer quickly.

So the one plain case, GET or HEAD of exactly `/livez` without an `Origin`,
is answered here with the bytes and headers Flask would send (security
headers, `Cache-Control`, the request id echoed or made). It sits inside the
request metrics and tracing layers, so it is counted and traced as before,
under the same route label and span name.
Every other request, `/livez` with another method or a CORS `Origin` included,
goes to Flask unchanged, and the route stays there for the API document.
"""
from __future__ import annotations

from ..http import request_id
from ..http.security import default_headers
from ..metrics.accounting import ROUTE_KEY
from ..tracing import name_by_route
from .routes import LIVE_BODY

PATH = "/livez"
BODY = LIVE_BODY.encode()


class LivenessEdge:
    """Wraps the Flask WSGI app; answers the plain liveness probe itself."""

    def __init__(self, wsgi_app, *, hsts_seconds: int):
        self.wsgi_app = wsgi_app
        self._headers = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY))),
                         *default_headers(hsts_seconds), ("Cache-Control", "no-store")]

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != PATH or method not in ("GET", "HEAD") or "HTTP_ORIGIN" in environ:
            return self.wsgi_app(environ, start_response)
        environ[ROUTE_KEY] = PATH  # the request metrics' route label, as Flask's matched rule would give
        name_by_route(method, PATH)  # and the trace's span name (nothing when tracing is off)
        sent_id = request_id.accept(environ.get("HTTP_X_REQUEST_ID"))
        start_response("200 OK", [*self._headers, (request_id.HEADER, sent_id)])
        return [] if method == "HEAD" else [BODY]
