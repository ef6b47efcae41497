"""What the fake LLM server sends: each protocol's JSON bodies and stream events."""
from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .llm_provider import ReceivedRequest, Script


def _usage_counts(request: ReceivedRequest, script: Script) -> tuple[int, int]:
    completion = len(script.tokens) if script.completion_tokens is None else script.completion_tokens
    if script.prompt_tokens is not None:
        return script.prompt_tokens, completion
    words = sum(len(str(m.get("content") or "").split()) for m in request.body["messages"] if isinstance(m, dict))
    return words, completion


def error_body(protocol: str, message: str) -> dict[str, Any]:
    if protocol == "ollama":
        return {"error": message}
    return {"error": {"message": message, "type": "server_error", "code": None}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def whole_reply(request: ReceivedRequest, script: Script) -> dict[str, Any]:
    content = "".join(script.tokens)
    prompt, completion = _usage_counts(request, script)
    model = request.body["model"]
    if request.protocol == "ollama":
        body: dict[str, Any] = {
            "model": model, "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": True, "done_reason": script.finish_reason, "total_duration": 1000,
        }
        if script.report_usage:
            body.update(prompt_eval_count=prompt, eval_count=completion)
        return body
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": script.finish_reason}],
    }
    if script.report_usage:
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}
    return body


def stream_token(request: ReceivedRequest, token: str) -> bytes:
    model = request.body["model"]
    if request.protocol == "ollama":
        return json.dumps({"model": model, "created_at": _now(),
                           "message": {"role": "assistant", "content": token}, "done": False}).encode() + b"\n"
    return _sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model, "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})


def stream_end(request: ReceivedRequest, script: Script) -> list[bytes]:
    model = request.body["model"]
    prompt, completion = _usage_counts(request, script)
    if request.protocol == "ollama":
        last: dict[str, Any] = {"model": model, "created_at": _now(),
                                "message": {"role": "assistant", "content": ""},
                                "done": True, "done_reason": script.finish_reason, "total_duration": 1000}
        if script.report_usage:
            last.update(prompt_eval_count=prompt, eval_count=completion)
        return [json.dumps(last).encode() + b"\n"]
    events = [_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": script.finish_reason}]})]
    wants_usage = (request.body.get("stream_options") or {}).get("include_usage")
    if script.report_usage and wants_usage:
        events.append(_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                            "created": int(time.time()), "model": model, "choices": [],
                            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                      "total_tokens": prompt + completion}}))
    events.append(b"data: [DONE]\n\n")
    return events


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
