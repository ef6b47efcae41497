"""Login sessions as token families: issuing, rotating and revoking tokens, and the per-request check.

Every access and refresh token descended from one login carries the id of its
family (the `fam` claim). Revocation state lives in the database, so it holds
at once on every worker and every instance: the check is one lookup by two
primary keys per request (the user, joined to the family), see `revocation`.

Refresh tokens rotate: each refresh spends the presented token and issues the
next one. The family row remembers the one unspent refresh token (`refresh_jti`);
the swap is a conditional UPDATE, so of two refreshes racing with the same token
exactly one wins. A spent token presented again means it was copied (or the
race was lost): the whole family is revoked, the legitimate holder's newer
tokens with it, and both parties must log in again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from jwt import PyJWTError
from flask_jwt_extended.exceptions import JWTExtendedException
from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from ..errors import Unauthorized, ValidationFailed
from ..models import TokenFamily, User, new_id, utcnow

log = logging.getLogger(__name__)

FAMILY_CLAIM = "fam"
REVOKED = "This session has ended (logged out, password changed, or a spent refresh token was reused): log in again"
DISABLED = "This account has been disabled"
GONE = "The account behind this token no longer exists"


def _refresh_lifetime() -> timedelta:
    return current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]


def _tokens(user_id: str, family: TokenFamily) -> dict:
    claims = {FAMILY_CLAIM: family.id}
    return {
        "access_token": create_access_token(identity=user_id, additional_claims=claims),
        # The jti is ours rather than the library's, so the family row can name the unspent token.
        "refresh_token": create_refresh_token(identity=user_id, additional_claims={**claims, "jti": family.refresh_jti}),
    }


def start(*, session: Session, user: User) -> dict:
    """A new login session for `user`: its access and refresh tokens, and the user."""
    now = utcnow()
    # A login clears the user's sessions that have expired, so the table holds live sessions only.
    session.execute(delete(TokenFamily).where(TokenFamily.user_id == user.id, TokenFamily.expires_at < now))
    family = TokenFamily(id=new_id(), user_id=user.id, refresh_jti=new_id(), expires_at=now + _refresh_lifetime())
    session.add(family)
    session.commit()
    return {**_tokens(user.id, family), "user": user}


def rotate(*, session: Session, claims: dict) -> dict:
    """Spend the refresh token of `claims` for a new access and refresh token; reuse revokes the family."""
    family_id, next_jti, now = claims[FAMILY_CLAIM], new_id(), utcnow()
    swapped = session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.refresh_jti == claims["jti"], TokenFamily.revoked_at.is_(None))
        .values(refresh_jti=next_jti, expires_at=now + _refresh_lifetime())
        .execution_options(synchronize_session=False)
    ).rowcount
    if swapped != 1:
        revoke(session=session, family_ids=[family_id])
        log.warning("a spent refresh token was presented again: session %s of user %s revoked",
                    family_id, claims["sub"])
        raise Unauthorized(REVOKED, code="token_revoked")
    session.commit()
    return _tokens(claims["sub"], TokenFamily(id=family_id, refresh_jti=next_jti))


def revoke(*, session: Session, family_ids=None, user_id: str | None = None, commit: bool = True) -> None:
    """Revoke the given sessions, or every session of `user_id`."""
    where = TokenFamily.id.in_(family_ids) if family_ids is not None else TokenFamily.user_id == user_id
    session.execute(update(TokenFamily).where(where, TokenFamily.revoked_at.is_(None)).values(revoked_at=utcnow())
                    .execution_options(synchronize_session=False))
    if commit:
        session.commit()


def end(*, session: Session, claims: dict, refresh_token: str | None) -> None:
    """Log out: the session of the access token, and the one of `refresh_token` when it is another."""
    families = [claims[FAMILY_CLAIM]]
    if refresh_token:
        families.append(_family_of_refresh_token(refresh_token, user_id=claims["sub"]))
    revoke(session=session, family_ids=families)


def _family_of_refresh_token(token: str, *, user_id: str) -> str:
    invalid = ValidationFailed("The refresh token is not valid for this account",
                               {"refreshToken": ["Not a refresh token of this account."]})
    try:
        # An expired refresh token is dead anyway; revoking its session as well does no harm.
        claims = decode_token(token, allow_expired=True)
    except (PyJWTError, JWTExtendedException):
        raise invalid from None
    if claims.get("type") != "refresh" or claims.get("sub") != user_id or not claims.get(FAMILY_CLAIM):
        raise invalid
    return claims[FAMILY_CLAIM]


# Built once: this runs on every JWT request, and building a statement costs more than the query on SQLite.
# On the tables, not the mapped classes: a Core statement skips the ORM's compile and result steps, which cost
# more CPU than the query itself.
_users, _families = User.__table__, TokenFamily.__table__
_REVOCATION = (select(_users.c.disabled_at, _families.c.revoked_at, _families.c.id)
               .select_from(_users.outerjoin(_families, and_(_families.c.id == bindparam("family_id"),
                                                             _families.c.user_id == _users.c.id)))
               .where(_users.c.id == bindparam("user_id")))


def revocation(*, session: Session, claims: dict) -> str | None:
    """Why the token of `claims` no longer works, or None when it does: the hot path of every JWT request.

    One query by primary keys: the user row (gone? disabled?) with its family
    row joined (unknown? revoked?). Tokens without a family (issued before
    families existed, or not by us) cannot be revoked, so they are refused.
    """
    family_id = claims.get(FAMILY_CLAIM)
    if not isinstance(family_id, str):
        return REVOKED
    row = session.execute(_REVOCATION, {"family_id": family_id, "user_id": claims.get("sub")}).first()
    if row is None:
        return GONE
    if row.disabled_at is not None:
        return DISABLED
    if row.id is None or row.revoked_at is not None:
        return REVOKED
    return None
