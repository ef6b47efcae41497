"""Bring a database to the latest schema: `python -m app.migrate` or from the gunicorn master."""
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

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


def upgrade(database_url: str) -> tuple[str | None, str | None]:
    """Migrate to head; returns the revisions before and after (equal when there was nothing to do)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), "head")
    return before, current_revision(database_url)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    before, after = upgrade(Settings.from_env().database_url)
    log.info("database schema: %s (was %s)", after, before)
