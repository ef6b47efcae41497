"""JWT failures speak the same JSON error contract as everything else."""
from flask import Flask

from ..errors import error_response
from ..extensions import jwt


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


@jwt.revoked_token_loader
def _revoked(_header, _payload):
    return error_response(401, "token_revoked", "The token has been revoked")


@jwt.needs_fresh_token_loader
def _not_fresh(_header, _payload):
    return error_response(401, "fresh_token_required", "A fresh token is required")


@jwt.user_lookup_error_loader
def _unknown_user(_header, _payload):
    return error_response(401, "invalid_token", "The account behind this token no longer exists")
