"""What the gateway adds on top of the model server, measured against its baselines in the same run.

    python -m bench.overhead --quick          # about 20 s: a smoke test of the tooling
    python -m bench.overhead                  # SQLite
    python -m bench.overhead --postgres       # PostgreSQL at 127.0.0.1:5432 (a fresh database, dropped after)

Starts an efficient fake upstream (instant replies), the gateway as
`gunicorn -c gunicorn.conf.py wsgi:app` runs it with production settings, and
the baselines, then measures: (1) whole chats at concurrency 1 and 16, (2)
time to first token and stream time, (3) the cost of the metrics
(METRICS_ENABLED=false), (4) /metrics latency by worker count and after
worker restarts, (5) the floor, a bare Flask hello under the same server, and
the stack's floor for a chat (bench/overhead/floor.py).
Gateway and baseline requests are alternated; tables show percentiles
(medians over `--repeat` runs). Writes Markdown and JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ..common.databases import ScratchDatabase
from ..common.report import RESULTS, default_output, write_results
from ..common.servers import HOST, FakeModel, Gateway, Process, free_port
from . import charts, hellos, profile, report, scenarios, steps
# Production wants one: without it /metrics on the API port answers 404.
METRICS_TOKEN = "bench-metrics-token-" + uuid.uuid4().hex
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest sizes, one run, about 20 s")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1:5432 instead of SQLite")
    parser.add_argument("--workers", type=int, default=2, help="gateway workers (one per core)")
    parser.add_argument("--requests", type=int, default=400, help="concurrency-1 requests to each side per run")
    parser.add_argument("--warmup", type=int, default=20, help="concurrency-1 requests to each side before those")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each concurrency-16 round")
    parser.add_argument("--rounds", type=int, default=6,
                        help="concurrency-16 rounds per side, alternated: short and many, so load from other "
                             "work on the machine falls on both sides alike")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="runs (rounds) of each measurement; medians")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply from the fake upstream")
    parser.add_argument("--metrics-workers", default="1,4,8", help="worker counts for the /metrics latency")
    parser.add_argument("--restarts", default="0,100,1000", help="worker restarts before each /metrics sample")
    parser.add_argument("--restart-workers", type=int, default=8, help="gthread workers recycled for those restarts")
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes per /metrics sample")
    parser.add_argument("--traffic-seconds", type=float, default=1.0,
                        help="whole chats before a /metrics sample (then half as long streamed)")
    parser.add_argument("--concurrencies", default="1,4,16,64", help="concurrencies of the table in hellos")
    parser.add_argument("--hello-seconds", type=float, default=1.5, help="length of each round in hellos")
    parser.add_argument("--hello-rounds", type=int, default=4, help="rounds per route and concurrency in hellos")
    parser.add_argument("--long-turns", type=int, default=40, help="turns each in the long and short conversation")
    parser.add_argument("--long-messages", type=int, default=300, help="messages in the long conversation's history")
    parser.add_argument("--turns-per-second", type=int, default=scenarios.MAX_TURNS_PER_SECOND,
                        help="what a conversation pool is topped up for before a load round (beyond: reused)")
    parser.add_argument("--only-hellos", action="store_true",
                        help="only the table in hellos and the long conversation (a quicker before/after)")
    parser.add_argument("--profile", action="store_true",
                        help="only sample the workers with py-spy under load; flame graph and table to bench/results/")
    parser.add_argument("--profile-route", choices=("conversation", "v1"), default="conversation")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=None, help="results file (default: bench/results/...)")
    args = parser.parse_args(argv)
    if args.quick:
        # Every measurement still runs and yields its numbers, at the smallest sizes that do: the suite
        # runs this as a smoke test of the tooling, so its CPU is the suite's, and no figure is judged.
        args.requests, args.warmup, args.seconds, args.repeat, args.rounds, args.scrapes = 10, 3, 0.3, 1, 1, 3
        args.metrics_workers, args.restarts, args.restart_workers, args.traffic_seconds = "2", "0,20", 2, 0.3
        args.concurrencies, args.hello_seconds, args.hello_rounds = "1,16", 0.2, 1
        args.long_turns, args.long_messages = 3, 40
        # A quick round sends far fewer turns than a full one could: fewer conversations made up front.
        args.turns_per_second = 200
        args.profile_seconds = 3.0
    return args


def gateway_env(args, **extra) -> dict:
    """Production settings, except what a benchmark from one address and one user must change."""
    return {"APP_ENV": "production", "PASSWORD_HASH_COST": "14", "WEB_CONCURRENCY": str(args.workers),
            "RATE_LIMIT_CHAT_USER": "1000000/minute", "RATE_LIMIT_REGISTER_ADDRESS": "1000/hour",
            "METRICS_TOKEN": METRICS_TOKEN,
            # Five gateways stop one after another, and no measurement runs while one drains.
            **({"DRAIN_DELAY_SECONDS": "0"} if args.quick else {}), **extra}


class BareApp(Process):
    """A Flask app of the bench's own under gunicorn's gevent worker, as many workers as the gateway.

    Its module is its own (empty) config too: gunicorn would otherwise read the gateway's gunicorn.conf.py
    from the directory.
    """

    def __init__(self, module: str, log_dir: Path, workers: int, env: dict | None = None):
        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "-c", f"python:{module}", "-k", "gevent", "-w", str(workers),
                "-b", f"{HOST}:{self.port}", "--worker-connections", "2000", f"{module}:app"]
        super().__init__(f"{module.rsplit('.', 1)[1]}-{self.port}", argv, env, f"http://{HOST}:{self.port}/", log_dir)


class Hello(BareApp):
    def __init__(self, log_dir: Path, workers: int):
        super().__init__("bench.overhead.hello", log_dir, workers)


class Floor(BareApp):
    """The stack's floor for a chat (floor.py): the gateway's libraries and round trips, none of its own code."""

    def __init__(self, log_dir: Path, workers: int, fake: FakeModel, database_url: str | None):
        url = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='gateway-bench-floor-')}/floor.db"
        super().__init__("bench.overhead.floor", log_dir, workers,
                         {**os.environ, "FLOOR_DATABASE_URL": url, "FLOOR_UPSTREAM_URL": fake.url,
                          "JWT_SECRET_KEY": "bench-floor-secret-" + uuid.uuid4().hex})


TURNS_PER_CONVERSATION = 10  # so a prompt carries at most 18 past messages


async def user_routes(gateway: Gateway, fake: FakeModel):
    headers = await scenarios.login(gateway.port, f"bench-{uuid.uuid4().hex[:8]}@example.com")
    pool = scenarios.Conversations(gateway.port, headers, TURNS_PER_CONVERSATION)
    return (pool, scenarios.chat_routes(gateway.port, fake.port, headers, pool, stream=False),
            scenarios.chat_routes(gateway.port, fake.port, headers, pool, stream=True))


async def chat_measurements(args, fake: FakeModel, database_url: str | None, log_dir: Path) -> dict:
    results: dict = {}
    with Gateway(log_dir, upstream_url=fake.url, database_url=database_url, env=gateway_env(args)) as gateway, \
            Gateway(log_dir, upstream_url=fake.url, database_url=database_url,
                    env=gateway_env(args, METRICS_ENABLED="false", METRICS_PORT="0")) as bare:
        pool, (whole, direct), (stream, direct_stream) = await user_routes(gateway, fake)
        bare_pool, (whole_bare, _), _ = await user_routes(bare, fake)
        if args.only_hellos:
            with Hello(log_dir, args.workers) as hello, Floor(log_dir, args.workers, fake, database_url) as floor:
                return await in_hellos(args, gateway, hello, floor, fake, pool)
        c1_turns = (args.requests + args.warmup) * args.repeat
        load_turns = int(args.turns_per_second * args.seconds * args.rounds)
        print("  (1) whole chats, concurrency 1", flush=True)
        await pool.ensure(c1_turns)
        results["chat_c1"] = [await scenarios.paired(whole, direct, args.requests, warmup=args.warmup)
                              for _ in range(args.repeat)]
        print("  (2) streamed chats, concurrency 1", flush=True)
        await pool.ensure(c1_turns)
        results["stream_c1"] = [await scenarios.paired(stream, direct_stream, args.requests, warmup=args.warmup)
                                for _ in range(args.repeat)]
        print(f"  (1) whole chats, concurrency {args.concurrency}", flush=True)
        await pool.ensure(load_turns)
        results["chat_load"] = await scenarios.alternated_load(
            {"gateway": whole, "direct": direct}, args.concurrency, args.seconds, args.rounds)
        print("  (3) the cost of the metrics", flush=True)
        await asyncio.gather(pool.ensure(load_turns + c1_turns), bare_pool.ensure(load_turns + c1_turns))
        # Throughput, as the target is stated, and the gateway's CPU per turn read from /proc around the same
        # rounds: other work on a shared machine moves the first by more than 5% from round to round.
        cost = await steps.measure({"metrics on": (whole, gateway.pid), "metrics off": (whole_bare, bare.pid)},
                                   fake.pid, args.seconds, args.rounds, concurrency=args.concurrency)
        results["metrics_cost"], results["metrics_cost_cpu"] = cost["runs"], cost["cpu"]
        results["metrics_cost_c1"] = [await scenarios.paired(whole, whole_bare, args.requests // 2,
                                                             warmup=args.warmup)
                                      for _ in range(args.repeat)]
        print("  (5) the floor", flush=True)
        with Hello(log_dir, args.workers) as hello, Floor(log_dir, args.workers, fake, database_url) as floor:
            results.update(await in_hellos(args, gateway, hello, floor, fake, pool))
            results["conversation_turns_reused"] = pool.reused + bare_pool.reused
            livez = scenarios.Route(gateway.port, "GET", "/livez")
            bare_hello = scenarios.Route(hello.port, "GET", "/")
            fake_root = scenarios.Route(fake.port, "GET", "/")
            results["floor_c1"] = [await scenarios.paired(bare_hello, fake_root, args.requests, warmup=args.warmup)
                                   for _ in range(args.repeat)]
            results["livez_c1"] = [await scenarios.paired(livez, fake_root, args.requests, warmup=args.warmup)
                                   for _ in range(args.repeat)]
            results["floor_load"] = await scenarios.alternated_load(
                {"fake upstream": fake_root, "bare Flask hello": bare_hello, "gateway /livez": livez},
                args.concurrency, args.seconds, args.rounds)
    return results


async def in_hellos(args, gateway: Gateway, hello: Hello, floor: Floor, fake: FakeModel, pool) -> dict:
    """(6) Every route beside a hello at each concurrency, (7) a long conversation's turn vs a short one's,
    (8) the stack's floor step by step and where each chat's CPU goes."""
    headers = pool.headers
    key_headers = await hellos.api_key(gateway.port, headers)
    stream_pool = scenarios.Conversations(gateway.port, headers, TURNS_PER_CONVERSATION)
    routes = hellos.routes(gateway, hello.port, headers, key_headers, pool, stream_pool)
    floor_headers = await scenarios.login(floor.port, "floor@example.com")
    floor_pool = scenarios.Conversations(floor.port, floor_headers, TURNS_PER_CONVERSATION)
    routes.update(hellos.floor_routes(floor.port, floor_headers, await hellos.api_key(floor.port, floor_headers),
                                      floor_pool))
    concurrencies = [int(c) for c in args.concurrencies.split(",")]
    sweep = await hellos.sweep(routes, concurrencies, args.hello_seconds, args.hello_rounds,
                               [pool, stream_pool, floor_pool], args.turns_per_second)
    print("  (8) the stack's floor step by step, and where the CPU goes", flush=True)
    step_routes = steps.routes(routes, floor.port, floor_headers, floor_pool,
                               {hello.port: hello.pid, floor.port: floor.pid, gateway.port: gateway.pid})
    for conversations, share in ((pool, 1), (floor_pool, 3)):  # the floor's pool serves three steps
        await conversations.ensure(int(args.turns_per_second * args.hello_seconds * args.hello_rounds * share))
    step_results = await steps.measure(step_routes, fake.pid, args.hello_seconds, args.hello_rounds)
    print("  (7) a long conversation's turn vs a short one's", flush=True)
    return {"hellos": sweep, "steps": step_results, "long_conversation": await hellos.long_conversation(
        gateway.port, headers, args.long_turns, long_messages=args.long_messages)}


async def metrics_measurements(args, fake: FakeModel, database_url: str | None, log_dir: Path) -> dict:
    results: dict = {"by_workers": {}, "by_restarts": {}}
    for workers in [int(w) for w in args.metrics_workers.split(",")]:
        print(f"  (4) /metrics with {workers} workers", flush=True)
        with Gateway(log_dir, upstream_url=fake.url, database_url=database_url,
                     env=gateway_env(args, WEB_CONCURRENCY=str(workers))) as gateway:
            pool, (whole, _), (stream, _) = await user_routes(gateway, fake)
            await pool.ensure(int(args.turns_per_second * args.traffic_seconds * 1.5))
            # Traffic first, so every worker has written chat and request series.
            await scenarios.load(whole, max(workers, 4), args.traffic_seconds)
            await scenarios.load(stream, max(workers, 4), args.traffic_seconds / 2)
            results["by_workers"][workers] = {
                "api": await scenarios.scrape_latency(gateway.port, "/metrics", args.scrapes, SCRAPER),
                "master": await scenarios.scrape_latency(gateway.metrics_port, "/metrics", args.scrapes, SCRAPER)}
    # A gevent worker notices max_requests on its 1 s loop tick; gthread recycles at once (see the report).
    env = gateway_env(args, WEB_CONCURRENCY=str(args.restart_workers), GUNICORN_WORKER_CLASS="gthread",
                      GUNICORN_MAX_REQUESTS="1")
    with Gateway(log_dir, upstream_url=fake.url, database_url=database_url, env=env) as gateway:
        done = 0
        for target in [int(r) for r in args.restarts.split(",")]:
            print(f"  (4) /metrics after {target} worker restarts", flush=True)
            recycled = await scenarios.recycle_workers(gateway.port, target - done)
            done = target
            await _wait_for_workers(gateway, args.restart_workers)
            results["by_restarts"][target] = {
                **recycled,
                "master": await scenarios.scrape_latency(gateway.metrics_port, "/metrics", args.scrapes, SCRAPER)}
    return results


async def _wait_for_workers(gateway: Gateway, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(gateway.worker_pids()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} workers after {timeout}s")
        await asyncio.sleep(0.05)


async def main_async(args) -> Path:
    log_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-logs-"))
    started = time.monotonic()
    if args.profile:
        results_dir = args.output.parent if args.output else RESULTS
        with ScratchDatabase(args.postgres, "bench_profile") as database, \
                FakeModel(log_dir, tokens=args.tokens, seconds=0.0) as fake:
            return await profile.profile(args, fake, database.url, log_dir, gateway_env(args), results_dir)
    with ScratchDatabase(args.postgres, "bench_overhead") as database, FakeModel(log_dir, tokens=args.tokens, seconds=0.0) as fake:
        results = {"chat": await chat_measurements(args, fake, database.url, log_dir)}
        if not args.only_hellos:
            results["metrics"] = await metrics_measurements(args, fake, database.url, log_dir)
    results["wall_seconds"] = time.monotonic() - started
    text = report.hellos_markdown(args, results) if args.only_hellos else report.markdown(args, results)
    print(text)
    database_name = "postgres" if args.postgres else "sqlite"
    output = args.output or default_output("overhead", database_name, "quick" if args.quick else "full")
    written = write_results(output, text, {"settings": vars(args) | {"output": output.name}, **results}, log_dir)
    output.with_name(output.stem + "-chart.svg").write_text(
        charts.concurrency_chart(results["chat"]["hellos"], list(report.CHART_ROUTES), report.chart_caption(args)))
    return written


def main(argv=None) -> None:
    asyncio.run(main_async(parse_args(argv)))

