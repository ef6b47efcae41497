"""The documented error statuses and codes (ERROR_STATUSES) are exactly the ones the app raises.

The codes are read from the source: a literal `(status, "code", ...)` call
(ApiError, its subclasses' __init__, error_response), `Unauthorized`/`Forbidden`
with their `code=`, `Overloaded("code", ...)`, and classes that declare
`status` and `code` (provider errors); werkzeug's own errors for the statuses
checked before routing. /metrics (its own port and token) is not in the API
document, and a 500 is never documented per operation.
"""
import ast
from pathlib import Path

from werkzeug.exceptions import default_exceptions

from app.errors import _code_for
from app.http.openapi import ERROR_STATUSES, describe_status

APP = Path(__file__).resolve().parents[2] / "app"
NOT_THE_API = {APP / "metrics" / "exposition.py"}
BY_CLASS = {"Unauthorized": 401, "Forbidden": 403, "Overloaded": 503}
# Raised by werkzeug and Flask-Limiter, named by errors._code_for.
WERKZEUG_STATUSES = (404, 413, 415, 429)


def _constant(node, kind):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, kind) else None


def _codes_in(tree: ast.AST) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None)
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            if len(node.args) >= 2 and _constant(node.args[0], int) and _constant(node.args[1], str):
                found.add((node.args[0].value, node.args[1].value))
            elif name in ("Unauthorized", "Forbidden"):
                code = _constant(keywords.get("code"), str) or (len(node.args) > 1 and _constant(node.args[1], str))
                found.add((BY_CLASS[name], code or "forbidden"))
            elif name == "Overloaded":
                found.add((503, node.args[0].value))
        elif isinstance(node, ast.ClassDef):
            attributes = {target.id: statement.value for statement in node.body if isinstance(statement, ast.Assign)
                          for target in statement.targets if isinstance(target, ast.Name)}
            if _constant(attributes.get("status"), int) and _constant(attributes.get("code"), str):
                found.add((attributes["status"].value, attributes["code"].value))
    return found


def raised_codes() -> set[tuple[int, str]]:
    found = {(status, _code_for(default_exceptions[status]())) for status in WERKZEUG_STATUSES}
    for path in APP.rglob("*.py"):
        if path not in NOT_THE_API:
            found |= _codes_in(ast.parse(path.read_text()))
    return {(status, code) for status, code in found if status != 500}


def test_every_raised_code_is_documented_under_its_status_and_nothing_else_is():
    documented = {(status, code) for status, (_meaning, codes) in ERROR_STATUSES.items() for code in codes}
    raised = raised_codes()
    assert raised - documented == set(), "raised but not documented"
    assert documented - raised == set(), "documented but never raised"


def test_the_reader_finds_each_kind_of_raise():
    found = raised_codes()
    assert {(401, "missing_token"), (401, "invalid_api_key"), (403, "forbidden"), (403, "registration_closed"),
            (503, "chat_capacity"), (504, "provider_timeout"), (429, "too_many_requests")} <= found


def test_a_status_is_described_with_its_codes():
    assert describe_status(503) == ("Out of capacity for now; `Retry-After` says when to try again: "
                                    "`database_unavailable`, `database_busy`, `chat_capacity`")
