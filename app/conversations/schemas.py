from marshmallow import fields, validate, validates_schema, ValidationError

from ..http.openapi import ModelName
from ..http.schemas import CamelSchema
from ..models import MessageRole
from ..usage.schemas import UsageTotalsSchema

TEMPERATURE = validate.Range(min=0, max=2)
TOP_P = validate.Range(min=0, max=1)


class ConversationWriteSchema(CamelSchema):
    title = fields.String(allow_none=True, validate=validate.Length(max=200))
    system_prompt = fields.String(allow_none=True, validate=validate.Length(max=20_000))
    model = ModelName(allow_none=True, validate=validate.Length(min=1, max=200))
    temperature = fields.Float(allow_none=True, validate=TEMPERATURE)
    top_p = fields.Float(allow_none=True, validate=TOP_P)


class ConversationCreateSchema(ConversationWriteSchema):
    org_id = fields.String(allow_none=True, validate=validate.Length(max=36))


class ConversationUpdateSchema(ConversationWriteSchema):
    OPENAPI = {"minProperties": 1}

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")


class MessageSchema(CamelSchema):
    id = fields.String()
    role = fields.Enum(MessageRole)
    content = fields.String()
    meta = fields.Dict()
    created_at = fields.DateTime()


class ConversationSchema(CamelSchema):
    id = fields.String()
    user_id = fields.String()
    org_id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    system_prompt = fields.String(allow_none=True)
    model = fields.String(allow_none=True)
    temperature = fields.Float(allow_none=True)
    top_p = fields.Float(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ConversationDetailSchema(ConversationSchema):
    messages = fields.List(fields.Nested(MessageSchema), metadata={"description": "The newest page, oldest first"})
    messages_next_cursor = fields.String(allow_none=True, metadata={
        "description": "Pass as cursor to GET /conversations/{id}/messages for older messages; null when none"})
    usage = fields.Nested(UsageTotalsSchema, metadata={"description": "Every completion of this conversation"})


class MessagePageArgsSchema(CamelSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


class MessagePageSchema(CamelSchema):
    items = fields.List(fields.Nested(MessageSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Older messages; null at the start"})


class PageArgsSchema(CamelSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(max=200))
    page = fields.Integer(validate=validate.Range(min=1, max=100_000))

    @validates_schema
    def _one_style(self, data, **kwargs):
        if "cursor" in data and "page" in data:
            raise ValidationError("Use either cursor or page, not both.", "cursor")


class ConversationPageSchema(CamelSchema):
    items = fields.List(fields.Nested(ConversationSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as cursor for the next page; null at the end"})
    page = fields.Integer(allow_none=True)
    limit = fields.Integer()
