"""Token lifecycle: refresh rotation and reuse, logout, password change, disabled and deleted users, exp required."""
import time

import jwt
from sqlalchemy import delete, select

from app.models import TokenFamily, User
from tests.conftest import TEST_SECRET
from tests.support.auth import PASSWORD
from tests.test_errors import assert_error

NEW_PASSWORD = "a brand new passphrase"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def me(client, token: str):
    return client.get("/auth/me", headers=bearer(token))


def refresh(client, token: str):
    return client.post("/auth/refresh", headers=bearer(token))


def login(client, email: str, password: str = PASSWORD):
    return client.post("/auth/login", json={"email": email, "password": password})


def assert_revoked(response, reason: str = "log in again"):
    error = assert_error(response, 401, "token_revoked")
    assert reason in error["message"]


def test_refresh_rotates_both_tokens_and_spends_the_old_refresh_token(client, user):
    response = refresh(client, user.refresh_token)
    assert response.status_code == 200
    pair = response.get_json()
    assert set(pair) == {"accessToken", "refreshToken"} and pair["refreshToken"] != user.refresh_token
    assert me(client, pair["accessToken"]).get_json()["id"] == user.id
    assert me(client, user.access_token).status_code == 200  # rotation alone ends nothing
    again = refresh(client, pair["refreshToken"])
    assert again.status_code == 200 and me(client, again.get_json()["accessToken"]).status_code == 200


def test_reusing_a_spent_refresh_token_ends_the_whole_session(client, user, db_session):
    legit = refresh(client, user.refresh_token).get_json()
    newer = refresh(client, legit["refreshToken"]).get_json()
    assert_revoked(refresh(client, user.refresh_token))  # a copy of the first token, used by someone else
    for token in (user.access_token, legit["accessToken"], newer["accessToken"]):
        assert_revoked(me(client, token))
    assert_revoked(refresh(client, newer["refreshToken"]))  # the legitimate holder must log in again
    assert db_session.scalar(select(TokenFamily.revoked_at)) is not None


def test_reuse_ends_only_that_session(client, auth, user):
    other = login(client, user.email).get_json()
    refresh(client, user.refresh_token)
    assert_revoked(refresh(client, user.refresh_token))
    assert me(client, other["accessToken"]).status_code == 200
    assert refresh(client, other["refreshToken"]).status_code == 200


def test_logout_ends_the_access_and_refresh_tokens_of_its_session_only(client, user):
    other = login(client, user.email).get_json()
    response = client.post("/auth/logout", headers=user.headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert_revoked(me(client, user.access_token))
    assert_revoked(refresh(client, user.refresh_token))
    assert_revoked(client.post("/auth/logout", headers=user.headers))
    assert me(client, other["accessToken"]).status_code == 200


def test_logout_with_a_refresh_token_ends_that_session_too(client, user):
    other = login(client, user.email).get_json()
    response = client.post("/auth/logout", json={"refreshToken": other["refreshToken"]}, headers=user.headers)
    assert response.status_code == 204
    for token in (user.access_token, other["accessToken"]):
        assert_revoked(me(client, token))
    assert_revoked(refresh(client, other["refreshToken"]))


def test_logout_refuses_a_refresh_token_that_is_not_the_callers(client, auth, user):
    stranger = auth.register()
    for token in ("not a token", stranger.refresh_token, user.access_token):
        response = client.post("/auth/logout", json={"refreshToken": token}, headers=user.headers)
        assert assert_error(response, 400, "validation_error")["details"] == {
            "refreshToken": ["Not a refresh token of this account."]}
    assert me(client, stranger.access_token).status_code == 200  # nothing of the stranger's was touched
    assert me(client, user.access_token).status_code == 200


def test_password_change_ends_every_session_and_starts_a_new_one(client, user):
    other = login(client, user.email).get_json()
    response = client.post("/auth/password", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                           headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == user.id
    for token in (user.access_token, other["accessToken"]):
        assert_revoked(me(client, token))
    for token in (user.refresh_token, other["refreshToken"]):
        assert_revoked(refresh(client, token))
    assert me(client, body["accessToken"]).status_code == 200
    assert refresh(client, body["refreshToken"]).status_code == 200
    assert login(client, user.email).status_code == 401
    assert login(client, user.email, NEW_PASSWORD).status_code == 200


def test_password_change_with_a_wrong_current_password_changes_nothing(client, user):
    response = client.post("/auth/password", json={"currentPassword": "not it at all", "newPassword": NEW_PASSWORD},
                           headers=user.headers)
    assert "current password" in assert_error(response, 403, "wrong_password")["message"]
    assert me(client, user.access_token).status_code == 200
    assert login(client, user.email).status_code == 200


def test_password_change_validates_the_new_password(client, user):
    response = client.post("/auth/password", json={"currentPassword": PASSWORD, "newPassword": "short"},
                           headers=user.headers)
    assert set(assert_error(response, 400, "validation_error")["details"]) == {"newPassword"}


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_a_disabled_account_is_refused_at_once_and_enabled_again_logs_in_afresh(app, client, user):
    assert cli(app, "disable-user", user.email.upper()) == (0, f"disabled user {user.email} ({user.id})\n")
    assert_revoked(me(client, user.access_token), "disabled")
    assert_revoked(refresh(client, user.refresh_token), "disabled")
    assert_error(login(client, user.email), 403, "account_disabled")
    assert login(client, user.email, "wrong password").status_code == 401  # no hint without the password
    assert cli(app, "enable-user", user.email)[0] == 0
    assert_revoked(me(client, user.access_token))  # what leaked before stays dead
    assert me(client, login(client, user.email).get_json()["accessToken"]).status_code == 200


def test_a_disabled_accounts_api_keys_stop_too(app, client, user):
    secret = client.post("/api-keys", json={"name": "laptop"}, headers=user.headers).get_json()["key"]
    assert me(client, secret).status_code == 200
    assert cli(app, "disable-user", user.email)[0] == 0
    assert_error(me(client, secret), 401, "invalid_api_key")
    assert cli(app, "enable-user", user.email)[0] == 0
    assert me(client, secret).status_code == 200  # a key is revoked by deleting it, not by disabling its user


def test_disabling_an_unknown_account_fails_with_a_message(app):
    code, output = cli(app, "disable-user", "nobody@example.com")
    assert code == 1 and "Account not found: nobody@example.com" in output


def test_a_deleted_account_is_refused_on_every_route(client, user, db_session):
    conversation = client.post("/conversations", json={}, headers=user.headers).get_json()["id"]
    db_session.execute(delete(User).where(User.id == user.id))
    db_session.commit()
    for path in ("/auth/me", "/conversations", f"/conversations/{conversation}", "/orgs", "/api-keys"):
        assert_revoked(client.get(path, headers=user.headers), "no longer exists")
    assert_revoked(refresh(client, user.refresh_token), "no longer exists")


def hand_signed(claims: dict) -> str:
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


def test_a_token_without_exp_is_invalid_even_when_signed_with_our_key(client, user):
    claims = jwt.decode(user.access_token, TEST_SECRET, algorithms=["HS256"])
    assert "fam" in claims
    del claims["exp"]
    assert_error(me(client, hand_signed(claims)), 401, "invalid_token")
    assert me(client, hand_signed({**claims, "exp": int(time.time()) + 60})).status_code == 200


def test_a_token_without_a_session_cannot_be_revoked_so_it_is_refused(client, user):
    claims = jwt.decode(user.access_token, TEST_SECRET, algorithms=["HS256"])
    del claims["fam"]
    assert_revoked(me(client, hand_signed(claims)))
    assert_revoked(me(client, hand_signed({**claims, "fam": "00000000-0000-0000-0000-000000000000"})))


def test_a_login_clears_the_users_expired_sessions(client, user, db_session):
    db_session.execute(TokenFamily.__table__.update().values(expires_at=TokenFamily.created_at))
    db_session.commit()
    login(client, user.email)
    assert db_session.scalar(select(TokenFamily.id).where(TokenFamily.expires_at == TokenFamily.created_at)) is None
    assert len(db_session.scalars(select(TokenFamily.id)).all()) == 1
