"""Writing usage: one row per completion, and its org's and API key's running totals for its UTC month, in one transaction.

Where an assistant message is stored, the chat code writes the row in that
message's transaction (`UsageLedger.write`, then `settled()` after its
commit). Every other ending (a failure, /v1, which stores no message) is
written by the completion's tally (app/chat/tally.py) when it ends (`write_alone`), so
each completion has exactly one row, with the tokens its metrics counted.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ..db import Step, autocommit_connection, dialect_of, run_as_one
from ..errors import database_unreachable
from ..llm import ModelSpec, Usage, cost_of
from ..models import ApiKeyUsageMonth, OrgUsageMonth, UsageRecord, month_key, new_id, utcnow

log = logging.getLogger(__name__)

NOT_COUNTED = "none"  # the method of a completion that ended before any token was counted

_records, _months, _key_months = UsageRecord.__table__, OrgUsageMonth.__table__, ApiKeyUsageMonth.__table__
# Built once: statement construction is a visible share of a chat's CPU time. Every column a row() names,
# so the statement compiles once (db.run_as_one) whatever the row holds.
_ROW_COLUMNS = ("id", "created_at", "user_id", "org_id", "api_key_id", "conversation_id", "message_id", "model",
                "provider", "prompt_tokens", "completion_tokens", "estimated", "method", "cost_usd", "outcome",
                "duration_ms", "time_to_first_token_ms")
_INSERT_ROW = _records.insert().values({name: bindparam(name, type_=_records.c[name].type) for name in _ROW_COLUMNS})


def _bump_statement(dialect, months, owner: str):
    """INSERT ... ON CONFLICT DO UPDATE SET tokens = tokens + excluded.tokens: one atomic, race-free statement.

    Both databases take it (SQLite since 3.24); concurrent first completions of a
    month cannot both insert, and increments are never lost to a read-modify-write.
    """
    statement = dialect.insert(months).values({owner: bindparam("owner"), "month": bindparam("month"),
                                               "tokens": bindparam("tokens"), "cost_usd": bindparam("cost_usd")})
    return statement.on_conflict_do_update(
        index_elements=[months.c[owner], months.c.month],
        set_={"tokens": months.c.tokens + statement.excluded.tokens,
              "cost_usd": months.c.cost_usd + statement.excluded.cost_usd})


# The running totals a usage row adds to: its org's month and its API key's month.
_BUMPS = {column: {"postgresql": _bump_statement(postgresql, table, column),
                   "sqlite": _bump_statement(sqlite, table, column)}
          for column, table in (("org_id", _months), ("api_key_id", _key_months))}


def record(session: Session, row: dict[str, Any]) -> None:
    """Insert one usage row and add it to its org's month and its API key's; the caller commits."""
    for statement, params in steps(session, row):
        session.execute(statement, params)


def steps(session: Session | Connection, row: dict[str, Any]) -> list[Step]:
    """The statements of `record`, for db.run_as_one to send with others in one round trip."""
    dialect = dialect_of(session).name
    return [(_INSERT_ROW, row)] + [
        (bump[dialect], {"owner": row[owner], "month": month_key(row["created_at"]),
                         "tokens": row["prompt_tokens"] + row["completion_tokens"],
                         "cost_usd": row["cost_usd"] or Decimal(0)})
        for owner, bump in _BUMPS.items() if row[owner] is not None]


class UsageLedger:
    """Who a completion is for and where its row goes; written exactly once."""

    def __init__(self, *, db_sessions: sessionmaker[Session] | None, model: ModelSpec, user_id: str,
                 org_id: str | None = None, api_key_id: str | None = None, conversation_id: str | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.db_sessions, self.model, self.clock = db_sessions, model, clock
        self.user_id, self.org_id, self.api_key_id, self.conversation_id = user_id, org_id, api_key_id, conversation_id
        self.written = False

    def answered_by(self, spec: ModelSpec) -> None:
        """The row names, and is priced by, the model and upstream that answered (a fallback's, maybe)."""
        self.model = spec

    def cost(self, usage: Usage | None) -> Decimal | None:
        return cost_of(self.model, usage)

    def row(self, *, outcome: str, usage: Usage | None, timings: dict[str, Any], message_id: str | None = None,
            in_conversation: bool = True) -> dict[str, Any]:
        return {
            "id": new_id(), "created_at": self.clock(), "user_id": self.user_id, "org_id": self.org_id,
            "api_key_id": self.api_key_id, "conversation_id": self.conversation_id if in_conversation else None,
            "message_id": message_id, "model": self.model.name, "provider": self.model.provider,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "estimated": usage.estimated if usage else False, "method": usage.method if usage else NOT_COUNTED,
            "cost_usd": self.cost(usage), "outcome": outcome,
            "duration_ms": timings.get("totalMs"), "time_to_first_token_ms": timings.get("timeToFirstTokenMs"),
        }

    def write(self, session: Session, **row: Any) -> None:
        """In the caller's transaction (with the assistant message); call `settled()` once it committed."""
        record(session, self.row(**row))

    def steps(self, session: Session, **row: Any) -> list[Step]:
        """What `write` runs, for db.run_as_one; call `settled()` once it committed."""
        return steps(session, self.row(**row))

    def settled(self) -> None:
        self.written = True

    def write_alone(self, *, outcome: str, usage: Usage | None, timings: dict[str, Any]) -> None:
        """The row of a completion that stored no message, in a transaction of its own; never raises."""
        if self.written or self.db_sessions is None:
            return
        self.written = True
        try:
            with autocommit_connection(self.db_sessions.kw["bind"]) as connection:
                run_as_one(connection, steps(connection, self.row(outcome=outcome, usage=usage, timings=timings)))
        except Exception as exc:
            if not database_unreachable(exc):
                log.exception("could not store the usage of a %s completion", self.model.name)
                return
            # No traceback: its SQL parameters name the server and the row. The counters still count it.
            log.error("could not store the usage of a %s completion: database unavailable (%s)",
                      self.model.name, type(exc).__name__)
