"""Org usage and budgets written straight into the database, in bulk, and the gauges' expected values."""
from decimal import Decimal

from sqlalchemy import insert, select

from app.metrics.definitions import OTHER_ORG
from app.models import Org, OrgBudget, OrgUsageMonth, month_key, utcnow


def add_orgs(connection, org_ids) -> None:
    connection.execute(insert(Org), [{"id": org_id, "name": org_id} for org_id in org_ids])


def add_usage(connection, rows, month: str | None = None) -> None:
    """rows: (org_id, tokens, cost as Decimal), for `month` (the current one by default)."""
    month = month or month_key(utcnow())
    connection.execute(insert(OrgUsageMonth), [
        {"org_id": org_id, "month": month, "tokens": tokens, "cost_usd": cost} for org_id, tokens, cost in rows])


def add_budgets(connection, rows) -> None:
    """rows: (org_id, monthly tokens or None, monthly cost as Decimal or None)."""
    connection.execute(insert(OrgBudget), [
        {"org_id": org_id, "monthly_tokens": tokens, "monthly_cost_usd": cost} for org_id, tokens, cost in rows])


def expected_usage(connection, top: int) -> tuple[dict, dict]:
    """What the usage gauges must show, computed the slow way: every row of this month, sorted here."""
    rows = connection.execute(select(OrgUsageMonth.org_id, OrgUsageMonth.tokens, OrgUsageMonth.cost_usd)
                              .where(OrgUsageMonth.month == month_key(utcnow()))).all()
    rows.sort(key=lambda row: (-row.tokens, row.org_id))
    leaders, rest = rows[:top], rows[top:]
    tokens = {row.org_id: row.tokens for row in leaders} | {OTHER_ORG: sum(row.tokens for row in rest)}
    cost = {row.org_id: Decimal(row.cost_usd) for row in leaders} | {
        OTHER_ORG: sum((Decimal(row.cost_usd) for row in rest), Decimal(0))}
    return tokens, cost
