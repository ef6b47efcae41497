"""Keys in the usage API: each key's own report, org usage grouped by key, and an org key reads its org only."""
from tests.support.keys import ALL_SCOPES, bearer, create_key
from tests.orgs.test_orgs import add
from tests.usage.conftest import FREE, org_conversation

ASK = {"model": FREE, "messages": [{"role": "user", "content": "Hi"}]}


def usage(client, url, headers, **params):
    response = client.get(url, query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_keys_usage_is_its_own_and_readable_by_who_may_revoke_it(client, auth, user, org, fake_llm):
    member, outsider = auth.register(), auth.register()
    assert add(client, org, user, member).status_code == 201
    members_key = create_key(client, member, orgId=org["id"], scopes=ALL_SCOPES)
    personal = create_key(client, member, scopes=ALL_SCOPES)
    for key in (members_key, members_key, personal):
        assert client.post("/v1/chat/completions", json=ASK, headers=bearer(key["key"])).status_code == 200

    path = f"/api-keys/{members_key['id']}/usage"
    report = usage(client, path, member.headers, groupBy="model")
    assert report["totals"]["completions"] == 2 and report["totals"]["totalTokens"] == 42
    assert [(g["key"], g["completions"]) for g in report["groups"]] == [(FREE, 2)]
    assert usage(client, path, user.headers)["totals"]["completions"] == 2  # the org's OWNER
    assert usage(client, path, bearer(personal["key"]))["totals"]["completions"] == 2  # a usage:read key of its user
    assert client.get(path, headers=outsider.headers).status_code == 404
    assert client.get(f"/api-keys/{personal['id']}/usage", headers=user.headers).status_code == 404  # not the org's
    # A key scoped to the org reaches that org's keys only, not its user's personal one.
    assert client.get(f"/api-keys/{personal['id']}/usage", headers=bearer(members_key["key"])).status_code == 404


def test_org_usage_grouped_by_api_key(client, user, org, fake_llm):
    first, second = (create_key(client, user, orgId=org["id"]) for _ in range(2))
    for key in (first, second, second):
        assert client.post("/v1/chat/completions", json=ASK, headers=bearer(key["key"])).status_code == 200
    conversation = org_conversation(client, user, org)
    assert client.post(f"/conversations/{conversation}/messages", json={"content": "Hi"},
                       headers=user.headers).status_code == 200

    groups = usage(client, f"/orgs/{org['id']}/usage", user.headers, groupBy="apiKey")["groups"]

    assert sorted(((g["key"] or ""), g["completions"]) for g in groups) == sorted(
        [(first["id"], 1), (second["id"], 2), ("", 1)])  # null: with an access token


def test_an_org_keys_usage_routes_stay_in_its_org(client, user, org, fake_llm):
    other = client.post("/orgs", json={"name": "Other"}, headers=user.headers).get_json()
    key = bearer(create_key(client, user, orgId=org["id"], scopes=ALL_SCOPES)["key"])
    for org_id in (org["id"], other["id"]):
        own = create_key(client, user, orgId=org_id)
        assert client.post("/v1/chat/completions", json=ASK, headers=bearer(own["key"])).status_code == 200
    assert client.post("/v1/chat/completions", json=ASK, headers=bearer(create_key(client, user)["key"])).status_code == 200

    assert usage(client, f"/orgs/{org['id']}/usage", key)["totals"]["completions"] == 1
    assert client.get(f"/orgs/{other['id']}/usage", headers=key).status_code == 404
    assert usage(client, "/auth/me/usage", key)["totals"]["completions"] == 1  # this org's share of the user's
    assert usage(client, "/auth/me/usage", user.headers)["totals"]["completions"] == 3
