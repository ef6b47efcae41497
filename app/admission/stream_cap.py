"""A cap on the chat streams one user holds open at once (CHAT_MAX_STREAMS_PER_USER, 0: none).

Where the count lives follows RATE_LIMIT_STORAGE_URI (slots.slots_for). With
Redis it is shared by every worker and instance; a slot is released when the
WSGI server closes the response: the stream ended, or the client left (the
next heartbeat write finds out). A worker killed mid-stream never releases its
slots, so they expire on their own once older than any stream can last
(PROVIDER_TOTAL_TIMEOUT plus a margin).

With any other storage (`memory://`) each worker process counts on its own: with
N workers a user may hold up to N times the cap. RATE_LIMITS_ENABLED=false turns
the cap off with the rate limits. Over the cap, a stream is
refused with 429 `too_many_streams` and Retry-After, counted in
`rate_limit_hits_total{limit="chat_streams_user"}`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Flask, current_app

from ..errors import ApiError, retry_after
from ..http.caller import current_caller
from ..metrics.definitions import RATE_LIMIT_HITS
from .slots import held_until_closed, slots_for

LIMIT_NAME = "chat_streams_user"
# Beyond PROVIDER_TOTAL_TIMEOUT a stream still sends its last event and stores the reply.
EXPIRY_MARGIN_SECONDS = 60


class TooManyStreams(ApiError):
    def __init__(self, limit: int):
        super().__init__(429, "too_many_streams",
                         f"You already have {limit} chat streams open: close one, or wait for one to finish",
                         {"limit": limit}, headers=retry_after())


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    expiry = int(settings.provider_total_timeout) + EXPIRY_MARGIN_SECONDS
    app.extensions["stream_slots"] = slots_for(settings.rate_limit_storage_uri, expiry_seconds=expiry)


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
