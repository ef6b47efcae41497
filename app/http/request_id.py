"""The id of the request being served: accepted from the client when well-formed, generated otherwise.

A context variable, not flask.g, so the model layer can forward it without
importing Flask, and log records can carry it from any layer. Each greenlet
(gevent) or thread (gthread) has its own context; the chat relay copies its
parent's context into the thread that reads the provider.
"""
import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,128}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept(sent: str | None) -> str:
    """The client's id if it is safe to echo and log as is; a fresh one otherwise."""
    if sent and _WELL_FORMED.fullmatch(sent):
        return sent
    return uuid.uuid4().hex

