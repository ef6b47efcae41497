"""Migration 0005: keys from before keep every scope and have no limits; each key's months are summed from its usage."""
import json
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from app.migrate import alembic_config
from tests.support.databases import normalised


def test_0005_gives_existing_keys_every_scope_and_their_monthly_totals(empty_database_url):
    url = normalised(empty_database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("INSERT INTO users (id, email, password_hash, created_at) VALUES "
                        "('u1', 'a@example.com', 'x', '2026-10-01 00:00:00')"))
        db.execute(text("INSERT INTO orgs (id, name, created_at) VALUES ('o1', 'Acme', '2026-10-01 00:00:00')"))
        for key, org in (("k1", None), ("k2", "o1"), ("k3", None)):
            db.execute(text("INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, created_at) "
                            "VALUES (:id, 'u1', :org, 'n', 'sk-gw-abc', :hash, '2026-10-01 00:00:00')"),
                       {"id": key, "org": org, "hash": key * 20})
        rows = [("r1", "k1", "2026-10-31 23:59:59.999000", 10, 5, 3), ("r2", "k1", "2026-11-01 00:00:00", 7, 1, None),
                ("r3", "k1", "2026-11-15 12:00:00", 2, 2, 4), ("r4", "k2", "2026-11-02 00:00:00", 1, 1, None),
                ("r5", None, "2026-11-02 00:00:00", 100, 100, 100)]
        for id_, key, at, prompt, completion, cost in rows:
            db.execute(text("INSERT INTO usage_records (id, created_at, user_id, org_id, api_key_id, model, provider,"
                            " prompt_tokens, completion_tokens, estimated, method, cost_usd, outcome) VALUES "
                            "(:id, :at, 'u1', NULL, :key, 'm', 'ollama', :p, :c, false, 'reported', :cost,"
                            " 'success')"),
                       {"id": id_, "at": at, "key": key, "p": prompt, "c": completion, "cost": cost})

    command.upgrade(alembic_config(url), "0005")

    with engine.connect() as db:
        keys = db.execute(text("SELECT id, scopes, models, requests_per_minute, monthly_tokens, monthly_cost_usd "
                               "FROM api_keys ORDER BY id")).all()
        months = db.execute(text("SELECT api_key_id, month, tokens, cost_usd FROM api_key_usage_months "
                                 "ORDER BY api_key_id, month")).all()
        keyed = db.execute(text("SELECT count(*) FROM usage_records WHERE api_key_id IS NOT NULL")).scalar()
    engine.dispose()
    assert keyed == 4  # the usage rows keep their keys (a copy of api_keys on SQLite would have nulled them)
    scopes = ["inference", "conversations", "usage:read"]
    assert [(k.id, k.scopes if isinstance(k.scopes, list) else json.loads(k.scopes), k.models,
             k.requests_per_minute, k.monthly_tokens, k.monthly_cost_usd) for k in keys] == [
        (key, scopes, None, None, None, None) for key in ("k1", "k2", "k3")]
    # Costs are raw column values: integer units of 1e-10 USD on SQLite, NUMERIC on PostgreSQL (both compare to ints).
    assert [(m.api_key_id, m.month, m.tokens, m.cost_usd) for m in months] == [
        ("k1", "2026-10", 15, 3), ("k1", "2026-11", 12, 4), ("k2", "2026-11", 2, 0)]
