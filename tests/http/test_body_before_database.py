"""A request's body is read whole before anything takes a database connection (issue 20, 1).

Authentication looks up a revocation or an API key before a view parses its
body; were the body read then, a client sending it slowly would hold that
connection. Here every route that takes a body gets one through a stream that
notes, on each read, how many pooled connections are checked out.
"""
import io
import re

import pytest
from sqlalchemy import func, select

from app.models import Conversation
from tests.test_errors import assert_error

BODY = b'{"title": "t", "name": "n", "email": "e@example.com", "password": "long enough", "content": "hi"}'


class WatchedBody(io.BytesIO):
    """A request body that records the pool's checked-out connections at every read."""

    def __init__(self, data: bytes, pool):
        super().__init__(data)
        self._pool, self.checked_out = pool, []

    def read(self, size=-1):
        self.checked_out.append(self._pool.checkedout())
        return super().read(7 if size is None or size < 0 else min(size, 7))  # a few bytes at a time

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def body_routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            yield method, re.sub(r"<[^>]+>", "00000000-0000-0000-0000-000000000000", rule.rule)


def test_the_routes_under_test_are_every_route_that_takes_a_body(app):
    routes = set(body_routes(app))
    assert len(routes) >= 12 and ("PATCH", "/conversations/00000000-0000-0000-0000-000000000000") in routes


def test_no_route_holds_a_connection_while_its_body_arrives(app, client, user):
    pool = app.extensions["db_engine"].pool
    held, unread = [], []
    for method, path in body_routes(app):
        body = WatchedBody(BODY, pool)
        response = client.open(path, method=method, input_stream=body, content_length=len(BODY),
                               content_type="application/json", headers=user.headers)
        assert response.status_code < 500, (method, path, response.get_json())
        if not body.checked_out:
            unread.append((method, path, response.status_code))
        elif max(body.checked_out) > 0:
            held.append((method, path, max(body.checked_out)))
    assert held == [], "connections checked out while the body was read"
    assert unread == [], "answered without reading the body first"


def test_a_body_shorter_than_its_content_length_is_a_json_400(client, user, db_session):
    response = client.open("/conversations", method="POST", input_stream=io.BytesIO(b'{"title": "cut"}'),
                           content_type="application/json", headers=user.headers,
                           environ_overrides={"CONTENT_LENGTH": "100"})  # the client would correct a length
    assert_error(response, 400, "malformed_body")
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 0
