"""A scratch database for one benchmark run: a fresh SQLite file per gateway, or a PostgreSQL database dropped after."""
from __future__ import annotations

import uuid

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class ScratchDatabase:
    """`url` is None for SQLite (each gateway then makes its own file), else a fresh PostgreSQL database."""

    def __init__(self, postgres: bool, prefix: str = "bench"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}" if postgres else None
        self.url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{self.name}" if postgres else None

    def __enter__(self) -> ScratchDatabase:
        if self.name:
            _admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        if self.name:
            _admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    import psycopg2  # only when PostgreSQL is asked for

    connection = psycopg2.connect(POSTGRES_ADMIN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()
