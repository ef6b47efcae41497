"""One upstream call that can be cut short: by a client that left, or by its total deadline.

A blocked read cannot be interrupted from another thread, but its socket can
be shut. Our urllib3 connections register their socket with the call being
made in their thread (or greenlet), from the moment it is connected, so a call
can be cancelled at any stage: waiting for the response headers, or between
two chunks of the body. Only a TCP connect in progress cannot be cut; the
connect timeout bounds it.

Deadlines are kept by one watchdog per process (a thread, or a greenlet under
gevent), not a timer per call: a thousand open streams cost a heap entry each.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

log = logging.getLogger(__name__)
_current = threading.local()


class UpstreamCall:
    """The socket of one request to a provider, and why it was cut short, if it was."""

    def __init__(self, total_seconds: float | None = None):
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.cancelled = False
        self.expired = False  # the total deadline passed
        self._attempt: UpstreamCall | None = None
        if total_seconds is not None:
            WATCHDOG.add(time.monotonic() + total_seconds, self)

    @contextmanager
    def bound(self):
        """Requests made inside this block, in this thread, belong to this call."""
        previous, _current.call = getattr(_current, "call", None), self
        try:
            yield self
        finally:
            _current.call = previous

    def attempt(self, total_seconds: float | None = None) -> UpstreamCall:
        """A call for one try within this one (one upstream of several): cancelling this one cuts it too."""
        attempt = UpstreamCall(total_seconds)
        with self._lock:
            self._attempt = attempt
            cancelled, expired = self.cancelled, self.expired
        if cancelled:
            attempt.cancel(expired=expired)
        return attempt

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            stop = self.cancelled
        if stop:
            _shut(sock)

    def cancel(self, *, expired: bool = False) -> None:
        """Stop the call now: a read blocked on its socket returns at once with an error."""
        with self._lock:
            if expired and not self.cancelled:
                self.expired = True
            self.cancelled = True
            sock, attempt = self._sock, self._attempt
        _shut(sock)
        if attempt is not None:
            attempt.cancel(expired=self.expired)

    @property
    def abandoned(self) -> bool:
        """Cancelled because nobody wants the answer any more (not because time ran out)."""
        return self.cancelled and not self.expired

    def finish(self) -> None:
        """The call ended by itself: its deadline no longer matters."""
        with self._lock:
            self._sock = None
        WATCHDOG.discard(self)


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _register(connection) -> None:
    call = getattr(_current, "call", None)
    if call is not None:
        call.attach(connection.sock)


class _TrackedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _register(self)

    def request(self, *args, **kwargs) -> None:
        if self.sock is not None:  # a reused keep-alive connection: connect() is not called again
            _register(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _register(self)

    def request(self, *args, **kwargs) -> None:
        if self.sock is not None:
            _register(self)
        super().request(*args, **kwargs)


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class CancellableAdapter(HTTPAdapter):
    """requests' adapter whose connections register their sockets with the current UpstreamCall."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class _Watchdog:
    """Cancels calls whose total deadline has passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, UpstreamCall]] = []
        self._live: set[int] = set()
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._pid: int | None = None

    def add(self, deadline: float, call: UpstreamCall) -> None:
        with self._wake:
            self._ensure_thread()
            sooner = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._order), call))
            self._live.add(id(call))
            if sooner:
                # Only a new first deadline changes how long the watchdog sleeps. Calls share one total
                # timeout, so deadlines arrive in order and this wake (a switch and a new timer per call) is rare.
                self._wake.notify()

    def discard(self, call: UpstreamCall) -> None:
        with self._wake:
            self._live.discard(id(call))
            if len(self._heap) > 2 * len(self._live) + 1000:  # finished calls pile up until their deadline
                self._heap = [entry for entry in self._heap if id(entry[2]) in self._live]
                heapq.heapify(self._heap)

    def _ensure_thread(self) -> None:
        # A thread does not survive fork: each worker starts its own on first use.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._heap.clear()
            self._live.clear()
            threading.Thread(target=self._run, name="upstream-deadlines", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                deadline, _, call = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wake.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
                due = id(call) in self._live
                self._live.discard(id(call))
            if due:
                log.info("upstream call passed its total deadline: cancelled")
                call.cancel(expired=True)


WATCHDOG = _Watchdog()
