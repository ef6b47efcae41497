"""Test databases: a migrated SQLite template copied per test, a private PostgreSQL database truncated per test."""
import os
import shutil
import uuid

from sqlalchemy import MetaData, create_engine, text
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
        schema = MetaData()
        schema.reflect(self.engine)
        # Children before parents, so no foreign key is ever left pointing at a deleted row.
        self.tables = [t.name for t in reversed(schema.sorted_tables) if t.name != "alembic_version"]
        return self.url

    def truncate(self) -> None:
        """Empty every table. DELETE, not TRUNCATE: on the few rows a test leaves it is several times faster
        (TRUNCATE gives each table a new file), and it runs before every PostgreSQL test."""
        with self.engine.begin() as connection:
            connection.execute(text("; ".join(f'DELETE FROM "{table}"' for table in self.tables)))

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()
