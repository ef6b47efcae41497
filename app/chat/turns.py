"""Chat turns: check and store the user's message, call the model, store its reply."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from ..conversations.service import get_visible
from ..errors import NotFound
from ..llm import Catalogue, GenerationOptions, ModelSpec, ProviderError, ProviderPool
from ..models import Conversation, Message, MessageRole, new_id, utcnow
from .context import PastMessage, build_prompt, history_limit
from .replies import reply_meta, reply_usage
from .telemetry import CompletionTelemetry

log = logging.getLogger(__name__)

HISTORY_PAGE = 20  # most prompts need one page; long messages fill the budget sooner still
PROMPT_ROLES = {MessageRole.SYSTEM: "system", MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}


@dataclass(frozen=True)
class Turn:
    """One user message on its way to the model, with everything decided before the call."""

    conversation_id: str
    user_message: Message
    model: ModelSpec
    options: GenerationOptions
    prompt: list[dict[str, str]]


def start_turn(*, session: Session, catalogue: Catalogue, context_budget: int,
               conversation_id: str, user_id: str, data: dict[str, Any]) -> Turn:
    """Check access and model, build the prompt, then store the user's message: all before any provider call."""
    conversation = get_visible(session=session, conversation_id=conversation_id, user_id=user_id)
    spec = catalogue.resolve(data.get("model") or conversation.model)
    options = GenerationOptions(
        temperature=_first_set(data.get("temperature"), conversation.temperature),
        top_p=_first_set(data.get("top_p"), conversation.top_p),
        max_tokens=data.get("max_tokens"),
    )
    prompt = build_prompt(
        system_prompt=conversation.system_prompt,
        recent_first=_recent_messages(session, conversation.id, limit=history_limit(context_budget)),
        user_content=data["content"],
        budget=context_budget,
    )
    user_message = _append(session, conversation_id=conversation.id, role=MessageRole.USER, content=data["content"],
                           meta={})
    if user_message is None:  # deleted since the visibility check
        raise NotFound("Conversation")
    session.commit()
    return Turn(conversation.id, user_message, spec, options, prompt)


def complete_turn(*, session: Session, providers: ProviderPool, turn: Turn) -> dict[str, Any]:
    """Ask for the whole reply at once and store it; provider failures become 502/504 with nothing stored."""
    telemetry = CompletionTelemetry(turn.model.name, streaming=False)
    try:
        completion = providers.client_for(turn.model).complete(
            model=turn.model.upstream_model, messages=turn.prompt, options=turn.options,
            timeouts=turn.model.timeouts)
        telemetry.clock.upstream_done()
        usage = reply_usage(turn.prompt, completion.content, completion.usage)
        meta = reply_meta(turn.model, usage, completion.finish_reason, telemetry.timings())
        assistant = store_reply(session=session, turn=turn, content=completion.content, meta=meta)
    except ProviderError as exc:
        telemetry.finish(exc.outcome)
        raise
    except BaseException:
        telemetry.finish("internal_error")
        raise
    telemetry.finish("success", usage=usage)
    return {"conversation_id": turn.conversation_id, "user_message": turn.user_message,
            "assistant_message": assistant, "usage": usage}


def store_reply(*, session: Session, turn: Turn, content: str, meta: dict[str, Any]) -> Message | None:
    """Store the assistant's message and move the conversation's updatedAt; None if it was deleted meanwhile."""
    message = _append(session, conversation_id=turn.conversation_id, role=MessageRole.ASSISTANT, content=content,
                      meta=meta)
    if message is None:
        log.info("conversation %s was deleted before its reply was stored", turn.conversation_id)
        session.rollback()
        return None
    session.commit()
    return message


def _append(session: Session, *, conversation_id: str, role: MessageRole, content: str,
            meta: dict[str, Any]) -> Message | None:
    """Move the conversation's updatedAt and add a message of that time: two statements, no read, no ORM flush.

    The UPDATE comes first: it locks the conversation row (a delete waits for our
    commit) and its row count says whether the conversation still exists.
    None when it does not. The Message returned is for the response only.
    """
    now = utcnow()
    moved = session.execute(update(Conversation).where(Conversation.id == conversation_id).values(updated_at=now),
                            execution_options={"synchronize_session": False}).rowcount
    if not moved:
        return None
    message = Message(id=new_id(), conversation_id=conversation_id, role=role, content=content, meta=meta,
                      created_at=now)
    session.execute(insert(Message).values(id=message.id, conversation_id=conversation_id, role=role,
                                           content=content, meta=meta, created_at=now))
    return message


def _recent_messages(session: Session, conversation_id: str, *, limit: int) -> Iterator[PastMessage]:
    """Newest first, fetched a page at a time: build_prompt stops reading once the budget is full."""
    query = (select(Message.role, Message.content, Message.created_at, Message.id)
             .where(Message.conversation_id == conversation_id, Message.role.in_(list(PROMPT_ROLES)))
             .order_by(Message.created_at.desc(), Message.id.desc()))
    read = 0
    while read < limit:
        rows = session.execute(query.limit(min(HISTORY_PAGE, limit - read))).all()
        for role, content, _, _ in rows:
            yield PastMessage(PROMPT_ROLES[role], content)
        read += len(rows)
        if len(rows) < HISTORY_PAGE:
            return
        _, _, created_at, last_id = rows[-1]
        query = query.where(or_(Message.created_at < created_at,
                                and_(Message.created_at == created_at, Message.id < last_id)))


def _first_set(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
