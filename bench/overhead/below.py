"""Below the stack's floor: the same turn without SQLAlchemy and without `requests`.

The design fixes SQLAlchemy and `requests` on the gateway's hot path; this route
shows what leaving them would buy, so the step-by-step table can say what would
reach a target the floor misses. The same token check (Flask, flask-jwt-extended),
the same statements and round trips on the driver itself (psycopg2, or sqlite3),
and the model asked with the standard library's http.client on kept-alive
connections. Registered on floor.py's app, at /floor/below/conversations/<id>/messages.
"""
from __future__ import annotations

import functools
import http.client
import json
import os
import re
import sqlite3
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg2
from flask import abort, jsonify, request
from flask_jwt_extended import get_jwt, jwt_required

from . import floor

_connections: list = []  # idle driver connections of this worker, last in first out
_http: list[http.client.HTTPConnection] = []


def _sql(statement) -> str:
    """floor.py's statement in the driver's own parameter style (sqlite3 takes :name as it is)."""
    return str(statement) if floor.SQLITE else re.sub(r":(\w+)", r"%(\1)s", str(statement))


REVOKED, CONVERSATION, HISTORY = (_sql(statement) for statement in (floor.REVOKED, floor.CONVERSATION, floor.HISTORY))
# PostgreSQL: the four writes as one query, as floor.py sends them; SQLite: one by one.
WRITES = [_sql(s) for s in floor.TURN_WRITES] if floor.SQLITE else [_sql("; ".join(floor.TURN_WRITES))]


@contextmanager
def _connection():
    try:
        connection = _connections.pop()
    except IndexError:
        if floor.SQLITE:
            connection = sqlite3.connect(floor.DATABASE_URL.split("///", 1)[1], check_same_thread=False, timeout=30,
                                         isolation_level=None)
        else:
            connection = psycopg2.connect(floor.DATABASE_URL)
            connection.autocommit = True
    try:
        yield connection
    finally:
        _connections.append(connection)


@functools.cache
def _upstream() -> tuple[str, int]:
    url = urlsplit(os.environ["FLOOR_UPSTREAM_URL"])
    return url.hostname, url.port


def _ask(model: str, messages: list[dict]) -> dict:
    try:
        connection = _http.pop()
    except IndexError:
        connection = http.client.HTTPConnection(*_upstream(), timeout=30)
    body = json.dumps({"model": model, "messages": messages, "stream": False}).encode()
    try:
        connection.request("POST", "/api/chat", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
    except BaseException:
        connection.close()
        raise
    _http.append(connection)
    if response.status != 200:
        abort(502)
    return json.loads(data)


@floor.app.post("/floor/below/conversations/<conversation_id>/messages")
@jwt_required()
def below_floor_turn(conversation_id: str):
    claims, content = get_jwt(), request.get_json()["content"]
    with _connection() as connection:
        cursor = connection.cursor()
        cursor.execute(REVOKED, {"family": claims["fam"], "user": claims["sub"]})
        found = cursor.fetchone()
        if found is None or found[0] or found[1]:
            abort(401)
        cursor.execute(CONVERSATION, {"id": conversation_id, "user": claims["sub"]})
        found = cursor.fetchone()
        if found is None:
            abort(404)
        cursor.execute(HISTORY, {"id": conversation_id})
        past = [{"role": role, "content": text} for role, text in cursor.fetchall()]
    model = found[1]
    reply = _ask(model, past + [{"role": "user", "content": content}])
    params = floor.turn_params(conversation_id, claims["sub"], model, content, reply)
    with _connection() as connection:
        cursor = connection.cursor()
        for statement in WRITES:
            cursor.execute(statement, params)
    return jsonify(id=params["answer_id"], role="assistant", content=params["answer_content"])

