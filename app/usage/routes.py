from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session
from ..http.openapi import Blueprint, may_fail
from . import service
from .schemas import BudgetPutSchema, BudgetSchema, UsageArgsSchema, UsageReportSchema

bp = Blueprint("usage", __name__, description="Usage (tokens and cost per completion) and organisations' monthly budgets")


@bp.get("/orgs/<id>/usage")
@auth_required
@bp.arguments(UsageArgsSchema, location="query")
@bp.response(200, UsageReportSchema)
@may_fail(403)  # OWNER/ADMIN only
def org_usage(args, id):
    """An organisation's usage over a half-open UTC period, optionally grouped (OWNER/ADMIN)"""
    return service.org_usage(session=get_session(), org_id=id, user_id=current_caller().user_id, **args)


@bp.get("/auth/me/usage")
@auth_required
@bp.arguments(UsageArgsSchema, location="query")
@bp.response(200, UsageReportSchema)
def my_usage(args):
    """The caller's own usage over a half-open UTC period, in every organisation and none"""
    return service.my_usage(session=get_session(), user_id=current_caller().user_id, **args)


@bp.get("/orgs/<id>/budget")
@auth_required
@bp.response(200, BudgetSchema)
@may_fail(403)  # OWNER/ADMIN only
def get_budget(id):
    """An organisation's monthly budget, this month's usage and when it resets (OWNER/ADMIN)"""
    return service.org_budget(session=get_session(), org_id=id, user_id=current_caller().user_id)


@bp.put("/orgs/<id>/budget")
@auth_required
@bp.arguments(BudgetPutSchema)
@bp.response(200, BudgetSchema)
@may_fail(403)  # OWNER/ADMIN only
def put_budget(data, id):
    """Set an organisation's monthly token and cost limits; an absent or null one is no limit (OWNER/ADMIN)"""
    return service.set_org_budget(session=get_session(), org_id=id, user_id=current_caller().user_id, **data)
