"""API keys: issuing (the secret is returned once), listing and revoking, with the org managers' rights."""
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import keys
from ..errors import NotFound, ValidationFailed
from ..models import ApiKey, utcnow
from ..orgs.service import MANAGERS, find_membership, get_manager_membership, role_in


def create_key(*, session: Session, user_id: str, name: str, org_id: str | None = None,
               expires_at: datetime | None = None) -> dict:
    if org_id is not None and find_membership(session=session, org_id=org_id, user_id=user_id) is None:
        raise NotFound("Organisation")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("The request has invalid fields", {"expiresAt": ["Must be in the future."]})
    secret = keys.new_secret()
    key = ApiKey(user_id=user_id, org_id=org_id, name=name, prefix=keys.display_prefix(secret),
                 key_hash=keys.hash_secret(secret), expires_at=expires_at)
    session.add(key)
    session.commit()
    return {"key": secret, **{column: getattr(key, column) for column in
                              ("id", "name", "prefix", "user_id", "org_id", "created_at", "expires_at",
                               "last_used_at")}}


def list_own(*, session: Session, user_id: str) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.user_id == user_id)
                                .order_by(ApiKey.created_at, ApiKey.id)))


def list_for_org(*, session: Session, org_id: str, user_id: str) -> list[ApiKey]:
    """Every member's keys scoped to the org; OWNER/ADMIN only."""
    get_manager_membership(session=session, org_id=org_id, user_id=user_id)
    return list(session.scalars(select(ApiKey).where(ApiKey.org_id == org_id)
                                .order_by(ApiKey.created_at, ApiKey.id)))


def revoke(*, session: Session, key_id: str, user_id: str) -> None:
    """Its user, or an OWNER/ADMIN of the org it is scoped to; 404 for anyone else, so ids cannot be probed.

    The row goes: the next request with the key finds nothing, on any worker.
    """
    key = session.get(ApiKey, key_id)
    if key is None or (key.user_id != user_id and
                       role_in(session=session, org_id=key.org_id, user_id=user_id) not in MANAGERS):
        raise NotFound("API key")
    session.delete(key)
    session.commit()
