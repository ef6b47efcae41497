"""Ollama's native API: POST /api/chat, streamed as newline-delimited JSON, and POST /api/embed.

Requests arrive in OpenAI's terms. What Ollama cannot honour is refused by
`refuse_unsupported` before any call, naming the parameter; the rest is mapped
here: tools go on /api/chat as they are, `response_format` becomes `format`,
tool-call arguments travel as objects (OpenAI's are JSON strings).
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from ..logs import fingerprint
from .errors import ProviderError, UnsupportedParameter
from .http import ChatProvider, parse_json_line
from .types import Completion, Embeddings, GenerationOptions, StreamPiece, ToolCall, ToolCallDelta, Usage

log = logging.getLogger(__name__)

# Parameters with no effect on what the model generates: Ollama has no use for them, and dropping
# them changes nothing a client can see. Any other parameter Ollama has no equivalent for is a 400.
HARMLESS_METADATA = frozenset({"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"})


class OllamaProvider(ChatProvider):
    kind = "ollama"
    path = "/api/chat"
    embed_path = "/api/embed"

    @classmethod
    def refuse_unsupported(cls, options: GenerationOptions, messages: list[dict[str, Any]]) -> None:
        unknown = sorted(set(options.extra) - HARMLESS_METADATA)
        if unknown:
            raise UnsupportedParameter(unknown[0], f"'{unknown[0]}' is not supported by this model's provider (Ollama).")
        if options.logit_bias:
            raise UnsupportedParameter("logit_bias", "Ollama has no logit bias.")
        if options.logprobs or options.top_logprobs:
            param = "logprobs" if options.logprobs else "top_logprobs"
            raise UnsupportedParameter(param, "Ollama models do not return log probabilities here.")
        if options.tool_choice not in (None, "auto", "none"):
            raise UnsupportedParameter("tool_choice", "Ollama cannot be made to call a tool: "
                                                      "use tool_choice 'auto' or 'none'.")
        if options.parallel_tool_calls is False:
            raise UnsupportedParameter("parallel_tool_calls", "Ollama cannot be kept from calling several tools "
                                                              "at once.")
        for message in messages:
            for call in message.get("tool_calls") or ():
                _arguments_object(call["function"]["arguments"])

    @classmethod
    def refuse_unsupported_embedding(cls, *, token_input: bool, dimensions: int | None) -> None:
        if token_input:
            raise UnsupportedParameter("input", "Ollama embeds text only: send strings, not token arrays.")

    def payload(self, *, model: str, messages: list[dict[str, Any]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        sampling = {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "num_predict": options.max_completion_tokens or options.max_tokens,
            "stop": list(options.stop) if options.stop else None,
            "seed": options.seed,
            "presence_penalty": options.presence_penalty,
            "frequency_penalty": options.frequency_penalty,
        }
        payload: dict[str, Any] = {"model": model, "messages": _messages(messages), "stream": stream}
        sampling = {key: value for key, value in sampling.items() if value is not None}
        if sampling:
            payload["options"] = sampling
        if options.tools and options.tool_choice != "none":  # Ollama's only choice is whether it has tools
            payload["tools"] = list(options.tools)
        output_format = _format(options.response_format)
        if output_format is not None:
            payload["format"] = output_format
        return payload

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        _raise_if_error(body)
        calls = tuple(ToolCall(id=delta.id, name=delta.name, arguments=delta.arguments)
                      for delta in _tool_calls(body["message"]))
        return Completion(
            content=body["message"].get("content") or "",
            finish_reason="tool_calls" if calls else body.get("done_reason"),
            usage=_usage(body),
            tool_calls=calls,
        )

    def parse_stream_line(self, line: str) -> StreamPiece | None:
        if not line.strip():
            return None
        body = parse_json_line(line)
        _raise_if_error(body)
        message = body.get("message") or {}
        text = message.get("content") or ""
        # A call comes whole in one line; it is passed on as OpenAI streams one: id and name, then arguments.
        pieces = tuple(piece for call in _tool_calls(message)
                       for piece in (ToolCallDelta(None, id=call.id, name=call.name), ToolCallDelta(None, arguments=call.arguments)))
        if not body.get("done"):
            return StreamPiece(text=text, tool_calls=pieces)
        return StreamPiece(text=text, tool_calls=pieces, done=True, finish_reason=body.get("done_reason"),
                           usage=_usage(body))

    def embed_payload(self, *, model: str, inputs: list[str] | list[list[int]],
                      dimensions: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": model, "input": inputs}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        return payload

    def parse_embeddings(self, body: dict[str, Any]) -> Embeddings:
        _raise_if_error(body)
        count = body.get("prompt_eval_count")
        return Embeddings(vectors=[[float(x) for x in vector] for vector in body["embeddings"]],
                          prompt_tokens=count if isinstance(count, int) else None)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's messages as Ollama takes them: arguments as objects, a tool's result named by its function."""
    names: dict[str, str] = {}
    sent = []
    for message in messages:
        out: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("tool_calls"):
            out["tool_calls"] = []
            for call in message["tool_calls"]:
                names[call["id"]] = call["function"]["name"]
                out["tool_calls"].append({"function": {"name": call["function"]["name"],
                                                       "arguments": _arguments_object(call["function"]["arguments"])}})
        if message["role"] == "tool":
            name = message.get("name") or names.get(message.get("tool_call_id") or "")
            if name:
                out["tool_name"] = name
        sent.append(out)
    return sent


def _arguments_object(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise UnsupportedParameter("messages", "A tool call's arguments must be a JSON object for Ollama.")
    return value


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return response_format["json_schema"].get("schema") or {"type": "object"}
    return None


def _tool_calls(message: dict[str, Any]) -> list[ToolCallDelta]:
    """Ollama's calls, each whole; Ollama gives them no id, so each gets one here."""
    calls = []
    for call in message.get("tool_calls") or ():
        function = call["function"]
        arguments = function.get("arguments")
        calls.append(ToolCallDelta(None, id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}", name=function["name"],
                                   arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {})))
    return calls


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
