"""The stack's floor for a chat: the fewest steps a turn needs, on the gateway's own libraries, and nothing else.

A hello says what gunicorn and Flask cost. This says what a chat costs on the stack the
gateway is built on, before any of the gateway's own code: the same gunicorn and gevent
workers (patched the same way, psycopg2 made cooperative), flask-jwt-extended's check,
SQLAlchemy Core on a pooled connection in autocommit, `requests` to the model, and the
same round trips to the database as the gateway's turn:

- conversation turn: the token's revocation check, the conversation, its history, the
  provider call, then both messages, the usage row and `updated_at` in one round trip;
- /v1: the key looked up by its hash, the provider call, the usage row.

No validation, limits, budgets, metrics, tracing, logs, retries or failover: what the
gateway does on top of this is its own cost. Served as
`gunicorn -c python:bench.overhead.floor -k gevent bench.overhead.floor:app`, with
FLOOR_DATABASE_URL, FLOOR_UPSTREAM_URL and JWT_SECRET_KEY set.
"""
from gevent import monkey

monkey.patch_all()  # as gunicorn.conf.py does, before anything imports socket or ssl
from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()

import hashlib  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import requests  # noqa: E402
from flask import Flask, abort, jsonify, request  # noqa: E402
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, jwt_required  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS floor_users (id VARCHAR(32) PRIMARY KEY, disabled_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS floor_families (id VARCHAR(32) PRIMARY KEY, revoked_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS floor_keys (id VARCHAR(32) PRIMARY KEY, user_id VARCHAR(32) NOT NULL, "
    "hash VARCHAR(64) NOT NULL UNIQUE, revoked_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS floor_conversations (id VARCHAR(32) PRIMARY KEY, user_id VARCHAR(32) NOT NULL, "
    "model VARCHAR(100) NOT NULL, system_prompt TEXT, updated_at TIMESTAMP NOT NULL)",
    "CREATE TABLE IF NOT EXISTS floor_messages (id VARCHAR(32) PRIMARY KEY, conversation_id VARCHAR(32) NOT NULL, "
    "role VARCHAR(16) NOT NULL, content TEXT NOT NULL, created_at TIMESTAMP NOT NULL)",
    "CREATE INDEX IF NOT EXISTS floor_messages_history ON floor_messages (conversation_id, created_at, id)",
    "CREATE TABLE IF NOT EXISTS floor_usage (id VARCHAR(32) PRIMARY KEY, created_at TIMESTAMP NOT NULL, "
    "user_id VARCHAR(32) NOT NULL, conversation_id VARCHAR(32), model VARCHAR(100) NOT NULL, "
    "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL)",
]
REVOKED = text("SELECT u.disabled_at, f.revoked_at FROM floor_users u LEFT OUTER JOIN floor_families f "
               "ON f.id = :family WHERE u.id = :user")
CONVERSATION = text("SELECT id, model, system_prompt FROM floor_conversations WHERE id = :id AND user_id = :user")
HISTORY = text("SELECT role, content FROM (SELECT role, content, created_at, id FROM floor_messages "
               "WHERE conversation_id = :id ORDER BY created_at DESC, id DESC LIMIT 50) AS recent "
               "ORDER BY created_at, id")
KEY = text("SELECT id, user_id FROM floor_keys WHERE hash = :hash AND revoked_at IS NULL")
TOUCH = "UPDATE floor_conversations SET updated_at = :now WHERE id = :conversation"
MESSAGE = ("INSERT INTO floor_messages (id, conversation_id, role, content, created_at) "
           "VALUES (:{0}_id, :conversation, :{0}_role, :{0}_content, :now)")
USAGE = ("INSERT INTO floor_usage (id, created_at, user_id, conversation_id, model, prompt_tokens, "
         "completion_tokens) VALUES (:usage_id, :now, :user, :conversation, :model, :prompt, :completion)")
TURN_WRITES = [TOUCH, MESSAGE.format("asked"), MESSAGE.format("answer"), USAGE]
# PostgreSQL takes the four writes as one query (one round trip, one implicit transaction), as the
# gateway's run_as_one sends them; SQLite has no round trips to save and runs them one by one.
TURN_AS_ONE = text("; ".join(TURN_WRITES))
TURN_ONE_BY_ONE = [text(statement) for statement in TURN_WRITES]
USAGE_ALONE = text(USAGE)

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ.get("JWT_SECRET_KEY", "floor-secret-floor-secret-floor-secret-0123")
JWTManager(app)
_state: dict = {}


# Read once, in the master, before the workers fork; psycopg2 named, as SQLAlchemy 2.1 would pick psycopg 3.
DATABASE_URL = os.environ.get("FLOOR_DATABASE_URL", "sqlite:///floor.db")
SQLITE = DATABASE_URL.startswith("sqlite")


def engine():
    if "engine" not in _state:
        if SQLITE:
            _state["engine"] = create_engine(DATABASE_URL, connect_args={"check_same_thread": False, "timeout": 30})
        else:
            _state["engine"] = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg2"),
                                             pool_size=10, max_overflow=10)
        # `requests` used as leanly as the gateway uses it (app/llm/http.py): the environment read
        # never, the URL parsed once, each call a copy of a prepared request sent on the session.
        session = requests.Session()
        session.trust_env = False
        _state["http"] = session
        _state["upstream"] = requests.Request("POST", os.environ["FLOOR_UPSTREAM_URL"].rstrip("/") + "/api/chat",
                                              headers=dict(session.headers)).prepare()
    return _state["engine"]


def on_starting(_server) -> None:
    """gunicorn's hook, in the master before any worker: the tables, once."""
    with engine().begin() as connection:
        for statement in SCHEMA:
            connection.exec_driver_sql(statement)
    engine().dispose()


def _connection():
    connection = engine().connect()
    if connection.dialect.name == "postgresql":
        connection.connection.dbapi_connection.autocommit = True  # no BEGIN/COMMIT round trips, as the gateway
    return connection


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _ask(model: str, messages: list[dict]) -> dict:
    engine()  # the HTTP session and the upstream's URL are made with the engine, once per worker
    prepared = _state["upstream"].copy()
    prepared.prepare_body(data=None, files=None, json={"model": model, "messages": messages, "stream": False})
    response = _state["http"].send(prepared, timeout=30)
    response.raise_for_status()
    return response.json()


@app.get("/")
def ready():
    return "ok"


@app.post("/auth/register")
def register():
    user, family = uuid.uuid4().hex, uuid.uuid4().hex
    with engine().begin() as connection:
        connection.execute(text("INSERT INTO floor_users (id) VALUES (:id)"), {"id": user})
        connection.execute(text("INSERT INTO floor_families (id) VALUES (:id)"), {"id": family})
    return jsonify(accessToken=create_access_token(identity=user, additional_claims={"fam": family})), 201


@app.post("/conversations")
@jwt_required()
def create_conversation():
    conversation = uuid.uuid4().hex
    with engine().begin() as connection:
        connection.execute(text("INSERT INTO floor_conversations (id, user_id, model, updated_at) "
                                "VALUES (:id, :user, :model, :now)"),
                           {"id": conversation, "user": get_jwt()["sub"], "model": "llama3.1", "now": _now()})
    return jsonify(id=conversation), 201


@app.post("/api-keys")
@jwt_required()
def create_key():
    secret = "sk-" + secrets.token_urlsafe(24)
    with engine().begin() as connection:
        connection.execute(text("INSERT INTO floor_keys (id, user_id, hash) VALUES (:id, :user, :hash)"),
                           {"id": uuid.uuid4().hex, "user": get_jwt()["sub"],
                            "hash": hashlib.sha256(secret.encode()).hexdigest()})
    return jsonify(key=secret), 201


@app.post("/conversations/<conversation_id>/messages")
@jwt_required()
def turn(conversation_id: str):
    content = request.get_json()["content"]
    found, history = _read(conversation_id)
    reply = _ask(found.model, history + [{"role": "user", "content": content}])
    return jsonify(_store(conversation_id, found.model, content, reply))


# The turn in parts, for the bench's step-by-step table: what the token check, the model call
# and the database round trips each cost on their own.
@app.post("/floor/token")
@jwt_required()
def token_only():
    return jsonify(user=get_jwt()["sub"])


@app.post("/floor/model")
@jwt_required()
def model_only():
    reply = _ask("llama3.1", [{"role": "user", "content": request.get_json()["content"]}])
    return jsonify(role="assistant", content=reply["message"]["content"])


@app.post("/floor/database/<conversation_id>")
@jwt_required()
def database_only(conversation_id: str):
    content = request.get_json()["content"]
    found, _history = _read(conversation_id)
    reply = {"message": {"content": "t0 t1 t2"}, "prompt_eval_count": 1, "eval_count": 3}
    return jsonify(_store(conversation_id, found.model, content, reply))


def _read(conversation_id: str):
    """The revocation check, the conversation and its history: three round trips on one connection."""
    claims = get_jwt()
    with _connection() as connection:
        revoked = connection.execute(REVOKED, {"family": claims["fam"], "user": claims["sub"]}).first()
        if revoked is None or revoked.disabled_at or revoked.revoked_at:
            abort(401)
        found = connection.execute(CONVERSATION, {"id": conversation_id, "user": claims["sub"]}).first()
        if found is None:
            abort(404)
        return found, [{"role": row.role, "content": row.content}
                       for row in connection.execute(HISTORY, {"id": conversation_id})]


def _store(conversation_id: str, model: str, content: str, reply: dict) -> dict:
    """Both messages, the usage row and `updated_at`: one round trip."""
    params = turn_params(conversation_id, get_jwt()["sub"], model, content, reply)
    _write(TURN_AS_ONE, TURN_ONE_BY_ONE, params)
    return {"id": params["answer_id"], "role": "assistant", "content": params["answer_content"]}


@app.post("/v1/chat/completions")
def completion():
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
    with _connection() as connection:
        key = connection.execute(KEY, {"hash": hashlib.sha256(secret.encode()).hexdigest()}).first()
    if key is None:
        abort(401)
    body = request.get_json()
    reply = _ask(body["model"], body["messages"])
    prompt, completion_tokens = reply.get("prompt_eval_count", 0), reply.get("eval_count", 0)
    _write(USAGE_ALONE, [USAGE_ALONE], {"usage_id": uuid.uuid4().hex, "now": _now(), "user": key.user_id,
                                        "conversation": None, "model": body["model"], "prompt": prompt,
                                        "completion": completion_tokens})
    return jsonify(id="chatcmpl-" + uuid.uuid4().hex, object="chat.completion", model=body["model"],
                   choices=[{"index": 0, "message": {"role": "assistant", "content": reply["message"]["content"]},
                             "finish_reason": "stop"}],
                   usage={"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                          "total_tokens": prompt + completion_tokens})


def turn_params(conversation_id: str, user: str, model: str, content: str, reply: dict) -> dict:
    """TURN_WRITES' parameters for one turn: both messages, the usage row and `updated_at`."""
    return {"now": _now(), "conversation": conversation_id, "user": user, "model": model,
            "asked_id": uuid.uuid4().hex, "asked_role": "user", "asked_content": content,
            "answer_id": uuid.uuid4().hex, "answer_role": "assistant", "answer_content": reply["message"]["content"],
            "usage_id": uuid.uuid4().hex, "prompt": reply.get("prompt_eval_count", 0),
            "completion": reply.get("eval_count", 0)}


def _write(as_one, one_by_one: list, params: dict) -> None:
    with _connection() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(as_one, params)
        else:
            for statement in one_by_one:
                connection.execute(statement, params)
            connection.commit()


from . import below  # noqa: E402,F401  (the same turn without SQLAlchemy and requests, on this app)
