"""Three fake model servers, each a process of its own, behind one gunicorn gateway; and a load of chats.

Shared by `python -m bench.failover` and tests/upstreams/test_failover_gunicorn.py, so the benchmark and
the proof drive the same servers the same way.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from ..common.servers import FakeModel

PASSWORD = "failover-bench-password"
UPSTREAMS = ("up-a", "up-b", "up-c")


def catalogue(path: Path, fakes: dict[str, FakeModel], fallback_url: str | None = None) -> Path:
    """`llama3.1` on the three fakes (falling back to `backup` when given), `weighted` on two with weights 2 and 1."""
    models = {
        "llama3.1": {"provider": "ollama", "upstreams": [{"name": name, "base_url": fake.url}
                                                         for name, fake in fakes.items()]},
        "weighted": {"provider": "ollama", "upstream_model": "llama3.1", "upstreams": [
            {"name": "up-a", "base_url": fakes["up-a"].url, "weight": 2},
            {"name": "up-b", "base_url": fakes["up-b"].url}]},
    }
    if fallback_url:
        models["llama3.1"]["fallbacks"] = ["backup"]
        models["backup"] = {"provider": "ollama", "base_url": fallback_url, "upstream_model": "llama3.1"}
    path.write_text(json.dumps({"default_model": "llama3.1", "models": models}))
    return path


def gateway_env(models_file: Path) -> dict[str, str]:
    return {"MODELS_FILE": str(models_file), "WEB_CONCURRENCY": "2", "CHAT_MAX_STREAMS_PER_USER": "0",
            "RATE_LIMITS_ENABLED": "false", "UPSTREAM_EJECT_AFTER": "2", "UPSTREAM_COOLDOWN_SECONDS": "2",
            "UPSTREAM_MAX_COOLDOWN_SECONDS": "4", "PROVIDER_PROBE_SECONDS": "1", "SSE_HEARTBEAT_SECONDS": "0.2",
            "PROVIDER_CONNECT_TIMEOUT": "1"}


def start_fakes(log_dir: Path, *, tokens: int, seconds: float) -> dict[str, FakeModel]:
    return {name: FakeModel(log_dir, tokens=tokens, seconds=seconds).start() for name in UPSTREAMS}


def kill(fake: FakeModel) -> None:
    """SIGKILL: no goodbye, open connections reset."""
    os.kill(fake.pid, signal.SIGKILL)
    fake.process.wait()


def restart(fake: FakeModel, log_dir: Path, *, tokens: int, seconds: float) -> FakeModel:
    return FakeModel(log_dir, tokens=tokens, seconds=seconds, port=fake.port).start()


def served(fakes: dict[str, FakeModel]) -> dict[str, int]:
    return {name: fake.stats()["served"] for name, fake in fakes.items()}


@dataclass
class Outcome:
    started: float
    seconds: float
    status: int  # HTTP status; for a stream, 200 even when it ended with an error event
    streamed: bool
    error: str | None  # the error code, or None
    tokens: int  # streamed tokens received before the end (or the error)
    model: str | None = None  # meta.model of the reply
    upstream: str | None = None  # meta.upstream


class User:
    """One registered user with one conversation per load loop."""

    def __init__(self, url: str):
        self.url = url
        body = requests.post(f"{url}/auth/register", json={"email": f"load-{uuid.uuid4().hex[:12]}@example.com",
                                                           "password": PASSWORD}, timeout=30).json()
        self.headers = {"Authorization": f"Bearer {body['accessToken']}"}

    def conversation(self, session: requests.Session) -> str:
        return session.post(f"{self.url}/conversations", json={}, headers=self.headers, timeout=30).json()["id"]

    def chat(self, session: requests.Session, conversation: str, *, stream: bool, model: str | None = None,
             timeout: float = 60) -> Outcome:
        body = {"content": "hello", **({"model": model} if model else {})}
        started = time.monotonic()
        endpoint = "stream" if stream else "messages"
        try:
            response = session.post(f"{self.url}/conversations/{conversation}/{endpoint}", json=body,
                                    headers=self.headers, timeout=timeout, stream=stream)
        except requests.RequestException as exc:
            return Outcome(started, time.monotonic() - started, 0, stream, type(exc).__name__, 0)
        with response:
            if response.status_code != 200 or not stream:
                payload = response.json()
                error = payload.get("error", {}).get("code") if response.status_code != 200 else None
                meta = (payload.get("assistantMessage") or {}).get("meta") or {}
                return Outcome(started, time.monotonic() - started, response.status_code, stream, error, 0,
                               meta.get("model"), meta.get("upstream"))
            return self._read_stream(response, started)

    @staticmethod
    def _read_stream(response: requests.Response, started: float) -> Outcome:
        tokens, error, meta = 0, "no_end", {}
        try:
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                event = json.loads(line[6:])
                if event["type"] == "token":
                    tokens += 1
                elif event["type"] == "end":
                    error, meta = None, event["message"].get("meta") or {}
                    break
                elif event["type"] == "error":
                    error = event["error"]["code"]
                    break
        except requests.RequestException as exc:
            error = type(exc).__name__
        return Outcome(started, time.monotonic() - started, 200, True, error, tokens,
                       meta.get("model"), meta.get("upstream"))


def run_load(user: User, *, concurrency: int, requests_each: int | None = None, stop: threading.Event | None = None,
             stream_every: int = 0, model: str | None = None) -> list[Outcome]:
    """`concurrency` loops of chats, each `requests_each` long or until `stop`; every `stream_every`-th a stream."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def loop() -> None:
        with requests.Session() as session:
            conversation = user.conversation(session)
            done = 0
            while (requests_each is None or done < requests_each) and not (stop and stop.is_set()):
                stream = bool(stream_every) and done % stream_every == stream_every - 1
                outcome = user.chat(session, conversation, stream=stream, model=model)
                with lock:
                    outcomes.append(outcome)
                done += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def shares(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    counts = {name: after[name] - before[name] for name in after}
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


def p95(outcomes: list[Outcome]) -> float:
    values = sorted(outcome.seconds for outcome in outcomes)
    return values[min(len(values) - 1, int(0.95 * len(values)))] if values else 0.0
