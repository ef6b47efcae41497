"""The gateway as users run it: real gunicorn, several workers, migrations once."""
import pytest
from alembic.script import ScriptDirectory
import requests
from sqlalchemy import create_engine, text

from app.migrate import alembic_config
from tests.support.databases import normalised
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.slow
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_register_login_and_chat_setup_through_gunicorn(tmp_path, empty_database_url):
    with Gunicorn(tmp_path, database_url=empty_database_url, workers=3) as server:
        assert len(server.wait_for_workers(3)) == 3
        assert requests.get(f"{server.url}/health", timeout=5).json()["db"] == "up"
        credentials = {"email": "smoke@example.com", "password": "a long password"}
        assert requests.post(f"{server.url}/auth/register", json=credentials, timeout=5).status_code == 201
        login = requests.post(f"{server.url}/auth/login", json=credentials, timeout=5)
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        # Several requests, so different workers verify tokens that one of them issued.
        for _ in range(6):
            assert requests.get(f"{server.url}/auth/me", headers=headers, timeout=5).status_code == 200
        created = requests.post(f"{server.url}/conversations", json={"title": "smoke"}, headers=headers, timeout=5)
        assert created.status_code == 201
        listed = requests.get(f"{server.url}/conversations", headers=headers, timeout=5).json()["items"]
        assert [c["title"] for c in listed] == ["smoke"]
    first_log = server.log()
    assert first_log.count(f"database schema migrated from empty to {HEAD}") == 1

    with Gunicorn(tmp_path, database_url=empty_database_url, workers=2) as again:
        again.wait_for_workers(2)
    assert f"database schema already at {HEAD}: nothing to migrate" in again.log()
    engine = create_engine(normalised(empty_database_url))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 1
    engine.dispose()


def test_a_port_taken_after_it_was_chosen_is_not_mistaken_for_the_gateway(tmp_path):
    # Another test's server took the port between its choice and gunicorn's bind, and answers /livez:
    # the suite once talked to that server while its own gateway had exited with "Address already in use".
    import http.server
    import threading

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    squatter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Alive)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    taken = squatter.server_address[1]
    try:
        server = Gunicorn(tmp_path, workers=1)
        server.port, server.url = taken, f"http://127.0.0.1:{taken}"
        server.env["API_PORT"] = str(taken)
        first_log = server.log_path
        with server:
            assert server.port != taken
            assert requests.get(f"{server.url}/livez", timeout=5).json() == {"status": "ok"}
            assert len(server.wait_for_workers(1)) == 1
            assert f"cannot listen on 127.0.0.1:{taken}" in first_log.read_text()
    finally:
        squatter.shutdown()
        squatter.server_close()
