"""Embeddings in OpenAI's format: the same catalogue, keys, budgets and usage rows as chat.

Any catalogue model may be asked; Ollama is called on /api/embed, OpenAI-
compatible servers on /embeddings. Vectors are always fetched as floats and
re-encoded here when the client asks for base64 (the openai SDK's default).
Each request writes one usage row (its prompt tokens, no completion) and is
counted in the `embedding_*` metrics.
"""
from __future__ import annotations

import base64
import logging
import struct
import time
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from ..http import request_id
from ..http.caller import Caller
from ..http.client_watch import cancelled_if_client_leaves
from ..chat.context import estimate_tokens
from ..chat.tally import settled_if_failed
from ..llm import PROVIDER_KINDS, Catalogue, ModelSpec, UnknownModel, Usage
from ..llm.calls import UpstreamCall
from ..llm.types import COUNTED_BY_CHARACTERS, COUNTED_BY_TOKENIZER
from ..metrics.definitions import (CHAT_OUTCOMES, EMBEDDING_COST, EMBEDDING_DURATION, EMBEDDING_INPUTS,
                                   EMBEDDING_REQUESTS, EMBEDDING_TOKENS)
from ..upstreams import Router
from ..usage.budgets import enforce_budget
from ..usage.recording import UsageLedger
from .errors import ModelNotFound

log = logging.getLogger(__name__)


def create(*, session: Session, db_sessions: sessionmaker[Session], catalogue: Catalogue, router: Router,
           caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
    """Check the model, the kind's support and the budgets of the API key and its org, then embed every input."""
    try:
        spec = catalogue.resolve(data["model"])
    except UnknownModel:
        raise ModelNotFound(data["model"]) from None
    caller.check_model(spec.name)
    inputs = data["input"]
    token_input = not isinstance(inputs[0], str)
    PROVIDER_KINDS[spec.provider].refuse_unsupported_embedding(token_input=token_input,
                                                               dimensions=data.get("dimensions"))
    enforce_budget(session=session, org_id=caller.org_id, api_key_id=caller.budgeted_key_id)
    session.rollback()  # no connection is held during the provider call
    tally = EmbeddingTally(spec, UsageLedger(db_sessions=db_sessions, model=spec, user_id=caller.user_id,
                                                     org_id=caller.org_id, api_key_id=caller.api_key_id))
    call = UpstreamCall(spec.timeouts.total)
    try:
        with settled_if_failed(tally), cancelled_if_client_leaves(call.cancel):
            result, answered_by = router.embed(spec, inputs=inputs, dimensions=data.get("dimensions"), call=call)
            tally.ledger.answered_by(answered_by)
    finally:
        call.finish()
    usage = _usage(inputs, token_input, result.prompt_tokens)
    tally.finish("success", usage=usage, inputs=len(inputs))
    encode = _base64 if data["encoding_format"] == "base64" else list
    return {
        "object": "list", "model": answered_by.name,
        "data": [{"object": "embedding", "index": index, "embedding": encode(vector)}
                 for index, vector in enumerate(result.vectors)],
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }


def _usage(inputs: list, token_input: bool, reported: int | None) -> Usage:
    """The provider's count; else token arrays count exactly, and text is estimated from its characters."""
    if reported is not None:
        return Usage(reported, 0)
    if token_input:
        return Usage(sum(len(tokens) for tokens in inputs), 0, method=COUNTED_BY_TOKENIZER)
    return Usage(sum(estimate_tokens(text) for text in inputs), 0, estimated=True, method=COUNTED_BY_CHARACTERS)


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class EmbeddingTally:
    """One embedding request's tally, settled once: its usage row (billing), its `embedding_*` metrics and log line."""

    def __init__(self, model: ModelSpec, ledger: UsageLedger):
        self.model, self.ledger = model, ledger
        self.record = current_app.config["METRICS_ENABLED"]
        self.request_id = request_id.current.get()
        self.started_at = time.monotonic()
        self.finished = False

    def finish(self, outcome: str, *, usage: Usage | None = None, inputs: int = 0) -> None:
        if outcome not in CHAT_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if self.finished:
            return
        self.finished = True
        elapsed = time.monotonic() - self.started_at
        name = self.model.name
        cost = self.ledger.cost(usage)
        if self.record:
            EMBEDDING_REQUESTS.labels(name, outcome).inc()
            EMBEDDING_DURATION.labels(name).observe(elapsed)
            if usage is not None:
                EMBEDDING_INPUTS.labels(name).inc(inputs)
                EMBEDDING_TOKENS.labels(name).inc(usage.prompt_tokens)
                if cost is not None:
                    EMBEDDING_COST.labels(name).inc(float(cost))  # the row keeps the exact Decimal
        self.ledger.write_alone(outcome=outcome, usage=usage,
                                timings={"totalMs": round(elapsed * 1000), "timeToFirstTokenMs": None})
        fields = {"requestId": self.request_id, "model": name, "provider": self.model.provider, "outcome": outcome,
                  "inputs": inputs, "promptTokens": usage.prompt_tokens if usage else None,
                  "durationMs": round(elapsed * 1000)}
        log.info("embedding %s", " ".join(f"{key}={value}" for key, value in fields.items()),
                 extra={"fields": fields, "request_id": self.request_id or "-"})
