"""OpenAI-compatible chat API (OpenAI, vLLM, llama.cpp's server, LM Studio): POST /chat/completions, streamed as SSE."""
from __future__ import annotations

import json
import logging
from typing import Any

from ..logs import fingerprint
from .errors import ProviderError
from .http import ChatProvider, parse_json_line
from .types import Completion, GenerationOptions, StreamPiece, Usage

log = logging.getLogger(__name__)


class OpenAIProvider(ChatProvider):
    kind = "openai"
    path = "/chat/completions"

    def payload(self, *, model: str, messages: list[dict[str, str]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        sampling = {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
            "stop": list(options.stop) if options.stop else None,
            "seed": options.seed,
            "user": options.user,
        }
        payload.update((key, value) for key, value in sampling.items() if value is not None)
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        _raise_if_error(body)
        choice = body["choices"][0]
        return Completion(
            content=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=_usage(body),
        )

    def parse_stream_line(self, line: str) -> StreamPiece | None:
        # SSE: only `data:` fields matter here; comments, event names and blank separators don't.
        if not line.startswith("data:"):
            return None
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return StreamPiece(done=True)
        chunk = parse_json_line(data)
        _raise_if_error(chunk)
        text, finish_reason = "", None
        if chunk.get("choices"):
            choice = chunk["choices"][0]
            text = (choice.get("delta") or {}).get("content") or ""
            finish_reason = choice.get("finish_reason")
        return StreamPiece(text=text, finish_reason=finish_reason, usage=_usage(chunk))


def _raise_if_error(body: dict[str, Any]) -> None:
    if body.get("error"):
        log.warning("openai-compatible provider reported an error: %s", fingerprint(json.dumps(body["error"], default=str)))
        raise ProviderError("The model provider reported an error.")


def _usage(body: dict[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None
