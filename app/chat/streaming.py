"""Streamed replies: server-sent events fed by the relay.

The first event is awaited before the response starts, so a provider that
fails at once still gets an ordinary JSON 502/504. Every event is serialised
by the same schemas as the REST responses: `token`, then one `end` carrying
the stored message and usage exactly as `POST .../messages` returns them, or
one `error` carrying the JSON error contract.

A client that leaves shows up as the WSGI server closing our generator
(GeneratorExit at a `yield`): the relay is then cancelled, which shuts the
upstream socket so its HTTP request ends at once, and the text generated so
far is stored as a partial reply. This works before the provider has sent its
response headers too: the socket is shut, not the response.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Response
from sqlalchemy.orm import Session, sessionmaker

from ..errors import error_body
from ..llm import Usage
from ..upstreams import Router
from ..models import Message, MessageRole
from .events import SSE_HEADERS, RelayedEvents, sse, start_relay
from .relay import End, Token
from .replies import reply_meta
from .schemas import StreamEndSchema
from .tally import CompletionTally
from .turns import Turn, store_reply

log = logging.getLogger(__name__)

_end_schema = StreamEndSchema()


def start_stream(*, router: Router, db_sessions: sessionmaker[Session], turn: Turn,
                 heartbeat_seconds: float) -> Response:
    tally = CompletionTally(turn.model.name, streaming=True, ledger=turn.ledger)
    relay, first = start_relay(router=router, model=turn.model, messages=turn.prompt, options=turn.options,
                               tally=tally, heartbeat_seconds=heartbeat_seconds)
    events = ReplyEvents(relay=relay, first=first, turn=turn, tally=tally,
                         db_sessions=db_sessions, heartbeat_seconds=heartbeat_seconds)
    return Response(events, mimetype="text/event-stream", headers=SSE_HEADERS)


class ReplyEvents(RelayedEvents):
    """Our own SSE events; the assistant's message is stored however the stream ends."""

    def __init__(self, *, relay, first: Token | End | None, turn: Turn, tally: CompletionTally,
                 db_sessions: sessionmaker[Session], heartbeat_seconds: float):
        super().__init__(relay=relay, first=first, tally=tally, heartbeat_seconds=heartbeat_seconds,
                         prompt=turn.prompt)
        self.turn, self.db_sessions, self.model = turn, db_sessions, turn.model

    def token(self, text: str) -> bytes:
        return sse({"type": "token", "token": text})

    def finish(self, end: End) -> Iterator[bytes]:
        content = "".join(self.parts)
        usage = self.usage(end.usage)
        meta = reply_meta(self.answered_by, usage, end.finish_reason, self.tally.timings())
        # A conversation deleted meanwhile stores nothing; the client still gets the reply, without an id.
        message = self._store(content, meta, "success", usage) or Message(role=MessageRole.ASSISTANT, content=content, meta=meta)
        data = self.relayed(sse(_end_schema.dump({"type": "end", "message": message, "usage": usage})))
        self.tally.finish("success", usage=usage)
        yield data

    def error(self, status: int, code: str, message: str, details: dict) -> bytes:
        return sse({"type": "error", **error_body(code, message, details)})

    def broke_off(self, reason: str, *, outcome: str) -> None:
        """What was generated before the stream broke off is stored, marked partial; nothing if nothing was."""
        content = "".join(self.parts)
        if not content:
            self.tally.finish(outcome)
            return
        usage = self.usage(None)
        meta = reply_meta(self.answered_by, usage, None, self.tally.timings(), partial_reason=reason)
        try:
            self._store(content, meta, outcome, usage)
        except Exception:
            log.exception("could not store the partial reply of conversation %s", self.turn.conversation_id)
            self.tally.finish("internal_error")
            return
        self.tally.finish(outcome, usage=usage)

    def _store(self, content: str, meta: dict[str, Any], outcome: str, usage: Usage) -> Message | None:
        with self.db_sessions() as session:
            return store_reply(session=session, turn=self.turn, content=content, meta=meta, outcome=outcome,
                               usage=usage)
