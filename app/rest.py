"""Shared building blocks for resource blueprints: camelCase schemas, 400 on bad fields, authentication.

The Blueprint also documents each operation's error responses, derived from
what the route declares, so the OpenAPI document lists what a client can
actually get back and a route added later gets its errors documented without
writing them down.
"""
import functools
from datetime import timezone

from apispec.ext.marshmallow import MarshmallowPlugin as BaseMarshmallowPlugin
from flask import current_app

from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import deepupdate
from flask_jwt_extended import jwt_required
from marshmallow import Schema, fields
from marshmallow.decorators import VALIDATES_SCHEMA
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from . import strict_json


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """Bodies parse as strict JSON: duplicate keys, NUL, lone surrogates and deep nesting are 400s."""
        if not is_json_request(req):
            return core.missing
        return strict_json.loads(req.get_data(cache=True))


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable and machine-readable, e.g. `not_found`"})
    message = fields.String(required=True, metadata={"description": "For people; may change"})
    details = fields.Dict(required=True, metadata={"description": "Per-field problems of a `validation_error` "
                                                                  "(field name to messages); often empty"})


class ErrorSchema(Schema):
    """The one JSON error contract of every 4xx/5xx (app/errors.py)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


# What each error status means on this gateway, and the `code`s that come with it.
ERROR_STATUSES = {
    400: "Invalid request: `validation_error` (per-field `details`) or `malformed_json`",
    401: "Missing, invalid or expired credential: `unauthorized`, `invalid_token`, `token_expired`, "
         "`invalid_api_key`, `api_key_not_accepted`",
    403: "Authenticated, but not allowed: `forbidden` (the caller's role), `registration_closed`, "
         "`insufficient_scope` (an API key without the route's scope, named in `details.scope`), "
         "`model_not_allowed` (a model outside the API key's allow-list)",
    404: "`not_found`: no such resource, or not visible to the caller",
    409: "`conflict`: the request conflicts with existing data",
    413: "`request_entity_too_large`: the body is over MAX_CONTENT_LENGTH",
    415: "`unsupported_media_type`: a body that is not `application/json`",
    429: "`too_many_requests`: over a rate limit (an API key's own `requestsPerMinute` too); "
         "`budget_exceeded`: the org's or the API key's monthly budget is used up; `Retry-After` says when to come back",
    502: "`provider_error`: the model provider is unreachable or failed",
    503: "Out of capacity for now: `database_unavailable`, `database_busy` or `chat_capacity`; "
         "the last two with `Retry-After`",
    504: "`provider_timeout`: the model provider passed one of its deadlines",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}}
BODY_METHODS = {"post", "put", "patch"}


def may_fail(*statuses: int):
    """Document error statuses a route returns that nothing it declares tells (a role's 403, a 409)."""

    def decorate(view):
        doc = getattr(view, "_apidoc", {})
        view._apidoc = {**doc, "errors": sorted({*doc.get("errors", ()), *statuses})}
        return view

    return decorate


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint, with strict JSON bodies and every operation's error responses documented.

    `error_schema` is the shape of the errors its routes return (the /v1 blueprint has OpenAI's).
    """

    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args, error_schema=ErrorSchema, **kwargs):
        super().__init__(*args, **kwargs)
        self.error_schema = error_schema
        self._prepare_doc_cbks.append(self._prepare_error_doc)

    def add_url_rule(self, rule, endpoint=None, view_func=None, **kwargs):
        super().add_url_rule(rule, endpoint, view_func, **kwargs)
        has_path_parameters = "<" in (self.url_prefix or "") + rule
        for method, info in self._docs[self._endpoints[-1]].items():
            if method != "parameters":
                info["path_parameters"] = has_path_parameters

    def _prepare_error_doc(self, doc, doc_info, *, method, **kwargs):
        responses = {str(status): response for status, response in doc.get("responses", {}).items()}
        for status in sorted(error_statuses(doc, doc_info, method)):
            if not isinstance(responses.get(str(status)), dict):  # a route's own (e.g. /health's 503) stays
                responses[str(status)] = self._error_response(status)
        doc["responses"] = responses
        # bp.doc's responses are merged in after this: resolve theirs too.
        for response in [*responses.values(), *doc_info.get("manual_doc", {}).get("responses", {}).values()]:
            if isinstance(response, dict):
                _resolve_stream_events(response, api=kwargs["api"])
        body = request_body_schema(doc)
        if body is not None:
            # A body whose fields are all optional may be left out (the route takes the defaults), unless
            # checks of the whole body may refuse an empty one.
            doc["requestBody"]["required"] = (any(field.required for field in body.fields.values())
                                              or bool(body._hooks[VALIDATES_SCHEMA]))
        return doc

    def _error_response(self, status: int) -> dict:
        response = {"description": ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": self.error_schema}}}
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        return response


def event_stream(description: str, *events: type[Schema], also: str | None = None) -> dict:
    """A `text/event-stream` response whose events each carry one of `events` as JSON in `data`.

    Each event is documented as Schemathesis and Open API 3.2 read a stream: an object with its SSE
    fields, `data` holding JSON (`contentMediaType`/`contentSchema`). `also` is a `data` that is not
    JSON (OpenAI's `[DONE]`). Comments (`: keep-alive` heartbeats) are not events.
    """
    data = {"type": "string", "contentMediaType": "application/json", "x-events": events}
    if also is not None:
        data = {"anyOf": [{"type": "string", "enum": [also]}, data]}
    event = {"type": "object", "required": ["data"], "properties": {"data": data}}
    return {"description": description, "content": {"text/event-stream": {"schema": event}}}


def _resolve_stream_events(response: dict, *, api) -> None:
    """event_stream's event schemas become components, referenced from `contentSchema`."""
    schema = response.get("content", {}).get("text/event-stream", {}).get("schema", {})
    data = schema.get("properties", {}).get("data", {})
    for candidate in [data, *data.get("anyOf", ())]:
        if "x-events" in candidate:
            refs = [api.ma_plugin.converter.resolve_nested_schema(event) for event in candidate.pop("x-events")]
            candidate["contentSchema"] = refs[0] if len(refs) == 1 else {"oneOf": refs}


def error_statuses(doc: dict, doc_info: dict, method: str) -> set[int]:
    """The error statuses an operation can return, from what its route declares."""
    arguments = "requestBody" in doc or any(isinstance(parameter, dict) for parameter in doc.get("parameters", ()))
    authenticated = bool(doc_info.get("manual_doc", {}).get("security"))
    statuses = set(doc_info.get("errors", ()))
    if arguments or doc_info.get("path_parameters"):
        statuses.add(400)  # invalid fields; a NUL in a path parameter too
    if doc_info.get("path_parameters"):
        statuses.add(404)
    if method in BODY_METHODS:
        statuses |= {413, 415}  # checked for every body before routing (app/errors.py)
    if authenticated:
        statuses.add(401)
    if authenticated or method in BODY_METHODS | {"delete"}:
        statuses.add(503)  # credentials and writes need the database
    return statuses


def request_body_schema(doc: dict) -> Schema | None:
    schema = doc.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if isinstance(schema, type) and issubclass(schema, Schema):
        schema = schema()
    return schema if isinstance(schema, Schema) else None


class ModelName(fields.String):
    """A model of the catalogue: documented as the list of the models this gateway serves."""


class MarshmallowPlugin(BaseMarshmallowPlugin):
    """Schemas into the document, plus what marshmallow cannot say: a schema's `OPENAPI` keywords, the model names."""

    def __init__(self, model_names: list[str]):
        super().__init__()
        self.model_names = model_names

    def init_spec(self, spec):
        super().init_spec(spec)
        names = self.model_names

        def model_enum(_converter, field, ret, **kwargs):
            return {"enum": [*names, *([None] if field.allow_none else [])]} if isinstance(field, ModelName) else {}

        self.converter.add_attribute_function(model_enum)

    def schema_helper(self, name, _, schema=None, **kwargs):
        json_schema = super().schema_helper(name, _, schema=schema, **kwargs)
        extra = getattr(schema if isinstance(schema, type) else type(schema), "OPENAPI", None)
        return {**json_schema, **extra} if extra and json_schema is not None else json_schema


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class CamelSchema(Schema):
    """Python names inside, camelCase on the wire."""

    def on_bind_field(self, field_name, field_obj):
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class UtcDateTime(fields.DateTime):
    """SQLite hands datetimes back without a zone; they are all UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


def auth_required(fn=None, *, scope: str | None = None, refresh: bool = False):
    """A JWT, or an API key holding `scope`; plus the security requirement in the OpenAPI document.

    The route names the one key scope it needs (`API_KEY_SCOPES` in models);
    without one it takes no API key, only people logged in with a password.
    `app.extensions["bearer_credentials"]` (set by auth) answers True for a
    valid credential of its own, False for none, and raises for a bad one or
    one without the scope; everything else goes to flask-jwt-extended. Refresh
    tokens are JWTs only.
    """

    def decorate(view):
        with_jwt = jwt_required(refresh=refresh)(view)

        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            other = None if refresh else current_app.extensions.get("bearer_credentials")
            if other is not None and other(scope=scope):
                return current_app.ensure_sync(view)(*args, **kwargs)
            return with_jwt(*args, **kwargs)

        doc = wrapped.__dict__.setdefault("_apidoc", {})
        deepupdate(doc.setdefault("manual_doc", {}), {"security": [{"bearerAuth": []}]})
        # The scope is part of the operation's contract: a key without it gets 403 insufficient_scope.
        if scope is not None:
            deepupdate(doc["manual_doc"], {"x-api-key-scope": scope})
            doc["errors"] = sorted({*doc.get("errors", ()), 403, 429})  # and its own requestsPerMinute
        return wrapped

    return decorate(fn) if fn else decorate


def held_until_closed(release, view, *args, **kwargs):
    """The view's response, with `release` called when the WSGI server closes it (sent, or the client gone).

    For slots held by a whole response: a streamed reply goes on long after
    the view returns. If the view fails, `release` is called at once.
    """
    try:
        response = current_app.make_response(view(*args, **kwargs))
    except BaseException:
        release()
        raise
    response.call_on_close(release)
    return response
