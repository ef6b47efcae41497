"""A cap on the chat streams one user holds open at once (CHAT_MAX_STREAMS_PER_USER, 0: none).

Where the count lives follows RATE_LIMIT_STORAGE_URI. With Redis it is shared by
every worker and instance: each open stream is one member of a sorted set per
user, scored with its start time, added only while the set is under the cap
(one Lua script, so the check and the add are atomic). A slot is released when
the WSGI server closes the response: the stream ended, or the client left (the
next heartbeat write finds out). A worker killed mid-stream never releases its
slots, so every member also expires on its own once it is older than any stream
can last (PROVIDER_TOTAL_TIMEOUT plus a margin); a counter with one TTL would
only forget them once the user stopped streaming altogether.

With any other storage (`memory://`) each worker process counts on its own: with
N workers a user may hold up to N times the cap. RATE_LIMITS_ENABLED=false turns
the cap off with the rate limits. Over the cap, a stream is
refused with 429 `too_many_streams` and Retry-After, counted in
`rate_limit_hits_total{limit="chat_streams_user"}`.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import wraps

from flask import Flask, current_app

from .caller import current_caller
from .errors import ApiError, retry_after_seconds
from .metrics.definitions import RATE_LIMIT_HITS
from .rest import held_until_closed

log = logging.getLogger(__name__)

LIMIT_NAME = "chat_streams_user"
KEY_PREFIX = "gateway:streams:"
# Beyond PROVIDER_TOTAL_TIMEOUT a stream still sends its last event and stores the reply.
EXPIRY_MARGIN_SECONDS = 60
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

Release = Callable[[], None]

# KEYS[1]: the user's set; ARGV: now, expiry seconds, cap, slot id. 1 when the slot was taken.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class TooManyStreams(ApiError):
    def __init__(self, limit: int):
        super().__init__(429, "too_many_streams",
                         f"You already have {limit} chat streams open: close one, or wait for one to finish",
                         {"limit": limit}, headers={"Retry-After": str(retry_after_seconds())})


class LocalSlots:
    """Open streams per user in this process."""

    def __init__(self):
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, user_id: str, limit: int) -> Release | None:
        with self._lock:
            if self._open[user_id] >= limit:
                return None
            self._open[user_id] += 1
        return lambda: self._give_back(user_id)

    def _give_back(self, user_id: str) -> None:
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]


class RedisSlots:
    """Open streams per user in Redis, shared by every worker and instance; this process's count if Redis fails."""

    def __init__(self, url: str, expiry_seconds: int):
        import redis

        self._errors = redis.RedisError
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._take_slot = self._client.register_script(_TAKE_SLOT)
        self._expiry, self._fallback = expiry_seconds, LocalSlots()

    def take(self, user_id: str, limit: int) -> Release | None:
        key, slot = KEY_PREFIX + user_id, uuid.uuid4().hex
        try:
            taken = self._take_slot(keys=[key], args=[time.time(), self._expiry, limit, slot])
        except self._errors as exc:
            # Like the rate limits: a storage outage must not stop chats, so count here meanwhile.
            log.warning("stream limit storage unavailable (%s): counting in this process", type(exc).__name__)
            return self._fallback.take(user_id, limit)
        return (lambda: self._give_back(key, slot)) if taken else None

    def _give_back(self, key: str, slot: str) -> None:
        try:
            self._client.zrem(key, slot)
        except self._errors as exc:  # the slot expires on its own
            log.warning("stream limit storage unavailable (%s): a slot will expire instead", type(exc).__name__)


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    uri = settings.rate_limit_storage_uri
    if uri.startswith("redis+unix://"):
        uri = "unix://" + uri[len("redis+unix://"):]
    expiry = int(settings.provider_total_timeout) + EXPIRY_MARGIN_SECONDS
    app.extensions["stream_slots"] = RedisSlots(uri, expiry) if uri.startswith(REDIS_SCHEMES) else LocalSlots()


def limit_user_streams(streams: Callable[[dict], bool] = lambda _data: True):
    """For a view behind auth_required and @bp.arguments: hold one of the caller's stream slots for the response.

    `streams(data)` says whether this request streams (for /v1, `stream: true`);
    those that do not pass straight through.
    """

    def decorate(view):
        @wraps(view)
        def guarded(data, *args, **kwargs):
            settings = current_app.config["SETTINGS"]
            limit = settings.chat_max_streams_per_user if settings.rate_limits_enabled else 0
            if not limit or not streams(data):
                return view(data, *args, **kwargs)
            release = current_app.extensions["stream_slots"].take(current_caller().user_id, limit)
            if release is None:
                RATE_LIMIT_HITS.labels(LIMIT_NAME).inc()
                raise TooManyStreams(limit)
            return held_until_closed(release, view, data, *args, **kwargs)

        return guarded

    return decorate
