"""Browser fixtures: one Chromium per module, a clear skip without it (a failure under CI=true), and a
screenshot of the page for every failing browser test (its path is in the failure report)."""
import json
import uuid

import pytest

from tests.fakes.llm_provider import FakeLLM, closed_port_url
from tests.monitoring.conftest import prometheus_bin  # noqa: F401  (the walkthrough's Prometheus, or its skip)
from tests.support.servers import Gunicorn
from tests.web.browser import IN_CI, Page, chromium_paths, start_chromium

MODEL = "llama3.1"          # Ollama protocol, no price
PRICED = "gpt-test"         # OpenAI-compatible protocol, priced
OFFLINE = "offline-model"   # its server is not running
PRICES = {"input_price": "0.15", "output_price": "0.60"}


@pytest.fixture(scope="session")
def chromium():
    paths = chromium_paths()
    if isinstance(paths, str):
        if IN_CI:
            pytest.fail(f"{paths}; CI must run the browser tests")
        pytest.skip(f"{paths}; CI runs these tests")
    return paths


@pytest.fixture(scope="module")
def driver(chromium):
    driver = start_chromium(*chromium)
    yield driver
    driver.quit()


def models_file(directory, fake: FakeLLM) -> str:
    path = directory / "models.json"
    path.write_text(json.dumps({"default_model": MODEL, "models": {
        MODEL: {"provider": "ollama", "base_url": fake.ollama_url},
        PRICED: {"provider": "openai", "base_url": fake.openai_url, **PRICES},
        OFFLINE: {"provider": "ollama", "base_url": closed_port_url(), "connect_timeout": 1}}}))
    return str(path)


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as fake:
        yield fake


def start_gateway(tmp_path_factory, fake: FakeLLM, database_url: str, **env) -> Gunicorn:
    directory = tmp_path_factory.mktemp("web")
    return Gunicorn(directory, database_url=database_url, workers=2, threads=4, env={
        "MODELS_FILE": models_file(directory, fake), "DEFAULT_MODEL": MODEL, **env}).start()


@pytest.fixture
def page(driver, gateway):
    """The chat page of the module's `gateway`, freshly loaded: so logged out."""
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
