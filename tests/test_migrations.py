from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import Base
from app.migrate import alembic_config, current_revision, upgrade
from tests.support.databases import normalised


def test_upgrade_head_on_an_empty_database_matches_the_models(empty_database_url):
    assert upgrade(empty_database_url) == (None, "0002")
    engine = create_engine(normalised(empty_database_url))
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert {"users", "orgs", "org_members", "conversations", "messages", "api_keys", "alembic_version"} == tables


def test_second_upgrade_is_a_no_op_and_downgrade_round_trips(empty_database_url):
    from alembic import command

    upgrade(empty_database_url)
    assert upgrade(empty_database_url) == ("0002", "0002")
    command.downgrade(alembic_config(normalised(empty_database_url)), "base")
    assert current_revision(normalised(empty_database_url)) is None
    assert upgrade(empty_database_url) == (None, "0002")
