"""API keys as credentials: their format, their hash, and finding the live key behind a secret.

Only a SHA-256 of each key is stored. A fast hash is right here, unlike for
passwords: a key is 32 random bytes, so there is nothing to guess and no
dictionary to slow down, and a per-request lookup by an indexed hash costs
one cheap query instead of a deliberately slow scrypt.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

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


def find_live_key(*, session: Session, secret: str) -> ApiKey | None:
    """The key behind `secret` if it exists, has not expired, its user is not disabled, and its org (if any) still has its user."""
    now = utcnow()
    still_a_member = exists(select(OrgMember.id).where(OrgMember.org_id == ApiKey.org_id,
                                                       OrgMember.user_id == ApiKey.user_id))
    key = session.scalar(select(ApiKey).where(
        ApiKey.key_hash == hash_secret(secret),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        or_(ApiKey.org_id.is_(None), still_a_member),
        # A disabled account's keys stop with its tokens: disabling is how an operator locks someone out.
        exists(select(User.id).where(User.id == ApiKey.user_id, User.disabled_at.is_(None))),
    ))
    if key is not None:
        _note_use(session, key, now)
    # End the read transaction here, written or not: on /v1 nothing else touches the
    # database, and the caller goes on to wait for a model for as long as it takes,
    # which would keep this pooled connection idle in transaction all that while.
    session.commit()
    return key


def _note_use(session: Session, key: ApiKey, now: datetime) -> None:
    stale_before = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > stale_before:
        return
    # Conditional, so that of the workers racing past the check above only one writes.
    session.execute(update(ApiKey).where(
        ApiKey.id == key.id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale_before),
    ).values(last_used_at=now).execution_options(synchronize_session=False))

