"""Who is calling: the one place a route learns its caller's identity.

A caller holds either a JWT access token, whose subject is the user id, or an
API key (`Authorization: Bearer sk-gw-...`), which acts as its user and may be
scoped to one org. Routes ask `current_caller()` (defined in app/http/caller.py,
so that lower layers such as rate limits can ask too) and never look at the
credential itself; `auth_required` (required.py) decides which credentials a route takes.
"""
from __future__ import annotations

from flask import g, request

from ..admission import rate_limits
from ..db import autocommit_connection
from ..errors import ApiError, Unauthorized
from ..http.caller import API_KEY_CALLER, Caller, current_caller
from . import keys

__all__ = ["Caller", "authenticate_api_key", "current_caller"]


class InsufficientScope(ApiError):
    def __init__(self, scope: str):
        super().__init__(403, "insufficient_scope", f"This API key does not have the `{scope}` scope",
                         {"scope": scope})


def authenticate_api_key(*, scope: str | None) -> bool:
    """For auth_required: True when the request carries a live API key with `scope`, False when it carries none.

    A key that is unknown, revoked or expired is a 401 here and now: it never
    falls through to the JWT checks, whose "malformed token" would mislead.
    Every request looks its key up in the database, so a revocation holds at
    once on every worker and every instance. `scope` None: the route takes no
    key at all. A key's requests per minute are counted here, on every route.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not keys.is_api_key(token.strip()):
        return False
    if scope is None:
        raise Unauthorized("This route needs an access token from /auth/login, not an API key",
                           code="api_key_not_accepted")
    with autocommit_connection() as connection:  # handed back at once: a /v1 route waits on a model next
        key = keys.find_live_key(connection=connection, secret=token.strip())
    if key is None:
        raise Unauthorized("The API key is invalid, expired or revoked", code="invalid_api_key")
    if scope not in key.scopes:
        raise InsufficientScope(scope)
    rate_limits.api_key_requests(key_id=key.id, per_minute=key.requests_per_minute)
    budgeted = key.monthly_tokens is not None or key.monthly_cost_usd is not None
    g.setdefault(API_KEY_CALLER, Caller(user_id=key.user_id, api_key_id=key.id, org_id=key.org_id,
                                        models=tuple(key.models) if key.models is not None else None,
                                        key_budgeted=budgeted))
    return True

