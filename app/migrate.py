"""Bring a database to the latest schema: `python -m app.migrate` or from the gunicorn master."""
import functools
import logging
import os
import secrets
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.runtime.migration import MigrationContext

from . import logs
from .config import Settings
from .db import make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def current_revision(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@functools.cache
def head_revision() -> str | None:
    """The revision `upgrade` brings a database to: read once per process from the migrations directory."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def upgrade(database_url: str) -> tuple[str | None, str | None]:
    """Migrate to head; returns the revisions before and after (equal when there was nothing to do)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), "head")
    return before, current_revision(database_url)


def settings_from_env() -> Settings:
    # Migrations never sign a token: a missing JWT secret is no reason to warn or refuse here.
    return Settings.from_env({"JWT_SECRET_KEY": secrets.token_urlsafe(48), **os.environ})


def describe(before: str | None, after: str | None) -> str:
    if before == after:
        return f"database schema already at {after}: nothing to migrate"
    return f"database schema migrated from {before or 'empty'} to {after}"


if __name__ == "__main__":
    settings = settings_from_env()
    logs.configure(settings.log_format, settings.log_level)
    log.info(describe(*upgrade(settings.database_url)))
