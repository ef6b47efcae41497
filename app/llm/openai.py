"""OpenAI-compatible API (OpenAI, vLLM, llama.cpp's server, LM Studio): /chat/completions, streamed as SSE, and /embeddings.

Such a server speaks the client's own dialect, so a request goes on as it came:
tools, tool_choice, response_format, logprobs and any parameter the gateway
has no field for are forwarded unchanged; only the model name and, in
streams, `stream_options.include_usage` (the gateway needs the usage) are ours.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from ..logs import fingerprint
from .errors import ProviderError
from .http import ChatProvider, parse_json_line
from .tokenizer import UpstreamTokenizer
from .types import Completion, Embeddings, GenerationOptions, StreamPiece, ToolCall, ToolCallDelta, Usage

log = logging.getLogger(__name__)

_FORWARDED = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "user", "presence_penalty",
              "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "tool_choice", "parallel_tool_calls",
              "response_format")


class OpenAIProvider(ChatProvider):
    kind = "openai"
    path = "/chat/completions"
    embed_path = "/embeddings"

    def __init__(self, *, base_url: str, api_key: str | None = None):
        super().__init__(base_url=base_url, api_key=api_key)
        self.tokenizer = UpstreamTokenizer(self.session, self.base_url, api_key)

    @classmethod
    def refuse_unsupported(cls, options: GenerationOptions, messages: list[dict[str, Any]]) -> None:
        """Nothing: the server decides, and answers in the client's own terms."""

    @classmethod
    def refuse_unsupported_embedding(cls, *, token_input: bool, dimensions: int | None) -> None:
        """Token arrays and `dimensions` go on; a server without them answers with its own error."""

    def payload(self, *, model: str, messages: list[dict[str, Any]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {**options.extra, "model": model, "messages": messages, "stream": stream}
        payload.update((key, getattr(options, key)) for key in _FORWARDED if getattr(options, key) is not None)
        if options.stop:
            payload["stop"] = list(options.stop)
        if options.tools:
            payload["tools"] = list(options.tools)
        if stream:
            payload["stream_options"] = {**(options.stream_options or {}), "include_usage": True}
        return payload

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        _raise_if_error(body)
        choice = body["choices"][0]
        message = choice.get("message") or {}
        return Completion(
            content=message.get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=_usage(body),
            tool_calls=tuple(ToolCall(id=call["id"], name=call["function"]["name"],
                                      arguments=_text(call["function"].get("arguments")))
                             for call in message.get("tool_calls") or ()),
            logprobs=choice.get("logprobs"),
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
        if not chunk.get("choices"):
            return StreamPiece(usage=_usage(chunk))
        choice = chunk["choices"][0]
        delta = choice.get("delta") or {}
        calls = tuple(ToolCallDelta(call.get("index", 0), id=call.get("id"),
                                    name=(call.get("function") or {}).get("name"),
                                    arguments=_text((call.get("function") or {}).get("arguments")))
                      for call in delta.get("tool_calls") or ())
        return StreamPiece(text=delta.get("content") or "", finish_reason=choice.get("finish_reason"),
                           usage=_usage(chunk), tool_calls=calls, logprobs=choice.get("logprobs"))

    def embed_payload(self, *, model: str, inputs: list[str] | list[list[int]],
                      dimensions: int | None) -> dict[str, Any]:
        # Floats always: the gateway counts and re-encodes them (base64) itself.
        payload: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        return payload

    def parse_embeddings(self, body: dict[str, Any]) -> Embeddings:
        _raise_if_error(body)
        data = sorted(body["data"], key=lambda item: item.get("index", 0))
        usage = body.get("usage") or {}
        count = usage.get("prompt_tokens")
        return Embeddings(vectors=[[float(x) for x in item["embedding"]] for item in data],
                          prompt_tokens=count if isinstance(count, int) else None)


def _text(arguments: Any) -> str:
    """Arguments as OpenAI's JSON text; a server that sends an object gets it encoded."""
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


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
