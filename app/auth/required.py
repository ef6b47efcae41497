"""`auth_required`: which credentials a route takes, and the security requirement in the OpenAPI document."""
import functools

from flask import current_app
from flask_jwt_extended import jwt_required
from flask_smorest.utils import deepupdate

from .identity import authenticate_api_key


def auth_required(fn=None, *, refresh: bool = False, api_keys: bool = True):
    """A JWT access token or an API key; `api_keys=False` keeps a route for people logged in with a password.

    An API key is checked first (authenticate_api_key: True for a live key,
    False for no key, a 401 for a bad one); everything else goes to
    flask-jwt-extended. Refresh tokens are JWTs only.
    """

    def decorate(view):
        with_jwt = jwt_required(refresh=refresh)(view)

        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not refresh and authenticate_api_key(accepted=api_keys):
                return current_app.ensure_sync(view)(*args, **kwargs)
            return with_jwt(*args, **kwargs)

        doc = wrapped.__dict__.setdefault("_apidoc", {})
        deepupdate(doc.setdefault("manual_doc", {}), {"security": [{"bearerAuth": []}]})
        return wrapped

    return decorate(fn) if fn else decorate
