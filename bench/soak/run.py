"""Mixed traffic for a set time against the real gateway, then checks that nothing went quietly wrong.

    python -m bench.soak                                  # 60 s, 3 workers, SQLite
    python -m bench.soak --duration 600 --database postgresql

Starts the fake model server and the gateway (`gunicorn -c gunicorn.conf.py wsgi:app`,
gevent workers, production settings, rate limits at their defaults), registers
users, then drives normal users (sign-up, login, conversations, whole and streamed
chats, some streams left early, paging, orgs, /v1 with API keys), abuse (a
wrong-password flood, oversized, malformed and crafted bodies, missing and forged
credentials, unknown models) and chats the fake upstream fails on purpose (500s
and hangs). At the end it asserts: (1) no 5xx that was not injected, (2) both
messages of every successful chat are in the database, (3) the client's counts
equal the gateway's counters, (4) worker memory grew less than the bound; and
that every request got the status it should have. Exits 1 when one fails.
Writes Markdown and JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from ..common.client import percentile
from ..common.databases import ScratchDatabase
from ..common.report import default_output, now, write_results
from ..common.servers import FakeModel, Gateway
from . import checks
from .scenarios import Soak
from .traffic import Gateway as Client, Pacer, Record
NORMAL = {"chat_whole": 25, "chat_stream": 20, "v1_completion": 10, "read_messages": 10, "list_conversations": 8,
          "create_conversation": 5, "org_operations": 3, "login": 3, "new_user": 1}
ABUSE = {"bad_input": 6, "bad_credentials": 2, "unknown_model": 2}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of traffic, after set-up")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a fresh database at 127.0.0.1:5432, dropped after")
    parser.add_argument("--rate", type=float, default=15, help="normal user actions started per second")
    parser.add_argument("--abuse-rate", type=float, default=2, help="abusive actions started per second")
    parser.add_argument("--flood-rate", type=float, default=4, help="wrong-password logins per second")
    parser.add_argument("--users", type=int, default=30, help="users registered before the clock starts")
    parser.add_argument("--fault-500", type=float, default=0.04, help="share of chats the fake upstream fails")
    parser.add_argument("--fault-hang", type=float, default=0.02, help="share of chats the fake upstream hangs")
    parser.add_argument("--tokens", type=int, default=10, help="tokens per reply")
    parser.add_argument("--reply-seconds", type=float, default=0.5, help="how long each reply takes")
    # Measured: 1.1-1.2 MiB per worker over the 10-minute PostgreSQL run, flat after 5 minutes. 10 MiB is
    # 8x that, and still catches a leak of 2 KiB per request (about 5,800 requests a worker in 10 minutes).
    parser.add_argument("--memory-bound-mib", type=float, default=10,
                        help="largest RSS growth per worker allowed, warm-up to end")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the first memory sample (default: a fifth of the duration, at most 60)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 5)
    return args


def gateway_env(args) -> dict:
    """Production settings and default rate limits; behind one trusted proxy, so each client has its address."""
    # DB_POOL_TIMEOUT: this machine's disk is shared, and a PostgreSQL checkpoint forced by another job's
    # CREATE DATABASE once stalled every commit for 11 s; a soak judges the gateway, so such a stall
    # shows as latency (in the report) rather than as 503 database_busy at the default 10 s.
    return {"APP_ENV": "production", "PASSWORD_HASH_COST": "14", "WEB_CONCURRENCY": str(args.workers),
            "TRUSTED_PROXIES": "1", "RATE_LIMITS_ENABLED": "true", "PROVIDER_READ_TIMEOUT": "3",
            "GUNICORN_MAX_REQUESTS": "0", "DB_POOL_TIMEOUT": "30"}


def _picker(weights: dict[str, int], rng: random.Random):
    names, counts = list(weights), list(weights.values())
    return lambda: rng.choices(names, counts)[0]


async def traffic(args, soak: Soak, gateway: Gateway) -> dict:
    """Runs the three paced streams of actions until the deadline; samples worker memory meanwhile."""
    pick_normal, pick_abuse = _picker(NORMAL, soak.random), _picker(ABUSE, soak.random)

    async def normal():
        user, action = soak.random.choice(soak.users), pick_normal()
        await (soak.new_user() if action == "new_user" else getattr(soak, action)(user))

    async def abuse():
        await getattr(soak, pick_abuse())()

    started = time.monotonic()
    deadline = started + args.duration
    memory: dict = {"samples": []}

    async def sample_memory():
        next_sample = started
        while time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, min(next_sample, deadline) - time.monotonic()))
            elapsed = time.monotonic() - started
            rss = checks.rss_by_worker(gateway.worker_pids())
            memory["samples"].append({"t": round(elapsed, 1), "mib": {p: round(v / checks.MIB, 1) for p, v in rss.items()}})
            if "after_warmup" not in memory and elapsed >= args.warmup:
                memory["after_warmup"] = rss
            next_sample += max(1.0, args.duration / 30)
        memory["at_end"] = checks.rss_by_worker(gateway.worker_pids())  # still under load, like the first

    pacers = {"normal": Pacer(args.rate), "abuse": Pacer(args.abuse_rate), "flood": Pacer(args.flood_rate)}
    await asyncio.gather(pacers["normal"].run(deadline, normal), pacers["abuse"].run(deadline, abuse),
                         pacers["flood"].run(deadline, soak.password_flood), sample_memory())
    for pacer in pacers.values():
        await pacer.drain()
    return {"memory": memory, "actions": {name: pacer.started for name, pacer in pacers.items()},
            "seconds": time.monotonic() - started}


async def run(args, log_dir: Path) -> dict:
    with ScratchDatabase(args.database == "postgresql", "bench_soak") as database, \
            FakeModel(log_dir, tokens=args.tokens, seconds=args.reply_seconds) as fake, \
            Gateway(log_dir, upstream_url=fake.url, database_url=database.url, env=gateway_env(args)) as gateway:
        record = Record()
        soak = Soak(Client(gateway.port, record), fault_500=args.fault_500, fault_hang=args.fault_hang, seed=args.seed)
        await soak.setup(args.users)
        record.sent.clear()  # set-up is not part of the soak: the counters' baseline is taken now
        record.chats.clear()
        before = checks.settle(gateway.metrics_port)  # a response's counter moves just after its last byte
        print(f"soak: {len(soak.users)} users ready; {args.duration:g} s of traffic", flush=True)
        ran = await traffic(args, soak, gateway)
        counters = checks.counters_once_settled(record, before, gateway.metrics_port)
        results = {
            "no_unexpected_5xx": checks.check_no_unexpected_5xx(record),
            "chats_stored": checks.check_chats_stored(record, gateway.database_url),
            "counters_match": counters,
            "memory": checks.check_memory(ran["memory"].get("after_warmup", {}), ran["memory"]["at_end"],
                                          args.memory_bound_mib),
            "statuses_as_expected": checks.check_statuses(record),
        }
        return {"checks": results, "ran": ran, "requests": _request_table(record), "latency": _latency(record),
                "users": len(soak.users),
                "fake_upstream": fake.stats()}


def _latency(record: Record) -> dict[str, dict[str, float]]:
    """Seconds to the last byte (a stream left early: to leaving), by kind: stalls show here."""
    by_kind: dict[str, list[float]] = {}
    for sent in record.sent:
        by_kind.setdefault(sent.kind, []).append(sent.seconds)
    return {kind: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
            for kind, v in sorted(by_kind.items())}


def _request_table(record: Record) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for sent in record.sent:
        row = table.setdefault(sent.kind, {})
        key = str(sent.status or sent.error)
        row[key] = row.get(key, 0) + 1
    return dict(sorted(table.items()))


CHECK_TITLES = {"no_unexpected_5xx": "1. No 5xx that was not injected",
                "chats_stored": "2. Every successful chat has both messages in the database",
                "counters_match": "3. Client counts equal the gateway's counters (client / server)",
                "memory": "4. Worker memory growth under the bound",
                "statuses_as_expected": "5. Every request got the status it should have"}


def markdown(args, results: dict) -> str:
    ran = results["ran"]
    lines = [f"# Soak, {now()}", "",
             f"- {args.duration:g} s of traffic ({ran['seconds']:.0f} s with the last requests), "
             f"{args.workers} gevent workers, {args.database}, rate limits at their defaults, "
             f"1 trusted proxy (each client its own address)",
             f"- Started: {ran['actions']['normal']} normal actions ({args.rate:g}/s), "
             f"{ran['actions']['abuse']} abusive ({args.abuse_rate:g}/s), "
             f"{ran['actions']['flood']} wrong-password logins ({args.flood_rate:g}/s); "
             f"{results['users']} users at the end",
             f"- Faults injected: {args.fault_500:.0%} of chats get an upstream 500, {args.fault_hang:.0%} hang "
             f"(gateway read timeout 3 s); replies of {args.tokens} tokens over {args.reply_seconds:g} s",
             f"- Fake upstream: {results['fake_upstream']}", ""]
    for name, (passed, found) in results["checks"].items():
        lines += [f"## {CHECK_TITLES[name]}: {'PASS' if passed else 'FAIL'}", ""]
        lines += [f"- {key}: {value}" for key, value in found.items()] + [""]
    lines += ["## Requests by kind and status", "",
              "| kind | statuses | p50 | p99 | slowest |", "|---|---|---|---|---|"]
    lines += [f"| {kind} | {', '.join(f'{s}: {n}' for s, n in sorted(row.items()))} | "
              + " | ".join(f"{results['latency'][kind][q] * 1000:.0f} ms" for q in ("p50", "p99", "max")) + " |"
              for kind, row in results["requests"].items()]
    lines += ["", "## Worker RSS over time (MiB)", "", "| t (s) | workers |", "|---|---|"]
    lines += [f"| {s['t']} | {', '.join(str(v) for v in s['mib'].values())} |" for s in ran["memory"]["samples"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="gateway-soak-logs-"))
    results = asyncio.run(run(args, log_dir))
    text = markdown(args, results)
    print(text)
    output = args.output or default_output("soak", args.database, f"{args.duration:g}s")
    write_results(output, text, {"settings": vars(args) | {"output": output.name}, **results}, log_dir)
    failed = [CHECK_TITLES[name] for name, (passed, _) in results["checks"].items() if not passed]
    for title in failed:
        print(f"soak: FAILED: {title}", file=sys.stderr)
    return 1 if failed else 0

