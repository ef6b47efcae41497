"""Who is calling, as established by authentication: the one answer every route and limit uses."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g
from flask_jwt_extended import get_jwt_identity

API_KEY_CALLER = "api_key_caller"  # where auth puts the caller of a request that used an API key


@dataclass(frozen=True)
class Caller:
    user_id: str
    api_key_id: str | None = None  # set when the caller authenticated with an API key
    org_id: str | None = None  # the org an API key is scoped to


def current_caller() -> Caller:
    """The authenticated caller of this request; only call it behind auth_required."""
    caller = g.get(API_KEY_CALLER)
    return caller if caller is not None else Caller(user_id=get_jwt_identity())
