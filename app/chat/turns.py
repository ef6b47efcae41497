"""Chat turns: check and store the user's message, call the model, store its reply."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..conversations.service import get_visible_settings
from ..db import Step, autocommit_connection, run_as_one
from ..errors import NotFound, database_unreachable
from ..http.caller import Caller
from ..llm import Catalogue, GenerationOptions, ModelSpec, ProviderError, Usage
from ..upstreams import Router
from ..models import Conversation, Message, MessageRole, new_id, utcnow
from ..usage.budgets import enforce_budget
from ..usage.recording import UsageLedger
from .context import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, PastMessage, build_prompt, history_budget, history_limit
from .replies import ask_whole, reply_meta
from .tally import CompletionTally

log = logging.getLogger(__name__)

PROMPT_ROLES = {MessageRole.SYSTEM: "system", MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}


@dataclass(frozen=True)
class Turn:
    """One user message on its way to the model, with everything decided before the call."""

    conversation_id: str
    user_message: Message
    model: ModelSpec
    options: GenerationOptions
    prompt: list[dict[str, str]]
    ledger: UsageLedger  # its usage row, for the conversation's org (budgets count there)


def start_turn(*, session: Session, db_sessions: sessionmaker[Session], catalogue: Catalogue,
               context_budget: int, conversation_id: str, caller: Caller, data: dict[str, Any],
               store_now: bool) -> Turn:
    """Check access, model and the org's budget and build the prompt, all before any provider call.

    `store_now` writes the user's message at once (streams: it shows while the
    reply streams); otherwise it is written with the reply, in one transaction
    and one disk flush, or alone when the provider fails. The checks and the
    history are read on one Core connection (db.autocommit_connection: autocommit, no
    BEGIN/COMMIT round trips), handed back before the call, as `session`'s is:
    none is held during the call.
    """
    with autocommit_connection() as connection:  # handed back before the provider call, as `session` is
        conversation = get_visible_settings(session=connection, conversation_id=conversation_id, caller=caller)
        spec = catalogue.resolve_chat(data.get("model") or conversation.model)
        caller.check_model(spec.name)
        enforce_budget(session=connection, org_id=conversation.org_id, api_key_id=caller.budgeted_key_id)
        options = spec.limited(GenerationOptions(
            temperature=_first_set(data.get("temperature"), conversation.temperature),
            top_p=_first_set(data.get("top_p"), conversation.top_p),
            max_tokens=data.get("max_tokens"),
        ))
        room = history_budget(system_prompt=conversation.system_prompt, user_content=data["content"],
                              budget=context_budget)
        prompt = build_prompt(system_prompt=conversation.system_prompt,
                              recent_first=_recent_messages(connection, conversation.id, room=room),
                              user_content=data["content"], budget=context_budget)
    user_message = _message(conversation.id, MessageRole.USER, data["content"], {})
    if store_now:
        try:
            run_as_one(session, _store_steps(conversation.id, [user_message]))
        except IntegrityError:
            session.rollback()
            raise NotFound("Conversation") from None  # deleted since the visibility check
    ledger = UsageLedger(db_sessions=db_sessions, model=spec, user_id=caller.user_id, org_id=conversation.org_id,
                         api_key_id=caller.api_key_id, conversation_id=conversation.id)
    return Turn(conversation.id, user_message, spec, options, prompt, ledger)


def complete_turn(*, session: Session, router: Router, turn: Turn) -> dict[str, Any]:
    """Ask for the whole reply at once, then store both messages; a provider failure stores the user's alone."""
    tally = CompletionTally(turn.model.name, streaming=False, ledger=turn.ledger)
    try:
        completion, usage, answered_by = ask_whole(router=router, model=turn.model, messages=turn.prompt,
                                                   options=turn.options, tally=tally)
        timings = tally.timings()
        meta = reply_meta(answered_by, usage, completion.finish_reason, timings)
        assistant = _message(turn.conversation_id, MessageRole.ASSISTANT, completion.content, meta)
        stored = _store_with_usage(session, turn, [turn.user_message, assistant], reply=assistant,
                                   outcome="success", usage=usage, timings=timings)
        turn.ledger.settled()
    except BaseException as exc:
        outcome = exc.outcome if isinstance(exc, ProviderError) else "internal_error"
        _store_question_alone(session, turn, outcome, tally.timings())
        tally.finish(outcome)
        raise
    tally.finish("success", usage=usage)
    if not stored:
        log.info("conversation %s was deleted before its reply was stored", turn.conversation_id)
    return {"conversation_id": turn.conversation_id, "user_message": turn.user_message,
            "assistant_message": assistant if stored else None, "usage": usage}


def store_reply(*, session: Session, turn: Turn, content: str, meta: dict[str, Any], outcome: str,
                usage: Usage) -> Message | None:
    """Store the assistant's message and its usage row, and move the conversation's updatedAt.

    None if the conversation was deleted meanwhile: the usage row is still
    written, without a conversation (what was generated was still paid for).
    """
    message = _message(turn.conversation_id, MessageRole.ASSISTANT, content, meta)
    stored = _store_with_usage(session, turn, [message], reply=message, outcome=outcome, usage=usage,
                               timings=meta["timings"])
    if not stored:
        log.info("conversation %s was deleted before its reply was stored", turn.conversation_id)
    turn.ledger.settled()
    return message if stored else None


def _store_question_alone(session: Session, turn: Turn, outcome: str, timings: dict[str, Any]) -> None:
    """The user's message and the failed completion's usage row (no tokens counted), in one transaction."""
    try:
        session.rollback()
        _store_with_usage(session, turn, [turn.user_message], reply=None, outcome=outcome, usage=None,
                          timings=timings)
        turn.ledger.settled()
    except Exception as exc:
        if not database_unreachable(exc):
            log.exception("could not store the user message of conversation %s", turn.conversation_id)
            return
        # No traceback: its SQL parameters would put the message's content in the log.
        log.error("could not store the user message of conversation %s: database unavailable (%s)",
                  turn.conversation_id, type(exc).__name__)


def _message(conversation_id: str, role: MessageRole, content: str, meta: dict[str, Any]) -> Message:
    """A message for the response and for _store; not added to the session (no ORM flush)."""
    return Message(id=new_id(), conversation_id=conversation_id, role=role, content=content, meta=meta,
                   created_at=utcnow())


def _store_with_usage(session: Session, turn: Turn, messages: list[Message], *, reply: Message | None,
                      **usage_row: Any) -> bool:
    """The messages, the conversation's updatedAt and the usage row, committed together: one round trip on
    PostgreSQL. False if the conversation is gone: then the usage row is written without it."""
    try:
        run_as_one(session, _store_steps(turn.conversation_id, messages) + turn.ledger.steps(
            session, message_id=reply.id if reply else None, in_conversation=True, **usage_row))
        return True
    except IntegrityError:
        session.rollback()  # the messages' foreign key: the conversation was deleted meanwhile
    stored = _store(session, turn.conversation_id, messages)
    turn.ledger.write(session, message_id=reply.id if stored and reply else None, in_conversation=stored,
                      **usage_row)
    session.commit()
    return stored


_conversations, _messages = Conversation.__table__, Message.__table__
# Built once: statement construction was a visible share of a chat's CPU time.
_TOUCH = (_conversations.update().where(_conversations.c.id == bindparam("conversation_id"))
          .values(updated_at=bindparam("updated_at")))
_INSERT = _messages.insert()
_MESSAGE_COLUMNS = ("id", "conversation_id", "role", "content", "meta", "created_at")
# One statement for one or two rows (a turn's question and reply), so db.run_as_one compiles each once.
# Typed by hand: SQLAlchemy gives a multi-row VALUES' untyped parameters their column's type in its first row only.
_INSERT_ROWS = {count: _messages.insert().values([
    {name: bindparam(f"{name}_{index}", type_=_messages.c[name].type) for name in _MESSAGE_COLUMNS}
    for index in range(count)]) for count in (1, 2)}


def _store_steps(conversation_id: str, messages: list[Message]) -> list[Step]:
    """_store's statements for db.run_as_one: the UPDATE first (it locks the conversation against a delete)."""
    rows = {f"{name}_{index}": getattr(message, name) for index, message in enumerate(messages)
            for name in _MESSAGE_COLUMNS}
    return [(_TOUCH, {"conversation_id": conversation_id, "updated_at": messages[-1].created_at}),
            (_INSERT_ROWS[len(messages)], rows)]


def _store(session: Session, conversation_id: str, messages: list[Message]) -> bool:
    """Move the conversation's updatedAt to the last message's time and insert the messages; False if it is gone.

    The UPDATE comes first: it locks the conversation row (a delete waits for
    our commit) and its row count says whether the conversation still exists.
    The caller commits.
    """
    moved = session.execute(_TOUCH, {"conversation_id": conversation_id, "updated_at": messages[-1].created_at})
    if not moved.rowcount:
        return False
    session.execute(_INSERT, [{name: getattr(m, name) for name in _MESSAGE_COLUMNS} for m in messages])
    return True


def _estimate(content):
    """context.message_tokens in SQL: ceil(characters / 4) + the per-message overhead (integer division on both)."""
    return (func.length(content) + (CHARS_PER_TOKEN - 1)) // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


# The newest messages that fit in the room left, cut by the database: the innermost query reads no more
# rows than the budget could ever hold (each costs at least the overhead), however long the conversation;
# a running sum of their estimates keeps the contiguous newest ones that fit, as build_prompt would.
# The roles as plain text (no Enum conversion of every row) and compared one by one: an IN list is an
# "expanding" parameter, which SQLAlchemy renders into the SQL string again on every execution.
_NEWEST = (select(type_coerce(_messages.c.role, String).label("role"), _messages.c.content, _messages.c.created_at,
                  _messages.c.id)
           .where(_messages.c.conversation_id == bindparam("conversation_id"),
                  or_(*(_messages.c.role == role for role in PROMPT_ROLES)))
           .order_by(_messages.c.created_at.desc(), _messages.c.id.desc())
           .limit(bindparam("most"))
           .subquery())
_RUNNING = select(_NEWEST, func.sum(_estimate(_NEWEST.c.content)).over(
    order_by=(_NEWEST.c.created_at.desc(), _NEWEST.c.id.desc())).label("running")).subquery()
_HISTORY = (select(_RUNNING.c.role, _RUNNING.c.content)
            .where(_RUNNING.c.running <= bindparam("room"))
            .order_by(_RUNNING.c.created_at.desc(), _RUNNING.c.id.desc()))


def _recent_messages(session: Session, conversation_id: str, *, room: int) -> list[PastMessage]:
    """Newest first, only those that fit in `room` tokens: one query, whatever the conversation's length."""
    if room < MESSAGE_OVERHEAD_TOKENS:
        return []
    rows = session.execute(_HISTORY, {"conversation_id": conversation_id, "most": history_limit(room),
                                      "room": room})
    return [PastMessage(PROMPT_ROLES[role], content) for role, content in rows]


def _first_set(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
