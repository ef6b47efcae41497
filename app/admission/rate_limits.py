"""Rate limits, declared once and applied as one decorator per route (Flask-Limiter).

Counters live in RATE_LIMIT_STORAGE_URI: `memory://` (the default) counts per
worker process, so with N workers a client gets up to N times the limit;
`redis://host:6379` shares them across workers and instances. A request over
a limit gets 429 with the JSON error contract and `Retry-After`, and counts in
`rate_limit_hits_total{limit}`.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import math
import time

from flask import Flask, current_app, has_app_context, request
from flask_limiter import Limiter, RequestLimit
from limits import RateLimitItemPerMinute
from limits.errors import StorageError

from ..errors import ApiError, Overloaded, handle_api_error, retry_after
from ..http.caller import current_caller
from ..http.openapi import may_fail
from ..metrics.definitions import RATE_LIMIT_HITS

log = logging.getLogger(__name__)
KEY_PREFIX = "gateway"


def client_address() -> str:
    """The client's address; behind TRUSTED_PROXIES proxies, the one they report (see ProxyFix in init_app)."""
    return request.remote_addr or "unknown"


def account_key() -> str:
    """The account a login is for, so guessing one user's password from many addresses is limited too.

    Never raises: Flask-Limiter takes a key function's exception for a storage
    failure, so a body that made this raise (nested deeper than strict JSON
    allows) once switched every worker to fresh in-memory counters.
    """
    try:
        body = request.get_json(silent=True)
        email = body.get("email") if isinstance(body, dict) else None
        if isinstance(email, str):
            # A digest: any string at all (a lone surrogate, a NUL, a megabyte) makes a short key every storage
            # can hold, and no address sits in Redis in clear.
            canonical = email.strip().lower().encode("utf-8", errors="surrogatepass")
            return f"account:{hashlib.sha256(canonical).hexdigest()}"
    except Exception:  # noqa: BLE001 - any body at all must still be counted, by address
        pass
    return f"address:{client_address()}"


def caller_key() -> str:
    return f"user:{current_caller().user_id}"


# Flask-Limiter keeps its storage, its `enabled` flag and its failure state on the Limiter, and init_app sets
# some of them only once ("if not set yet") and never resets others (a dead storage). Our decorators are
# declared at import, so the Limiter is module-level; that state is kept per Flask app instead. Otherwise the
# second app in one process (the tests make hundreds) inherits the first one's fail-open settings or its dead
# storage, and counts nothing.
_PER_APP_STATE = (
    "enabled", "initialized", "_storage", "_storage_uri", "_storage_options", "_storage_dead", "_strategy",
    "_limiter", "_fallback_limiter", "_fallback_storage", "_in_memory_fallback", "_in_memory_fallback_enabled",
    "_swallow_errors", "_fail_on_first_breach", "_headers_enabled", "_header_mapping", "_retry_after",
    "_key_prefix", "_request_identifier", "_default_limits_per_method", "_default_limits_exempt_when",
    "_default_limits_deduct_when", "_default_limits_cost", "_application_limits_per_method",
    "_application_limits_exempt_when", "_application_limits_deduct_when", "_application_limits_cost",
    "_meta_limits", "_on_breach", "_on_meta_breach", "_Limiter__check_backend_count",
    "_Limiter__last_check_backend")


class _PerApp:
    """One of the Limiter's attributes, read and written in the current app's extensions.

    Outside an app (the constructor, at import) it is the default every app starts from, copied on first use
    so that an app's in-place changes (its storage options) stay its own.
    """

    def __init__(self, name: str):
        self.name = name

    def __get__(self, limiter, owner=None):
        if limiter is None:
            return self
        defaults = limiter.__dict__.setdefault("_per_app_defaults", {})
        if not has_app_context():
            return defaults.get(self.name)
        state = current_app.extensions.setdefault("rate_limiter_state", {})
        if self.name not in state:
            state[self.name] = copy.copy(defaults.get(self.name))
        return state[self.name]

    def __set__(self, limiter, value) -> None:
        if has_app_context():
            current_app.extensions.setdefault("rate_limiter_state", {})[self.name] = value
        else:
            limiter.__dict__.setdefault("_per_app_defaults", {})[self.name] = value


class _PerAppLimiter(Limiter):
    def init_app(self, app: Flask) -> None:
        with app.app_context():  # so that what init_app sets is this app's
            super().init_app(app)


for _name in _PER_APP_STATE:
    setattr(_PerAppLimiter, _name, _PerApp(_name))

limiter = _PerAppLimiter(key_func=client_address, strategy="sliding-window-counter", headers_enabled=True,
                         key_prefix=KEY_PREFIX)


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
               "password_user", "api_key")


class KeyRateExceeded(ApiError):
    def __init__(self, key_id: str, per_minute: int, seconds: int):
        super().__init__(429, "too_many_requests", f"This API key allows {per_minute} requests a minute",
                         {"apiKey": key_id, "requestsPerMinute": per_minute}, headers=retry_after(seconds))


def api_key_requests(*, key_id: str, per_minute: int | None) -> None:
    """An API key's own requestsPerMinute, counted under its id in the limiter's storage, with its strategy.

    Called by authentication for every request with the key, whatever the
    route, so no route can forget it. Like the other limits it is off when
    RATE_LIMITS_ENABLED is, and a storage failure refuses the request unless
    RATE_LIMIT_FAIL_OPEN lets it through.
    """
    if per_minute is None or not limiter.enabled:
        return
    item, identifiers = RateLimitItemPerMinute(per_minute), (KEY_PREFIX, "api_key", key_id)
    try:
        if limiter.limiter.hit(item, *identifiers):
            return
        reset_at = limiter.limiter.get_window_stats(item, *identifiers).reset_time
    except Exception as exc:  # noqa: BLE001 - any storage failure, as for the other limits
        if not current_app.config["SETTINGS"].rate_limit_fail_open:
            raise StorageError(exc) from exc  # refuse_uncounted answers it
        log.warning("API key rate limit not counted: storage failed (%s)", type(exc).__name__)
        return
    RATE_LIMIT_HITS.labels("api_key").inc()
    raise KeyRateExceeded(key_id, per_minute, seconds=max(1, math.ceil(reset_at - time.time())))


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config.update(
        RATELIMIT_ENABLED=settings.rate_limits_enabled,
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage_uri,
        # Fail open only when asked: in-memory counters per worker multiply every limit by the workers,
        # which for logins is a password-guessing window. Fail closed: StorageError becomes a 503.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=settings.rate_limit_fail_open,
        RATELIMIT_SWALLOW_ERRORS=settings.rate_limit_fail_open,
        RATELIMIT_STORAGE_OPTIONS=_storage_options(settings.rate_limit_storage_uri),
    )
    app.register_error_handler(StorageError, refuse_uncounted)
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    limiter.init_app(app)


def _storage_options(uri: str) -> dict:
    # wrap_exceptions: one exception class (StorageError) for every backend's failures.
    options = {"wrap_exceptions": True}
    if uri.startswith(("redis", "unix")):
        # An unreachable Redis must be a quick 503, not a request hanging on a connect.
        options.update(socket_connect_timeout=2, socket_timeout=2)
    return options


def refuse_uncounted(exc: StorageError):
    """A limited request the storage could not count is refused, not let through uncounted."""
    log.warning("rate limit storage unavailable (%s): refusing %s %s",
                type(exc.storage_error).__name__, request.method, request.path)
    return handle_api_error(Overloaded("rate_limit_unavailable",
                                       "Rate limits cannot be checked right now, try again shortly"))
