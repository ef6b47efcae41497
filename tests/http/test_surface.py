"""What every response tells a browser, who may call from another origin, and who may sign up."""
import pytest
from sqlalchemy import func, select

from app.models import OrgMember, OrgRole, User
from tests.test_errors import assert_error

ORIGIN = "https://chat.example.com"


@pytest.mark.parametrize("method, path", [("GET", "/livez"), ("GET", "/no/such/page"), ("POST", "/auth/login")])
def test_security_headers_on_every_response(client, method, path):
    response = client.open(path, method=method, json={} if method == "POST" else None)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # opt-in: only the operator knows TLS is in front


def test_token_responses_are_never_stored(client, auth):
    user = auth.register()
    for response in (client.post("/auth/login", json={"email": user.email, "password": "correct horse battery"}),
                     client.post("/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"})):
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


CORS_AND_HSTS = {"CORS_ORIGINS": f"{ORIGIN}, https://admin.example.com", "HSTS_SECONDS": "31536000"}


@pytest.mark.parametrize("app_overrides", [CORS_AND_HSTS])
def test_cors_preflight_for_an_allowed_origin(client):
    response = client.options("/conversations", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("app_overrides", [CORS_AND_HSTS])
def test_cors_answers_name_the_origin_and_expose_retry_after(client, user):
    response = client.get("/conversations", headers={"Origin": ORIGIN, **user.headers})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize("app_overrides", [CORS_AND_HSTS, {}])
def test_other_origins_get_no_cors_headers(client, user):
    response = client.get("/conversations", headers={"Origin": "https://evil.example.net", **user.headers})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("app_overrides", [{"REGISTRATION_OPEN": "false"}])
def test_closed_sign_up_is_403_and_stores_nothing(client, db_session):
    response = client.post("/auth/register", json={"email": "new@example.com", "password": "long enough"})
    assert_error(response, 403, "registration_closed")
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("app_overrides", [{"REGISTRATION_OPEN": "false"}])
def test_operators_create_users_and_owners_from_the_shell(app, client, db_session):
    result = app.test_cli_runner().invoke(args=["create-user", "ops@example.com", "--name", "Ops",
                                                "--password", "-", "--owner-of", "Acme"], input="long enough\n")
    assert result.exit_code == 0, result.output
    assert "created user ops@example.com" in result.output and "'Acme'" in result.output
    login = client.post("/auth/login", json={"email": "ops@example.com", "password": "long enough"})
    assert login.status_code == 200
    [membership] = db_session.scalars(select(OrgMember)).all()
    assert membership.role is OrgRole.OWNER and membership.org.name == "Acme"

    again = app.test_cli_runner().invoke(args=["create-user", "OPS@example.com", "--password", "-"],
                                         input="long enough\n")
    assert again.exit_code != 0 and "already exists" in again.output
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_a_taken_email_costs_a_password_hash_like_a_new_one(client, auth, monkeypatch):
    """Timing must not tell which emails exist: both paths run the same scrypt."""
    from app.auth import service

    taken = auth.register()
    hashed = []
    real = service.generate_password_hash
    monkeypatch.setattr(service, "generate_password_hash", lambda *a, **kw: hashed.append(1) or real(*a, **kw))
    assert client.post("/auth/register", json={"email": taken.email, "password": "long enough"}).status_code == 409
    assert client.post("/auth/register", json={"email": "fresh@example.com", "password": "long enough"}).status_code == 201
    assert len(hashed) == 2
