"""Engine and the one-session-per-request lifecycle."""
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy import Connection, Dialect, Engine, Executable, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from .config import Settings


class Base(DeclarativeBase):
    pass


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    """An engine tuned for the database it talks to, its pool bounded in size and in wait."""
    settings = settings or Settings()
    # Under gevent a worker serves hundreds of requests at once; the pool caps the
    # connections each worker opens, and pool_timeout turns a wait for one into a
    # sqlalchemy TimeoutError (a 503 with Retry-After) instead of an unbounded queue.
    pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **pool)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle(engine))
    return engine


# A connection back in the pool within this many seconds is used without a ping. pool_pre_ping
# pinged on every checkout: a round trip per request, two per chat, for connections
# that had been in use a millisecond before. Idle ones, which a database restart or
# a firewall may have cut, are still checked before use.
IDLE_PING_SECONDS = 5.0


def _note_checkin(dbapi_connection, record) -> None:
    record.info["checked_in_at"] = time.monotonic()
    if dbapi_connection is not None and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False  # back to transactions for the next holder (see _autocommit)


def _autocommit(connection: Connection) -> None:
    """PostgreSQL: this connection's statements commit each on its own until it goes back to the pool.

    psycopg2's own attribute, set before the first statement: no round trip. SQLAlchemy's
    isolation_level="AUTOCOMMIT" goes through psycopg2's set_isolation_level, which sent a SET
    on the way in and another on the way back to the pool. SQLite has no round trips to save.
    """
    if connection.dialect.name == "postgresql":
        connection.connection.dbapi_connection.autocommit = True


def _ping_if_idle(engine: Engine):
    def ping(dbapi_connection, record, _proxy) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return  # brand new, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("stale connection") from exc  # the pool replaces it and retries

    return ping


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets several gunicorn workers read while one writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A writer waits up to 30 s for another process's write lock instead of failing at once.
    cursor.execute("PRAGMA busy_timeout=30000")
    # With WAL, NORMAL syncs at checkpoints rather than every commit: still never
    # corrupt, and write transactions (which hold the one write lock) stay short.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], app.config["SETTINGS"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The session of the current request, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


@contextmanager
def autocommit_connection(engine: Engine | None = None) -> Iterator[Connection]:
    """A pooled Core connection for a few statements outside any session, handed back when the block ends.

    For the hot path (the revocation check of every JWT request, the API-key lookup, the checks and the
    history before a provider call, a completion's lone usage row): the same Core statements cost less
    CPU on a connection than through an ORM Session. On PostgreSQL it is in autocommit: under READ
    COMMITTED every statement has its own snapshot anyway, so reads lose nothing by it and shed the BEGIN
    and COMMIT round trips psycopg2 would send; run_as_one's several writes still go as one transaction.
    `engine`: the app's by default; pass one to use it outside a request (after a stream).
    """
    with (engine or current_app.extensions["db_engine"]).connect() as connection:
        _autocommit(connection)
        yield connection


def session_factory() -> sessionmaker[Session]:
    """Opens sessions that outlive the request, for work done while a response streams."""
    return current_app.extensions["db_sessionmaker"]


def _close_session(_exc) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


Step = tuple[Executable, dict]


def dialect_of(target: Session | Connection) -> Dialect:
    return target.dialect if isinstance(target, Connection) else target.get_bind().dialect


def run_as_one(session: Session | Connection, steps: Sequence[Step]) -> None:
    """Run `steps` atomically, in one round trip where the database allows it, and commit.

    PostgreSQL runs a query string of several statements as one implicit
    transaction, so a session with no transaction open sends them all at once
    on an autocommit connection: one round trip instead of BEGIN, one per
    statement and COMMIT. An error rolls all of them back and is raised (the
    session is left to roll back). SQLite, in-process, runs them in turn.
    `session` may be a Core connection instead (db.autocommit_connection): less CPU, same effect.
    """
    dialect = dialect_of(session)
    if dialect.name != "postgresql":
        for statement, params in steps:
            session.execute(statement, params)
        session.commit()
        return
    sql, values = [], {}
    for index, (statement, params) in enumerate(steps):
        text, processors, compiled = _compiled(statement, dialect)
        for name, value in compiled.construct_params(params).items():
            values[f"s{index}_{name}"] = processors[name](value) if name in processors else value
        sql.append(text.replace("%(", f"%(s{index}_"))
    fresh = not session.in_transaction()
    connection = session if isinstance(session, Connection) else session.connection()
    if fresh:
        _autocommit(connection)  # the statements run as one implicit transaction: no BEGIN, no COMMIT
    connection.exec_driver_sql(";\n".join(sql), values)
    session.commit()


_COMPILED: dict = {}


def _compiled(statement: Executable, dialect: Dialect):
    """A module-level statement compiled once per dialect: its SQL, its bind processors (JSON, enums)."""
    key = (statement, dialect.name)
    if key not in _COMPILED:
        compiled = statement.compile(dialect=dialect)
        # _bind_processors: the per-parameter conversions SQLAlchemy itself applies before the driver sees a value.
        _COMPILED[key] = (compiled.string, compiled._bind_processors, compiled)
    return _COMPILED[key]
