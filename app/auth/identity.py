"""Who is calling: the one place a route learns its caller's identity.

A caller holds either a JWT access token, whose subject is the user id, or an
API key (`Authorization: Bearer sk-gw-...`), which acts as its user and may be
scoped to one org. Routes ask `current_caller()` (defined in app/http/caller.py,
so that lower layers such as rate limits can ask too) and never look at the
credential itself; `auth_required` (required.py) decides which credentials a route takes.
"""
from __future__ import annotations

from flask import g, request

from ..db import get_session
from ..errors import Unauthorized
from ..http.caller import API_KEY_CALLER, Caller, current_caller
from . import keys

__all__ = ["Caller", "authenticate_api_key", "current_caller"]


def authenticate_api_key(*, accepted: bool) -> bool:
    """For auth_required: True when the request carries a live API key, False when it carries none.

    A key that is unknown, revoked or expired is a 401 here and now: it never
    falls through to the JWT checks, whose "malformed token" would mislead.
    Every request looks its key up in the database, so a revocation holds at
    once on every worker and every instance.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not keys.is_api_key(token.strip()):
        return False
    if not accepted:
        raise Unauthorized("This route needs an access token from /auth/login, not an API key",
                           code="api_key_not_accepted")
    key = keys.find_live_key(session=get_session(), secret=token.strip())
    if key is None:
        raise Unauthorized("The API key is invalid, expired or revoked", code="invalid_api_key")
    g.setdefault(API_KEY_CALLER, Caller(user_id=key.user_id, api_key_id=key.id, org_id=key.org_id))
    return True

