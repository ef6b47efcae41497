"""One JSON error shape for every failure, and a failed request changes nothing."""
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from app.models import Conversation, User


def assert_error(response, status, code=None):
    assert response.status_code == status
    assert response.is_json, response.data[:200]
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["message"]
    if code:
        assert error["code"] == code
    return error


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_json_405_with_allow_header(client):
    response = client.put("/auth/login")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_malformed_json_is_400(client):
    response = client.post("/auth/register", data="{not json", content_type="application/json")
    assert_error(response, 400, "malformed_json")


def test_wrong_content_type_is_415(client, db_session):
    response = client.post("/auth/register", data="email=a@b.c&password=12345678", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_oversized_body_is_413(client, app):
    payload = '{"name": "' + "x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + '"}'
    assert_error(client.post("/auth/register", data=payload, content_type="application/json"), 413)


def test_non_object_json_body_is_400(client):
    assert_error(client.post("/auth/register", json=["a", "list"]), 400, "validation_error")


def test_unhandled_exception_is_500_without_exception_text(app, client, monkeypatch):
    from app.conversations import service

    def explode(**kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(service, "list_visible", explode)
    user = client.post("/auth/register", json={"email": "e@example.com", "password": "long enough"}).get_json()
    response = client.get("/conversations", headers={"Authorization": f"Bearer {user['accessToken']}"})
    error = assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.get_data(as_text=True) and "RuntimeError" not in error["message"]


def test_failed_update_leaves_the_row_as_it_was(client, user, db_session):
    created = client.post("/conversations", json={"title": "keep me"}, headers=user.headers).get_json()
    response = client.patch(f"/conversations/{created['id']}", json={"title": "new", "temperature": 9}, headers=user.headers)
    assert_error(response, 400, "validation_error")
    assert db_session.scalar(select(Conversation.title)) == "keep me"


@pytest.mark.parametrize("path", ["/auth/me", "/conversations", "/orgs"])
def test_auth_errors_use_the_same_shape(client, path):
    assert_error(client.get(path), 401, "missing_token")


class _DriverError(Exception):
    """Stands for a DBAPI driver's exception."""


@pytest.mark.parametrize("raised, status, code", [
    (OperationalError("SELECT 1", {}, _DriverError("connection refused")), 503, "database_unavailable"),
    # A connection found closed mid-request: SQLAlchemy marks the error as invalidating it.
    (InterfaceError("SELECT 1", {}, _DriverError("connection already closed"), connection_invalidated=True),
     503, "database_unavailable"),
    (ProgrammingError("SELECT nope", {}, _DriverError("syntax error")), 500, "internal_error"),
])
def test_database_errors_are_503_only_when_the_database_is_unreachable(app, client, monkeypatch, raised, status,
                                                                        code):
    from app.conversations import service

    def fail(**kwargs):
        raise raised

    user = client.post("/auth/register", json={"email": "d@example.com", "password": "long enough"}).get_json()
    monkeypatch.setattr(service, "list_visible", fail)
    response = client.get("/conversations", headers={"Authorization": f"Bearer {user['accessToken']}"})
    assert_error(response, status, code)
    assert response.headers.get("Retry-After") == (str(app.config["SETTINGS"].retry_after_seconds)
                                                   if status == 503 else None)
    assert "connection" not in response.get_data(as_text=True)
