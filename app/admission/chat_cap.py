"""A cap on the chats one worker process serves at once (CHAT_MAX_CONCURRENT).

Under gevent a worker accepts every connection it is offered; without a cap a
burst of chats would queue on the database pool and the upstream without bound.
Over the cap a chat is refused at once with a 503 and Retry-After, so a load
balancer or client can go elsewhere or come back later. The slot is held until
the response is closed (slots.held_until_closed).
"""
from functools import wraps

from flask import Flask, current_app, request

from ..errors import Overloaded
from ..http.openapi import may_fail
from .slots import LocalSlots, held_until_closed
from .start_queue import RELEASE, StartQueue

WORKER = "worker"  # the one key: every chat of this process counts against one limit


def init_app(app: Flask) -> None:
    # Built before the fork (preload_app): each worker starts with its own copy at zero.
    app.extensions["chat_slots"] = LocalSlots()
    app.extensions["chat_start_queue"] = StartQueue()


def limit_concurrent_chats(view):
    """Serve the view while this worker has a free chat slot, else answer 503 chat_capacity; then wait in
    line for a start slot (start_queue), held until the provider call starts or the response ends."""

    @wraps(view)
    def guarded(*args, **kwargs):
        settings = current_app.config["SETTINGS"]
        release = current_app.extensions["chat_slots"].take(WORKER, settings.chat_max_concurrent)
        if release is None:
            raise Overloaded("chat_capacity", "This server is at its limit of concurrent chats, try again shortly")
        try:
            start = current_app.extensions["chat_start_queue"].enter(settings.chat_start_limit,
                                                                     settings.chat_queue_timeout)
        except BaseException:
            release()
            raise
        request.environ[RELEASE] = start

        def release_both() -> None:
            start()
            release()

        return held_until_closed(release_both, view, *args, **kwargs)

    return may_fail(503)(guarded)
