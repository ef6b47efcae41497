"""Browser fixtures: one Chromium for all browser tests, a clear skip without it (a failure under CI=true), and a
screenshot of the page for every failing browser test (its path is in the failure report)."""
import json
import uuid

import pytest

from bench.fake_model import FakeModelServer, closed_port_url
from tests.monitoring.conftest import prometheus_bin  # noqa: F401  (the walkthrough's Prometheus, or its skip)
from tests.support.databases import PrivatePostgres, sqlite_copy
from tests.support.servers import Gunicorn
from tests.web.browser import IN_CI, Page, chromium_paths, start_chromium

MODEL = "llama3.1"          # Ollama protocol, no price
PRICED = "gpt-test"         # OpenAI-compatible protocol, priced
OFFLINE = "offline-model"   # its server is not running
PRICES = {"input_price": "0.15", "output_price": "0.60"}
CHAT_LIMIT = 5              # chats an hour per user; the walkthrough's five chats fit
# An hour, not a minute: the limiter's sliding window counter weighs the window before by the part of it still in
# view, so chats that straddle a minute's boundary (a browser test takes seconds) let one more through.


@pytest.fixture(scope="session")
def chromium():
    paths = chromium_paths()
    if isinstance(paths, str):
        if IN_CI:
            pytest.fail(f"{paths}; CI must run the browser tests")
        pytest.skip(f"{paths}; CI runs these tests")
    return paths


# One browser, one fake model server and one gateway (per database) for every browser test: starting them is
# most of these tests' cost. Each test signs up a user of its own, so tests share no data.
@pytest.fixture(scope="package")
def driver(chromium):
    driver = start_chromium(*chromium)
    yield driver
    driver.quit()


@pytest.fixture(scope="package")
def fake():
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def web_database_url(request, tmp_path_factory):
    """A migrated database of the package's own (a private one on PostgreSQL: no other test truncates it)."""
    if request.param == "sqlite":
        yield sqlite_copy(request.getfixturevalue("_sqlite_template"), tmp_path_factory.mktemp("web-db"))
        return
    request.getfixturevalue("_postgres")  # fails in CI, skips elsewhere, when PostgreSQL is not there
    database = PrivatePostgres()
    database.create()
    yield database.url
    database.drop()


def models_file(directory, fake: FakeModelServer) -> str:
    path = directory / "models.json"
    path.write_text(json.dumps({"default_model": MODEL, "models": {
        MODEL: {"provider": "ollama", "base_url": fake.ollama_url},
        PRICED: {"provider": "openai", "base_url": fake.openai_url, **PRICES},
        OFFLINE: {"provider": "ollama", "base_url": closed_port_url(), "connect_timeout": 1}}}))
    return str(path)


@pytest.fixture(scope="package")
def gateway(tmp_path_factory, fake, web_database_url):
    """Real gunicorn with one worker, so the in-memory rate limit counts every chat of a user (CHAT_LIMIT)."""
    directory = tmp_path_factory.mktemp("web")
    server = Gunicorn(directory, database_url=web_database_url, workers=1, threads=4, env={
        "MODELS_FILE": models_file(directory, fake), "DEFAULT_MODEL": MODEL,
        "RATE_LIMITS_ENABLED": "true", "RATE_LIMIT_CHAT_USER": f"{CHAT_LIMIT}/hour",
        "RATE_LIMIT_REGISTER_ADDRESS": "1000/minute", "RATE_LIMIT_LOGIN_ADDRESS": "1000/minute",
        "RATE_LIMIT_LOGIN_ACCOUNT": "1000/minute"})
    with server:
        yield server


@pytest.fixture
def page(driver, gateway):
    """The chat page of the package's gateway, freshly loaded: so logged out."""
    driver.get_log("performance"), driver.get_log("browser")  # what earlier tests left
    return Page(driver, gateway.url).open()


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.failed and call.when == "call" and isinstance(page, Page):
        try:
            path = page.screenshot(item.name.replace("/", "_").replace("[", "-").rstrip("]"))
            message = f"screenshot of the page: {path}"
        except Exception as exc:  # a dead browser must not hide the test's own failure
            message = f"no screenshot: {type(exc).__name__}"
        if hasattr(report.longrepr, "addsection"):
            report.longrepr.addsection("browser", message)
        else:
            report.sections.append(("browser", message))
