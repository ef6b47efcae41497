"""JWT failures speak the same JSON error contract as everything else; revocation is checked on every use."""
from flask import Flask, g

from ..db import autocommit_connection
from ..errors import error_response
from ..extensions import jwt
from . import sessions

REVOCATION_REASON = "token_revocation_reason"  # where the check leaves its reason for the 401 message


def init_app(app: Flask) -> None:
    jwt.init_app(app)


@jwt.unauthorized_loader
def _missing(reason: str):
    return error_response(401, "missing_token", "Authentication required: send Authorization: Bearer <access token>")


@jwt.invalid_token_loader
def _invalid(reason: str):
    return error_response(401, "invalid_token", "The token is malformed or its signature is invalid")


@jwt.expired_token_loader
def _expired(_header, _payload):
    return error_response(401, "token_expired", "The token has expired")


@jwt.token_in_blocklist_loader
def _is_revoked(_header, payload) -> bool:
    with autocommit_connection() as connection:  # handed back at once: the route may wait on a model next
        reason = sessions.revocation(session=connection, claims=payload)
    setattr(g, REVOCATION_REASON, reason)
    return reason is not None


@jwt.revoked_token_loader
def _revoked(_header, _payload):
    return error_response(401, "token_revoked", g.get(REVOCATION_REASON) or "The token has been revoked")


@jwt.token_verification_loader
def _expires(_header, payload) -> bool:
    # PyJWT checks `exp` only when it is present: a token that never expires is refused here.
    return "exp" in payload


@jwt.token_verification_failed_loader
def _never_expires(_header, _payload):
    return error_response(401, "invalid_token", "The token has no expiry")
