"""API keys as credentials: their format, their hash, and finding the live key behind a secret.

Only a SHA-256 of each key is stored. A fast hash is right here, unlike for
passwords: a key is 32 random bytes, so there is nothing to guess and no
dictionary to slow down, and a per-request lookup by an indexed hash costs
one cheap query instead of a deliberately slow scrypt.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Connection, Row, bindparam, exists, or_, select

from ..models import ApiKey, OrgMember, User, utcnow

KEY_PREFIX = "sk-gw-"
KEY_BYTES = 32
DISPLAY_CHARS = 12  # "sk-gw-" and six random characters: enough to tell keys apart, far too few to use
# last_used_at is written at most this often per key, so a busy key does not cost a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_CHARS]


_keys = ApiKey.__table__
# Built once, on the table: this runs on every request made with an API key, and building the statement
# and loading an ORM object cost more CPU than the indexed lookup itself.
_LIVE_KEY = select(_keys.c.id, _keys.c.user_id, _keys.c.org_id, _keys.c.scopes, _keys.c.models,
                   _keys.c.requests_per_minute, _keys.c.monthly_tokens, _keys.c.monthly_cost_usd,
                   _keys.c.last_used_at).where(
    _keys.c.key_hash == bindparam("key_hash"),
    or_(_keys.c.expires_at.is_(None), _keys.c.expires_at > bindparam("now", type_=_keys.c.expires_at.type)),
    # A key of an org works only while its user is still a member of that org.
    or_(_keys.c.org_id.is_(None), exists(select(OrgMember.id).where(OrgMember.org_id == _keys.c.org_id,
                                                                    OrgMember.user_id == _keys.c.user_id))),
    # A disabled account's keys stop with its tokens: disabling is how an operator locks someone out.
    exists(select(User.id).where(User.id == _keys.c.user_id, User.disabled_at.is_(None))),
)
# Conditional, so that of the workers racing past the staleness check only one writes.
_NOTE_USE = (_keys.update()
             .where(_keys.c.id == bindparam("key_id"),
                    or_(_keys.c.last_used_at.is_(None), _keys.c.last_used_at <= bindparam("stale_before")))
             .values(last_used_at=bindparam("now")))


def find_live_key(*, connection: Connection, secret: str) -> Row | None:
    """The key behind `secret` if it exists, has not expired, its user is not disabled, and its org (if any)
    still has its user: a row of the columns a request needs (id, user_id, org_id, scopes, models and limits)."""
    now = utcnow()
    key = connection.execute(_LIVE_KEY, {"key_hash": hash_secret(secret), "now": now}).first()
    stale_before = now - LAST_USED_RESOLUTION
    if key is not None and (key.last_used_at is None or key.last_used_at <= stale_before):
        connection.execute(_NOTE_USE, {"key_id": key.id, "stale_before": stale_before, "now": now})
    # End the transaction here, written or not (a no-op in PostgreSQL's autocommit): the caller goes on to
    # wait for a model for as long as it takes.
    connection.commit()
    return key