"""Usage reports: exact sums of the usage rows over half-open UTC periods, for an org, a user or a conversation."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session

from ..errors import ValidationFailed
from ..http.caller import Caller
from ..models import UsageRecord, utcnow
from ..orgs.service import check_reach, get_manager_membership
from . import budgets
from .months import month_start, next_month_start

_records = UsageRecord.__table__
_TOTALS = (func.coalesce(func.sum(_records.c.prompt_tokens), 0).label("prompt_tokens"),
           func.coalesce(func.sum(_records.c.completion_tokens), 0).label("completion_tokens"),
           func.sum(_records.c.cost_usd).label("cost_usd"),  # NULL when no row had a price
           func.count().label("completions"))


def org_usage(*, session: Session, org_id: str, caller: Caller, start: datetime | None, end: datetime | None,
              group_by: str | None, now: datetime | None = None) -> dict[str, Any]:
    """An org's usage (OWNER/ADMIN only), whoever spent it, through chats and API keys alike."""
    check_reach(caller, org_id)
    get_manager_membership(session=session, org_id=org_id, user_id=caller.user_id)
    return _report(session, _records.c.org_id == org_id, start, end, group_by, now)


def my_usage(*, session: Session, caller: Caller, start: datetime | None, end: datetime | None,
             group_by: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The caller's own usage, in every org and in none; an org-scoped API key's caller, in that org only."""
    scope = _records.c.user_id == caller.user_id
    if caller.org_id is not None:
        scope = and_(scope, _records.c.org_id == caller.org_id)
    return _report(session, scope, start, end, group_by, now)


def key_usage(*, session: Session, api_key_id: str, start: datetime | None, end: datetime | None,
              group_by: str | None, now: datetime | None = None) -> dict[str, Any]:
    """One API key's usage; the caller has checked that the key is theirs to see."""
    return _report(session, _records.c.api_key_id == api_key_id, start, end, group_by, now)


def conversation_totals(*, session: Session, conversation_id: str) -> dict[str, Any]:
    """Everything a conversation's completions used, since it began."""
    return _totals(session.execute(select(*_TOTALS).where(_records.c.conversation_id == conversation_id)).one())


def org_budget(*, session: Session, org_id: str, user_id: str) -> dict[str, Any]:
    get_manager_membership(session=session, org_id=org_id, user_id=user_id)
    return budgets.get_budget(session=session, org_id=org_id)


def set_org_budget(*, session: Session, org_id: str, user_id: str, **limits: Any) -> dict[str, Any]:
    get_manager_membership(session=session, org_id=org_id, user_id=user_id)
    return budgets.put_budget(session=session, org_id=org_id, **limits)


def _report(session: Session, scope, start: datetime | None, end: datetime | None, group_by: str | None,
            now: datetime | None) -> dict[str, Any]:
    now = now or utcnow()
    # One bound alone means its calendar month, so a lone bound never makes an empty period.
    try:
        if start is None and end is None:
            start, end = month_start(now), next_month_start(now)
        elif start is None:
            start = month_start(end - timedelta(microseconds=1))
        elif end is None:
            end = next_month_start(start)
    except (OverflowError, ValueError):  # a lone bound at the calendar's very edge (year 1 or 9999)
        raise ValidationFailed("The period has no calendar month around it",
                               {"query": {"from" if end is None else "to": ["Give both `from` and `to`."]}}) from None
    if start >= end:
        raise ValidationFailed("The period is empty", {"query": {"to": ["Must be later than `from`."]}})
    # Half-open: a completion at exactly `end` belongs to the next period.
    where = (scope, _records.c.created_at >= start, _records.c.created_at < end)
    report: dict[str, Any] = {"start": start, "end": end,
                              "totals": _totals(session.execute(select(*_TOTALS).where(*where)).one())}
    if group_by is not None:
        key = _group_key(session, group_by).label("key")
        rows = session.execute(select(key, *_TOTALS).where(*where).group_by(key).order_by(key))
        report["groups"] = [{"key": row.key, **_totals(row)} for row in rows]
    return report


def _group_key(session: Session, group_by: str):
    if group_by == "model":
        return _records.c.model
    if group_by == "user":
        return _records.c.user_id
    if group_by == "apiKey":
        return _records.c.api_key_id  # NULL: completions made with an access token
    if session.get_bind().dialect.name == "sqlite":
        # SQLite keeps UTC datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" text: the day is its first ten characters.
        return func.substr(_records.c.created_at, 1, 10)
    return func.to_char(func.timezone(literal("UTC"), _records.c.created_at), "YYYY-MM-DD")


def _totals(row) -> dict[str, Any]:
    prompt, completion = int(row.prompt_tokens), int(row.completion_tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "cost_usd": row.cost_usd, "completions": int(row.completions)}
