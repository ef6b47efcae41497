"""A request that cannot get a database connection in time is shed with a 503, never left waiting."""
import time

import pytest

from tests.conftest import TEST_SECRET
from tests.test_errors import assert_error


@pytest.fixture
def app_config(database_url):
    return {"DATABASE_URL": database_url, "APP_ENV": "test", "JWT_SECRET_KEY": TEST_SECRET, "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": "0.2", "RETRY_AFTER_SECONDS": "4"}


def test_pool_timeout_is_a_json_503_with_retry_after(app, client, user):
    with app.extensions["db_engine"].connect():  # the pool's only connection, held elsewhere
        started = time.monotonic()
        response = client.get("/conversations", headers=user.headers)
        waited = time.monotonic() - started
    error = assert_error(response, 503, "database_busy")
    assert "Retry-After" in response.headers and response.headers["Retry-After"] == "4"
    assert "pool" not in error["message"].lower()  # no internals in the message
    assert 0.2 <= waited < 2


def test_the_pool_serves_again_once_a_connection_is_free(app, client, user):
    with app.extensions["db_engine"].connect():
        assert client.get("/conversations", headers=user.headers).status_code == 503
    assert client.get("/conversations", headers=user.headers).status_code == 200
