"""How many chats the gateway holds at once, on this machine, per serving model.

    python -m bench.concurrency --quick
    python -m bench.concurrency --streams 1000 --slow-sockets 1000 --hung 200 --repeat 3

Starts a fake upstream and, for each serving model, the gateway exactly as
`gunicorn -c gunicorn.conf.py wsgi:app` runs it; then measures, each `--repeat` times:
the tool's own ceiling (client straight against the fake), concurrent streams,
slow-header sockets and chats against a hung upstream, with /livez probed
throughout. Prints a table and writes Markdown to bench/results/.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from ..common.report import default_output, write_results
from ..common.servers import FakeModel, Gateway
from . import report, scenarios


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test of the tooling")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streamed chats")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per streamed reply")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each streamed reply")
    parser.add_argument("--slow-sockets", type=int, default=1000, help="sockets sending headers at 1 byte/s")
    parser.add_argument("--hung", type=int, default=200, help="chats against an upstream that never answers")
    parser.add_argument("--hung-hold", type=float, default=8.0, help="seconds a hung chat's client waits")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario; the table shows medians")
    parser.add_argument("--worker-classes", default="gevent,gthread", help="serving models to compare")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker")
    parser.add_argument("--header-timeout", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file per gateway")
    parser.add_argument("--output", type=Path, default=None, help="results file (default: bench/results/...)")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.slow_sockets, args.hung, args.repeat = 50, 20, 10, 1
        args.seconds, args.hung_hold = 2.0, 4.0
    return args


def gateway_env(args, worker_class: str) -> dict:
    # One bench user opens every stream: its per-user chat limit (60 a minute) would refuse most of them.
    return {"GUNICORN_WORKER_CLASS": worker_class, "WEB_CONCURRENCY": str(args.workers),
            "GUNICORN_THREADS": str(args.threads), "GUNICORN_HEADER_TIMEOUT": str(args.header_timeout),
            "RATE_LIMIT_CHAT_USER": "1000000/minute"}


async def measure_model(args, worker_class: str, fake: FakeModel, log_dir: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {"streams": [], "slow_headers": [], "hung_upstream": []}
    stream_timeout = args.seconds + 10
    with Gateway(log_dir, upstream_url=fake.url, database_url=args.database_url,
                 env=gateway_env(args, worker_class)) as gateway:
        headers, conversations = await scenarios.login(gateway, f"bench-{uuid.uuid4().hex[:8]}@example.com",
                                                       max(args.streams, args.hung))
        for run in range(args.repeat):
            print(f"  {worker_class} run {run + 1}/{args.repeat}", flush=True)
            runs["streams"].append(await scenarios.streams(gateway, headers, conversations[:args.streams],
                                                           stream_timeout))
            runs["slow_headers"].append(await scenarios.slow_headers(gateway, args.slow_sockets,
                                                                     args.header_timeout + 3))
        # Once, last: today nothing frees a hung upstream before the read timeout.
        runs["hung_upstream"].append(await scenarios.hung_upstream(gateway, fake, headers,
                                                                   conversations[:args.hung], args.hung_hold))
    return runs


async def main_async(args) -> Path:
    log_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-logs-"))
    results: dict[str, dict[str, list[dict]]] = {}
    with FakeModel(log_dir, tokens=args.tokens, seconds=args.seconds) as fake:
        ceiling = []
        for run in range(args.repeat):
            print(f"  ceiling run {run + 1}/{args.repeat}", flush=True)
            ceiling.append(await scenarios.ceiling(fake, args.streams, args.seconds + 10))
        for worker_class in args.worker_classes.split(","):
            results[worker_class] = await measure_model(args, worker_class, fake, log_dir)
    text = report.markdown(args, ceiling, results)
    print(text)
    output = args.output or default_output("concurrency", "quick" if args.quick else "full")
    return write_results(output, text, {"ceiling": ceiling, "models": results}, log_dir)


def main(argv=None) -> None:
    asyncio.run(main_async(parse_args(argv)))

