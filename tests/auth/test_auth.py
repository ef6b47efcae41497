from sqlalchemy import func, select

from app.models import User
from tests.support.auth import PASSWORD


def test_register_returns_user_and_working_tokens(client):
    response = client.post("/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["name"] == "Ada"
    assert {"id", "createdAt"} <= body["user"].keys()
    assert "password" not in str(body) and "passwordHash" not in body["user"]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.status_code == 200 and me.get_json()["id"] == body["user"]["id"]


def test_password_is_stored_hashed(client, db_session):
    client.post("/auth/register", json={"email": "h@example.com", "password": PASSWORD})
    stored = db_session.scalar(select(User.password_hash).where(User.email == "h@example.com"))
    assert PASSWORD not in stored and stored.startswith("scrypt:")


def test_duplicate_email_is_409_case_insensitively(client, auth, db_session):
    auth.register(email="dup@example.com")
    response = client.post("/auth/register", json={"email": "DUP@example.com", "password": PASSWORD})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_weak_password_is_400_with_field_details(client, db_session):
    response = client.post("/auth/register", json={"email": "weak@example.com", "password": "short"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "password" in error["details"]
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_invalid_email_and_missing_fields_are_listed(client):
    response = client.post("/auth/register", json={"email": "not-an-email"})
    details = response.get_json()["error"]["details"]
    assert response.status_code == 400
    assert set(details) == {"email", "password"}


def test_login_with_any_casing_of_the_email(client, auth):
    registered = auth.register(email="login@example.com")
    response = client.post("/auth/login", json={"email": "LOGIN@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == registered.id
    assert body["accessToken"] and body["refreshToken"]


def test_wrong_password_and_unknown_email_get_the_same_401(client, auth):
    auth.register(email="known@example.com")
    wrong = client.post("/auth/login", json={"email": "known@example.com", "password": "not the password"})
    unknown = client.post("/auth/login", json={"email": "nobody@example.com", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()


def test_refresh_token_gives_a_new_access_token(client, user):
    response = client.post("/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"})
    assert response.status_code == 200
    token = response.get_json()["accessToken"]
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).get_json()["id"] == user.id


def test_access_token_cannot_refresh_and_refresh_token_cannot_authenticate(client, user):
    assert client.post("/auth/refresh", headers=user.headers).status_code == 401
    refresh_headers = {"Authorization": f"Bearer {user.refresh_token}"}
    assert client.get("/auth/me", headers=refresh_headers).status_code == 401
