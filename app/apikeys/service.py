"""API keys: issuing (the secret is returned once), listing and revoking, with the org managers' rights; their usage."""
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import keys
from ..http.caller import Caller
from ..errors import NotFound, ValidationFailed
from ..llm import Catalogue
from ..models import API_KEY_SCOPES, ApiKey, utcnow
from ..orgs.service import MANAGERS, find_membership, get_manager_membership, role_in
from ..usage import service as usage

SHOWN = ("id", "name", "prefix", "user_id", "org_id", "created_at", "expires_at", "last_used_at", "scopes", "models",
         "requests_per_minute", "monthly_tokens", "monthly_cost_usd")


def create_key(*, session: Session, catalogue: Catalogue, user_id: str, name: str, scopes: list[str],
               org_id: str | None = None, expires_at: datetime | None = None, models: list[str] | None = None,
               requests_per_minute: int | None = None, monthly_tokens: int | None = None,
               monthly_cost_usd: Decimal | None = None) -> dict[str, Any]:
    if org_id is not None and find_membership(session=session, org_id=org_id, user_id=user_id) is None:
        raise NotFound("Organisation")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("The request has invalid fields", {"expiresAt": ["Must be in the future."]})
    unknown = sorted({model for model in models or () if model not in catalogue.names})
    if unknown:
        raise ValidationFailed("The request has invalid fields",
                               {"models": [f"Not served here: {', '.join(unknown)}."]})
    secret = keys.new_secret()
    key = ApiKey(user_id=user_id, org_id=org_id, name=name, prefix=keys.display_prefix(secret),
                 key_hash=keys.hash_secret(secret), expires_at=expires_at,
                 scopes=[scope for scope in API_KEY_SCOPES if scope in scopes],
                 models=sorted(set(models)) if models is not None else None, requests_per_minute=requests_per_minute,
                 monthly_tokens=monthly_tokens, monthly_cost_usd=monthly_cost_usd)
    session.add(key)
    session.commit()
    return {"key": secret, **{column: getattr(key, column) for column in SHOWN}}


def usage_of(*, session: Session, key_id: str, caller: Caller, **report: Any) -> dict[str, Any]:
    """A key's usage, for whoever may revoke it; an org-scoped key's caller reaches only that org's keys."""
    key = session.get(ApiKey, key_id)
    if key is None or not _manages(session, key, caller):
        raise NotFound("API key")
    return usage.key_usage(session=session, api_key_id=key.id, **report)


def _manages(session: Session, key: ApiKey, caller: Caller) -> bool:
    """Its user, or an OWNER/ADMIN of the org it is scoped to; an org-scoped caller, within that org only."""
    if caller.org_id is not None and caller.org_id != key.org_id:
        return False
    return key.user_id == caller.user_id or role_in(session=session, org_id=key.org_id,
                                                    user_id=caller.user_id) in MANAGERS


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
    if key is None or not _manages(session, key, Caller(user_id=user_id)):
        raise NotFound("API key")
    session.delete(key)
    session.commit()
