"""Conversations and the one visibility rule every conversation route goes through."""
import base64
import binascii
import json
from datetime import datetime, timezone

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from ..http.caller import Caller
from ..llm import Catalogue
from ..errors import Forbidden, NotFound, ValidationFailed
from ..models import Conversation, Message, utcnow
from ..orgs.service import MANAGERS, member_org_ids, role_in
from ..usage.service import conversation_totals


def visible_to(caller: Caller):
    """The one visibility rule: an org's conversations to its current members, a personal one to its creator.

    Membership is read by the same query, every time: a member who leaves (or is
    removed) loses the org's conversations at once, those they created included.
    An API key scoped to an org sees that org's conversations and nothing else.
    """
    return _rule(caller.user_id, caller.org_id, scoped=caller.org_id is not None)


def _rule(user_id, org_id, *, scoped: bool):
    in_a_member_org = Conversation.org_id.in_(member_org_ids(user_id))
    if scoped:
        return and_(Conversation.org_id == org_id, in_a_member_org)
    return or_(and_(Conversation.org_id.is_(None), Conversation.user_id == user_id), in_a_member_org)


def _by_id_if_visible(*columns, scoped: bool):
    return select(*columns).where(Conversation.id == bindparam("conversation_id"),
                                  _rule(bindparam("user_id"), bindparam("org_id"), scoped=scoped))


# The same rule, built once per kind of caller (org-scoped API key or not): building the statement each time
# cost as much CPU as running it.
_GET_VISIBLE = {scoped: _by_id_if_visible(Conversation, scoped=scoped) for scoped in (False, True)}
# What a chat turn needs of the conversation, as plain columns: on the hot path the ORM's object loading
# cost more CPU than the query, and a turn changes nothing on the object.
_conversations = Conversation.__table__
_GET_VISIBLE_SETTINGS = {scoped: _by_id_if_visible(
    _conversations.c.id, _conversations.c.org_id, _conversations.c.model, _conversations.c.temperature,
    _conversations.c.top_p, _conversations.c.system_prompt, scoped=scoped) for scoped in (False, True)}


def _visible_params(conversation_id: str, caller: Caller) -> dict:
    scoped = caller.org_id is not None
    return {"conversation_id": conversation_id, "user_id": caller.user_id,
            **({"org_id": caller.org_id} if scoped else {})}


def get_visible(*, session: Session, conversation_id: str, caller: Caller) -> Conversation:
    """The conversation if the caller may see it, else 404 (never 403: ids cannot be probed)."""
    conversation = session.scalar(_GET_VISIBLE[caller.org_id is not None], _visible_params(conversation_id, caller))
    if conversation is None:
        raise NotFound("Conversation")
    return conversation


def get_visible_settings(*, session: Session, conversation_id: str, caller: Caller):
    """get_visible for a chat turn: the same rule and 404, and the row of what a turn uses (id, org_id, model,
    temperature, top_p, system_prompt) instead of an ORM object."""
    row = session.execute(_GET_VISIBLE_SETTINGS[caller.org_id is not None],
                          _visible_params(conversation_id, caller)).first()
    if row is None:
        raise NotFound("Conversation")
    return row


def get_manageable(*, session: Session, conversation_id: str, caller: Caller) -> Conversation:
    """Visible, and the caller is its creator or an OWNER/ADMIN of its org; members get 403."""
    conversation = get_visible(session=session, conversation_id=conversation_id, caller=caller)
    if conversation.user_id == caller.user_id:
        return conversation
    if role_in(session=session, org_id=conversation.org_id, user_id=caller.user_id) not in MANAGERS:
        raise Forbidden("Only the owner or an OWNER/ADMIN of its organisation can change this conversation")
    return conversation


def touch(conversation: Conversation) -> None:
    conversation.updated_at = utcnow()


def create(*, session: Session, catalogue: Catalogue, caller: Caller, data: dict) -> Conversation:
    """A personal conversation, or one of an org the caller belongs to; an org-scoped API key's are its org's."""
    if data.get("model"):
        catalogue.resolve_chat(data["model"])
    org_id = data.get("org_id") or caller.org_id
    if org_id is not None:
        if (caller.org_id not in (None, org_id)
                or role_in(session=session, org_id=org_id, user_id=caller.user_id) is None):
            raise ValidationFailed("You are not a member of that organisation", {"orgId": ["Unknown organisation."]})
    conversation = Conversation(**{**data, "org_id": org_id}, user_id=caller.user_id)
    session.add(conversation)
    session.commit()
    return conversation


def update(*, session: Session, catalogue: Catalogue, conversation_id: str, caller: Caller, data: dict) -> Conversation:
    conversation = get_manageable(session=session, conversation_id=conversation_id, caller=caller)
    if data.get("model"):
        catalogue.resolve_chat(data["model"])
    for name, value in data.items():
        setattr(conversation, name, value)
    touch(conversation)
    session.commit()
    return conversation


def delete(*, session: Session, conversation_id: str, caller: Caller) -> None:
    conversation = get_manageable(session=session, conversation_id=conversation_id, caller=caller)
    session.delete(conversation)
    session.commit()


def get_detail(*, session: Session, conversation_id: str, caller: Caller, limit: int) -> dict:
    """The conversation with its newest page of messages (older pages through `messagesNextCursor`) and its usage."""
    conversation = get_visible(session=session, conversation_id=conversation_id, caller=caller)
    page = message_page(session=session, conversation_id=conversation.id, limit=limit)
    return {**{c.key: getattr(conversation, c.key) for c in Conversation.__table__.columns},
            "messages": page["items"], "messages_next_cursor": page["next_cursor"],
            "usage": conversation_totals(session=session, conversation_id=conversation.id)}


def list_messages(*, session: Session, conversation_id: str, caller: Caller, limit: int, cursor: str | None = None) -> dict:
    conversation = get_visible(session=session, conversation_id=conversation_id, caller=caller)
    return message_page(session=session, conversation_id=conversation.id, limit=limit, cursor=cursor)


def message_page(*, session: Session, conversation_id: str, limit: int, cursor: str | None = None) -> dict:
    """Up to `limit` messages older than `cursor` (the newest without one), returned oldest first."""
    query = (select(Message).where(Message.conversation_id == conversation_id)
             .order_by(Message.created_at.desc(), Message.id.desc()))
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(or_(Message.created_at < created_at,
                                and_(Message.created_at == created_at, Message.id < last_id)))
    items = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(items[limit - 1].created_at, items[limit - 1].id) if len(items) > limit else None
    items = items[:limit]
    items.reverse()
    return {"items": items, "next_cursor": next_cursor}


def list_visible(*, session: Session, caller: Caller, limit: int, cursor: str | None = None, page: int | None = None) -> dict:
    """Newest updatedAt first; keyset pages through cursor, or numbered pages through page."""
    query = select(Conversation).where(visible_to(caller)).order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    if cursor:
        updated_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(Conversation.updated_at < updated_at, and_(Conversation.updated_at == updated_at, Conversation.id < last_id))
        )
    if page:
        query = query.offset((page - 1) * limit)
    items = list(session.scalars(query.limit(limit + 1)))
    has_more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1].updated_at, items[-1].id) if has_more else None
    return {"items": items, "next_cursor": next_cursor, "page": page, "limit": limit}


def encode_cursor(stamp: datetime, last_id: str) -> str:
    """Where a page ended: the last item's time and id, opaque to clients."""
    raw = json.dumps([stamp.isoformat(), last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Only what encode_cursor makes: a UTC instant and an id; anything else is a 400, never a database error."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, last_id = json.loads(raw)
        updated_at = datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None or not isinstance(last_id, str) or "\x00" in last_id:
            raise ValueError("not a cursor of ours")
        # Offsets such as +23:59 are valid ISO 8601 but not PostgreSQL: only UTC goes to the database.
        updated_at = updated_at.astimezone(timezone.utc)
    except (ValueError, TypeError, OverflowError, binascii.Error):
        raise ValidationFailed("The cursor is not valid", {"cursor": ["Not a cursor this API returned."]}) from None
    return updated_at, last_id
