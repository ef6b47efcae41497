"""/readyz: 200 only when this instance should get new requests, 503 with the reason otherwise."""
import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.boot import draining
from app.migrate import head_revision
from bench.fake_model import closed_port_url
from tests.support.apps import close_app


def test_ready_when_the_database_answers_at_the_schema_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "reason": None}


def test_unready_at_once_when_the_instance_drains(client, monkeypatch):
    monkeypatch.setattr(draining, "_shared", None)
    draining.share()
    draining.start()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unready", "reason": "draining"}
    assert client.get("/livez").status_code == 200  # liveness is not readiness: nothing restarts it


def test_a_worker_being_replaced_leaves_the_instance_ready(client, monkeypatch):
    monkeypatch.setattr(draining, "_stream_deadline", None)
    draining.worker_stopping(30)
    assert client.get("/readyz").status_code == 200  # its siblings and successor serve on
    assert not draining.streams_must_end()  # its streams still have their grace


@pytest.fixture
def schema_behind(database_url):
    """The database's recorded revision set back to the first one; put back afterwards (the database is shared)."""
    engine = create_engine(database_url)

    def record(revision):
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    record("0001")
    yield
    record(head_revision())
    engine.dispose()


def test_unready_when_the_schema_is_behind_this_code(client, schema_behind):
    assert head_revision() != "0001"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unready", "reason": "schema_not_at_head"}


def test_unready_when_the_database_is_unreachable(app_config):
    # The closed port is chosen now, not at collection: minutes later another test's server may listen there,
    # and a connect to a server that never answers waits for good (hence connect_timeout as well).
    url = "postgresql://gateway@" + closed_port_url()[7:] + "/x?connect_timeout=2"
    app = create_app({**app_config, "DATABASE_URL": url, "DB_POOL_TIMEOUT": "1"})
    try:
        response = app.test_client().get("/readyz")
    finally:
        close_app(app)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unready", "reason": "database_unreachable"}
