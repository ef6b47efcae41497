"""Draining: what an instance that was told to stop still promises its clients.

Two facts, both read by /readyz and the streaming routes:
- the instance drains: the gunicorn master got SIGTERM. The master flips one
  byte of memory it shares with every worker (mapped before the first fork),
  so each worker's /readyz answers 503 at once, before anything stops.
- this worker stops: it got SIGTERM itself (after the drain delay, or from a
  HUP reload replacing it). Its open streams may run until the stream deadline,
  GUNICORN_GRACEFUL_TIMEOUT later; a stream still open then ends with an
  `error` event `shutting_down`, its partial reply stored.

Outside gunicorn (tests, `flask run`) nothing is shared and nothing drains.
"""
from __future__ import annotations

import mmap
import time

SHUTTING_DOWN = "shutting_down"  # the error code of a stream ended by a stop; also its chat outcome
_shared: mmap.mmap | None = None  # 1 byte, MAP_SHARED: 1 while the instance drains
_stream_deadline: float | None = None  # this process's; time.monotonic()


def share() -> None:
    """In the gunicorn master, before any worker is forked; idempotent (a HUP re-reads the config)."""
    global _shared
    if _shared is None:
        _shared = mmap.mmap(-1, 1)  # anonymous and shared: forked workers see the master's writes


def start() -> None:
    """The master was told to stop: every worker reports not-ready from now on."""
    if _shared is not None:
        _shared[0] = 1


def worker_stopping(graceful_seconds: float) -> None:
    """This worker was told to stop: its open streams may run `graceful_seconds` more."""
    global _stream_deadline
    if _stream_deadline is None:  # a second SIGTERM does not extend the grace
        _stream_deadline = time.monotonic() + graceful_seconds


def reason() -> str | None:
    """Why this instance should get no new traffic, or None.

    A worker being replaced (HUP, max_requests) is not a reason: the instance serves on with its new
    workers, and the old one has stopped accepting connections within a second anyway.
    """
    if _shared is not None and _shared[0]:
        return "draining"
    return None


def streams_must_end() -> bool:
    return _stream_deadline is not None and time.monotonic() >= _stream_deadline
