from .. import limits
from ..db import get_session
from ..rest import Blueprint, auth_required, may_fail
from . import service
from .identity import current_caller
from .schemas import AccessTokenSchema, LoginSchema, RegisterSchema, SessionSchema, UserSchema

bp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens")


@bp.post("/register")
@limits.register
@may_fail(403, 409)
@bp.arguments(RegisterSchema)
@bp.response(201, SessionSchema)
def register(data):
    """Create an account and log it in (403 when the operator has closed sign-up)"""
    return service.issue_tokens(service.sign_up(session=get_session(), **data))


@bp.post("/login")
@limits.login
@may_fail(401)
@bp.arguments(LoginSchema)
@bp.response(200, SessionSchema)
def login(data):
    """Exchange credentials for an access and a refresh token"""
    return service.issue_tokens(service.authenticate(session=get_session(), **data))


@bp.post("/refresh")
@auth_required(refresh=True)
@bp.response(200, AccessTokenSchema)
def refresh():
    """Exchange a refresh token for a new access token"""
    user = service.get_user(session=get_session(), user_id=current_caller().user_id)
    return {"access_token": service.access_token_for(user)}


@bp.get("/me")
@auth_required
@bp.response(200, UserSchema)
def me():
    """The current user"""
    return service.get_user(session=get_session(), user_id=current_caller().user_id)
