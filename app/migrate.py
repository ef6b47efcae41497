"""Bring a database to the latest schema: `python -m app.migrate` or from the gunicorn master."""
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from .config import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    upgrade(Settings.from_env().database_url)
    log.info("database is at the latest migration")
