"""Whole replies, and what is stored with an assistant message: its usage (reported or counted) and its meta."""
from __future__ import annotations

from typing import Any

from ..http.client_watch import cancelled_if_client_leaves
from ..llm import Completion, GenerationOptions, ModelSpec, Usage
from ..llm.calls import UpstreamCall
from ..llm.types import COUNTED_BY_CHARACTERS, COUNTED_BY_CHUNKS, COUNTED_BY_TOKENIZER
from ..upstreams import Router
from .context import estimate_tokens, prompt_tokens
from .schemas import UsageSchema

_usage_schema = UsageSchema()


def ask_whole(*, router: Router, model: ModelSpec, messages: list[dict],
              options: GenerationOptions, tally) -> tuple[Completion, Usage, ModelSpec]:
    """The whole reply, its usage, and the upstream that answered; the tally's clock stops counting our time meanwhile.

    A client that closes its connection meanwhile cancels the call, whichever attempt it is on: ClientLeft.
    """
    call = UpstreamCall(model.timeouts.total)
    try:
        with cancelled_if_client_leaves(call.cancel):
            completion, answered_by = router.complete(model, messages=messages, options=options, call=call)
    finally:
        call.finish()
    tally.clock.upstream_done()
    tally.answered_by(answered_by)
    text = completion.content + "".join(call.name + call.arguments for call in completion.tool_calls)
    return completion, reply_usage(messages, text, completion.usage), answered_by


def reply_usage(prompt: list[dict], content: str, reported: Usage | None, *,
                chunks: int | None = None, counted_prompt: int | None = None) -> Usage:
    """The provider's usage when it reported one; otherwise counted here and marked estimated.

    A streamed reply is counted by its content chunks, one token each on
    llama.cpp, vLLM and Ollama; a whole reply can only be estimated from its
    characters. The prompt is estimated from characters, unless the server's
    tokenizer counted it (`counted_prompt`): then nothing is estimated.
    """
    if reported is not None:
        return reported
    if chunks is not None and counted_prompt is not None:
        return Usage(counted_prompt, chunks, method=COUNTED_BY_TOKENIZER)
    if chunks is not None:
        return Usage(prompt_tokens(prompt), chunks, estimated=True, method=COUNTED_BY_CHUNKS)
    return Usage(prompt_tokens(prompt), estimate_tokens(content), estimated=True, method=COUNTED_BY_CHARACTERS)


def reply_meta(model: ModelSpec, usage: Usage, finish_reason: str | None, timings: dict[str, Any],
               partial_reason: str | None = None) -> dict[str, Any]:
    """The assistant message's meta; `model` is the upstream that answered (a fallback model's, maybe)."""
    meta: dict[str, Any] = {
        "model": model.name,
        "upstream": model.upstream,
        "provider": model.provider,
        "finishReason": finish_reason,
        "usage": _usage_schema.dump(usage),
        "timings": timings,
    }
    if partial_reason:
        meta.update(partial=True, reason=partial_reason)
    return meta
