"""`python -m bench.rolling`: a rolling restart under load loses nothing.

Two gateway instances behind HAProxy (monitoring/haproxy/haproxy.cfg, health check on /readyz),
one PostgreSQL, Redis for the shared rate limits, and a steady mix of whole chats, short streams
and reads. While it runs, each instance is restarted in turn (SIGTERM, wait for it to exit, start
it again on the same port, wait until HAProxy sends it traffic), then both are HUP-reloaded.

Pass: 0 failed requests, 0 streams without `end` (every stream is shorter than the graceful
timeout), and as many replies stored in the database as replies received. Three runs by default;
the results go to bench/results/rolling-<time>.md (and .json).

    python -m bench.rolling [--runs 3] [--quick] [--output FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..common import client
from ..common.databases import ScratchDatabase
from ..common.report import default_output, now, write_results
from ..common.servers import HOST, ROOT, FakeModel, Gateway, Process, free_port

HAPROXY_CONFIG = ROOT / "monitoring" / "haproxy" / "haproxy.cfg"
GRACEFUL_TIMEOUT, DRAIN_DELAY = 10, 2
METRICS_TOKEN = "bench-rolling-metrics-token"
MIX = {"whole": 3, "stream": 4, "read": 3}  # weights of the steady load
DB_POOL = (3, 6)  # DB_POOL_SIZE, DB_MAX_OVERFLOW per worker


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=12, help="concurrent request loops")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load before and after the restarts")
    parser.add_argument("--reply-seconds", type=float, default=1.0, help="how long each reply streams")
    parser.add_argument("--quick", action="store_true", help="one run, fewer clients (the suite's check)")
    parser.add_argument("--output", type=Path, help="default: bench/results/rolling-<time>.md")
    args = parser.parse_args(argv)
    if args.quick:
        # One run, and shorter settles between the restarts: the sequence is what the suite checks.
        args.runs, args.clients, args.settle = 1, 4, 1.0
    return args


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if not found:
        sys.exit("haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)")
    return found


class HAProxy(Process):
    def __init__(self, log_dir: Path, ports: list[int]):
        self.port = free_port()
        env = {**os.environ, "HAPROXY_BIND": f"{HOST}:{self.port}",
               "GATEWAY_1": f"{HOST}:{ports[0]}", "GATEWAY_2": f"{HOST}:{ports[1]}"}
        super().__init__("haproxy", [haproxy_binary(), "-db", "-f", str(HAPROXY_CONFIG)], env,
                         f"http://{HOST}:{self.port}/livez", log_dir)


@dataclass
class Tally:
    """What the clients saw."""
    sent: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)  # kind:reason
    replies_received: int = 0  # whole replies with 200, streams that ended with `end`
    streams_without_end: int = 0
    longest_stream: float = 0.0


async def load(port: int, users: list[tuple[dict, str]], tally: Tally, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    while not stop.is_set():
        headers, conversation = rng.choice(users)
        kind = rng.choices(kinds, weights)[0]
        tally.sent[kind] += 1
        try:
            if kind == "stream":
                result = await client.stream(HOST, port, f"/conversations/{conversation}/stream",
                                             {"content": "stream"}, headers=headers, timeout=60)
                tally.longest_stream = max(tally.longest_stream, result.done or 0)
                if result.ok:
                    tally.replies_received += 1
                else:
                    tally.streams_without_end += 1
                    tally.failed[f"stream:{result.error}"] += 1
                continue
            if kind == "whole":
                response = await client.request(HOST, port, "POST", f"/conversations/{conversation}/messages",
                                                json_body={"content": "whole"}, headers=headers)
            else:
                response = await client.request(HOST, port, "GET", f"/conversations/{conversation}",
                                                headers=headers)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.failed[f"{kind}:{type(exc).__name__}"] += 1
            continue
        if response.status != 200:
            tally.failed[f"{kind}:http_{response.status}"] += 1
        elif kind == "whole":
            tally.replies_received += 1


async def sign_up(port: int, count: int) -> list[tuple[dict, str]]:
    users = []
    for _ in range(count):
        email = f"rolling-{uuid.uuid4().hex[:8]}@example.com"
        response = await client.request(HOST, port, "POST", "/auth/register",
                                        json_body={"email": email, "password": "correct horse battery"})
        assert response.status == 201, response.body
        headers = {"Authorization": f"Bearer {json.loads(response.body)['accessToken']}"}
        created = await client.request(HOST, port, "POST", "/conversations", json_body={"title": "rolling"},
                                       headers=headers)
        assert created.status == 201, created.body
        users.append((headers, json.loads(created.body)["id"]))
    return users


def gateway_env(redis_db: int) -> dict:
    return {"APP_ENV": "production", "PASSWORD_HASH_COST": "14", "METRICS_TOKEN": METRICS_TOKEN,
            "WEB_CONCURRENCY": "2", "RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:6379/{redis_db}",
            "RATE_LIMIT_CHAT_USER": "1000000/minute", "RATE_LIMIT_REGISTER_ADDRESS": "1000/hour",
            "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT), "DRAIN_DELAY_SECONDS": str(DRAIN_DELAY),
            "LOG_LEVEL": "INFO",
            # Small pools: a HUP briefly doubles an instance's workers, and with them its connections;
            # the shared PostgreSQL here allows 100 in all (its "too many clients" once failed a stream).
            "DB_POOL_SIZE": str(DB_POOL[0]), "DB_MAX_OVERFLOW": str(DB_POOL[1])}


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def restart(gateway: Gateway, log_dir: Path, upstream: str, database_url: str, env: dict) -> Gateway:
    """SIGTERM, wait for the exit (off the event loop: the load goes on), start again on the same port."""
    await asyncio.to_thread(gateway.stop)
    fresh = Gateway(log_dir, upstream_url=upstream, database_url=database_url, env=env, port=gateway.port)
    return await asyncio.to_thread(fresh.start)


def served_through_the_proxy(gateway: Gateway) -> float:
    """Requests this instance answered other than health checks: HAProxy sends it traffic when this grows."""
    request = urllib.request.Request(f"http://{HOST}:{gateway.metrics_port}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("http_requests_total{")
               and 'route="/readyz"' not in line and 'route="/livez"' not in line)


async def in_rotation(gateway: Gateway) -> None:
    await wait_for(lambda: served_through_the_proxy(gateway) >= 5, 60, f"HAProxy to send {gateway.url} traffic")


async def hup(gateway: Gateway) -> None:
    old = set(gateway.worker_pids())
    os.kill(gateway.pid, signal.SIGHUP)
    await wait_for(lambda: not old & set(gateway.worker_pids()) and len(gateway.worker_pids()) == 2, 60,
                   "the old workers replaced")


def stored_replies(database_url: str) -> int:
    import psycopg2

    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM messages WHERE role = 'ASSISTANT'")
            return cursor.fetchone()[0]
    finally:
        connection.close()


async def one_run(args, index: int, log_dir: Path) -> dict:
    env = gateway_env(redis_db=15)  # rate-limit counters only; the limits are far above this load
    with ScratchDatabase(postgres=True, prefix="bench_rolling") as database, \
            FakeModel(log_dir, tokens=20, seconds=args.reply_seconds) as fake:
        gateways = [Gateway(log_dir, upstream_url=fake.url, database_url=database.url, env=env).start()
                    for _ in range(2)]
        try:
            with HAProxy(log_dir, [g.port for g in gateways]) as proxy:
                users = await sign_up(proxy.port, 4)
                tally, stop = Tally(), asyncio.Event()
                loops = [asyncio.create_task(load(proxy.port, users, tally, stop, seed=index * 100 + n))
                         for n in range(args.clients)]
                timeline = []
                began = time.monotonic()

                def mark(event: str):
                    timeline.append((round(time.monotonic() - began, 1), event))
                    print(f"rolling run {index + 1}: {timeline[-1][0]:5.1f} s {event}", flush=True)

                await asyncio.sleep(args.settle)
                for n in range(2):
                    mark(f"SIGTERM gateway {n + 1}")
                    gateways[n] = await restart(gateways[n], log_dir, fake.url, database.url, env)
                    mark(f"gateway {n + 1} started again")
                    await in_rotation(gateways[n])  # HAProxy's rise (2 checks), then requests reach it
                    mark(f"gateway {n + 1} serves through HAProxy")
                    await asyncio.sleep(args.settle)
                mark("SIGHUP both")
                await asyncio.gather(*(hup(g) for g in gateways))
                mark("both reloaded")
                await asyncio.sleep(args.settle)
                stop.set()
                await asyncio.gather(*loops)
                mark("load stopped")
        finally:
            for gateway in gateways:
                gateway.stop()
        stored = stored_replies(database.url)
    return {"sent": dict(tally.sent), "requests": sum(tally.sent.values()), "failed": dict(tally.failed),
            "failed_total": sum(tally.failed.values()), "streams_without_end": tally.streams_without_end,
            "replies_received": tally.replies_received, "replies_stored": stored,
            "longest_stream_s": round(tally.longest_stream, 2), "timeline": timeline,
            "passed": not tally.failed and not tally.streams_without_end and stored == tally.replies_received}


def markdown(args, runs: list[dict]) -> str:
    lines = [f"# Rolling restart, {now()}", "",
             f"- Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
             "shared with other work",
             "- Set-up: two gateways (`gunicorn -c gunicorn.conf.py wsgi:app`, 2 gevent workers each, "
             "APP_ENV=production) behind HAProxy (monitoring/haproxy/haproxy.cfg), one PostgreSQL, Redis",
             f"- GUNICORN_GRACEFUL_TIMEOUT={GRACEFUL_TIMEOUT}, DRAIN_DELAY_SECONDS={DRAIN_DELAY}, "
             f"DB_POOL_SIZE={DB_POOL[0]}, DB_MAX_OVERFLOW={DB_POOL[1]}; replies of 20 tokens over {args.reply_seconds:g} s",
             f"- Load: {args.clients} concurrent clients, one request at a time each, mix "
             + ", ".join(f"{k} {v}" for k, v in MIX.items()),
             "- Sequence: SIGTERM gateway 1, start it again; the same for gateway 2; SIGHUP both", "",
             "| run | requests | failed | streams without end | replies received | replies stored | longest stream "
             "| passed |", "|---|---|---|---|---|---|---|---|"]
    for n, run in enumerate(runs, 1):
        lines.append(f"| {n} | {run['requests']} ({', '.join(f'{k} {v}' for k, v in run['sent'].items())}) "
                     f"| {run['failed_total']} {run['failed'] or ''} | {run['streams_without_end']} "
                     f"| {run['replies_received']} | {run['replies_stored']} | {run['longest_stream_s']} s "
                     f"| {'yes' if run['passed'] else 'NO'} |")
    lines += ["", "Timeline of the last run (seconds from the start of the load):", ""]
    lines += [f"- {t} s: {event}" for t, event in runs[-1]["timeline"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="gateway-rolling-logs-"))
    runs = [asyncio.run(one_run(args, n, log_dir)) for n in range(args.runs)]
    text = markdown(args, runs)
    print(text)
    output = args.output or default_output("rolling", *(["quick"] if args.quick else []))
    write_results(output, text, {"settings": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, log_dir)
    failed = [n + 1 for n, run in enumerate(runs) if not run["passed"]]
    if failed:
        print(f"rolling: FAILED runs {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
