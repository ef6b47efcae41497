"""OpenAI's error dialect for /v1, so SDKs raise their usual exception classes.

Everything below the routes (authentication, validation, the model layer, the
catch-all 500) reports errors in our own contract; on the way out of the /v1
blueprint each one is re-shaped to `{"error": {"message", "type", "param",
"code"}}`, keeping its status and code. The rest of the API is untouched.
"""
from __future__ import annotations

import json

from flask import Response

from ..errors import ApiError

TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}


class ModelNotFound(ApiError):
    """OpenAI's answer to an unknown model: 404 model_not_found (openai.NotFoundError)."""

    def __init__(self, name: str):
        super().__init__(404, "model_not_found",
                         f"The model `{name}` does not exist or you do not have access to it.", {"param": "model"})


def openai_error(status: int, code: str | None, message: str, param: str | None = None) -> dict:
    kind = "server_error" if status >= 500 else TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def from_contract(status: int, error: dict) -> dict:
    details, message = error.get("details") or {}, error.get("message", "")
    param = details.get("param")
    if param is None and error.get("code") == "validation_error" and details:
        param, problem = next(iter(details.items()))  # OpenAI names the one parameter at fault
        message = f"Invalid value for '{param}': {_first_message(problem)}"
    shaped = openai_error(status, error.get("code"), message, param)
    if "attempts" in details:
        # Who was tried and why each failed: a field OpenAI's shape lacks, which SDKs keep in the error's body.
        shaped["error"]["attempts"] = details["attempts"]
    return shaped


def _first_message(problem) -> str:
    while isinstance(problem, (dict, list)) and problem:
        problem = next(iter(problem.values())) if isinstance(problem, dict) else problem[0]
    return str(problem)


def in_openai_shape(response: Response) -> Response:
    """after_request of the /v1 blueprint: our JSON error contract becomes OpenAI's."""
    if response.status_code < 400 or not response.is_json:
        return response
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "details" in error:
        response.set_data(json.dumps(from_contract(response.status_code, error)))
    return response
