"""Organisations and their members; the membership checks every org route relies on."""
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from ..auth.service import find_by_email
from ..http.caller import Caller
from ..errors import Conflict, Forbidden, NotFound
from ..models import Org, OrgMember, OrgRole

MANAGERS = {OrgRole.OWNER, OrgRole.ADMIN}


def org_view(org: Org, role: OrgRole) -> dict:
    return {"id": org.id, "name": org.name, "created_at": org.created_at, "role": role}


def find_membership(*, session: Session, org_id: str | None, user_id: str, with_org: bool = False) -> OrgMember | None:
    """A user's membership of an org (its role), or None: the one membership query."""
    if org_id is None:
        return None
    query = select(OrgMember).where(OrgMember.org_id == org_id, OrgMember.user_id == user_id)
    if with_org:
        query = query.options(joinedload(OrgMember.org))
    return session.scalar(query)


def role_in(*, session: Session, org_id: str | None, user_id: str) -> OrgRole | None:
    membership = find_membership(session=session, org_id=org_id, user_id=user_id)
    return membership.role if membership else None


def get_membership(*, session: Session, org_id: str, user_id: str) -> OrgMember:
    """The caller's membership of an org; outsiders get 404 so org ids cannot be probed."""
    membership = find_membership(session=session, org_id=org_id, user_id=user_id, with_org=True)
    if membership is None:
        raise NotFound("Organisation")
    return membership


def check_reach(caller: Caller, org_id: str | None) -> None:
    """An API key scoped to an org reaches that org and nothing else: any other is 404, as for outsiders."""
    if caller.org_id is not None and caller.org_id != org_id:
        raise NotFound("Organisation")


def get_manager_membership(*, session: Session, org_id: str, user_id: str) -> OrgMember:
    membership = get_membership(session=session, org_id=org_id, user_id=user_id)
    if membership.role not in MANAGERS:
        raise Forbidden("Only an OWNER or ADMIN of this organisation can do that")
    return membership


def member_org_ids(user_id: str):
    """A subquery of the ids of the orgs a user belongs to."""
    return select(OrgMember.org_id).where(OrgMember.user_id == user_id).scalar_subquery()


def create_org(*, session: Session, user_id: str, name: str) -> dict:
    org = Org(name=name)
    org.members.append(OrgMember(user_id=user_id, role=OrgRole.OWNER))
    session.add(org)
    session.commit()
    return org_view(org, OrgRole.OWNER)


def list_orgs(*, session: Session, user_id: str) -> list[dict]:
    rows = session.execute(
        select(Org, OrgMember.role).join(OrgMember).where(OrgMember.user_id == user_id).order_by(Org.created_at, Org.id)
    )
    return [org_view(org, role) for org, role in rows]


def get_org(*, session: Session, org_id: str, user_id: str) -> dict:
    membership = get_membership(session=session, org_id=org_id, user_id=user_id)
    return org_view(membership.org, membership.role)


def list_members(*, session: Session, org_id: str, user_id: str) -> list[OrgMember]:
    get_membership(session=session, org_id=org_id, user_id=user_id)
    return list(
        session.scalars(
            select(OrgMember).options(joinedload(OrgMember.user)).where(OrgMember.org_id == org_id).order_by(OrgMember.created_at)
        )
    )


def add_member(*, session: Session, org_id: str, user_id: str, email: str, role: OrgRole) -> OrgMember:
    manager = get_manager_membership(session=session, org_id=org_id, user_id=user_id)
    if role is OrgRole.OWNER and manager.role is not OrgRole.OWNER:
        raise Forbidden("Only an OWNER can make someone an OWNER")
    user = find_by_email(session=session, email=email)
    if user is None:
        raise NotFound("User with this email")
    if find_membership(session=session, org_id=org_id, user_id=user.id) is not None:
        raise Conflict("This user is already a member", {"email": ["Already a member."]})
    member = OrgMember(org_id=org_id, user_id=user.id, role=role, user=user)
    session.add(member)
    session.commit()
    return member


def remove_member(*, session: Session, org_id: str, user_id: str, member_user_id: str) -> None:
    """Managers remove members; anyone may leave; the last OWNER always stays."""
    caller = get_membership(session=session, org_id=org_id, user_id=user_id)
    if member_user_id != user_id and caller.role not in MANAGERS:
        raise Forbidden("Only an OWNER or ADMIN of this organisation can do that")
    _lock_memberships(session, org_id)
    # Read again under the lock: another removal may have committed since the check above.
    caller = find_membership(session=session, org_id=org_id, user_id=user_id)
    target = find_membership(session=session, org_id=org_id, user_id=member_user_id)
    if caller is None:
        raise NotFound("Organisation")
    if target is None:
        raise NotFound("Member")
    if target.role is OrgRole.OWNER:
        if caller.role is not OrgRole.OWNER:
            raise Forbidden("Only an OWNER can remove an OWNER")
        owners = session.scalar(select(func.count()).select_from(OrgMember)
                                .where(OrgMember.org_id == org_id, OrgMember.role == OrgRole.OWNER))
        if owners <= 1:
            raise Conflict("The last OWNER of an organisation cannot be removed")
    session.delete(target)
    session.commit()


def _lock_memberships(session: Session, org_id: str) -> None:
    """Serialise membership changes of one org on its row, on both databases.

    A no-op UPDATE takes PostgreSQL's row lock and SQLite's write lock, so of two
    OWNERs removing each other at once the second waits, then reads what the
    first committed. (SQLite reads outside a transaction otherwise, and a
    SELECT ... FOR UPDATE means nothing to it.)
    """
    session.execute(update(Org).where(Org.id == org_id).values(name=Org.name))
    session.expire_all()
