"""Ollama's native chat API: POST /api/chat, streamed as newline-delimited JSON."""
from __future__ import annotations

import json
import logging
from typing import Any

from ..logs import fingerprint
from .errors import ProviderError
from .http import ChatProvider, parse_json_line
from .types import Completion, GenerationOptions, StreamPiece, Usage

log = logging.getLogger(__name__)


class OllamaProvider(ChatProvider):
    kind = "ollama"
    path = "/api/chat"

    def payload(self, *, model: str, messages: list[dict[str, str]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        sampling = {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "num_predict": options.max_tokens,
            "stop": list(options.stop) if options.stop else None,
            "seed": options.seed,
        }
        payload: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        sampling = {key: value for key, value in sampling.items() if value is not None}
        if sampling:
            payload["options"] = sampling
        return payload

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        _raise_if_error(body)
        return Completion(
            content=body["message"].get("content") or "",
            finish_reason=body.get("done_reason"),
            usage=_usage(body),
        )

    def parse_stream_line(self, line: str) -> StreamPiece | None:
        if not line.strip():
            return None
        body = parse_json_line(line)
        _raise_if_error(body)
        text = (body.get("message") or {}).get("content") or ""
        if not body.get("done"):
            return StreamPiece(text=text)
        return StreamPiece(text=text, done=True, finish_reason=body.get("done_reason"),
                           usage=_usage(body))


def _raise_if_error(body: dict[str, Any]) -> None:
    if "error" in body:
        log.warning("ollama reported an error: %s", fingerprint(json.dumps(body["error"], default=str)))
        raise ProviderError("The model provider reported an error.")


def _usage(body: dict[str, Any]) -> Usage | None:
    # Ollama leaves prompt_eval_count out when the whole prompt came from its cache;
    # a half-reported usage is not worth more than an estimate.
    prompt, completion = body.get("prompt_eval_count"), body.get("eval_count")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None
