"""Rate limits, declared once and applied as one decorator per route (Flask-Limiter).

Counters live in RATE_LIMIT_STORAGE_URI: `memory://` (the default) counts per
worker process, so with N workers a client gets up to N times the limit;
`redis://host:6379` shares them across workers and instances. A request over
a limit gets 429 with the JSON error contract and `Retry-After`, and counts in
`rate_limit_hits_total{limit}`.
"""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter, RequestLimit

from ..http.caller import current_caller
from ..http.openapi import may_fail
from ..metrics.definitions import RATE_LIMIT_HITS


def client_address() -> str:
    """The client's address; behind TRUSTED_PROXIES proxies, the one they report (see ProxyFix in init_app)."""
    return request.remote_addr or "unknown"


def account_key() -> str:
    """The account a login is for, so guessing one user's password from many addresses is limited too."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"account:{email.strip().lower()}" if isinstance(email, str) else f"address:{client_address()}"


def caller_key() -> str:
    return f"user:{current_caller().user_id}"


limiter = Limiter(key_func=client_address, strategy="sliding-window-counter", headers_enabled=True,
                  key_prefix="gateway")


def _count(name: str):
    def on_breach(_limit: RequestLimit) -> None:
        RATE_LIMIT_HITS.labels(name).inc()

    return on_breach


def _limit(name: str, setting: str, key_func):
    # Shared: every route with this decorator draws on one counter per key (chat whole, streamed and /v1).
    limit = limiter.shared_limit(lambda: current_app.config[setting], scope=name, key_func=key_func,
                                 on_breach=_count(name), override_defaults=False)
    return lambda view: may_fail(429)(limit(view))


def _both(first, second):
    return lambda view: first(second(view))


# One decorator per kind of route; the names are the `limit` label values.
login = _both(_limit("login_address", "RATE_LIMIT_LOGIN_ADDRESS", client_address),
              _limit("login_account", "RATE_LIMIT_LOGIN_ACCOUNT", account_key))
register = _limit("register_address", "RATE_LIMIT_REGISTER_ADDRESS", client_address)
# A stolen access token must not become a way to guess the account's password: same budget as logins.
password = _limit("password_user", "RATE_LIMIT_LOGIN_ACCOUNT", caller_key)
# Every chat route (whole, streamed, /v1) is counted here, and every one of them asks a model provider.
chat = _both(may_fail(502, 504), _limit("chat_user", "RATE_LIMIT_CHAT_USER", caller_key))
# chat_streams_user is the cap on open streams per user (stream_cap.py), not a rate.
LIMIT_NAMES = ("login_address", "login_account", "register_address", "chat_user", "chat_streams_user",
               "password_user")


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config.update(
        RATELIMIT_ENABLED=settings.rate_limits_enabled,
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage_uri,
        # A storage outage must not take the gateway down: count in memory meanwhile.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    limiter.init_app(app)
