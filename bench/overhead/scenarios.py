"""The overhead measurements: each runs the gateway and its baseline in the same run, alternated.

Every function returns a flat dict of numbers (seconds, or per second), for the report.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from ..common import client
from ..common.client import percentile
from ..common.keepalive import Connection, Timed
from ..common.servers import HOST

MODEL = "llama3.1"
PROMPT = [{"role": "user", "content": "hi"}]
GATEWAY_TOKEN = b'"type": "token"'
OLLAMA_TOKEN = b'"done": false'
QUANTILES = (50, 95, 99)
MAX_TURNS_PER_SECOND = 1000  # what a pool is topped up for before a load round (beyond: conversations reused)


@dataclass
class Route:
    """One kind of request against one server: how to build it, and what counts as its first token."""

    port: int
    method: str
    path: object  # str, or a callable returning the next path (a conversation id each time)
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    token_marker: bytes | None = None

    def next_path(self) -> str:
        return self.path() if callable(self.path) else self.path

    async def send(self, connection: Connection) -> Timed:
        return await connection.request(self.method, self.next_path(), json_body=self.body, headers=self.headers,
                                        token_marker=self.token_marker)


class Conversations:
    """Conversation ids, each used for `turns_each` turns, so every prompt carries a short, bounded history.

    Topped up before each measurement (outside its clock): a conversation reused
    for thousands of turns would send ever longer prompts and history reads,
    and later measurements would pay for earlier ones.
    """

    def __init__(self, port: int, headers: dict, turns_each: int):
        self.port, self.headers, self.turns_each = port, headers, turns_each
        self.ids: list[str] = []
        self.used = 0
        self.reused = 0  # turns past the pool's end, counted so a report can tell

    async def ensure(self, turns: int, parallel: int = 8) -> None:
        """Enough fresh conversations for `turns` more turns."""
        missing = -(-(self.used + turns) // self.turns_each) - len(self.ids)
        if missing <= 0:
            return
        gate = iter(range(missing))

        async def creator():
            connection = Connection(HOST, self.port)
            for _ in gate:
                self.ids.append(await _create_conversation(connection, self.headers))
            connection.close()

        await asyncio.gather(*(creator() for _ in range(min(parallel, missing))))

    def __call__(self) -> str:
        index = self.used // self.turns_each
        self.used += 1
        if index >= len(self.ids):
            self.reused += 1
        return self.ids[index % len(self.ids)]


async def login(port: int, email: str) -> dict:
    password = "bench password, long enough"
    response = await client.request(HOST, port, "POST", "/auth/register", json_body={"email": email, "password": password},
                                    timeout=60)
    if response.status != 201:
        raise RuntimeError(f"register failed: {response.status} {response.body[:200]!r}")
    return {"Authorization": f"Bearer {json.loads(response.body)['accessToken']}"}


async def _create_conversation(connection: Connection, headers: dict) -> str:
    response = await connection.request("POST", "/conversations", json_body={"title": "bench"}, headers=headers)
    if response.status != 201:
        raise RuntimeError(f"create conversation failed: {response.status} {response.body[:200]!r}")
    return json.loads(response.body)["id"]


def chat_routes(gateway_port: int, fake_port: int, headers: dict, pool: Conversations, *, stream: bool):
    """The gateway's chat route and the same chat sent straight to the fake upstream."""
    kind = "stream" if stream else "messages"
    gateway = Route(gateway_port, "POST", lambda: f"/conversations/{pool()}/{kind}", {"content": "hi"},
                    {**headers, "Accept": "text/event-stream"} if stream else headers, GATEWAY_TOKEN)
    direct = Route(fake_port, "POST", "/api/chat", {"model": MODEL, "messages": PROMPT, "stream": stream},
                   token_marker=OLLAMA_TOKEN)
    return gateway, direct


def _quantiles(prefix: str, values: list[float]) -> dict:
    return {f"{prefix}_p{q}": percentile(values, q) for q in QUANTILES}


def _added(result: dict, what: str) -> None:
    for q in QUANTILES:
        gateway, direct = result.get(f"gateway_{what}_p{q}"), result.get(f"direct_{what}_p{q}")
        result[f"added_{what}_p{q}"] = None if gateway is None or direct is None else gateway - direct


async def paired(gateway: Route, direct: Route, count: int, *, warmup: int = 20) -> dict:
    """Concurrency 1: `count` requests to each, alternated (and which goes first alternates too)."""
    connections = {"gateway": Connection(HOST, gateway.port), "direct": Connection(HOST, direct.port)}
    samples: dict[str, list[Timed]] = {"gateway": [], "direct": []}
    errors = 0
    for index in range(warmup + count):
        order = (("gateway", gateway), ("direct", direct))
        for name, route in order if index % 2 == 0 else reversed(order):
            timed = await route.send(connections[name])
            if timed.status != 200:
                errors += 1
            elif index >= warmup:
                samples[name].append(timed)
    for connection in connections.values():
        connection.close()
    result: dict = {"count": count, "errors": errors}
    for name, timed in samples.items():
        result.update(_quantiles(f"{name}_total", [t.total for t in timed]))
        result.update(_quantiles(f"{name}_ttft", [t.first_token for t in timed if t.first_token is not None]))
    headers = [float(t.headers["x-gateway-overhead-ms"]) / 1000 for t in samples["gateway"]
               if "x-gateway-overhead-ms" in t.headers]
    result.update(_quantiles("header_overhead", headers))
    _added(result, "total")
    _added(result, "ttft")
    return result


async def load(route: Route, concurrency: int, seconds: float) -> dict:
    """`concurrency` clients, each sending its next request as soon as the last one ended, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one_client():
        nonlocal errors
        connection = Connection(HOST, route.port)
        try:
            while time.perf_counter() < deadline:
                try:
                    timed = await route.send(connection)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                    errors += 1
                    continue
                if timed.status == 200:
                    latencies.append(timed.total)
                else:
                    errors += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"per_second": len(latencies) / wall, "ok": len(latencies), "errors": errors,
            **_quantiles("latency", latencies)}


async def alternated_load(routes: dict[str, Route], concurrency: int, seconds: float, rounds: int) -> dict:
    """Rounds of load on each route in turn (order rotating); per route: the runs, for medians."""
    runs: dict[str, list[dict]] = {name: [] for name in routes}
    names = list(routes)
    for round_index in range(rounds):
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            runs[name].append(await load(routes[name], concurrency, seconds))
    return runs


async def scrape_latency(port: int, path: str, count: int, headers: dict | None = None) -> dict:
    """Sequential scrapes on fresh connections (as Prometheus's are, mostly): p50/p99 and the body size."""
    latencies, size, errors = [], 0, 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            response = await client.request(HOST, port, "GET", path, headers=headers, timeout=30)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            errors += 1
            continue
        if response.status == 200:
            latencies.append(time.perf_counter() - started)
            size = len(response.body)
        else:
            errors += 1
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "bytes": size, "errors": errors}


async def recycle_workers(port: int, restarts: int, concurrency: int = 8) -> dict:
    """With GUNICORN_MAX_REQUESTS=1 every request served ends its worker: send `restarts` cheap ones."""
    served, failed = 0, 0
    started = time.perf_counter()
    queue = iter(range(restarts))

    async def one_client():
        nonlocal served, failed
        for _ in queue:
            try:
                response = await client.request(HOST, port, "GET", "/livez", timeout=30)
                served += response.status == 200
                failed += response.status != 200
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failed += 1

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return {"served": served, "failed": failed, "seconds": time.perf_counter() - started}
