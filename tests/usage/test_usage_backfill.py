"""Migration 0003 backfills a usage row per stored assistant message, and the orgs' monthly totals."""
import json
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from app.migrate import alembic_config
from tests.support.databases import normalised

REPLY_META = {"model": "llama3.1", "provider": "ollama", "finishReason": "stop",
              "usage": {"promptTokens": 17, "completionTokens": 4, "totalTokens": 21, "estimated": False,
                        "method": "reported"},
              "timings": {"timeToFirstTokenMs": 12, "totalMs": 80, "gatewayOverheadMs": 1.5}}
PARTIAL_META = {**REPLY_META, "finishReason": None, "partial": True, "reason": "provider_timeout",
                "usage": {"promptTokens": 9, "completionTokens": 2, "totalTokens": 11, "estimated": True,
                          "method": "chunks"}}


def test_0003_backfills_usage_from_assistant_messages(empty_database_url):
    url = normalised(empty_database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("INSERT INTO users (id, email, password_hash, created_at) VALUES "
                        "('u1', 'a@example.com', 'x', '2026-10-01T00:00:00+00:00')"))
        db.execute(text("INSERT INTO orgs (id, name, created_at) VALUES ('o1', 'Acme', '2026-10-01T00:00:00+00:00')"))
        db.execute(text("INSERT INTO conversations (id, user_id, org_id, created_at, updated_at) VALUES "
                        "('c1', 'u1', 'o1', '2026-10-01T00:00:00+00:00', '2026-10-01T00:00:00+00:00'), "
                        "('c2', 'u1', NULL, '2026-10-01T00:00:00+00:00', '2026-10-01T00:00:00+00:00')"))
        messages = [("m1", "c1", "USER", {}, "2026-10-31T23:59:59.999+00:00"),
                    ("m2", "c1", "ASSISTANT", REPLY_META, "2026-10-31T23:59:59.999+00:00"),
                    ("m3", "c1", "ASSISTANT", PARTIAL_META, "2026-11-01T00:00:00+00:00"),
                    ("m4", "c2", "ASSISTANT", REPLY_META, "2026-11-02T00:00:00+00:00"),
                    ("m5", "c1", "ASSISTANT", {}, "2026-11-03T00:00:00+00:00")]  # an old reply without meta
        for id_, conversation, role, meta, at in messages:
            db.execute(text("INSERT INTO messages (id, conversation_id, role, content, meta, created_at) "
                            "VALUES (:id, :c, :role, 'x', :meta, :at)"),
                       {"id": id_, "c": conversation, "role": role, "meta": json.dumps(meta), "at": at})

    command.upgrade(alembic_config(url), "0003")

    with engine.connect() as db:
        rows = db.execute(text(
            "SELECT message_id, user_id, org_id, conversation_id, model, provider, prompt_tokens, completion_tokens,"
            " estimated, method, cost_usd, outcome, duration_ms, time_to_first_token_ms"
            " FROM usage_records ORDER BY message_id")).all()
        months = db.execute(text("SELECT org_id, month, tokens, cost_usd FROM org_usage_months ORDER BY month")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("m2", "u1", "o1", "c1", "llama3.1", "ollama", 17, 4, False, "reported", None, "success", 80, 12),
        ("m3", "u1", "o1", "c1", "llama3.1", "ollama", 9, 2, True, "chunks", None, "timeout", 80, 12),
        ("m4", "u1", None, "c2", "llama3.1", "ollama", 17, 4, False, "reported", None, "success", 80, 12),
        ("m5", "u1", "o1", "c1", "unknown", "unknown", 0, 0, False, "none", None, "success", None, None),
    ]
    assert [(org, month, tokens, float(cost)) for org, month, tokens, cost in months] == [
        ("o1", "2026-10", 21, 0.0), ("o1", "2026-11", 11, 0.0)]
