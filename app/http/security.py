"""What every response says about itself to browsers: security headers and CORS from an allow-list.

The API speaks JSON to programs and to browser apps on other origins. Nothing
it returns is meant to be rendered, framed, sniffed or cached by a shared
cache; HSTS is opt-in because only the operator knows that TLS is in front.
"""
from flask import Flask, Response, request
from flask_cors import CORS

# No document of ours loads anything; the API docs page, when there is one, sets its own.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# Headers a browser client may read from our responses.
EXPOSED_HEADERS = ["Retry-After", "X-Request-ID", "X-Gateway-Overhead-Ms", "WWW-Authenticate", "traceresponse"]


def default_headers(hsts_seconds: int) -> list[tuple[str, str]]:
    """The headers every response carries unless it set its own (HSTS only when the operator asked for it)."""
    defaults = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                ("Referrer-Policy", "no-referrer"), ("Content-Security-Policy", JSON_CSP)]
    if hsts_seconds:
        defaults.append(("Strict-Transport-Security", f"max-age={hsts_seconds}; includeSubDomains"))
    return defaults


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        # Tokens travel in the Authorization header, never in cookies: no credentials mode, ever.
        CORS(app, origins=origins, supports_credentials=False, expose_headers=EXPOSED_HEADERS,
             allow_headers=["Authorization", "Content-Type", "X-Request-ID"], max_age=600)
    defaults = default_headers(settings.hsts_seconds)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        # One look at the names present, not werkzeug's setdefault and `in`: each raises and catches a
        # KeyError for a header that is missing, which made this hook a tenth of a /livez's CPU time.
        present = {name.lower() for name in headers.keys()}
        headers.extend([(name, value) for name, value in defaults if name.lower() not in present])
        if request.blueprint == "auth" or "cache-control" not in present:
            # Tokens and personal data: neither browsers nor proxies keep a copy.
            headers["Cache-Control"] = "no-store"
        return response
