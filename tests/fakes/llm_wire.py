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


def _ollama_calls(script: Script) -> list[dict[str, Any]]:
    return [{"function": {"name": name, "arguments": arguments}} for name, arguments in script.tool_calls]


def _openai_calls(script: Script) -> list[dict[str, Any]]:
    return [{"id": f"call_{index}_{uuid.uuid4().hex[:8]}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments)}}
            for index, (name, arguments) in enumerate(script.tool_calls)]


def whole_reply(request: ReceivedRequest, script: Script) -> dict[str, Any]:
    content = "".join(script.tokens)
    prompt, completion = _usage_counts(request, script)
    model = request.body["model"]
    if request.protocol == "ollama":
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if script.tool_calls:
            message["tool_calls"] = _ollama_calls(script)  # Ollama still says done_reason "stop"
        body: dict[str, Any] = {
            "model": model, "created_at": _now(), "message": message,
            "done": True, "done_reason": script.finish_reason, "total_duration": 1000,
        }
        if script.report_usage:
            body.update(prompt_eval_count=prompt, eval_count=completion)
        return body
    message = {"role": "assistant", "content": content or None}
    if script.tool_calls:
        message["tool_calls"] = _openai_calls(script)
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if script.tool_calls else script.finish_reason}],
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
    finish_reason = "tool_calls" if script.tool_calls else script.finish_reason
    events = [_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})]
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


def stream_tool_calls(request: ReceivedRequest, script: Script) -> list[bytes]:
    """Ollama sends each call whole in one line; OpenAI-compatible servers split the arguments over deltas."""
    if not script.tool_calls:
        return []
    model = request.body["model"]
    if request.protocol == "ollama":
        return [json.dumps({"model": model, "created_at": _now(), "done": False, "message": {
            "role": "assistant", "content": "", "tool_calls": _ollama_calls(script)}}).encode() + b"\n"]
    events = []
    for index, call in enumerate(_openai_calls(script)):
        first = {"index": index, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}
        arguments = call["function"]["arguments"]
        pieces = [arguments[i:i + 5] for i in range(0, len(arguments), 5)]
        for delta in [first] + [{"index": index, "function": {"arguments": piece}} for piece in pieces]:
            events.append(_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                                "model": model, "choices": [{"index": 0, "delta": {"tool_calls": [delta]},
                                                             "finish_reason": None}]}))
    return events


def _vector(text: str, index: int, dimensions: int) -> list[float]:
    """Deterministic, and different per input: its length, its position, then halves."""
    return [float(len(text)), float(index)] + [0.5 ** n for n in range(1, dimensions - 1)]


def embeddings(request: ReceivedRequest, script: Script) -> dict[str, Any]:
    inputs = request.body["input"]
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    dimensions = request.body.get("dimensions") or script.embedding_dimensions
    vectors = [_vector(item if isinstance(item, str) else "x" * len(item), index, dimensions)
               for index, item in enumerate(inputs)]
    tokens = script.prompt_tokens if script.prompt_tokens is not None else sum(
        len(item.split()) if isinstance(item, str) else len(item) for item in inputs)
    if request.protocol == "ollama":
        body: dict[str, Any] = {"model": request.body["model"], "embeddings": vectors, "total_duration": 1000}
        if script.report_usage:
            body["prompt_eval_count"] = tokens
        return body
    body = {"object": "list", "model": request.body["model"],
            "data": [{"object": "embedding", "index": index, "embedding": vector}
                     for index, vector in enumerate(vectors)]}
    if script.report_usage:
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return body


def tokenizer_answer(script: Script, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """llama.cpp's /apply-template and /tokenize, or vLLM's /tokenize; None (a 404) for a server without them."""
    if script.tokenizer == "llama.cpp":
        if path == "/apply-template":
            return {"prompt": "".join(f"<{m.get('role')}>{m.get('content') or ''}" for m in body["messages"])}
        return {"tokens": list(range(script.tokenizer_count))} if "content" in body else None
    if script.tokenizer == "vllm" and path == "/tokenize" and "messages" in body:
        return {"count": script.tokenizer_count, "max_model_len": 8192, "tokens": list(range(script.tokenizer_count))}
    return None
