"""The one JSON error contract: {"error": {"code", "message", "details"}} for every 4xx/5xx."""
import logging
import re

from flask import Flask, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .db import get_session

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client should see, with a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}
        self.headers = headers or {}


class NotFound(ApiError):
    def __init__(self, what: str = "Resource"):
        super().__init__(404, "not_found", f"{what} not found")


class Conflict(ApiError):
    def __init__(self, message: str, details: dict | None = None):
        super().__init__(409, "conflict", message, details)


class Forbidden(ApiError):
    def __init__(self, message: str, code: str = "forbidden"):
        super().__init__(403, code, message)


class Unauthorized(ApiError):
    def __init__(self, message: str, code: str):
        super().__init__(401, code, message)


class Overloaded(ApiError):
    """Out of capacity for now: a 503 that tells the client when to try again."""

    def __init__(self, code: str, message: str):
        super().__init__(503, code, message, headers=retry_after())


def retry_after(seconds: int | None = None) -> dict[str, str]:
    """The `Retry-After` header of every refusal that says when to come back: `seconds`, or RETRY_AFTER_SECONDS."""
    return {"Retry-After": str(current_app.config["SETTINGS"].retry_after_seconds if seconds is None else seconds)}


class DatabaseUnavailable(ApiError):
    """The database refused or dropped the connection; a response adds Retry-After (a stream's event cannot)."""

    def __init__(self):
        super().__init__(503, "database_unavailable", "The database is unavailable, try again later")


def database_unreachable(exc: BaseException) -> bool:
    """An outage (server down, connection lost, lock or statement timeout), not a fault of the request.

    A lost connection may surface as an InterfaceError ("connection already
    closed"); SQLAlchemy marks those as invalidated, and drops the pool's other
    connections with it, so requests after the database's return open new ones.
    """
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


class ValidationFailed(ApiError):
    def __init__(self, message: str, details: dict):
        super().__init__(400, "validation_error", message, details)


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """The contract itself, for JSON responses and for anything else that reports an error (SSE, WSGI)."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status: int, code: str, message: str, details: dict | None = None, headers=None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def _code_for(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def handle_api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)


def handle_http_exception(exc: HTTPException):
    # webargs (through flask-smorest) attaches per-field messages to the exception it aborts with.
    messages = getattr(exc, "data", {}).get("messages")
    if messages:
        details = messages.get("json", messages) if isinstance(messages, dict) else messages
        if not isinstance(details, dict):
            details = {"_schema": details}
        if "Invalid JSON body." in details.get("_schema", []):
            return error_response(400, "malformed_json", "The request body is not valid JSON", details)
        return error_response(exc.code or 400, "validation_error", "The request has invalid fields", details)
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
    return error_response(exc.code or 500, _code_for(exc), exc.description or exc.name, headers=headers)


def handle_integrity_error(exc: IntegrityError):
    get_session().rollback()
    log.info("integrity error: %s", type(exc.orig).__name__)
    return error_response(409, "conflict", "The request conflicts with existing data")


def handle_database_error(exc: DBAPIError):
    if not database_unreachable(exc):
        return handle_unexpected(exc)
    _rollback_quietly()
    # The driver's message names the host and port (and may echo the URL): the class name says enough.
    log.error("database unavailable: %s on %s %s", type(exc.orig).__name__, request.method, request.path)
    error = DatabaseUnavailable()
    return error_response(error.status, error.code, error.message, headers=retry_after())


def _rollback_quietly() -> None:
    """End the session's transaction; on a connection that is already gone that fails too, and changes nothing."""
    try:
        get_session().rollback()
    except DBAPIError:
        pass


def handle_pool_timeout(_exc: PoolTimeout):
    # Every pooled connection stayed busy for DB_POOL_TIMEOUT seconds: shed this request.
    get_session().rollback()
    log.warning("database pool exhausted: no connection within the pool timeout")
    return error_response(503, "database_busy", "The database is busy, try again shortly", headers=retry_after())


def handle_unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "An unexpected error occurred")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_pool_timeout)
    app.register_error_handler(Exception, handle_unexpected)
