"""Chat completions in OpenAI's format over the model layer: the same catalogue, providers and chat metrics."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..chat.replies import ask_whole
from ..chat.tally import CompletionTally, settled_if_failed
from ..db import autocommit_connection
from ..http.caller import Caller
from ..llm import PROVIDER_KINDS, Catalogue, Completion, GenerationOptions, ModelSpec, UnknownModel, Usage
from ..upstreams import Router
from ..usage.budgets import enforce_budget
from ..usage.recording import UsageLedger
from .errors import ModelNotFound

# OpenAI's `developer` role is its newer name for `system`, which is all the providers know.
PROVIDER_ROLES = {"developer": "system"}
# What the schema names; anything else in the request is `extra`, for OpenAI-compatible servers.
_NAMED = {"model", "messages", "stream", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
          "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "tools",
          "tool_choice", "parallel_tool_calls", "response_format", "stream_options"}
_OPTIONS = _NAMED - {"model", "messages", "stream", "n"}


@dataclass(frozen=True)
class Call:
    """One /v1/chat/completions request, checked and mapped onto the model layer before any provider call."""

    id: str
    created: int
    model: ModelSpec
    messages: list[dict[str, Any]]
    options: GenerationOptions
    stream: bool
    include_usage: bool
    ledger: UsageLedger  # its usage row, for the API key's org (budgets count there)


def prepare(*, db_sessions: sessionmaker[Session], catalogue: Catalogue, caller: Caller,
            data: dict[str, Any]) -> Call:
    """Check the model and the budgets of the API key and its org (access tokens have none), before any provider call."""
    try:
        spec = catalogue.resolve_chat(data["model"])
    except UnknownModel:
        raise ModelNotFound(data["model"]) from None
    caller.check_model(spec.name)
    options = spec.limited(GenerationOptions(
        **{key: data[key] for key in _OPTIONS if data.get(key) is not None},
        # null is "not set", for unknown parameters as for known ones
        extra={key: value for key, value in data.items() if key not in _NAMED and value is not None}))
    messages = [_message(m) for m in data["messages"]]
    PROVIDER_KINDS[spec.provider].refuse_unsupported(options, messages)
    with autocommit_connection() as connection:  # handed back at once: no connection is held during the provider call
        enforce_budget(session=connection, org_id=caller.org_id, api_key_id=caller.budgeted_key_id)
    return Call(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=spec, messages=messages,
                options=options, stream=bool(data.get("stream")),
                include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
                ledger=UsageLedger(db_sessions=db_sessions, model=spec, user_id=caller.user_id, org_id=caller.org_id,
                                   api_key_id=caller.api_key_id))


def complete(*, router: Router, call: Call) -> dict[str, Any]:
    """The whole reply as a `chat.completion`; provider failures become 502/504 as on our own chat routes."""
    tally = CompletionTally(call.model.name, streaming=False, ledger=call.ledger)
    with settled_if_failed(tally):
        completion, usage, answered_by = ask_whole(router=router, model=call.model, messages=call.messages,
                                                   options=call.options, tally=tally)
    tally.finish("success", usage=usage)
    return {
        "id": call.id, "object": "chat.completion", "created": call.created, "model": answered_by.name,
        "choices": [{"index": 0, "message": _assistant(completion), "logprobs": completion.logprobs,
                     "finish_reason": completion.finish_reason or ("tool_calls" if completion.tool_calls else "stop")}],
        "usage": usage_body(usage),
    }


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """A request message in the shape the providers take: OpenAI's, with only the fields that are set."""
    # An assistant message with only tool calls gets an empty `content`, which every server takes; a null
    # is refused by llama-cpp-python's server, and no content at all breaks its chat formatters.
    sent = {"role": PROVIDER_ROLES.get(message["role"], message["role"]), "content": message.get("content") or ""}
    sent.update((key, message[key]) for key in ("name", "tool_calls", "tool_call_id") if message.get(key))
    return sent


def _assistant(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.tool_calls:
        message["content"] = completion.content or None  # as OpenAI sends a reply that only calls tools
        message["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments}}
                                 for call in completion.tool_calls]
    return message


def usage_body(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def model_list(catalogue: Catalogue) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(spec) for spec in catalogue]}


def one_model(catalogue: Catalogue, name: str) -> dict[str, Any]:
    spec = catalogue.get(name)
    if spec is None:
        raise ModelNotFound(name)
    return model_body(spec)


def model_body(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.name, "object": "model", "created": 0, "owned_by": spec.provider}
