"""A fake model server for load tests: one asyncio process, cheap enough to hold thousands of streams.

Speaks Ollama's POST /api/chat (NDJSON) and OpenAI's POST /chat/completions and
/v1/chat/completions (SSE), streamed or whole. Every reply is `tokens` tokens
spread evenly over `seconds` seconds. In `hang` mode it accepts the request and
never answers, the way a stuck model server does.

    python -m bench.fake_upstream --port 11500 --tokens 20 --seconds 5

POST /_bench/mode {"mode": "stream"|"hang", "tokens": N, "seconds": T} changes the
behaviour of later requests; GET /_bench/stats counts requests open, served,
and left by the client before the end (`client_left`).

One request can ask for a fault of its own through the X-Request-ID the gateway
forwards: an id containing `fault-500` gets a 500, one containing `fault-hang`
hangs, so a load test knows exactly which of its requests should fail; one
containing `long-reply` streams ten times as many tokens, at the same pace.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass

MAX_HEADER_BYTES = 64 * 1024


@dataclass
class Behaviour:
    mode: str = "stream"
    tokens: int = 20
    seconds: float = 5.0


@dataclass
class Stats:
    open: int = 0
    served: int = 0
    client_left: int = 0
    faults_500: int = 0
    faults_hang: int = 0


FAULT_500, FAULT_HANG, LONG_REPLY = "fault-500", "fault-hang", "long-reply"


class FakeUpstream:
    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.stats = Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _one_request(self, reader, writer) -> bool:
        """Serve one request; False when the connection is to be closed."""
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER_BYTES:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        path = path.split("?", 1)[0]
        if path == "/_bench/stats":
            await _send_json(writer, 200, asdict(self.stats))
        elif path == "/_bench/mode" and method == "POST":
            changes = json.loads(body or b"{}")
            self.behaviour = Behaviour(**{**asdict(self.behaviour), **changes})
            await _send_json(writer, 200, asdict(self.behaviour))
        elif path in ("/api/chat", "/chat/completions", "/v1/chat/completions") and method == "POST":
            protocol = "ollama" if path == "/api/chat" else "openai"
            request_id = headers.get("x-request-id", "")
            behaviour = self.behaviour
            if LONG_REPLY in request_id:
                behaviour = Behaviour(behaviour.mode, behaviour.tokens * 10, behaviour.seconds * 10)
            return await self._chat(reader, writer, protocol, json.loads(body or b"{}"), _fault(request_id),
                                    behaviour)
        elif path in ("/", "/api/tags", "/v1/models"):
            await _send_json(writer, 200, {"models": [], "data": []})
        else:
            await _send_json(writer, 404, {"error": "not found"})
        return headers.get("connection", "").lower() != "close"

    async def _chat(self, reader, writer, protocol: str, request: dict, fault: str | None,
                    behaviour: Behaviour) -> bool:
        self.stats.open += 1
        try:
            if fault == FAULT_500:
                self.stats.faults_500 += 1
                await _send_json(writer, 500, {"error": "injected fault"})
                return True
            if fault == FAULT_HANG:
                self.stats.faults_hang += 1
            if behaviour.mode == "hang" or fault == FAULT_HANG:
                await reader.read()  # until the client gives up and closes
                self.stats.client_left += 1
                return False
            model = request.get("model", "fake")
            delay = behaviour.seconds / max(behaviour.tokens, 1)
            if not request.get("stream", False):
                await asyncio.sleep(behaviour.seconds)
                await _send_json(writer, 200, _whole(protocol, model, behaviour.tokens))
                self.stats.served += 1
                return True
            content_type = "application/x-ndjson" if protocol == "ollama" else "text/event-stream"
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode())
            started = time.monotonic()
            for index in range(behaviour.tokens):
                # Paced against the start, so a late wake-up does not stretch the whole reply.
                await asyncio.sleep(max(0.0, started + delay * index - time.monotonic()))
                writer.write(_chunk(_token(protocol, model, f"t{index} ")))
                await writer.drain()
            for piece in _end(protocol, model, behaviour.tokens):
                writer.write(_chunk(piece))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.stats.served += 1
            return True
        except ConnectionError:
            self.stats.client_left += 1
            return False
        finally:
            self.stats.open -= 1


def _fault(request_id: str) -> str | None:
    return next((fault for fault in (FAULT_500, FAULT_HANG) if fault in request_id), None)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _token(protocol: str, model: str, text: str) -> bytes:
    if protocol == "ollama":
        return json.dumps({"model": model, "message": {"role": "assistant", "content": text},
                           "done": False}).encode() + b"\n"
    return _sse({"object": "chat.completion.chunk", "model": model,
                 "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def _end(protocol: str, model: str, tokens: int) -> list[bytes]:
    if protocol == "ollama":
        return [json.dumps({"model": model, "message": {"role": "assistant", "content": ""}, "done": True,
                            "done_reason": "stop", "prompt_eval_count": 10, "eval_count": tokens}).encode() + b"\n"]
    return [_sse({"object": "chat.completion.chunk", "model": model,
                  "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}}),
            b"data: [DONE]\n\n"]


def _whole(protocol: str, model: str, tokens: int) -> dict:
    content = "".join(f"t{i} " for i in range(tokens))
    if protocol == "ollama":
        return {"model": model, "message": {"role": "assistant", "content": content}, "done": True,
                "done_reason": "stop", "prompt_eval_count": 10, "eval_count": tokens}
    return {"object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}}


def _sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _send_json(writer: asyncio.StreamWriter, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()


async def serve(host: str, port: int, behaviour: Behaviour) -> None:
    fake = FakeUpstream(behaviour)
    server = await asyncio.start_server(fake.handle, host, port, backlog=4096, limit=MAX_HEADER_BYTES)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument("--mode", choices=("stream", "hang"), default="stream")
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, Behaviour(args.mode, args.tokens, args.seconds)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
