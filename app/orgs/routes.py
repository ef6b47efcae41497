from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session
from ..http.openapi import Blueprint, may_fail
from . import service
from .schemas import MemberAddSchema, MemberSchema, OrgCreateSchema, OrgSchema

bp = Blueprint("orgs", __name__, url_prefix="/orgs", description="Organisations and their members")


@bp.post("")
@auth_required
@bp.arguments(OrgCreateSchema)
@bp.response(201, OrgSchema)
def create_org(data):
    """Create an organisation; the caller becomes its OWNER"""
    return service.create_org(session=get_session(), user_id=current_caller().user_id, **data)


@bp.get("")
@auth_required
@bp.response(200, OrgSchema(many=True))
def list_orgs():
    """The organisations the caller belongs to"""
    return service.list_orgs(session=get_session(), user_id=current_caller().user_id)


@bp.get("/<id>")
@auth_required
@bp.response(200, OrgSchema)
def get_org(id):
    """One organisation (members only)"""
    return service.get_org(session=get_session(), org_id=id, user_id=current_caller().user_id)


@bp.get("/<id>/members")
@auth_required
@bp.response(200, MemberSchema(many=True))
def list_members(id):
    """The members of an organisation (members only)"""
    return service.list_members(session=get_session(), org_id=id, user_id=current_caller().user_id)


@bp.post("/<id>/members")
@auth_required
@may_fail(403, 409)
@bp.arguments(MemberAddSchema)
@bp.response(201, MemberSchema)
def add_member(data, id):
    """Add a registered user to an organisation (OWNER or ADMIN)"""
    return service.add_member(session=get_session(), org_id=id, user_id=current_caller().user_id, **data)


@bp.delete("/<id>/members/<user_id>")
@auth_required
@may_fail(403, 409)
@bp.response(204)
def remove_member(id, user_id):
    """Remove a member (OWNER or ADMIN, or yourself); the last OWNER stays"""
    service.remove_member(session=get_session(), org_id=id, user_id=current_caller().user_id, member_user_id=user_id)
