"""Fixtures: every database test runs on SQLite and on PostgreSQL, each with a clean database."""
import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from app import create_app
from bench.fake_model import FakeModelServer
from tests.support.apps import close_app
from tests.support.auth import AuthActions
from tests.support.databases import PrivatePostgres, normalised, postgres_available, sqlite_copy, sqlite_template

TEST_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
IN_CI = os.environ.get("CI", "").lower() == "true"
# scrypt at N = 2**10 instead of 2**15: the same algorithm and checks, a thirtieth of the time.
TEST_HASH_COST = "10"


# Packages whose fixtures outlive a module (one Chromium and one gateway per database for every page test, the
# gateway's image for every deploy test): handed out whole, so one process pays for them once, not each
# process that got one of their files.
WHOLE_PACKAGES = ("web/", "deploy/")


# Every test-client response is closed when its test's body ends, as a WSGI server closes every body it sent.
# A streamed chat left open was otherwise finalised by the garbage collector later, inside another test's
# request: storing its partial reply then waited on that request's own SQLite write lock (30 s busy timeout,
# twice), and a whole run stalled for minutes.
_unclosed: list = []
_open = FlaskClient.open


def _open_and_remember(self, *args, **kwargs):
    response = _open(self, *args, **kwargs)
    close, closed = response.close, []

    def close_once():  # a response's close also runs its on-close callbacks: never twice
        if not closed:
            closed.append(True)
            close()

    response.close = close_once
    _unclosed.append(response)
    return response


FlaskClient.open = _open_and_remember


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield  # the test's body, before its fixtures (its app and database) are torn down
    while _unclosed:
        _unclosed.pop().close()


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class ByFileAndPackage(LoadFileScheduling):
        """`--dist loadfile`, with each of WHOLE_PACKAGES as one unit."""

        def _split_scope(self, nodeid: str) -> str:
            return next((package for package in WHOLE_PACKAGES if nodeid.startswith(package)),
                        super()._split_scope(nodeid))

    return ByFileAndPackage(config, log)


def pytest_collection_modifyitems(items):
    """The tests that start servers first (WHOLE_PACKAGES, the longest units, before them), each module's
    tests still together.

    pytest-xdist hands out units in this order: the long, mostly waiting ones (a 60 s soak, Prometheus scrape
    intervals, drains, a browser) start early beside each other, and the short ones fill the processes at the
    end, instead of one soak starting last and running alone.
    """
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        return 0 if item.nodeid.startswith(WHOLE_PACKAGES) else 1 if item.module in slow_modules else 2

    items.sort(key=rank)  # stable: the order within a module stays


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    return sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def _postgres():
    if not postgres_available():
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable (TEST_POSTGRES_URL); CI must run every test on it")
        pytest.skip("PostgreSQL is not reachable: set TEST_POSTGRES_URL or start it")
    database = PrivatePostgres()
    database.create()
    yield database
    database.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A clean, migrated database for one test."""
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("_sqlite_template"), tmp_path)
    database = request.getfixturevalue("_postgres")
    database.truncate()
    return database.url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request, tmp_path_factory):
    """A clean, migrated database shared by one module's tests, for a server started once per module.

    PostgreSQL gets a private database of its own, so function-scoped tests elsewhere never truncate it.
    """
    if request.param == "sqlite":
        yield sqlite_copy(request.getfixturevalue("_sqlite_template"), tmp_path_factory.mktemp("module-db"))
        return
    request.getfixturevalue("_postgres")  # fails in CI, skips elsewhere, when PostgreSQL is not there
    database = PrivatePostgres()
    database.create()
    yield database.url
    database.drop()


@pytest.fixture(scope="module")
def database(module_database_url):
    """An engine on the module's database, for reading back the rows a module's server wrote."""
    engine = create_engine(normalised(module_database_url))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database with no tables at all, for migration and first-start tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'gateway.db'}"
        return
    request.getfixturevalue("_postgres")  # fails in CI, skips elsewhere, when PostgreSQL is not there
    database = PrivatePostgres()
    database.create_empty()
    yield database.url
    database.drop()


@pytest.fixture
def app_overrides():
    """Extra settings for one test: `@pytest.mark.parametrize("app_overrides", [{...}])`."""
    return {}


@pytest.fixture
def app_config(database_url, app_overrides):
    """Environment-style settings for the app under test; override in a module to change them."""
    return {"DATABASE_URL": database_url, "APP_ENV": "test", "JWT_SECRET_KEY": TEST_SECRET, "LOG_LEVEL": "WARNING",
            "PASSWORD_HASH_COST": TEST_HASH_COST,
            # Every test user registers from 127.0.0.1; tests/admission/test_rate_limits.py turns the limits on.
            "RATE_LIMITS_ENABLED": "false", **app_overrides}


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def user(auth):
    return auth.register()


@pytest.fixture
def org(client, user):
    """An organisation `user` created, and so OWNS."""
    response = client.post("/orgs", json={"name": "Acme"}, headers=user.headers)
    assert response.status_code == 201
    return response.get_json()


@pytest.fixture
def db_session(app):
    """A session for asserting on rows, independent of the requests' sessions."""
    session = app.extensions["db_sessionmaker"]()
    yield session
    session.close()


@pytest.fixture(scope="session")
def _fake_llm_server():
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def fake_llm(_fake_llm_server):
    """The fake LLM provider (a real HTTP server), with a fresh default script and no recorded requests."""
    _fake_llm_server.reset()
    yield _fake_llm_server
    _fake_llm_server.reset()
