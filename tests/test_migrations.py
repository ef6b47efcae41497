from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import Base
from app.migrate import alembic_config, current_revision, upgrade
from tests.support.databases import normalised

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_upgrade_head_on_an_empty_database_matches_the_models(empty_database_url):
    assert upgrade(empty_database_url) == (None, HEAD)
    engine = create_engine(normalised(empty_database_url))
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert {"users", "orgs", "org_members", "conversations", "messages", "api_keys", "usage_records", "org_budgets",
            "org_usage_months", "token_families", "api_key_usage_months", "alembic_version"} == tables


def test_second_upgrade_is_a_no_op_and_downgrade_round_trips(empty_database_url):
    from alembic import command

    upgrade(empty_database_url)
    assert upgrade(empty_database_url) == (HEAD, HEAD)
    command.downgrade(alembic_config(normalised(empty_database_url)), "base")
    assert current_revision(normalised(empty_database_url)) is None
    assert upgrade(empty_database_url) == (None, HEAD)
