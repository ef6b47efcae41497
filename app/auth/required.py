"""`auth_required`: which credentials a route takes, and the security requirement in the OpenAPI document."""
import functools

from flask import current_app
from flask_jwt_extended import jwt_required
from flask_smorest.utils import deepupdate

from .identity import authenticate_api_key


def auth_required(fn=None, *, scope: str | None = None, refresh: bool = False):
    """A JWT access token, or an API key holding `scope`; plus the security requirement in the OpenAPI document.

    The route names the one key scope it needs (`API_KEY_SCOPES` in models);
    without one it takes no API key, only people logged in with a password.
    An API key is checked first (authenticate_api_key: True for a live key
    with the scope, False for no key, a 401 for a bad one, a 403 for one
    without the scope); everything else goes to flask-jwt-extended. Refresh
    tokens are JWTs only.
    """

    def decorate(view):
        with_jwt = jwt_required(refresh=refresh)(view)

        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not refresh and authenticate_api_key(scope=scope):
                return current_app.ensure_sync(view)(*args, **kwargs)
            return with_jwt(*args, **kwargs)

        doc = wrapped.__dict__.setdefault("_apidoc", {})
        deepupdate(doc.setdefault("manual_doc", {}), {"security": [{"bearerAuth": []}]})
        # The scope is part of the operation's contract: a key without it gets 403 insufficient_scope.
        if scope is not None:
            deepupdate(doc["manual_doc"], {"x-api-key-scope": scope})
            doc["errors"] = sorted({*doc.get("errors", ()), 403, 429})  # and its own requestsPerMinute
        return wrapped

    return decorate(fn) if fn else decorate
