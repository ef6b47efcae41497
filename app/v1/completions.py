"""Chat completions in OpenAI's format over the model layer: the same catalogue, providers and chat metrics."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..chat.replies import ask_whole
from ..chat.tally import CompletionTally
from ..http.caller import Caller
from ..llm import Catalogue, GenerationOptions, ModelSpec, ProviderError, ProviderPool, UnknownModel, Usage
from ..usage.budgets import enforce_budget
from ..usage.recording import UsageLedger
from .errors import ModelNotFound

# OpenAI's `developer` role is its newer name for `system`, which is all the providers know.
PROVIDER_ROLES = {"developer": "system"}


@dataclass(frozen=True)
class Call:
    """One /v1/chat/completions request, checked and mapped onto the model layer before any provider call."""

    id: str
    created: int
    model: ModelSpec
    messages: list[dict[str, str]]
    options: GenerationOptions
    stream: bool
    include_usage: bool
    ledger: UsageLedger  # its usage row, for the API key's org (budgets count there)


def prepare(*, session: Session, db_sessions: sessionmaker[Session], catalogue: Catalogue, caller: Caller,
            data: dict[str, Any]) -> Call:
    """Check the model and the budget of the API key's org (access tokens have none), before any provider call."""
    try:
        spec = catalogue.resolve(data["model"])
    except UnknownModel:
        raise ModelNotFound(data["model"]) from None
    enforce_budget(session=session, org_id=caller.org_id)
    session.rollback()  # ends the read transaction: no connection is held during the provider call
    options = GenerationOptions(
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        stop=data.get("stop"),
        seed=data.get("seed"),
        user=data.get("user"),
    )
    messages = [{"role": PROVIDER_ROLES.get(m["role"], m["role"]), "content": m["content"] or ""}
                for m in data["messages"]]
    return Call(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=spec, messages=messages,
                options=options, stream=bool(data.get("stream")),
                include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
                ledger=UsageLedger(db_sessions=db_sessions, model=spec, user_id=caller.user_id, org_id=caller.org_id,
                                   api_key_id=caller.api_key_id))


def complete(*, providers: ProviderPool, call: Call) -> dict[str, Any]:
    """The whole reply as a `chat.completion`; provider failures become 502/504 as on our own chat routes."""
    tally = CompletionTally(call.model.name, streaming=False, ledger=call.ledger)
    try:
        completion, usage = ask_whole(providers=providers, model=call.model, messages=call.messages,
                                      options=call.options, tally=tally)
    except ProviderError as exc:
        tally.finish(exc.outcome)
        raise
    except BaseException:
        tally.finish("internal_error")
        raise
    tally.finish("success", usage=usage)
    return {
        "id": call.id, "object": "chat.completion", "created": call.created, "model": call.model.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.content},
                     "logprobs": None, "finish_reason": completion.finish_reason or "stop"}],
        "usage": usage_body(usage),
    }


def usage_body(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def model_list(catalogue: Catalogue) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": spec.name, "object": "model", "created": 0, "owned_by": spec.provider}
                     for spec in catalogue]}
