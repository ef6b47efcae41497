from sqlalchemy import func, select

from app.models import OrgMember


def add(client, org, manager, member, role="MEMBER"):
    return client.post(f"/orgs/{org['id']}/members", json={"email": member.email, "role": role}, headers=manager.headers)


def test_creator_becomes_owner_and_sees_the_org(client, user, org):
    assert org["name"] == "Acme" and org["role"] == "OWNER"
    assert [o["id"] for o in client.get("/orgs", headers=user.headers).get_json()] == [org["id"]]
    assert client.get(f"/orgs/{org['id']}", headers=user.headers).get_json()["role"] == "OWNER"
    members = client.get(f"/orgs/{org['id']}/members", headers=user.headers).get_json()
    assert [(m["userId"], m["role"]) for m in members] == [(user.id, "OWNER")]


def test_org_name_is_required(client, user):
    response = client.post("/orgs", json={"name": ""}, headers=user.headers)
    assert response.status_code == 400 and "name" in response.get_json()["error"]["details"]


def test_owner_adds_members_and_they_see_the_org(client, auth, user, org):
    member = auth.register()
    response = add(client, org, user, member, "ADMIN")
    assert response.status_code == 201
    assert response.get_json()["role"] == "ADMIN" and response.get_json()["email"] == member.email
    assert client.get("/orgs", headers=member.headers).get_json()[0]["role"] == "ADMIN"


def test_adding_twice_is_409_and_unknown_email_is_404(client, auth, user, org, db_session):
    member = auth.register()
    assert add(client, org, user, member).status_code == 201
    assert add(client, org, user, member).status_code == 409
    response = client.post(f"/orgs/{org['id']}/members", json={"email": "ghost@example.com"}, headers=user.headers)
    assert response.status_code == 404
    assert db_session.scalar(select(func.count()).select_from(OrgMember)) == 2


def test_plain_members_cannot_manage_members(client, auth, user, org):
    member, other = auth.register(), auth.register()
    add(client, org, user, member)
    assert add(client, org, member, other).status_code == 403
    assert client.delete(f"/orgs/{org['id']}/members/{user.id}", headers=member.headers).status_code == 403


def test_admin_cannot_grant_or_remove_owner(client, auth, user, org):
    admin, other = auth.register(), auth.register()
    add(client, org, user, admin, "ADMIN")
    assert add(client, org, admin, other, "OWNER").status_code == 403
    assert client.delete(f"/orgs/{org['id']}/members/{user.id}", headers=admin.headers).status_code == 403
    assert add(client, org, admin, other, "MEMBER").status_code == 201


def test_last_owner_cannot_be_removed_but_a_second_owner_allows_it(client, auth, user, org):
    response = client.delete(f"/orgs/{org['id']}/members/{user.id}", headers=user.headers)
    assert response.status_code == 409
    assert "last OWNER" in response.get_json()["error"]["message"]
    second = auth.register()
    add(client, org, user, second, "OWNER")
    assert client.delete(f"/orgs/{org['id']}/members/{user.id}", headers=second.headers).status_code == 204
    assert client.get(f"/orgs/{org['id']}", headers=user.headers).status_code == 404


def test_members_may_leave(client, auth, user, org):
    member = auth.register()
    add(client, org, user, member)
    assert client.delete(f"/orgs/{org['id']}/members/{member.id}", headers=member.headers).status_code == 204
    assert client.get("/orgs", headers=member.headers).get_json() == []


def test_removing_a_non_member_is_404(client, auth, user, org):
    stranger = auth.register()
    assert client.delete(f"/orgs/{org['id']}/members/{stranger.id}", headers=user.headers).status_code == 404


def test_two_owners_removing_each_other_at_once_leave_one_owner(app, auth, db_session):
    """20 orgs, each with two OWNERs who remove each other at the same moment: every org keeps an OWNER."""
    import threading

    pairs = []
    for i in range(20):
        first, second = auth.register(), auth.register()
        client = app.test_client()
        org = client.post("/orgs", json={"name": f"race {i}"}, headers=first.headers).get_json()
        assert add(client, org, first, second, "OWNER").status_code == 201
        pairs.append((org, first, second))
    barrier = threading.Barrier(40)
    statuses = []

    def remove(org, caller, target):
        client = app.test_client()
        barrier.wait()
        response = client.delete(f"/orgs/{org['id']}/members/{target.id}", headers=caller.headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=remove, args=(org, a, b)) for org, first, second in pairs
               for a, b in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # One of each pair wins; the other finds the last OWNER (409), or that it is no longer a member itself (404).
    assert len(statuses) == 40 and set(statuses) <= {204, 404, 409} and statuses.count(204) == 20
    owners = db_session.execute(select(OrgMember.org_id, func.count()).where(OrgMember.role == "OWNER")
                                .group_by(OrgMember.org_id)).all()
    assert len(owners) == 20 and all(count == 1 for _, count in owners)
