"""Whether the client is still there while its whole reply is being made: its socket watched for EOF.

A whole reply writes nothing until the model has finished, so a client that
leaves is not noticed by a failed write, as a stream's is. gunicorn puts the
client's socket in the environ (`gunicorn.socket`); while the call runs, a
greenlet (gevent workers) or a thread (gthread) waits for it to become
readable. Readable with nothing to read is the client's FIN (or a reset): the
call is cancelled. Readable with bytes waiting is a pipelined request, which is
not ours to read, and then the watch ends, unable to tell. Without that socket
(the test client, other servers) or on a TLS socket there is no watch.

A client that half-closes (shuts its sending side and still reads) looks like
one that left; HTTP clients do not do that, and nginx treats it the same way.
"""
from __future__ import annotations

import contextvars
import logging
import select
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import has_request_context, request

log = logging.getLogger(__name__)

# How often a watching thread looks whether the call has ended (gthread only: a greenlet is killed instead).
THREAD_POLL_SECONDS = 0.25


@contextmanager
def cancelled_if_client_leaves(cancel: Callable[[], None]) -> Iterator[None]:
    """While the block runs, call `cancel` (once) if the client closes its connection."""
    sock = request.environ.get("gunicorn.socket") if has_request_context() else None
    if sock is None or isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "fileno"):
        yield
        return
    stop = _watch_in_greenlet(sock, cancel) if _under_gevent() else _watch_in_thread(sock, cancel)
    try:
        yield
    finally:
        stop()


def _under_gevent() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def _watch_in_greenlet(sock, cancel: Callable[[], None]) -> Callable[[], None]:
    import gevent
    from gevent.socket import wait_read

    def watch() -> None:
        while True:
            wait_read(sock.fileno())
            verdict = _peek(sock)
            if verdict is not None:
                return _left(cancel) if verdict else None

    watcher = gevent.spawn(contextvars.copy_context().run, watch)  # its log line carries the request id
    # Blocking: once the call is over the watch is gone, before gunicorn reuses or closes the socket.
    return watcher.kill


def _watch_in_thread(sock, cancel: Callable[[], None]) -> Callable[[], None]:
    done = threading.Event()

    def watch() -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        while not done.is_set():
            if not poller.poll(THREAD_POLL_SECONDS * 1000) or done.is_set():
                continue
            verdict = _peek(sock)
            if verdict is not None:
                return _left(cancel) if verdict else None

    threading.Thread(target=contextvars.copy_context().run, args=(watch,), name="client-watch", daemon=True).start()
    return done.set


def _peek(sock) -> bool | None:
    """True: the client left; False: it sent more bytes (cannot tell); None: nothing yet after all."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:  # reset, or the socket was closed under us: either way nobody is listening
        return True
    return not data


def _left(cancel: Callable[[], None]) -> None:
    log.info("the client closed its connection while waiting for a whole reply: upstream call cancelled")
    cancel()
