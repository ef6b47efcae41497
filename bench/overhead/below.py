"""Below the stack's floor: the same turn without SQLAlchemy and without `requests`.

The design fixes SQLAlchemy and `requests` on the gateway's hot path; this route
shows what leaving them would buy, so the step-by-step table can say what would
reach a target the floor misses. The same token check (Flask, flask-jwt-extended),
the same statements and round trips on the driver itself (psycopg2, or sqlite3),
and the model asked with the standard library's http.client on kept-alive
connections. Registered on floor.py's app, at /floor/below/conversations/<id>/messages.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import sqlite3
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg2
from flask import abort, jsonify, request
from flask_jwt_extended import get_jwt, jwt_required

from . import floor

_connections: list = []  # idle driver connections of this worker, last in first out
_http: list[http.client.HTTPConnection] = []


def _sql(statement) -> str:
    text = str(statement)
    return text if floor._url().startswith("sqlite") else re.sub(r":(\w+)", r"%(\1)s", text)


@contextmanager
def _connection():
    try:
        connection = _connections.pop()
    except IndexError:
        url = floor._url()
        if url.startswith("sqlite"):
            connection = sqlite3.connect(url.split("///", 1)[1], check_same_thread=False, timeout=30,
                                         isolation_level=None)
        else:
            connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
            connection.autocommit = True
    try:
        yield connection
    finally:
        _connections.append(connection)


def _ask(model: str, messages: list[dict]) -> dict:
    upstream = urlsplit(os.environ["FLOOR_UPSTREAM_URL"])
    try:
        connection = _http.pop()
    except IndexError:
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
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
    revoked, conversation, history, writes = _statements()
    with _connection() as connection:
        cursor = connection.cursor()
        cursor.execute(revoked, {"family": claims["fam"], "user": claims["sub"]})
        found = cursor.fetchone()
        if found is None or found[0] or found[1]:
            abort(401)
        cursor.execute(conversation, {"id": conversation_id, "user": claims["sub"]})
        found = cursor.fetchone()
        if found is None:
            abort(404)
        cursor.execute(history, {"id": conversation_id})
        past = [{"role": role, "content": text} for role, text in cursor.fetchall()]
    model = found[1]
    reply = _ask(model, past + [{"role": "user", "content": content}])
    params = {"now": floor._now(), "conversation": conversation_id, "user": claims["sub"], "model": model,
              "asked_id": uuid.uuid4().hex, "asked_role": "user", "asked_content": content,
              "answer_id": uuid.uuid4().hex, "answer_role": "assistant",
              "answer_content": reply["message"]["content"], "usage_id": uuid.uuid4().hex,
              "prompt": reply.get("prompt_eval_count", 0), "completion": reply.get("eval_count", 0)}
    with _connection() as connection:
        cursor = connection.cursor()
        for statement in writes:  # PostgreSQL: one statement, the four writes as one query
            cursor.execute(statement, params)
    return jsonify(id=params["answer_id"], role="assistant", content=params["answer_content"])


def _statements():
    if "below" not in floor._state:
        sqlite = floor._url().startswith("sqlite")
        writes = ([_sql(s) for s in floor.TURN_WRITES] if sqlite
                  else [_sql("; ".join(floor.TURN_WRITES))])
        floor._state["below"] = (_sql(floor.REVOKED), _sql(floor.CONVERSATION), _sql(floor.HISTORY), writes)
    return floor._state["below"]
