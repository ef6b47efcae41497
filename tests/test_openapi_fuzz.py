"""Schemathesis against a real gateway: every operation of /openapi.json, every check, a real JWT.

The quick mode runs in the normal suite (a few examples per operation, fixed seed);
`FUZZ_EXAMPLES=500 python -m pytest tests/test_openapi_fuzz.py -n 0` is the long one
(docs/api.md, "The API document"; the README's "Tests"). Each check left out for an operation says why, in CONFIG.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.client import PASSWORD
from tests.support.gateway import gateway, logged_in

# A real gateway and a thousand requests: more than the suite's 180 s when the machine is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
SEED = int(os.environ.get("FUZZ_SEED", "20251"))

CONFIG = """
# Every check, for every operation, unless an operation below says why not.
[checks]
enabled = true
# 413 is how the gateway refuses a body over MAX_CONTENT_LENGTH, which a fuzzer's large bodies can be.
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                                             "428", "429", "5xx"]

[generation]
# The gateway refuses NUL in any text (strict JSON bodies, URLs), as the API description says;
# tests/http/test_crafted_input.py covers it.
allow-x00 = false
database = "none"

# Real resources for the path parameters, so requests reach the code behind the 404. Filters of one entry
# are alternatives (any of them selects an operation), so each entry names its operations.
[[operations]]
include-name = ["GET /conversations/{{id}}", "GET /conversations/{{id}}/messages", "POST /conversations/{{id}}/messages",
                "POST /conversations/{{id}}/stream"]
parameters = {{ "path.id" = "{conversation}" }}

[[operations]]
include-name = ["GET /orgs/{{id}}", "GET /orgs/{{id}}/members", "POST /orgs/{{id}}/members", "GET /orgs/{{id}}/api-keys",
                "DELETE /orgs/{{id}}/members/{{user_id}}", "GET /orgs/{{id}}/usage", "GET /orgs/{{id}}/budget",
                "PUT /orgs/{{id}}/budget"]
parameters = {{ "path.id" = "{org}", "path.user_id" = "{user}" }}

[[operations]]
include-name = "POST /auth/refresh"
headers = {{ Authorization = "Bearer {refresh}" }}

# Ending sessions and changing passwords happen to someone else (one each: a logout would end the other's
# session too), or the rest of the run would get 401s.
[[operations]]
include-name = "POST /auth/logout"
headers = {{ Authorization = "Bearer {bystander}" }}

[[operations]]
include-name = "POST /auth/password"
headers = {{ Authorization = "Bearer {second_bystander}" }}

# Path parameters pinned to the resources above are not the ones a stateful scenario just created, and the
# scenario may have deleted them (a listed conversation, the member): a 404 there is the truth, not a lost resource.
[[operations]]
include-name = ["GET /conversations/{{id}}", "GET /conversations/{{id}}/messages", "POST /conversations/{{id}}/messages",
                "POST /conversations/{{id}}/stream", "DELETE /orgs/{{id}}/members/{{user_id}}"]
checks.ensure_resource_availability.enabled = false

# Schema-valid values the API must refuse, which no JSON schema can tell apart:
[[operations]]
include-name = ["GET /conversations", "GET /conversations/{{id}}/messages"]
# `cursor` is opaque: valid only if this API returned it.
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = ["GET /orgs/{{id}}/usage", "GET /auth/me/usage"]
# `from` must precede `to`: a relation between two parameters, which JSON Schema cannot state.
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = ["POST /api-keys", "POST /conversations"]
# `orgId` must be an organisation of the caller, and an API key's `expiresAt` in the future.
checks.positive_data_acceptance.enabled = false
"""


def test_schemathesis_finds_nothing_wrong(tmp_path, fake_llm, database_url):
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=2) as server:
        client = logged_in(server)
        refresh = client.post("/auth/login", json={"email": client.user["email"], "password": PASSWORD})
        config = tmp_path / "schemathesis.toml"
        org = client.post("/orgs", json={"name": "fuzz"}).json()["id"]
        # The member the fuzzer may remove is someone else: removing the caller would hide the org from
        # every later request, and the stateful phase would report the 404s as resources that vanished.
        member = logged_in(server).user
        assert client.post(f"/orgs/{org}/members", json={"email": member["email"]}).status_code == 201
        config.write_text(CONFIG.format(conversation=client.conversation(title="fuzz"), user=member["id"], org=org,
                                        refresh=refresh.json()["refreshToken"],
                                        bystander=logged_in(server).headers["Authorization"].split()[1],
                                        second_bystander=logged_in(server).headers["Authorization"].split()[1]))
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color", "run",
             f"{server.url}/openapi.json", "--header", f"Authorization: {client.headers['Authorization']}",
             "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1", "--output-truncate", "true",
             "--report", "junit", "--report-dir", str(tmp_path / "report")],
            cwd=tmp_path, capture_output=True, text=True, timeout=120 + 30 * EXAMPLES)
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "Tested:" in summary, summary
