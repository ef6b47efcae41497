"""A worker's chats in their start, first in first served: CHAT_START_LIMIT at once, the rest wait their turn.

A chat's start (authentication, the checks, the history, up to the provider
call) is where its CPU goes. Under a burst, hundreds of chats starting at once
are hundreds of runnable greenlets: each gets a slice in turn, every one of
them finishes late, and `/livez` waits behind them all. Here a chat past the
limit waits on an event of its own (not runnable: it costs nothing until its
turn), in arrival order. The slot passes to the next chat when the provider
call starts (`started`, from the chat's clock) or the response ends, whichever
comes first. One that waited CHAT_QUEUE_TIMEOUT gets 503 chat_capacity.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from flask import request

from ..errors import Overloaded
from ..metrics.definitions import CHAT_QUEUE_LENGTH, CHAT_QUEUE_WAIT

RELEASE = "gateway.chat_start_release"  # where the request's environ keeps its slot's release


class StartQueue:
    """At most `limit` chats of this process in their start; the others wait in a FIFO queue."""

    def __init__(self):
        self._lock = threading.Lock()  # gevent's, once patched: waiting greenlets are not runnable
        self._starting = 0
        self._waiting: deque[threading.Event] = deque()

    def enter(self, limit: int, timeout: float) -> Callable[[], None]:
        """Wait for a start slot (at most `timeout` seconds, else 503); returns its release, safe to call twice."""
        with self._lock:
            if self._starting < limit and not self._waiting:
                self._starting += 1
                return self._release_once()
            ticket = threading.Event()
            self._waiting.append(ticket)
        CHAT_QUEUE_LENGTH.inc()
        queued = time.monotonic()
        try:
            ticket.wait(timeout)
            with self._lock:  # a slot handed over just after the wait gave up still counts
                admitted = ticket.is_set()
                if not admitted:
                    self._waiting.remove(ticket)
        finally:
            CHAT_QUEUE_LENGTH.dec()
            CHAT_QUEUE_WAIT.observe(time.monotonic() - queued)
        if not admitted:
            raise Overloaded("chat_capacity", "Too many chats are waiting to start on this server, try again shortly")
        return self._release_once()

    def _release_once(self) -> Callable[[], None]:
        released = []

        def release() -> None:
            if not released:
                released.append(True)
                self._pass_on()

        return release

    def _pass_on(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the slot goes to the longest-waiting chat: _starting stays
            else:
                self._starting -= 1


def started() -> None:
    """The chat of this request reached its provider call: its start slot goes to the next chat."""
    release = request.environ.pop(RELEASE, None)
    if release is not None:
        release()
