"""A fake LLM server for tests and benchmarks.

A real HTTP server on a loopback port that speaks Ollama's `/api/chat`
(newline-delimited JSON) and the OpenAI-compatible `.../chat/completions`
(SSE), streamed or not, following a `Script` that a test sets. It records
every request, and when a client closed a streaming connection early.

    with FakeLLM() as fake:
        fake.script = Script(tokens=["Hi", "!"], token_delay=0.05)
        ...  # point the gateway at fake.ollama_url or fake.openai_url
        assert fake.requests[-1].body["model"] == "llama3.1"

It can also run alone, for a benchmark or a manual try:

    python -m tests.fakes.llm_provider --port 11435 --tokens 64 --token-delay 0.02
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import llm_wire as wire

DEFAULT_TOKENS = ("Hello", ",", " world", "!")
# What a misconfigured proxy in front of a model server answers with.
GARBAGE = b"<html><body>upstream went away</body></html>"


@dataclass
class Script:
    tokens: tuple[str, ...] | list[str] = DEFAULT_TOKENS
    headers_delay: float = 0.0       # before the status line: a model loading, or a hang
    first_token_delay: float = 0.0   # after the headers, before the first token
    token_delay: float = 0.0         # before each later token
    report_usage: bool = True        # False: a server that sends no usage (in streams or at all)
    prompt_tokens: int | None = 17   # None: one per word of the request's messages, as a tokenizer would vary
    completion_tokens: int | None = None   # None: the number of tokens
    finish_reason: str = "stop"
    status: int = 200                # anything else: an error answer before any streaming
    fail_after: int | None = None    # break the stream after this many tokens...
    fail_mode: str = "error"         # ...with the protocol's error object ("error"), by cutting the connection ("drop"),
                                     # or with a line that is not JSON ("garbage"; a whole reply is then a 200 HTML page)
    refuse: bool = False             # read the request, then close the connection without a word
    api_key: str | None = None       # when set, a request without this bearer key gets 401
    tool_calls: tuple[tuple[str, dict], ...] = ()  # (name, arguments): the reply calls these tools (after any tokens)
    embedding_dimensions: int = 4    # the length of each vector from the embeddings routes
    tokenizer: str | None = None     # "llama.cpp" or "vllm": serve that server's prompt-counting routes
    tokenizer_count: int = 14        # the prompt tokens they count


@dataclass
class ReceivedRequest:
    protocol: str                    # "ollama" or "openai"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float               # time.monotonic()
    tokens_sent: int = 0
    finished_at: float | None = None
    client_closed_at: float | None = None   # set when the client went away mid-answer

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream", self.protocol == "ollama"))


class _ClientGone(Exception):
    pass


class FakeLLM:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, script: Script | None = None):
        self.script = script or Script()
        self.requests: list[ReceivedRequest] = []
        self.tokenize_requests: list[tuple[str, dict]] = []
        self.connections = 0
        self._queued: deque[Script] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _Handler, bind_and_activate=True)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def ollama_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> FakeLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self, script: Script | None = None) -> None:
        with self._lock:
            self.script = script or Script()
            self.requests.clear()
            self.tokenize_requests.clear()
            self._queued.clear()
            self.connections = 0

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
            self.requests.append(request)
            self._changed.notify_all()

    def _record_tokenize(self, path: str, body: dict) -> None:
        with self._changed:
            self.tokenize_requests.append((path, body))
            self._changed.notify_all()

    def _update(self, request: ReceivedRequest, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(request, name, value)
            self._changed.notify_all()

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, so that connection pooling is visible
    server: ThreadingHTTPServer

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        self.fake._connected()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") in ("/api/embed", "/v1/embeddings", "/apply-template", "/tokenize"):
            self._side_route(raw)
            return
        if self.path.rstrip("/") == "/api/chat":
            protocol = "ollama"
        elif self.path.rstrip("/").endswith("/chat/completions"):
            protocol = "openai"
        else:
            self._send_json(404, {"error": f"no route for {self.path}"})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, wire.error_body(protocol, "invalid JSON"))
            return
        request = ReceivedRequest(protocol=protocol, path=self.path, headers=dict(self.headers.items()),
                                  body=body, received_at=time.monotonic())
        self.fake._record(request)
        script = self.fake._next_script()
        try:
            self._answer(request, script)
            self.fake._update(request, finished_at=time.monotonic())
        except _ClientGone:
            self.fake._update(request, client_closed_at=time.monotonic())
            self.close_connection = True

    def _side_route(self, raw: bytes) -> None:
        """Embeddings (recorded like chats) and the prompt-counting routes (recorded in `tokenize_requests`)."""
        path = self.path.rstrip("/")
        body = json.loads(raw or b"{}")
        protocol = "ollama" if path == "/api/embed" else "openai"
        if path in ("/apply-template", "/tokenize"):
            script = self.fake.script
            self.fake._record_tokenize(path, body)
            answer = wire.tokenizer_answer(script, path, body)
            if answer is None:
                self._send_json(404, {"error": "Not Found"})
            else:
                self._send_json(200, answer)
            return
        request = ReceivedRequest(protocol=protocol, path=self.path, headers=dict(self.headers.items()),
                                  body=body, received_at=time.monotonic())
        self.fake._record(request)
        script = self.fake._next_script()
        if script.status != 200:
            self._send_json(script.status, wire.error_body(protocol, "the model runner crashed"))
            return
        self._send_json(200, wire.embeddings(request, script))

    def _answer(self, request: ReceivedRequest, script: Script) -> None:
        protocol, body = request.protocol, request.body
        if script.refuse:
            self._hang_up()
            return
        self._pause(script.headers_delay)
        if script.api_key and self.headers.get("Authorization") != f"Bearer {script.api_key}":
            self._send_json(401, wire.error_body(protocol, "invalid api key"))
            return
        if not body.get("model") or not isinstance(body.get("messages"), list):
            self._send_json(400, wire.error_body(protocol, "model and messages are required"))
            return
        if script.status != 200:
            self._send_json(script.status, wire.error_body(protocol, "the model runner crashed"))
            return
        if request.stream:
            self._stream(request, script)
        else:
            self._pause(script.first_token_delay + script.token_delay * max(len(script.tokens) - 1, 0))
            if script.fail_after is not None and script.fail_mode == "garbage":
                self._send_raw(200, "text/html", GARBAGE)
                return
            if script.fail_after is not None:
                self._send_json(500, wire.error_body(protocol, "the model runner crashed"))
                return
            self._send_json(200, wire.whole_reply(request, script))
            request.tokens_sent = len(script.tokens)

    def _stream(self, request: ReceivedRequest, script: Script) -> None:
        protocol = request.protocol
        content_type = "application/x-ndjson" if protocol == "ollama" else "text/event-stream"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._pause(script.first_token_delay)
        for index, token in enumerate(script.tokens):
            if script.fail_after is not None and index == script.fail_after:
                self._fail_mid_stream(protocol, script)
                return
            if index:
                self._pause(script.token_delay)
            self._chunk(wire.stream_token(request, token))
            request.tokens_sent += 1
        for event in wire.stream_tool_calls(request, script):
            self._chunk(event)
        if script.fail_after is not None and script.fail_after >= len(script.tokens):
            self._fail_mid_stream(protocol, script)
            return
        for event in wire.stream_end(request, script):
            self._chunk(event)
        self._write(b"0\r\n\r\n", last=True)

    def _fail_mid_stream(self, protocol: str, script: Script) -> None:
        if script.fail_mode == "drop":
            self._hang_up()
            return
        if script.fail_mode == "garbage":
            self._chunk(GARBAGE + b"\n")
            self._write(b"0\r\n\r\n", last=True)
            self.close_connection = True
            return
        error = wire.error_body(protocol, "the model runner crashed")
        self._chunk(json.dumps(error).encode() + b"\n" if protocol == "ollama"
                    else b"data: " + json.dumps(error).encode() + b"\n\n")
        self._write(b"0\r\n\r\n", last=True)
        self.close_connection = True

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send_raw(status, "application/json", json.dumps(body).encode())

    def _send_raw(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._write(data, last=True)

    def _chunk(self, data: bytes) -> None:
        self._write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    def _write(self, data: bytes, last: bool = False) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # BrokenPipe, ConnectionReset
            raise _ClientGone from None
        # After the last byte a client may close as it pleases; before it, closing is leaving early.
        if not last and self._peer_closed():
            raise _ClientGone

    def end_headers(self) -> None:
        try:
            super().end_headers()
        except OSError:
            raise _ClientGone from None

    def _pause(self, seconds: float) -> None:
        """Sleep, but notice at once a client that hangs up meanwhile, or the server stopping."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.fake._stopping.is_set():
                raise _ClientGone
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.02))
            if readable and self._peer_closed():
                raise _ClientGone

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11435)
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--first-token-delay", type=float, default=0.1)
    parser.add_argument("--no-usage", action="store_true")
    args = parser.parse_args()
    script = Script(tokens=[f" tok{i}" for i in range(args.tokens)], token_delay=args.token_delay,
                    first_token_delay=args.first_token_delay, report_usage=not args.no_usage)
    fake = FakeLLM(args.host, args.port, script)
    print(f"fake LLM on {fake.url} (Ollama) and {fake.openai_url} (OpenAI-compatible)", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
