"""What the per-request revocation check costs: authenticated GET /auth/me with the check and without it.

    python -m bench.revocation                # SQLite, then PostgreSQL at 127.0.0.1:5432 (a fresh database)
    python -m bench.revocation --quick        # small sizes: a smoke test of the tooling

In one process, through Flask's test client (no network, no gunicorn, no
metrics, so the check is a larger share than it would be behind a server):
blocks of requests alternate between the real `token_in_blocklist_loader` and
one that answers "not revoked" without a query. `/auth/me` itself reads the
user by primary key, so "without" is a route with one query and "with" adds the
check's one query. Writes Markdown and JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app import create_app
from app.config import Settings
from app.extensions import jwt
from app.migrate import upgrade

from . import report

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _time_block(client, headers, count: int) -> float:
    """Seconds per request over `count` requests."""
    started = time.perf_counter()
    for _ in range(count):
        response = client.get("/auth/me", headers=headers)
        assert response.status_code == 200, response.get_data()
    return (time.perf_counter() - started) / count


def measure(database_url: str, *, blocks: int, per_block: int) -> dict:
    app = create_app({"DATABASE_URL": database_url, "APP_ENV": "test", "LOG_LEVEL": "WARNING",
                      "JWT_SECRET_KEY": "bench-secret-long-enough-for-hs256-signing", "PASSWORD_HASH_COST": "10",
                      "RATE_LIMITS_ENABLED": "false", "METRICS_ENABLED": "false"})
    client = app.test_client()
    body = client.post("/auth/register", json={"email": "bench@example.com", "password": "bench password"}).get_json()
    headers = {"Authorization": f"Bearer {body['accessToken']}"}
    real_check = jwt._token_in_blocklist_callback
    with_check, without_check = [], []
    try:
        _time_block(client, headers, per_block)  # warm up connections and caches
        for _ in range(blocks):
            with_check.append(_time_block(client, headers, per_block))
            jwt._token_in_blocklist_callback = lambda _header, _payload: False
            without_check.append(_time_block(client, headers, per_block))
            jwt._token_in_blocklist_callback = real_check
    finally:
        jwt._token_in_blocklist_callback = real_check
        app.extensions["db_engine"].dispose()
    with_us, without_us = statistics.median(with_check) * 1e6, statistics.median(without_check) * 1e6
    return {"requests": blocks * per_block * 2, "with_check_us": round(with_us, 1),
            "without_check_us": round(without_us, 1), "check_us": round(with_us - without_us, 1),
            "ratio": round(with_us / without_us, 3),
            "spread_with_us": [round(min(with_check) * 1e6, 1), round(max(with_check) * 1e6, 1)],
            "spread_without_us": [round(min(without_check) * 1e6, 1), round(max(without_check) * 1e6, 1)]}


def _postgres_database():
    import uuid

    from sqlalchemy import create_engine, text

    name = f"bench_revocation_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN.replace("postgresql://", "postgresql+psycopg2://"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--blocks", type=int, default=20, help="blocks of each kind, alternated")
    parser.add_argument("--per-block", type=int, default=250, help="requests per block")
    args = parser.parse_args(argv)
    blocks, per_block = (3, 50) if args.quick else (args.blocks, args.per_block)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        sqlite_url = f"sqlite:///{Path(directory) / 'bench.db'}"
        upgrade(sqlite_url)
        results["sqlite"] = measure(sqlite_url, blocks=blocks, per_block=per_block)
    postgres_url, drop = _postgres_database()
    try:
        upgrade(Settings.from_env({"DATABASE_URL": postgres_url, "JWT_SECRET_KEY": "unused"}).database_url)
        results["postgresql"] = measure(postgres_url, blocks=blocks, per_block=per_block)
    finally:
        drop()
    lines = ["# Revocation check: cost per authenticated request", "",
             f"{blocks} alternated blocks of {per_block} GET /auth/me each way, in one process (Flask test client); "
             "medians of the blocks' means, [fastest block, slowest block].", "",
             "| database | with the check | without | the check | ratio |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['with_check_us']} µs {r['spread_with_us']} | {r['without_check_us']} µs "
                     f"{r['spread_without_us']} | {r['check_us']} µs | {r['ratio']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    suffix = "quick" if args.quick else "full"
    report.write_results(RESULTS / f"revocation-{report.stamp()}-{suffix}.md", text, results, "-")


if __name__ == "__main__":
    main()
