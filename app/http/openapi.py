"""The OpenAPI machinery: the Blueprint every resource uses, its body parser, and the document's extras.

The Blueprint also documents each operation's error responses, derived from
what the route declares, so the OpenAPI document lists what a client can
actually get back and a route added later gets its errors documented without
writing them down.
"""
from apispec.ext.marshmallow import MarshmallowPlugin as BaseMarshmallowPlugin
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, fields
from marshmallow.decorators import VALIDATES_SCHEMA
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from . import strict_json
from .bodies import BODY_METHODS
from .schemas import ErrorSchema


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """Bodies parse as strict JSON: duplicate keys, NUL, lone surrogates and deep nesting are 400s."""
        if not is_json_request(req):
            return core.missing
        return strict_json.loads(req.get_data(cache=True))


# What each error status means on this gateway, and every `code` that comes with it (with a note where the
# code alone does not say). tests/http/test_error_statuses.py reads the codes the app raises and fails when
# this table and they differ.
ERROR_STATUSES: dict[int, tuple[str, dict[str, str]]] = {
    400: ("Invalid request", {"validation_error": "per-field `details`", "malformed_json": "",
                              "invalid_json": "duplicate keys, NUL, lone surrogates, too deep",
                              "unknown_model": "", "not_a_chat_model": "an embeddings model on a chat route",
                              "unsupported_parameter": "/v1: not for this model's provider kind; `param` names it",
                              "malformed_body": "a malformed chunked encoding, or fewer bytes than Content-Length"}),
    401: ("Missing, invalid or expired credential", {
        "missing_token": "", "invalid_token": "", "token_expired": "", "token_revoked": "",
        "invalid_credentials": "login", "invalid_api_key": "", "api_key_not_accepted": ""}),
    403: ("Authenticated, but not allowed", {"forbidden": "the caller's role", "registration_closed": "",
                                             "account_disabled": "", "wrong_password": "",
                                             "insufficient_scope": "an API key without the route's scope, "
                                                                   "named in `details.scope`",
                                             "model_not_allowed": "a model outside the API key's allow-list"}),
    404: ("No such resource, or not visible to the caller", {"not_found": "", "model_not_found": "/v1"}),
    408: ("The body did not arrive within GUNICORN_BODY_TIMEOUT seconds", {"request_timeout": ""}),
    409: ("The request conflicts with existing data", {"conflict": ""}),
    413: ("The body is over MAX_CONTENT_LENGTH", {"request_entity_too_large": ""}),
    415: ("A body that is not `application/json`", {"unsupported_media_type": ""}),
    429: ("Over a limit; `Retry-After` says when to come back", {
        "too_many_requests": "a rate limit, an API key's `requestsPerMinute` too", "too_many_streams": "open streams per user",
        "budget_exceeded": "the organisation's or the API key's monthly budget"}),
    499: ("The client closed its connection before its whole reply was ready; nobody reads this answer, "
          "it is for the access log and metrics", {"client_closed_request": ""}),
    502: ("The model provider is unreachable or failed", {"provider_error": ""}),
    503: ("Out of capacity for now; `Retry-After` says when to try again", {
        "database_unavailable": "", "database_busy": "", "chat_capacity": "",
        "rate_limit_unavailable": "the rate-limit storage is unreachable"}),
    504: ("The model provider passed one of its deadlines", {"provider_timeout": ""}),
}
RETRY_AFTER_STATUSES = (429, 503)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}}


def describe_status(status: int) -> str:
    """"Invalid request: `validation_error` (per-field `details`), `malformed_json`, ..." for the document."""
    meaning, codes = ERROR_STATUSES[status]
    return f"{meaning}: " + ", ".join(f"`{code}` ({note})" if note else f"`{code}`" for code, note in codes.items())


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

    def arguments(self, schema, **kwargs):
        # An instance, made once here: given a class, webargs builds a new schema on every request.
        return super().arguments(schema() if isinstance(schema, type) else schema, **kwargs)

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
        response = {"description": describe_status(status),
                    "content": {"application/json": {"schema": self.error_schema}}}
        if status in RETRY_AFTER_STATUSES:
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
    if method.upper() in BODY_METHODS:
        statuses |= {400, 408, 413, 415}  # checked for every body before routing (app/http/bodies.py)
    if authenticated:
        statuses.add(401)
    if authenticated or method.upper() in BODY_METHODS | {"DELETE"}:
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
