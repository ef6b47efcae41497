from flask_jwt_extended import get_jwt

from ..admission import rate_limits
from ..db import get_session
from ..http.openapi import Blueprint, may_fail
from . import service, sessions
from .identity import current_caller
from .required import auth_required
from .schemas import (LoginSchema, LogoutSchema, PasswordChangeSchema, RegisterSchema, SessionSchema,
                      TokenPairSchema, UserSchema)

bp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens")


@bp.post("/register")
@rate_limits.register
@may_fail(403, 409)
@bp.arguments(RegisterSchema)
@bp.response(201, SessionSchema)
def register(data):
    """Create an account and log it in (403 when the operator has closed sign-up)"""
    session = get_session()
    return sessions.start(session=session, user=service.sign_up(session=session, **data))


@bp.post("/login")
@rate_limits.login
@may_fail(401)
@bp.arguments(LoginSchema)
@bp.response(200, SessionSchema)
def login(data):
    """Exchange credentials for an access and a refresh token"""
    session = get_session()
    return sessions.start(session=session, user=service.authenticate(session=session, **data))


@bp.post("/refresh")
@auth_required(refresh=True)
@bp.response(200, TokenPairSchema)
def refresh():
    """Spend a refresh token for a new access and refresh token (reusing a spent one ends the session)"""
    return sessions.rotate(session=get_session(), claims=get_jwt())


@bp.post("/logout")
@auth_required(api_keys=False)
@bp.arguments(LogoutSchema)
@bp.response(204)
def logout(data):
    """End this session: its access and refresh tokens stop working (and the session of `refreshToken`, if sent)"""
    sessions.end(session=get_session(), claims=get_jwt(), refresh_token=data["refresh_token"])


@bp.post("/password")
@auth_required(api_keys=False)
@rate_limits.password
@may_fail(403)  # wrong_password
@bp.arguments(PasswordChangeSchema)
@bp.response(200, SessionSchema)
def change_password(data):
    """Change the password: every session of the account ends, and this caller gets a new one"""
    session = get_session()
    user = service.change_password(session=session, user_id=current_caller().user_id, **data)
    return sessions.start(session=session, user=user)


@bp.get("/me")
@auth_required
@bp.response(200, UserSchema)
def me():
    """The current user"""
    return service.get_user(session=get_session(), user_id=current_caller().user_id)
