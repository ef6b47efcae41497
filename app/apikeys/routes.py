from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session
from ..http.openapi import Blueprint, may_fail
from . import service
from .schemas import ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeySchema

bp = Blueprint("apikeys", __name__, description="API keys: long-lived credentials for the OpenAI-compatible API "
                                                "and every other route (managed with an access token only)")


@bp.post("/api-keys")
@auth_required(api_keys=False)
@may_fail(404)
@bp.arguments(ApiKeyCreateSchema)
@bp.response(201, ApiKeyCreatedSchema)
def create_key(data):
    """Create an API key; the response is the only time the key is shown"""
    return service.create_key(session=get_session(), user_id=current_caller().user_id, **data)


@bp.get("/api-keys")
@auth_required(api_keys=False)
@bp.response(200, ApiKeySchema(many=True))
def list_keys():
    """The caller's API keys"""
    return service.list_own(session=get_session(), user_id=current_caller().user_id)


@bp.delete("/api-keys/<id>")
@auth_required(api_keys=False)
@bp.response(204)
def revoke_key(id):
    """Revoke an API key (its user, or an OWNER/ADMIN of the org it is scoped to)"""
    service.revoke(session=get_session(), key_id=id, user_id=current_caller().user_id)


@bp.get("/orgs/<id>/api-keys")
@auth_required(api_keys=False)
@may_fail(403)
@bp.response(200, ApiKeySchema(many=True))
def list_org_keys(id):
    """The API keys scoped to an organisation (OWNER/ADMIN)"""
    return service.list_for_org(session=get_session(), org_id=id, user_id=current_caller().user_id)
