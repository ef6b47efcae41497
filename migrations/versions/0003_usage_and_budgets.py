"""usage records, org budgets and monthly totals, backfilled from the assistant messages

Every stored assistant message gets its usage row, from its meta (model,
provider, usage, timings, partial reason) and its conversation (user, org),
and each org's months are summed from those rows. Their cost is NULL: a
migration cannot know what the models cost then, and never makes one up.
Failed completions of the past stored no message, so they have no row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:01:58.154653

"""
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# Exact USD (app.models.Usd): NUMERIC on PostgreSQL, integer units of 1e-10 USD on SQLite, whose NUMERIC is a float.
USD = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table('org_budgets',
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('monthly_tokens', sa.BigInteger(), nullable=True),
    sa.Column('monthly_cost_usd', USD, nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id')
    )
    op.create_table('org_usage_months',
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', USD, nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'month')
    )
    op.create_table('usage_records',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=True),
    sa.Column('api_key_id', sa.String(length=36), nullable=True),
    sa.Column('conversation_id', sa.String(length=36), nullable=True),
    sa.Column('message_id', sa.String(length=36), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('cost_usd', USD, nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('time_to_first_token_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_conversation', ['conversation_id'], unique=False)
        batch_op.create_index('ix_usage_records_org_created', ['org_id', 'created_at'], unique=False)
        batch_op.create_index('ix_usage_records_user_created', ['user_id', 'created_at'], unique=False)
    _backfill()


# The tables as this revision knows them, not as app.models may describe them later.
_messages = sa.table("messages", sa.column("id", sa.String), sa.column("conversation_id", sa.String),
                     sa.column("role", sa.String), sa.column("meta", sa.JSON), sa.column("created_at", sa.DateTime(timezone=True)))
_conversations = sa.table("conversations", sa.column("id", sa.String), sa.column("user_id", sa.String),
                          sa.column("org_id", sa.String), sa.column("model", sa.String))
_usage = sa.table("usage_records", *(sa.column(name) for name in (
    "id", "created_at", "user_id", "org_id", "conversation_id", "message_id", "model", "provider", "prompt_tokens",
    "completion_tokens", "estimated", "method", "cost_usd", "outcome", "duration_ms", "time_to_first_token_ms")))
_months = sa.table("org_usage_months", sa.column("org_id"), sa.column("month"), sa.column("tokens"),
                   sa.column("cost_usd"))
# A partial reply's meta.reason is an error code; the outcome is the chat metrics' name for it.
_OUTCOMES = {"provider_timeout": "timeout"}
_BATCH = 1000


def _backfill() -> None:
    bind = op.get_bind()
    query = (sa.select(_messages.c.id, _messages.c.conversation_id, _messages.c.meta, _messages.c.created_at,
                       _conversations.c.user_id, _conversations.c.org_id, _conversations.c.model)
             .join(_conversations, _conversations.c.id == _messages.c.conversation_id)
             .where(_messages.c.role == "ASSISTANT"))
    months: dict[tuple[str, str], int] = defaultdict(int)
    batch: list[dict[str, Any]] = []
    for message in bind.execute(query).all():
        row = _usage_row(message)
        batch.append(row)
        if row["org_id"] is not None:
            months[(row["org_id"], _utc(row["created_at"]).strftime("%Y-%m"))] += row["prompt_tokens"] + row["completion_tokens"]
        if len(batch) == _BATCH:
            bind.execute(_usage.insert(), batch)
            batch = []
    if batch:
        bind.execute(_usage.insert(), batch)
    if months:
        bind.execute(_months.insert(), [{"org_id": org_id, "month": month, "tokens": tokens, "cost_usd": 0}
                                        for (org_id, month), tokens in months.items()])


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL an aware time in the session's zone."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _usage_row(message) -> dict[str, Any]:
    meta = message.meta if isinstance(message.meta, dict) else {}
    usage = meta.get("usage") if isinstance(meta.get("usage"), dict) else None
    timings = meta.get("timings") if isinstance(meta.get("timings"), dict) else {}
    return {
        "id": str(uuid.uuid4()), "created_at": message.created_at, "user_id": message.user_id,
        "org_id": message.org_id, "conversation_id": message.conversation_id, "message_id": message.id,
        "model": meta.get("model") or message.model or "unknown", "provider": meta.get("provider") or "unknown",
        "prompt_tokens": int(usage.get("promptTokens") or 0) if usage else 0,
        "completion_tokens": int(usage.get("completionTokens") or 0) if usage else 0,
        "estimated": bool(usage.get("estimated")) if usage else False,
        "method": (usage.get("method") or "reported") if usage else "none",
        "cost_usd": None,
        "outcome": _OUTCOMES.get(meta.get("reason"), meta.get("reason")) if meta.get("partial") else "success",
        "duration_ms": timings.get("totalMs"), "time_to_first_token_ms": timings.get("timeToFirstTokenMs"),
    }



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_user_created')
        batch_op.drop_index('ix_usage_records_org_created')
        batch_op.drop_index('ix_usage_records_conversation')

    op.drop_table('usage_records')
    op.drop_table('org_usage_months')
    op.drop_table('org_budgets')
