"""Org budgets: monthly token and cost limits, checked before any provider call.

The check reads the budget and the org's running total for the current UTC
month (org_usage_months, kept in the usage rows' transactions) in one indexed
lookup. A chat is refused once the total has reached a limit; chats already
past the check still finish and are counted, so a month can end above its
budget by at most the tokens (and cost) of the completions in flight when the
limit was reached. Nothing reserves tokens ahead: a completion's size is
unknown until it ends.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from ..errors import ApiError, retry_after
from ..models import OrgBudget, OrgUsageMonth, month_key, utcnow
from .months import next_month_start
from .schemas import BudgetSchema

_budgets, _months = OrgBudget.__table__, OrgUsageMonth.__table__
# Built once: this runs before every chat of an org.
_BUDGET_AND_MONTH = (
    select(_budgets.c.monthly_tokens, _budgets.c.monthly_cost_usd, _budgets.c.updated_at,
           _months.c.tokens, _months.c.cost_usd)
    .select_from(_budgets.outerjoin(_months, and_(_months.c.org_id == _budgets.c.org_id,
                                                  _months.c.month == bindparam("month"))))
    .where(_budgets.c.org_id == bindparam("org_id")))


class BudgetExceeded(ApiError):
    """429 budget_exceeded: the org has used its monthly budget; Retry-After runs to the next UTC month."""

    def __init__(self, details: dict[str, Any], seconds: int):
        super().__init__(429, "budget_exceeded", "This organisation has used its monthly budget", details,
                         headers=retry_after(seconds))


def enforce_budget(*, session: Session, org_id: str | None, now: datetime | None = None) -> None:
    """Raise BudgetExceeded if the org's current month has reached a limit; chats without an org have none."""
    if org_id is None:
        return
    now = now or utcnow()
    row = session.execute(_BUDGET_AND_MONTH, {"org_id": org_id, "month": month_key(now)}).first()
    if row is None:
        return
    if _exceeded(row):
        resets_at = next_month_start(now)
        raise BudgetExceeded(_budget_schema.dump(_status(row, now)),
                             seconds=max(1, math.ceil((resets_at - now).total_seconds())))


def get_budget(*, session: Session, org_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The org's limits (null: none), this month's usage, utilisation and when the month resets."""
    now = now or utcnow()
    row = session.execute(_BUDGET_AND_MONTH, {"org_id": org_id, "month": month_key(now)}).first()
    if row is None:
        tokens, cost = _month_usage(session, org_id, now)
        row = (None, None, None, tokens, cost)
    return _status(row, now)


def put_budget(*, session: Session, org_id: str, monthly_tokens: int | None, monthly_cost_usd: Decimal | None,
               now: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """Replace the org's limits; an absent one is no limit."""
    budget = session.get(OrgBudget, org_id) or OrgBudget(org_id=org_id)
    budget.monthly_tokens, budget.monthly_cost_usd, budget.updated_at = monthly_tokens, monthly_cost_usd, now()
    session.add(budget)
    session.commit()
    return get_budget(session=session, org_id=org_id, now=budget.updated_at)


def _month_usage(session: Session, org_id: str, now: datetime) -> tuple[int, Decimal]:
    month = session.get(OrgUsageMonth, (org_id, month_key(now)))
    return (month.tokens, month.cost_usd) if month else (0, Decimal(0))


def _exceeded(row) -> bool:
    limit_tokens, limit_cost, _, tokens, cost = row
    return ((limit_tokens is not None and (tokens or 0) >= limit_tokens)
            or (limit_cost is not None and (cost or 0) >= limit_cost))


def _status(row, now: datetime) -> dict[str, Any]:
    """The budget as GET shows it, and as a 429's details carry it (dumped by BudgetSchema)."""
    limit_tokens, limit_cost, updated_at, tokens, cost = row
    tokens, cost = tokens or 0, cost if cost is not None else Decimal(0)
    return {
        "monthly_tokens": limit_tokens, "monthly_cost_usd": limit_cost, "updated_at": updated_at,
        "month": month_key(now), "tokens_used": tokens, "cost_used_usd": cost,
        "token_utilisation": _ratio(tokens, limit_tokens), "cost_utilisation": _ratio(cost, limit_cost),
        "resets_at": next_month_start(now),
    }


def _ratio(used, limit) -> float | None:
    # None for no limit, and for a zero one: it refuses everything, there is no ratio to show.
    return float(Decimal(used) / Decimal(limit)) if limit else None


_budget_schema = BudgetSchema()
