"""The one slot mechanism of admission control: at most `limit` holders per key, each released when done.

`LocalSlots` counts in this process; `RedisSlots` counts in Redis, shared by
every worker and instance. Both take a key and a limit and hand back a release
function, or None when the key is at its limit. The per-worker chat cap holds
one key in LocalSlots; the per-user stream cap holds one key per user in
whichever the storage setting names.

A slot is held for the whole response, not just the view: a streamed reply goes
on long after the view has returned, so `held_until_closed` releases it when
the WSGI server closes the response (the stream ended, or the client left).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from flask import current_app

log = logging.getLogger(__name__)

Release = Callable[[], None]
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
KEY_PREFIX = "gateway:streams:"  # only the per-user stream cap counts in Redis

# KEYS[1]: the key's set; ARGV: now, expiry seconds, cap, slot id. 1 when the slot was taken.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class LocalSlots:
    """Slots per key in this process."""

    def __init__(self):
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, key: str, limit: int) -> Release | None:
        with self._lock:
            if self._open[key] >= limit:
                return None
            self._open[key] += 1
        return lambda: self._give_back(key)

    def _give_back(self, key: str) -> None:
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]


class RedisSlots:
    """Slots per key in Redis, shared by every worker and instance; this process's count if Redis fails.

    Each slot is one member of a sorted set per key, scored with its start time,
    added only while the set is under the limit (one Lua script, so the check and
    the add are atomic). A worker killed while holding slots never releases them,
    so every member also expires on its own after `expiry_seconds`; a counter with
    one TTL would only forget them once the key stopped being used altogether.
    """

    def __init__(self, url: str, expiry_seconds: int):
        import redis

        self._errors = redis.RedisError
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._take_slot = self._client.register_script(_TAKE_SLOT)
        self._expiry, self._fallback = expiry_seconds, LocalSlots()

    def take(self, key: str, limit: int) -> Release | None:
        name, slot = KEY_PREFIX + key, uuid.uuid4().hex
        try:
            taken = self._take_slot(keys=[name], args=[time.time(), self._expiry, limit, slot])
        except self._errors as exc:
            # Like the rate limits: a storage outage must not stop chats, so count here meanwhile.
            log.warning("stream limit storage unavailable (%s): counting in this process", type(exc).__name__)
            return self._fallback.take(key, limit)
        return (lambda: self._give_back(name, slot)) if taken else None

    def _give_back(self, name: str, slot: str) -> None:
        try:
            self._client.zrem(name, slot)
        except self._errors as exc:  # the slot expires on its own
            log.warning("stream limit storage unavailable (%s): a slot will expire instead", type(exc).__name__)


def slots_for(storage_uri: str, *, expiry_seconds: int) -> LocalSlots | RedisSlots:
    """Redis slots when the rate limits' storage is Redis; this process's otherwise (`memory://`)."""
    if storage_uri.startswith("redis+unix://"):
        storage_uri = "unix://" + storage_uri[len("redis+unix://"):]
    return RedisSlots(storage_uri, expiry_seconds) if storage_uri.startswith(REDIS_SCHEMES) else LocalSlots()


def held_until_closed(release: Release, view, *args, **kwargs):
    """The view's response, with `release` called when the WSGI server closes it (sent, or the client gone).

    If the view fails, `release` is called at once.
    """
    try:
        response = current_app.make_response(view(*args, **kwargs))
    except BaseException:
        release()
        raise
    response.call_on_close(release)
    return response
