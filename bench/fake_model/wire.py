"""What the fake model server sends for a chat: each protocol's JSON bodies and stream events.

Ollama streams newline-delimited JSON and sends a tool call whole, in one chunk,
with its arguments as an object; an OpenAI-compatible server streams SSE, sends
a tool call's id and name in its first delta and the arguments as pieces of a
JSON string, and ends with finish_reason "tool_calls".
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import structured
from .script import ReceivedRequest, Script

ARGUMENT_PIECE = 5  # characters of a tool call's arguments per streamed delta, as a tokenizer would cut them


@dataclass
class Reply:
    """What one answer carries: text pieces (one per streamed token), or tool calls."""

    pieces: list[str]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def plan(request: ReceivedRequest, script: Script, *, scale: int = 1) -> Reply:
    """The reply `script` gives this request; `scale` repeats the tokens (a long reply at the same pace)."""
    if script.tool_calls and request.body.get("tools"):
        calls = [{"id": call.get("id") or f"call_{uuid.uuid4().hex[:16]}", "name": call["name"],
                  "arguments": call.get("arguments") or {}} for call in script.tool_calls]
        return Reply(pieces=[], tool_calls=calls)
    tokens = list(script.tokens) * scale
    wants_json, schema = structured.requested_format(request.protocol, request.body)
    if wants_json:
        text = structured.json_text(schema, script.json_content, "".join(tokens))
        return Reply(pieces=[text[i:i + 4] for i in range(0, len(text), 4)])
    return Reply(pieces=tokens)


def error_body(protocol: str, message: str) -> dict[str, Any]:
    if protocol == "ollama":
        return {"error": message}
    return {"error": {"message": message, "type": "server_error", "code": None}}


def prompt_words(request: ReceivedRequest) -> int:
    messages = request.body.get("messages") or []
    return sum(len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict))


def _usage(request: ReceivedRequest, script: Script, reply: Reply) -> tuple[int, int]:
    sent = len(stream_events(request, reply)) if reply.tool_calls else len(reply.pieces)
    completion = sent if script.completion_tokens is None else script.completion_tokens
    prompt = prompt_words(request) if script.prompt_tokens is None else script.prompt_tokens
    return prompt, completion


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _finish_reason(reply: Reply, script: Script) -> str:
    return "tool_calls" if reply.tool_calls else script.finish_reason


def _ollama_calls(reply: Reply) -> list[dict[str, Any]]:
    return [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in reply.tool_calls]


def whole_reply(request: ReceivedRequest, script: Script, reply: Reply) -> dict[str, Any]:
    prompt, completion = _usage(request, script, reply)
    model = request.body["model"]
    if request.protocol == "ollama":
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = _ollama_calls(reply)
        body: dict[str, Any] = {"model": model, "created_at": _now(), "message": message, "done": True,
                                "done_reason": script.finish_reason, "total_duration": 1000}
        if script.report_usage:
            body.update(prompt_eval_count=prompt, eval_count=completion)
        return body
    message = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for c in reply.tool_calls]}
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply, script)}],
    }
    if script.report_usage:
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return body


def stream_events(request: ReceivedRequest, reply: Reply) -> list[bytes]:
    """The events before the end, each paced like a token."""
    model = request.body["model"]
    if request.protocol == "ollama":
        if reply.tool_calls:
            return [_ndjson({"model": model, "created_at": _now(), "done": False, "message": {
                "role": "assistant", "content": "", "tool_calls": _ollama_calls(reply)}})]
        return [_ndjson({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": piece},
                         "done": False}) for piece in reply.pieces]
    if not reply.tool_calls:
        return [_chunk(model, {"content": piece}) for piece in reply.pieces]
    events = []
    for index, call in enumerate(reply.tool_calls):
        events.append(_chunk(model, {"role": "assistant", "content": None, "tool_calls": [
            {"index": index, "id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": ""}}]}))
        arguments = json.dumps(call["arguments"])
        events += [_chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": arguments[i:i + ARGUMENT_PIECE]}}]})
                   for i in range(0, len(arguments), ARGUMENT_PIECE)]
    return events


def stream_end(request: ReceivedRequest, script: Script, reply: Reply) -> list[bytes]:
    model = request.body["model"]
    prompt, completion = _usage(request, script, reply)
    if request.protocol == "ollama":
        last: dict[str, Any] = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                                "done": True, "done_reason": script.finish_reason, "total_duration": 1000}
        if script.report_usage:
            last.update(prompt_eval_count=prompt, eval_count=completion)
        return [_ndjson(last)]
    events = [_chunk(model, {}, _finish_reason(reply, script))]
    wants_usage = (request.body.get("stream_options") or {}).get("include_usage")
    if script.report_usage and wants_usage:
        events.append(_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": model, "choices": [],
                            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                      "total_tokens": prompt + completion}}))
    events.append(b"data: [DONE]\n\n")
    return events


def stream_error(protocol: str, message: str) -> bytes:
    error = error_body(protocol, message)
    return _ndjson(error) if protocol == "ollama" else _sse(error)


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    return _sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


def _ndjson(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode() + b"\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
