"""Test databases: a migrated SQLite template copied per test, a private PostgreSQL database truncated per test."""
import os
import shutil
import uuid

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.migrate import upgrade

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def normalised(url: str) -> str:
    return Settings.from_env({"DATABASE_URL": url}).database_url


def sqlite_template(directory) -> str:
    path = directory / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


def sqlite_copy(template: str, directory) -> str:
    path = directory / "gateway.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def postgres_available() -> bool:
    engine = create_engine(normalised(ADMIN_URL), connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except Exception:  # any failure to connect means "not here"
        return False
    finally:
        engine.dispose()


class PrivatePostgres:
    """A database of our own on the test server, so parallel runs never share tables."""

    def __init__(self):
        self.name = f"gateway_test_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(normalised(ADMIN_URL), isolation_level="AUTOCOMMIT")
        self.url = make_url(normalised(ADMIN_URL)).set(database=self.name).render_as_string(hide_password=False)

    def create_empty(self) -> str:
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.engine = create_engine(self.url)
        return self.url

    def create(self) -> str:
        self.create_empty()
        upgrade(self.url)
        engine = create_engine(self.url)
        self.tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        engine.dispose()
        return self.url

    def truncate(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(self.tables)} CASCADE"))

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()
