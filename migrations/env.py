"""Alembic environment: the URL comes from the caller or from the gateway's settings."""
from logging.config import fileConfig

from alembic import context

# Importable without an activated venv: alembic.ini puts the repository root on sys.path (prepend_sys_path).
from app.db import Base, make_engine
from app.migrate import settings_from_env
import app.models  # noqa: F401  (registers the tables on Base.metadata)

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return config.attributes.get("database_url") or settings_from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        # Batch mode lets later migrations alter tables on SQLite too.
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
