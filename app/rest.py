"""Shared building blocks for resource blueprints: camelCase schemas, 400 on bad fields, authentication."""
import functools
from datetime import timezone

from flask import current_app

from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import deepupdate
from flask_jwt_extended import jwt_required
from marshmallow import Schema, fields
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


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = Parser()


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


def auth_required(fn=None, *, refresh: bool = False, api_keys: bool = True):
    """A JWT, or another bearer credential (API keys, from auth); plus the security requirement in the OpenAPI document.

    `app.extensions["bearer_credentials"]` (set by auth) answers True for a
    valid credential of its own, False for none, and raises for a bad one;
    everything else goes to flask-jwt-extended. `api_keys=False` keeps a route
    for people logged in with a password; refresh tokens are JWTs only.
    """

    def decorate(view):
        with_jwt = jwt_required(refresh=refresh)(view)

        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            other = None if refresh else current_app.extensions.get("bearer_credentials")
            if other is not None and other(accepted=api_keys):
                return current_app.ensure_sync(view)(*args, **kwargs)
            return with_jwt(*args, **kwargs)

        doc = wrapped.__dict__.setdefault("_apidoc", {})
        deepupdate(doc.setdefault("manual_doc", {}), {"security": [{"bearerAuth": []}]})
        return wrapped

    return decorate(fn) if fn else decorate
