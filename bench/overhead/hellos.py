"""Every route measured in hellos: a bare Flask hello under the same gunicorn worker model, in the same rounds.

Absolute times swing 3x between runs on a shared machine; the ratio to a hello
measured alternately with each route, round by round, does not. A ratio is the
median of the per-round ratios (each round's route and hello ran back to back).
"""
from __future__ import annotations

import json
import statistics

from ..common.keepalive import Connection
from ..common.servers import HOST, Gateway
from . import scenarios
from .scenarios import MODEL, Route

V1_TOKEN = b'"content"'
HELLO = "hello"
# The stack's floor for each whole chat route (floor.py), beside it in the table.
FLOORS = {"conversation whole": "conversation floor", "/v1 whole": "/v1 floor"}
# The table: (route, concurrency, what, target); a throughput target is a minimum, a latency one a maximum.
TARGETS = [
    ("/livez", 16, "throughput", 0.9),
    ("conversation whole", 16, "throughput", 1 / 6),
    ("/v1 whole", 16, "throughput", 1 / 4),
    ("conversation whole", 1, "latency", 8.0),
    ("/v1 whole", 1, "latency", 5.0),
]
LONG_TARGET = 1.2  # a turn in a 300-message conversation vs a 5-message one, by the gateway's own figure


async def api_key(port: int, headers: dict) -> dict:
    connection = Connection(HOST, port)
    try:
        response = await connection.request("POST", "/api-keys", json_body={"name": "bench"}, headers=headers)
    finally:
        connection.close()
    if response.status != 201:
        raise RuntimeError(f"create api key failed: {response.status} {response.body[:200]!r}")
    return {"Authorization": f"Bearer {json.loads(response.body)['key']}"}


def routes(gateway: Gateway, hello_port: int, headers: dict, key_headers: dict, pool, stream_pool) -> dict[str, Route]:
    """The routes of the hello table, hello first; both conversation routes draw fresh conversations from pools."""
    v1_body = {"model": MODEL, "messages": scenarios.PROMPT}
    whole, _ = scenarios.chat_routes(gateway.port, 0, headers, pool, stream=False)
    stream, _ = scenarios.chat_routes(gateway.port, 0, headers, stream_pool, stream=True)
    return {
        HELLO: Route(hello_port, "GET", "/"),
        "/livez": Route(gateway.port, "GET", "/livez"),
        "/v1 whole": Route(gateway.port, "POST", "/v1/chat/completions", v1_body, key_headers),
        "/v1 streamed": Route(gateway.port, "POST", "/v1/chat/completions", {**v1_body, "stream": True},
                              key_headers, V1_TOKEN),
        "conversation whole": whole,
        "conversation streamed": stream,
    }


def floor_routes(floor_port: int, headers: dict, key_headers: dict, pool) -> dict[str, Route]:
    """The same whole chats against the stack's floor: same paths, bodies and credentials' kinds."""
    whole, _ = scenarios.chat_routes(floor_port, 0, headers, pool, stream=False)
    return {FLOORS["conversation whole"]: whole,
            FLOORS["/v1 whole"]: Route(floor_port, "POST", "/v1/chat/completions",
                                       {"model": MODEL, "messages": scenarios.PROMPT}, key_headers)}


async def sweep(routes: dict[str, Route], concurrencies: list[int], seconds: float, rounds: int, pools,
                turns_per_second: int) -> dict:
    """For each concurrency, `rounds` rounds over every route (order rotating): throughput and latency per round."""
    results = {}
    for concurrency in concurrencies:
        print(f"  (6) hellos, concurrency {concurrency}", flush=True)
        for pool in pools:
            await pool.ensure(int(turns_per_second * seconds * rounds))
        results[concurrency] = await scenarios.alternated_load(routes, concurrency, seconds, rounds)
    return results


def ratio(runs: dict[str, list[dict]], route: str, what: str) -> float | None:
    """Median over rounds of route/hello: throughput as a fraction of a hello's, latency p50 in hello round trips."""
    key = "per_second" if what == "throughput" else "latency_p50"
    values = [mine[key] / hello[key] for mine, hello in zip(runs[route], runs[HELLO])
              if mine.get(key) and hello.get(key)]
    return statistics.median(values) if values else None


async def long_conversation(gateway_port: int, headers: dict, count: int, long_messages: int = 300,
                            short_messages: int = 5) -> dict:
    """The gateway's own X-Gateway-Overhead-Ms for turns in a long conversation vs a short one, alternated."""
    connection = Connection(HOST, gateway_port)
    pool = scenarios.Conversations(gateway_port, headers, 1)
    long_pool = scenarios.Conversations(gateway_port, headers, count + 10)
    await long_pool.ensure(1)
    long_id = long_pool()
    # Messages come in pairs (the user's and the reply), so a 300-message history is 150 turns.
    for _ in range(long_messages // 2):
        await connection.request("POST", f"/conversations/{long_id}/messages", json_body={"content": "hi"},
                                 headers=headers)
    short_ids = []
    await pool.ensure(count)
    for _ in range(count):
        short_ids.append(pool())
        for _ in range(short_messages // 2):
            await connection.request("POST", f"/conversations/{short_ids[-1]}/messages", json_body={"content": "hi"},
                                     headers=headers)
    samples: dict[str, list[float]] = {"long": [], "short": []}
    for index in range(count):
        order = [("long", long_id), ("short", short_ids[index])]
        for name, conversation in order if index % 2 else reversed(order):
            timed = await connection.request("POST", f"/conversations/{conversation}/messages",
                                             json_body={"content": "hi"}, headers=headers)
            if timed.status == 200 and "x-gateway-overhead-ms" in timed.headers:
                samples[name].append(float(timed.headers["x-gateway-overhead-ms"]))
    connection.close()
    long_p50, short_p50 = (statistics.median(samples[n]) if samples[n] else None for n in ("long", "short"))
    return {"long_messages": long_messages, "short_messages": short_messages, "count": count,
            "long_p50_ms": long_p50, "short_p50_ms": short_p50,
            "ratio": long_p50 / short_p50 if long_p50 and short_p50 else None}
