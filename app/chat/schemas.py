from marshmallow import ValidationError, fields, validate

from ..conversations.schemas import TEMPERATURE, TOP_P, MessageSchema
from ..http.openapi import ModelName
from ..http.schemas import CamelSchema, ErrorDetailSchema

# About 25k tokens: more than a person types, less than would crowd out the context budget's history.
MAX_CONTENT_CHARS = 100_000


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ChatRequestSchema(CamelSchema):
    content = fields.String(required=True, validate=[validate.Length(min=1, max=MAX_CONTENT_CHARS), _not_blank])
    model = ModelName(allow_none=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "A name from GET /models; default: the conversation's, then the gateway's"})
    temperature = fields.Float(allow_none=True, validate=TEMPERATURE)
    top_p = fields.Float(allow_none=True, validate=TOP_P)
    max_tokens = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1_000_000))


class UsageSchema(CamelSchema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()
    estimated = fields.Boolean(metadata={"description": "True when the provider reported no usage and the gateway counted"})
    method = fields.String(metadata={
        "description": "`reported` by the provider; when estimated, `chunks` (streamed content chunks, one token "
                       "each) or `characters` (about four per token, for whole replies)"})


class ChatReplySchema(CamelSchema):
    conversation_id = fields.String()
    user_message = fields.Nested(MessageSchema)
    assistant_message = fields.Nested(MessageSchema)
    usage = fields.Nested(UsageSchema)


class StreamTokenSchema(CamelSchema):
    """A `token` server-sent event: the next piece of the reply, as the provider sent it."""

    type = fields.Constant("token", required=True, metadata={"enum": ["token"]})
    token = fields.String(required=True)


class StreamErrorSchema(CamelSchema):
    """The `error` server-sent event that ends a stream the provider broke off; what came before is stored, partial."""

    type = fields.Constant("error", required=True, metadata={"enum": ["error"]})
    error = fields.Nested(ErrorDetailSchema, required=True)


class StreamEndSchema(CamelSchema):
    """The `end` server-sent event: the stored reply and its usage, as POST .../messages returns them."""

    type = fields.Constant("end", metadata={"enum": ["end"]})
    message = fields.Nested(MessageSchema)
    usage = fields.Nested(UsageSchema)


class ModelSchema(CamelSchema):
    name = fields.String()
    provider = fields.String(metadata={"description": "ollama or openai (any OpenAI-compatible server)"})
    is_default = fields.Boolean()


class ModelListSchema(CamelSchema):
    items = fields.List(fields.Nested(ModelSchema))
    default_model = fields.String()
