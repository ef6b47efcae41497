"""The load scenarios, each a coroutine returning a flat dict of measurements."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from ..common import client
from ..common.client import percentile
from ..common.servers import HOST, FakeModel, Gateway


async def login(gateway: Gateway, email: str, conversations: int) -> tuple[dict, list[str]]:
    """Register one user and open `conversations` conversations; returns the auth header and their ids."""
    password = "bench password, long enough"
    registered = await client.request(HOST, gateway.port, "POST", "/auth/register",
                                      json_body={"email": email, "password": password})
    if registered.status != 201:
        raise RuntimeError(f"register failed: {registered.status} {registered.body[:200]!r}")
    headers = {"Authorization": f"Bearer {json.loads(registered.body)['accessToken']}"}
    gate = asyncio.Semaphore(20)

    async def create(index: int) -> str:
        async with gate:
            response = await client.request(HOST, gateway.port, "POST", "/conversations",
                                            json_body={"title": f"bench {index}"}, headers=headers)
            if response.status != 201:
                raise RuntimeError(f"create conversation failed: {response.status} {response.body[:200]!r}")
            return json.loads(response.body)["id"]

    return headers, list(await asyncio.gather(*(create(i) for i in range(conversations))))


async def _with_probe(port: int | None, work):
    """Run `work` while probing /livez on `port`; returns (work's result, probe summary)."""
    stop = asyncio.Event()
    probe = asyncio.create_task(client.probe_livez(HOST, port, stop)) if port else None
    try:
        result = await work
    finally:
        stop.set()
    return result, (await probe).summary() if probe else {}


def _stream_summary(results: list[client.StreamResult], wall: float, cpu: float) -> dict:
    ttft = [r.first_token for r in results if r.first_token is not None]
    done = [r.done for r in results if r.ok]
    errors = Counter(r.error or "incomplete" for r in results if not r.ok)
    return {
        "streams": len(results), "ok": sum(r.ok for r in results), "errors": sum(errors.values()),
        "error_kinds": dict(errors), "ttft_p50": percentile(ttft, 50), "ttft_p95": percentile(ttft, 95),
        "done_p50": percentile(done, 50), "done_max": max(done) if done else None,
        "wall": wall, "client_cpu": cpu / wall if wall else None,
    }


async def ceiling(fake: FakeModel, streams: int, timeout: float) -> dict:
    """The tool's own ceiling: the load client straight against the fake upstream, no gateway."""
    payload = {"model": "llama3.1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started, cpu = time.monotonic(), time.process_time()
    results = await asyncio.gather(*(client.stream(HOST, fake.port, "/api/chat", payload, protocol="ndjson",
                                                   timeout=timeout) for _ in range(streams)))
    return _stream_summary(results, time.monotonic() - started, time.process_time() - cpu)


async def streams(gateway: Gateway, headers: dict, conversations: list[str], timeout: float) -> dict:
    """One stream per conversation, all at once, with /livez probed and worker memory sampled."""
    baseline = gateway.workers_rss_bytes()
    peak = baseline
    stop = asyncio.Event()

    async def sample_memory():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, gateway.workers_rss_bytes())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_memory())
    started, cpu = time.monotonic(), time.process_time()
    work = asyncio.gather(*(client.stream(HOST, gateway.port, f"/conversations/{cid}/stream", {"content": "hi"},
                                          headers=headers, timeout=timeout) for cid in conversations))
    results, probe = await _with_probe(gateway.port, work)
    stop.set()
    await sampler
    summary = _stream_summary(results, time.monotonic() - started, time.process_time() - cpu)
    summary.update({f"livez_{k}": v for k, v in probe.items()})
    summary["rss_base_mib"] = baseline / 2**20
    summary["rss_peak_mib"] = peak / 2**20
    summary["kib_per_stream"] = (peak - baseline) / 1024 / len(conversations)
    return summary


async def slow_headers(gateway: Gateway, sockets: int, hold: float) -> dict:
    """Sockets sending their headers at 1 byte/s for up to `hold` seconds, with /livez probed."""
    work = asyncio.gather(*(client.slow_header_socket(HOST, gateway.port, seconds=hold) for _ in range(sockets)),
                          return_exceptions=True)
    closes, probe = await _with_probe(gateway.port, work)
    closed = [c for c in closes if isinstance(c, float)]
    return {"sockets": sockets, "closed_by_server": len(closed),
            "close_p50": percentile(closed, 50), "close_max": max(closed) if closed else None,
            "failed_to_open": sum(isinstance(c, BaseException) for c in closes),
            **{f"livez_{k}": v for k, v in probe.items()}}


async def hung_upstream(gateway: Gateway, fake: FakeModel, headers: dict, conversations: list[str],
                        hold: float) -> dict:
    """Chats against a model server that never answers: clients give up after `hold` seconds."""
    previous = json.loads((await client.request(HOST, fake.port, "GET", "/_fake/script")).body)
    await client.request(HOST, fake.port, "POST", "/_fake/script", json_body={"hang": True})
    try:
        work = asyncio.gather(*(client.stream(HOST, gateway.port, f"/conversations/{cid}/stream",
                                              {"content": "hi"}, headers=headers, timeout=hold)
                                for cid in conversations))
        results, probe = await _with_probe(gateway.port, work)
        await asyncio.sleep(1.0)
        stats = json.loads((await client.request(HOST, fake.port, "GET", "/_fake/stats")).body)
    finally:
        await client.request(HOST, fake.port, "POST", "/_fake/script", json_body=previous)
    statuses = Counter(str(r.status or r.error) for r in results)
    return {"chats": len(conversations), "statuses": dict(statuses),
            "upstream_open_1s_after_leaving": stats["open"],
            **{f"livez_{k}": v for k, v in probe.items()}}
