"""Who is calling: the one place a route learns its caller's identity.

Today every credential is a JWT whose subject is the user id; API keys (and
the org a key is scoped to) will answer here too, so no route has to change.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_jwt_extended import get_jwt_identity


@dataclass(frozen=True)
class Caller:
    user_id: str


def current_caller() -> Caller:
    """The authenticated caller of this request; only call it behind auth_required."""
    return Caller(user_id=get_jwt_identity())
