"""A cap on the chats one worker process serves at once.

Under gevent a worker accepts every connection it is offered; without a cap a
burst of chats would queue on the database pool and the upstream without bound.
Over the cap a chat is refused at once with a 503 and Retry-After, so a load
balancer or client can go elsewhere or come back later.

A slot is held for the whole response, not just the view: a streamed reply goes
on long after the view has returned, so the slot is released when the WSGI
server closes the response (the stream ended or the client left).
"""
import threading
from functools import wraps

from flask import Flask, current_app

from .errors import Overloaded
from .rest import held_until_closed, may_fail


class ChatSlots:
    """A counter of chats in progress in this process, with an upper bound."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_use -= 1


def init_app(app: Flask) -> None:
    # Built before the fork (preload_app): each worker starts with its own copy at zero.
    app.extensions["chat_slots"] = ChatSlots(app.config["SETTINGS"].chat_max_concurrent)


def limit_concurrent_chats(view):
    """Serve the view while this worker has a free chat slot, else answer 503 chat_capacity."""

    @wraps(view)
    def guarded(*args, **kwargs):
        slots: ChatSlots = current_app.extensions["chat_slots"]
        if not slots.try_acquire():
            raise Overloaded("chat_capacity", "This server is at its limit of concurrent chats, try again shortly")
        return held_until_closed(slots.release, view, *args, **kwargs)

    return may_fail(503)(guarded)
