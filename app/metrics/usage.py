"""Per-org and per-API-key usage gauges, read from the database at scrape time: exact, and bounded by construction.

Counters labelled by org in the workers would make one series per org that ever
chatted (a million orgs, a million series per metric) and would forget
everything a dead worker counted. The database already holds the exact monthly
totals (org_usage_months) and the budgets (org_budgets), so a scrape reads them:
one query takes the K orgs at the top (ORDER BY ... LIMIT K) and, in the same
statement, one aggregate over every other org, which becomes the `other` series.
However many orgs there are, each gauge has at most K+1 values of `org` (per
`limit` for the budget ratio), and no Python loop ever walks all orgs.

Scrapes are cheap: the result is kept for USAGE_METRICS_REFRESH_SECONDS. Each
collector has its own engine without a pool: in the gunicorn master it runs in
the metrics listener's OS thread, and a pooled connection there would be
inherited by every worker forked afterwards.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Float, and_, bindparam, case, cast, create_engine, func, literal, null, select, union_all
from sqlalchemy.pool import NullPool

from ..models import ApiKeyUsageMonth, OrgBudget, OrgUsageMonth, month_key, utcnow
from .definitions import BUDGET_LIMITS, OTHER_ORG, USAGE_GAUGES

log = logging.getLogger(__name__)

# A scrape waits at most this long for the database; then it serves the last values.
DB_TIMEOUT_SECONDS = 5

_months, _budgets, _key_months = OrgUsageMonth.__table__, OrgBudget.__table__, ApiKeyUsageMonth.__table__


def usage_query(top: int, months=_months, owner: str = "org_id"):
    """Rows (owner, tokens, cost, owners): the `top` owners by tokens, then one row (owner NULL) for the rest.

    The owners are orgs (org_usage_months) or API keys (api_key_usage_months, owner "api_key_id").
    """
    this_month = months.c.month == bindparam("month")
    order = (months.c.tokens.desc(), months.c[owner])
    leaders = (select(months.c[owner], months.c.tokens, months.c.cost_usd, literal(1).label("owners"))
               .where(this_month).order_by(*order).limit(top).subquery())
    rest = (select(null(), func.coalesce(func.sum(months.c.tokens), 0),
                   func.coalesce(func.sum(months.c.cost_usd), 0), func.count())
            .where(this_month, months.c[owner].not_in(select(leaders.c[owner]))))
    # One statement, so the leaders and the rest come from one snapshot of a table chats keep writing.
    return union_all(select(leaders), rest)


def _ratio(used, limit):
    # A limit of 0 allows nothing: it is used up however little was used.
    return case((limit <= 0, literal(1.0)), else_=cast(func.coalesce(used, 0), Float) / cast(limit, Float))


def budget_query(limit: str, top: int):
    """Rows (org_id, ratio): the `top` orgs with a `limit` budget by ratio, then (NULL, highest ratio of the rest)."""
    limit_column = _budgets.c.monthly_tokens if limit == "tokens" else _budgets.c.monthly_cost_usd
    used_column = _months.c.tokens if limit == "tokens" else _months.c.cost_usd
    joined = _budgets.outerjoin(_months, and_(_months.c.org_id == _budgets.c.org_id,
                                              _months.c.month == bindparam("month")))
    ratio = _ratio(used_column, limit_column)
    order = (ratio.desc(), _budgets.c.org_id)
    leaders = (select(_budgets.c.org_id, ratio.label("ratio")).select_from(joined)
               .where(limit_column.is_not(None)).order_by(*order).limit(top).subquery())
    rest = (select(null(), func.coalesce(func.max(ratio), 0.0)).select_from(joined)
            .where(limit_column.is_not(None), _budgets.c.org_id.not_in(select(leaders.c.org_id))))
    return union_all(select(leaders), rest)


@dataclass
class Totals:
    """The top owners' (orgs' or API keys') tokens and cost and `other`, and how many owners used any."""

    tokens: dict[str, int] = field(default_factory=lambda: {OTHER_ORG: 0})
    cost: dict[str, float] = field(default_factory=lambda: {OTHER_ORG: 0.0})
    owners: int = 0


@dataclass
class Snapshot:
    """What the gauges show: the top orgs and API keys and `other`, for one month."""

    orgs: Totals = field(default_factory=Totals)
    api_keys: Totals = field(default_factory=Totals)
    ratios: dict[str, dict[str, float]] = field(default_factory=lambda: {k: {OTHER_ORG: 0.0} for k in BUDGET_LIMITS})
    refreshed_at: float = 0.0


def read_totals(connection, query, month: str) -> Totals:
    totals = Totals()
    for owner, tokens, cost, owners in connection.execute(query, {"month": month}):
        key = owner if owner is not None else OTHER_ORG
        totals.tokens[key], totals.cost[key] = int(tokens or 0), float(cost or 0)
        totals.owners += owners
    return totals


def read_snapshot(engine: Engine, top: int, month: str, top_api_keys: int | None = None) -> Snapshot:
    snapshot = Snapshot(refreshed_at=time.time())
    with engine.connect() as connection:
        snapshot.orgs = read_totals(connection, usage_query(top), month)
        snapshot.api_keys = read_totals(connection, usage_query(top_api_keys or top, _key_months, "api_key_id"), month)
        for limit in BUDGET_LIMITS:
            for org_id, ratio in connection.execute(budget_query(limit, top), {"month": month}):
                snapshot.ratios[limit][org_id if org_id is not None else OTHER_ORG] = float(ratio or 0)
    return snapshot


def make_engine(database_url: str) -> Engine:
    """No pool (see the module docstring), and short waits: a scrape must not hang on the database."""
    if database_url.startswith("sqlite"):
        return create_engine(database_url, poolclass=NullPool,
                             connect_args={"check_same_thread": False, "timeout": DB_TIMEOUT_SECONDS})
    return create_engine(database_url, poolclass=NullPool, connect_args={
        "connect_timeout": DB_TIMEOUT_SECONDS, "options": f"-c statement_timeout={DB_TIMEOUT_SECONDS * 1000}"})


def collector_for(settings) -> "UsageCollector":
    return UsageCollector(settings.database_url, top_orgs=settings.usage_metrics_top_orgs,
                          top_api_keys=settings.usage_metrics_top_api_keys,
                          refresh_seconds=settings.usage_metrics_refresh_seconds)


class UsageCollector(Collector):
    """The usage gauges, recomputed at most every `refresh_seconds`; the last values while the database fails."""

    def __init__(self, database_url: str, *, top_orgs: int, refresh_seconds: float, top_api_keys: int | None = None,
                 clock=time.monotonic):
        self._database_url = database_url
        self._top = top_orgs
        self._top_api_keys = top_api_keys or top_orgs
        self._refresh = refresh_seconds
        self._clock = clock
        self._engine: Engine | None = None  # built by the first scrape, in the thread that serves scrapes
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._next_refresh = 0.0
        self._failing = False

    def collect(self):
        return families(self._current())

    def describe(self):
        """The names, for the registry, without a database read."""
        return families(Snapshot())

    def _current(self) -> Snapshot:
        with self._lock:  # concurrent scrapes: one reads the database, the others wait for its answer
            now = self._clock()
            if now >= self._next_refresh:
                self._next_refresh = now + self._refresh
                self._try_refresh()
            return self._snapshot

    def _try_refresh(self) -> None:
        try:
            if self._engine is None:
                self._engine = make_engine(self._database_url)
            self._snapshot = read_snapshot(self._engine, self._top, month_key(utcnow()), self._top_api_keys)
        except Exception as exc:  # noqa: BLE001 - any failure: keep serving the last values, say so once
            if not self._failing:
                # The class name only: a driver's message may carry the database address.
                log.error("usage metrics: cannot read usage from the database (%s); serving the last values",
                          type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("usage metrics: reading usage from the database again")
        self._failing = False


def families(snapshot: Snapshot) -> list[GaugeMetricFamily]:
    def family(name: str) -> GaugeMetricFamily:
        help_text, labels = USAGE_GAUGES[name]
        return GaugeMetricFamily(name, help_text, labels=list(labels))

    def totals(prefix: str, totals: Totals) -> list[GaugeMetricFamily]:
        tokens, cost = family(f"{prefix}_tokens"), family(f"{prefix}_cost_usd")
        for owner, value in totals.tokens.items():
            tokens.add_metric([owner], value)
            cost.add_metric([owner], totals.cost[owner])
        return [tokens, cost]

    ratio = family("gateway_usage_budget_used_ratio")
    for limit, by_org in snapshot.ratios.items():
        for org, value in by_org.items():
            ratio.add_metric([org, limit], value)
    orgs, refreshed = family("gateway_usage_month_orgs"), family("gateway_usage_refreshed_timestamp_seconds")
    api_keys = family("gateway_usage_month_api_keys")
    orgs.add_metric([], snapshot.orgs.owners)
    api_keys.add_metric([], snapshot.api_keys.owners)
    refreshed.add_metric([], snapshot.refreshed_at)
    return [*totals("gateway_usage_month", snapshot.orgs), ratio, orgs,
            *totals("gateway_usage_api_key_month", snapshot.api_keys), api_keys, refreshed]
