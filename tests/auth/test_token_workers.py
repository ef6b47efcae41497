"""Token revocation across gunicorn workers: a logout, a disabled account or a reused refresh token holds on every one."""
import threading
import uuid

import pytest
import requests

from app import create_app
from tests.conftest import TEST_SECRET
from tests.support.apps import close_app
from tests.support.servers import Gunicorn
from tests.support.workers import one_connection_per_worker, request, worker_serving

pytestmark = pytest.mark.slow
WORKERS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url):
    with Gunicorn(tmp_path_factory.mktemp("gateway"), database_url=module_database_url, workers=WORKERS) as server:
        server.wait_for_workers(WORKERS)
        yield server


def register(server) -> dict:
    response = requests.post(f"{server.url}/auth/register", timeout=10,
                             json={"email": f"u-{uuid.uuid4().hex}@example.com",
                                   "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return response.json()


def every_worker_says(server, token: str) -> dict[int, tuple[int, str | None]]:
    """What GET /auth/me answers to `token` on each worker, by worker pid."""
    connections = one_connection_per_worker(server, WORKERS)
    try:
        answers = {}
        for pid, connection in connections.items():
            status, body = request(connection, "GET", "/auth/me", {"Authorization": f"Bearer {token}"})
            assert worker_serving(server, connection) == pid
            answers[pid] = (status, body["error"]["code"] if status >= 400 else None)
        return answers
    finally:
        for connection in connections.values():
            connection.close()


def test_a_logout_holds_on_every_worker(server):
    session = register(server)
    assert set(every_worker_says(server, session["accessToken"]).values()) == {(200, None)}
    assert requests.post(f"{server.url}/auth/logout", timeout=10,
                         headers={"Authorization": f"Bearer {session['accessToken']}"}).status_code == 204
    assert set(every_worker_says(server, session["accessToken"]).values()) == {(401, "token_revoked")}


def test_disabling_an_account_from_the_shell_holds_on_every_worker(server, module_database_url):
    session = register(server)
    assert set(every_worker_says(server, session["accessToken"]).values()) == {(200, None)}
    shell = create_app({"DATABASE_URL": module_database_url, "APP_ENV": "test", "JWT_SECRET_KEY": TEST_SECRET,
                        "LOG_LEVEL": "WARNING"})
    result = shell.test_cli_runner().invoke(args=["disable-user", session["user"]["email"]])
    close_app(shell)
    assert result.exit_code == 0, result.output
    assert set(every_worker_says(server, session["accessToken"]).values()) == {(401, "token_revoked")}


@pytest.mark.parametrize("attempt", range(3))
def test_two_refreshes_racing_with_one_token_let_one_win_and_end_the_session(server, attempt):
    session = register(server)
    barrier, answers = threading.Barrier(2), []

    def refresh():
        barrier.wait()
        answers.append(requests.post(f"{server.url}/auth/refresh", timeout=10,
                                     headers={"Authorization": f"Bearer {session['refreshToken']}"}))

    racers = [threading.Thread(target=refresh) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    # The loser counts as reuse: the winner's new tokens end with the session.
    assert set(every_worker_says(server, winner["accessToken"]).values()) == {(401, "token_revoked")}
