"""api key scopes and limits, and each key's monthly totals

Keys created before this revision get every scope there is (inference,
conversations, usage:read): they could already do all of that, and taking it
away would break working integrations without warning. What they lose, with
every key, is org management, memberships, budgets and key management, which
no key takes any more. They have no limits of their own. Each key's months are
summed from its usage rows, so its totals are right from the start.

Revision ID: 0005
Revises: 0004

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Exact USD (app.models.Usd): NUMERIC on PostgreSQL, integer units of 1e-10 USD on SQLite, whose NUMERIC is a float.
USD = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")
EXISTING_KEYS_SCOPES = ["inference", "conversations", "usage:read"]
NEW_KEYS_SCOPES = '["inference"]'  # as app.models.DEFAULT_API_KEY_SCOPES


def upgrade() -> None:
    # Columns are only added, never altered: SQLite then alters api_keys in place. A batch copy of the table would
    # drop the old one, and its foreign key would set the api_key_id of every usage row to NULL on the way.
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=False, server_default=NEW_KEYS_SCOPES))
        batch_op.add_column(sa.Column('models', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('requests_per_minute', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('monthly_tokens', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('monthly_cost_usd', USD, nullable=True))
    keys = sa.table('api_keys', sa.column('scopes', sa.JSON()))
    op.execute(keys.update().values(scopes=EXISTING_KEYS_SCOPES))

    op.create_table('api_key_usage_months',
    sa.Column('api_key_id', sa.String(length=36), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', USD, nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_key_id', 'month')
    )
    _backfill_months()


def _backfill_months() -> None:
    """One row per key and UTC month of its usage rows, summed in the database (never a walk over every row)."""
    if op.get_bind().dialect.name == "sqlite":
        month = "substr(created_at, 1, 7)"  # UTC text, "YYYY-MM-DD HH:MM:SS..."
    else:
        month = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    op.execute(
        "INSERT INTO api_key_usage_months (api_key_id, month, tokens, cost_usd) "
        f"SELECT api_key_id, {month}, SUM(prompt_tokens + completion_tokens), COALESCE(SUM(cost_usd), 0) "
        f"FROM usage_records WHERE api_key_id IS NOT NULL GROUP BY api_key_id, {month}")


def downgrade() -> None:
    op.drop_table('api_key_usage_months')
    # Plain DROP COLUMNs (SQLite 3.35+), not a batch copy of api_keys: see upgrade().
    for column in ('monthly_cost_usd', 'monthly_tokens', 'requests_per_minute', 'models', 'scopes'):
        op.drop_column('api_keys', column)
