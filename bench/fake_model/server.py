"""The fake model server: routes, the scripted answers, and running it in a thread or as a process."""
from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any

from . import embeddings, tokenizer, wire
from .connection import ClientGone, Connection, HttpRequest
from .script import FAULT_500, FAULT_HANG, LONG_REPLY, ReceivedRequest, Script, Stats

# What a misconfigured proxy in front of a model server answers with.
GARBAGE = b"<html><body>upstream went away</body></html>"
CHAT_PATHS = {"/api/chat": ("ollama", "chat"), "/api/embed": ("ollama", "embeddings")}
INFO_PATHS = {"/": None, "/api/tags": {"models": []}, "/api/version": {"version": "0.0.0-fake"},
              "/v1/models": {"object": "list", "data": []}, "/models": {"object": "list", "data": []}}


def route(path: str) -> tuple[str, str] | None:
    """(protocol, kind) of a model route: Ollama's own paths, or OpenAI's under any base URL."""
    path = path.rstrip("/")
    if path in CHAT_PATHS:
        return CHAT_PATHS[path]
    if path.endswith("/chat/completions"):
        return "openai", "chat"
    if path.endswith("/embeddings"):
        return "openai", "embeddings"
    return None


class FakeModelServer:
    """Serves on a loopback port from construction; `start()` runs it in a thread, `serve_forever()` in this one.

    `record=False` keeps no request history (a long benchmark), only `stats`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, script: Script | None = None, *,
                 record: bool = True):
        self.script = script or Script()
        self.record = record
        self.requests: list[ReceivedRequest] = []
        self.tokenize_requests: list[tuple[str, dict]] = []  # (path, body) of the prompt-counting routes
        self.connections = 0
        self.stats = Stats()
        self._queued: deque[Script] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._socket = socket.create_server((host, port), backlog=4096)
        self._open: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._crowds: dict[int, asyncio.Future] = {}  # release_together: a future per crowd size awaited

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def ollama_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    # Running
    def start(self) -> FakeModelServer:
        """Serve from a background thread (its own event loop) until `stop()`."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-model", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            loop.close()
        self._socket.close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the command line)."""
        async def main() -> None:
            await self._listen()
            try:
                await asyncio.Event().wait()
            finally:
                await self._close()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        finally:
            self._socket.close()

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self._handle, self._opened, self._open.discard), sock=self._socket, backlog=4096)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [c.task for c in self._open if c.task is not None]
        for connection in list(self._open):
            connection.transport.abort()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _opened(self, connection: Connection) -> None:
        self._open.add(connection)
        with self._lock:
            self.connections += 1

    # What tests use
    def reset(self, script: Script | None = None) -> None:
        with self._lock:
            self.script = script or Script()
            self.requests.clear()
            self.tokenize_requests.clear()
            self._queued.clear()
            self.connections = 0
            self.stats = Stats()
            self._crowds = {}

    def queue(self, *scripts: Script) -> None:
        """Scripts for the next requests, in order; `script` applies once they are used up."""
        with self._lock:
            self._queued.extend(scripts)

    @property
    def last_request(self) -> ReceivedRequest:
        return self.requests[-1]

    def wait_until(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _next_script(self) -> Script:
        with self._lock:
            return self._queued.popleft() if self._queued else self.script

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            if self.record:
                self.requests.append(request)
            self._changed.notify_all()

    def _update(self, request: ReceivedRequest, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(request, name, value)
            self._changed.notify_all()

    # Serving
    async def _handle(self, connection: Connection, http: HttpRequest) -> bool:
        """Answer one request; False when the connection is to be closed."""
        if http.path.startswith("/_fake/"):
            return await self._control(connection, http)
        if http.method == "GET" and (http.path.rstrip("/") or "/") in INFO_PATHS:
            info = INFO_PATHS[http.path.rstrip("/") or "/"]
            if info is None:
                await connection.send(200, "text/plain; charset=utf-8", b"Ollama is running")
            else:
                await connection.send(200, "application/json", json.dumps(info).encode())
            return True
        if http.method == "POST" and http.path.rstrip("/") in tokenizer.PATHS:
            return await self._tokenize(connection, http)
        found = route(http.path)
        if found is None or http.method != "POST":
            status = 404 if found is None else 405
            await connection.send(status, "application/json", json.dumps({"error": f"no route for {http.path}"}).encode())
            return True
        protocol, kind = found
        try:
            body = json.loads(http.body or b"{}")
        except ValueError:
            await connection.send(400, "application/json", json.dumps(wire.error_body(protocol, "invalid JSON")).encode())
            return True
        request = ReceivedRequest(protocol=protocol, path=http.path, headers=http.headers, body=body,
                                  received_at=time.monotonic(), kind=kind)
        self._record(request)
        script = self._next_script()
        request_id = http.header("X-Request-ID")
        fault = next((f for f in (FAULT_500, FAULT_HANG) if f in request_id), None)
        # This request counts in the stats of its time: one still open across reset() must not move the new ones.
        stats = self.stats
        self._opened_request(stats)
        try:
            keep = await self._answer(connection, request, script, fault, 10 if LONG_REPLY in request_id else 1,
                                      stats)
            self._update(request, finished_at=time.monotonic())
            return keep
        except ClientGone:
            stats.client_left += 1
            self._update(request, client_closed_at=time.monotonic())
            return False
        finally:
            stats.open -= 1

    async def _tokenize(self, connection: Connection, http: HttpRequest) -> bool:
        path = http.path.rstrip("/")
        try:
            body = json.loads(http.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await _send_json(connection, 400, {"error": "invalid JSON"})
            return True
        with self._changed:
            self.tokenize_requests.append((path, body))
            self._changed.notify_all()
        found = tokenizer.answer(self.script, path, body)
        await _send_json(connection, 200 if found is not None else 404, found or {"error": f"no route for {path}"})
        return True

    def _opened_request(self, stats: Stats) -> None:
        stats.open += 1
        stats.peak_open = max(stats.peak_open, stats.open)
        for size, crowd in list(self._crowds.items()):
            if stats.peak_open >= size and not crowd.done():
                crowd.set_result(None)

    def _crowd(self, size: int) -> asyncio.Future:
        """Done once `size` requests have been open at once."""
        crowd = self._crowds.get(size)
        if crowd is None:
            crowd = self._crowds[size] = asyncio.get_running_loop().create_future()
            if self.stats.peak_open >= size:
                crowd.set_result(None)
        return crowd

    async def _answer(self, connection: Connection, request: ReceivedRequest, script: Script, fault: str | None,
                      scale: int, stats: Stats) -> bool:
        protocol, body = request.protocol, request.body
        if script.refuse:
            connection.hang_up()
            return False
        if fault == FAULT_500:
            stats.faults_500 += 1
            await _send_json(connection, 500, wire.error_body(protocol, "injected fault"))
            return True
        if fault == FAULT_HANG:
            stats.faults_hang += 1
        if script.release_together:
            await connection.wait(self._crowd(script.release_together))
        await connection.pause(math.inf if fault == FAULT_HANG else script.headers_delay)
        if script.api_key and request.headers.get("Authorization") != f"Bearer {script.api_key}":
            await _send_json(connection, 401, wire.error_body(protocol, "invalid api key"))
            return True
        problem = _invalid(request)
        if problem:
            await _send_json(connection, 400, wire.error_body(protocol, problem))
            return True
        if script.status != 200:
            await _send_json(connection, script.status, wire.error_body(protocol, _crash(request, script)))
            return True
        if request.kind == "embeddings":
            await _send_json(connection, 200, embeddings.reply(request, script, embeddings.inputs(body)))
        elif request.stream:
            if not await self._stream(connection, request, script, wire.plan(request, script, scale=scale)):
                return False
        else:
            reply = wire.plan(request, script, scale=scale)
            await connection.pause(script.first_token_delay + script.token_delay * max(len(reply.pieces) - 1, 0))
            if script.fail_after is not None and script.fail_mode == "garbage":
                await connection.send(200, "text/html", GARBAGE + _echo(request, script).encode())
                return True
            if script.fail_after is not None:
                await _send_json(connection, 500, wire.error_body(protocol, _crash(request, script)))
                return True
            await _send_json(connection, 200, wire.whole_reply(request, script, reply))
            request.tokens_sent = len(reply.pieces)
        stats.served += 1
        return True

    async def _stream(self, connection: Connection, request: ReceivedRequest, script: Script,
                      reply: wire.Reply) -> bool:
        """Stream the reply, paced; False when it was broken off on purpose."""
        await connection.start_chunked("application/x-ndjson" if request.protocol == "ollama" else "text/event-stream")
        await connection.pause(script.first_token_delay)
        events = wire.stream_events(request, reply)
        started = time.monotonic()
        for index, event in enumerate(events):
            if script.fail_after is not None and index == script.fail_after:
                await self._fail_mid_stream(connection, request, script)
                return False
            # Paced from the first token, so late wake-ups under load do not stretch the whole reply.
            await connection.pause(started + script.token_delay * index - time.monotonic())
            await connection.chunk(event)
            request.tokens_sent += 1
        if script.fail_after is not None and script.fail_after >= len(events):
            await self._fail_mid_stream(connection, request, script)
            return False
        for event in wire.stream_end(request, script, reply):
            await connection.chunk(event)
        await connection.end_chunked()
        return True

    async def _fail_mid_stream(self, connection: Connection, request: ReceivedRequest, script: Script) -> None:
        if script.fail_mode == "drop":
            connection.hang_up()
            return
        await connection.chunk(GARBAGE + _echo(request, script).encode() + b"\n" if script.fail_mode == "garbage"
                               else wire.stream_error(request.protocol, _crash(request, script)))
        await connection.end_chunked()

    async def _control(self, connection: Connection, http: HttpRequest) -> bool:
        """GET /_fake/stats; GET or POST /_fake/script (a `Script` as JSON) for a fake in another process."""
        if http.path == "/_fake/stats":
            await _send_json(connection, 200, asdict(self.stats))
        elif http.path == "/_fake/script" and http.method == "POST":
            try:
                self.script = Script.from_json(json.loads(http.body or b"{}"))
            except (ValueError, TypeError) as exc:
                await _send_json(connection, 400, {"error": str(exc)})
                return True
            await _send_json(connection, 200, self.script.to_json())
        elif http.path == "/_fake/script":
            await _send_json(connection, 200, self.script.to_json())
        else:
            await _send_json(connection, 404, {"error": f"no route for {http.path}"})
        return True


def _invalid(request: ReceivedRequest) -> str | None:
    body = request.body
    if not body.get("model"):
        return "model is required"
    if request.kind == "embeddings":
        return None if embeddings.inputs(body) is not None else "input must be a string, strings or token arrays"
    return None if isinstance(body.get("messages"), list) else "model and messages are required"


def _echo(request: ReceivedRequest, script: Script) -> str:
    messages = request.body.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    return str(last.get("content", "")) if script.echo_prompt else ""


def _crash(request: ReceivedRequest, script: Script) -> str:
    echo = _echo(request, script)
    return f"the model runner crashed on: {echo}" if echo else "the model runner crashed"


async def _send_json(connection: Connection, status: int, body: dict[str, Any]) -> None:
    await connection.send(status, "application/json", json.dumps(body).encode())


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
