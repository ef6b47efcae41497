"""A cap on the chats one worker process serves at once (CHAT_MAX_CONCURRENT).

Under gevent a worker accepts every connection it is offered; without a cap a
burst of chats would queue on the database pool and the upstream without bound.
Over the cap a chat is refused at once with a 503 and Retry-After, so a load
balancer or client can go elsewhere or come back later. The slot is held until
the response is closed (slots.held_until_closed).
"""
from functools import wraps

from flask import Flask, current_app

from ..errors import Overloaded
from ..http.openapi import may_fail
from .slots import LocalSlots, held_until_closed

WORKER = "worker"  # the one key: every chat of this process counts against one limit


def init_app(app: Flask) -> None:
    # Built before the fork (preload_app): each worker starts with its own copy at zero.
    app.extensions["chat_slots"] = LocalSlots()


def limit_concurrent_chats(view):
    """Serve the view while this worker has a free chat slot, else answer 503 chat_capacity."""

    @wraps(view)
    def guarded(*args, **kwargs):
        release = current_app.extensions["chat_slots"].take(WORKER, current_app.config["SETTINGS"].chat_max_concurrent)
        if release is None:
            raise Overloaded("chat_capacity", "This server is at its limit of concurrent chats, try again shortly")
        return held_until_closed(release, view, *args, **kwargs)

    return may_fail(503)(guarded)
