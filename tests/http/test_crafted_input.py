"""Crafted input found by probing the gateway: each gets a clean 4xx and changes nothing stored."""
import base64
import io
import json

import pytest
from sqlalchemy import func, select

from app.models import Conversation, OrgMember, User
from tests.test_errors import assert_error


def raw_post(client, path, body: str, headers=None):
    return client.post(path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json",
                       headers=headers or {})


def chunked_post(client, path, body: bytes, content_type: str, headers=None):
    """A body with Transfer-Encoding: chunked and no Content-Length, as gunicorn hands it over."""
    return client.post(path, input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked", **(headers or {})},
                       environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("body, field", [
    ('{"email": "a\\u0000b@example.com", "password": "x"}', "email"),
    ('{"email": "a@example.com", "password": "\\ud800"}', "password"),
    ('{"email\\u0000": "a@example.com", "password": "x"}', "email\\x00"),
])
def test_nul_and_lone_surrogates_are_400_without_a_token(client, body, field):
    error = assert_error(raw_post(client, "/auth/login", body), 400, "invalid_json")
    assert field in error["details"]


def test_nul_in_a_stored_field_is_400_and_stores_nothing(client, user, db_session):
    response = raw_post(client, "/conversations", '{"title": "a\\u0000b"}', user.headers)
    assert_error(response, 400, "invalid_json")
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 0


@pytest.mark.parametrize("body", ["[" * 990 + "]" * 990, '{"a":' * 990 + "1" + "}" * 990])
def test_deeply_nested_json_is_400(client, body):
    error = assert_error(raw_post(client, "/auth/login", body), 400, "invalid_json")
    assert "nested" in error["message"]


def test_brackets_inside_strings_do_not_count_as_nesting(client, user):
    response = raw_post(client, "/conversations", json.dumps({"title": "[" * 100 + "{" * 50}), user.headers)
    assert response.status_code == 201 and response.get_json()["title"].startswith("[[[")


def test_an_integer_with_5000_digits_is_400(client, user):
    body = '{"title": "t", "temperature": ' + "9" * 5000 + "}"
    assert_error(raw_post(client, "/conversations", body, user.headers), 400, "invalid_json")


def test_duplicate_keys_are_400_not_last_wins(client, user, auth, db_session):
    owner = user
    org = client.post("/orgs", json={"name": "acme"}, headers=owner.headers).get_json()
    newcomer = auth.register()
    body = f'{{"email": "{newcomer.email}", "role": "MEMBER", "role": "OWNER"}}'
    error = assert_error(raw_post(client, f"/orgs/{org['id']}/members", body, owner.headers), 400, "invalid_json")
    assert "role" in error["details"]
    assert db_session.scalar(select(func.count()).select_from(OrgMember).where(OrgMember.user_id == newcomer.id)) == 0


@pytest.mark.parametrize("path", ["/conversations/abc%00def", "/orgs/%00/members"])
def test_nul_in_the_path_is_400(client, user, path):
    assert_error(client.get(path, headers=user.headers), 400, "validation_error")


def test_nul_in_the_query_is_400(client, user):
    assert_error(client.get("/conversations?cursor=a%00b", headers=user.headers), 400, "validation_error")


@pytest.mark.parametrize("offset", ["+23:59", "-23:59", "+15:00"])
def test_a_cursor_with_an_extreme_utc_offset_is_handled(client, user, offset):
    for title in ("one", "two"):
        client.post("/conversations", json={"title": title}, headers=user.headers)
    cursor = base64.urlsafe_b64encode(json.dumps([f"2026-01-01T00:00:00{offset}", "x"]).encode()).decode()
    response = client.get(f"/conversations?cursor={cursor}", headers=user.headers)
    assert response.status_code == 200 and isinstance(response.get_json()["items"], list)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+23:59", "2026-01-01T00:00:00", "not a date"])
def test_cursors_the_api_never_made_are_400(client, user, stamp):
    cursor = base64.urlsafe_b64encode(json.dumps([stamp, "x"]).encode()).decode()
    assert_error(client.get(f"/conversations?cursor={cursor}", headers=user.headers), 400, "validation_error")


def test_a_chunked_text_body_is_415_like_any_other(client, user, db_session):
    response = chunked_post(client, "/conversations", b"title=sneaky", "text/plain", user.headers)
    assert_error(response, 415, "unsupported_media_type")
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_an_over_limit_chunked_json_body_is_413(client, app, db_session):
    body = json.dumps({"email": "big@example.com", "password": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)})
    assert_error(chunked_post(client, "/auth/register", body.encode(), "application/json"), 413)
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_a_chunked_json_body_within_the_limit_works(client, user):
    response = chunked_post(client, "/conversations", b'{"title": "chunked"}', "application/json", user.headers)
    assert response.status_code == 201 and response.get_json()["title"] == "chunked"
