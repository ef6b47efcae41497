"""Base schemas: camelCase on the wire, and the one JSON error shape."""
from marshmallow import Schema, fields


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class CamelSchema(Schema):
    """Python names inside, camelCase on the wire."""

    def on_bind_field(self, field_name, field_obj):
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable and machine-readable, e.g. `not_found`"})
    message = fields.String(required=True, metadata={"description": "For people; may change"})
    details = fields.Dict(required=True, metadata={"description": "Per-field problems of a `validation_error` "
                                                                  "(field name to messages); often empty"})


class ErrorSchema(Schema):
    """The one JSON error contract of every 4xx/5xx (app/errors.py)."""

    error = fields.Nested(ErrorDetailSchema, required=True)
