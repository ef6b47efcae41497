"""OpenAI's chat completion request, as far as the providers behind the gateway can honour it.

Parameters we cannot map are ignored, as OpenAI-compatible servers do; the
one we cannot honour in a way a client would not notice (`n` > 1) is refused.
Field names are OpenAI's, snake_case.
"""
from flask import current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from ..chat.schemas import MAX_CONTENT_CHARS
from ..conversations.schemas import TEMPERATURE, TOP_P

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_SEQUENCES = 4
TEXT_PART = {"type": "object", "required": ["type", "text"], "properties": {"type": {"type": "string", "enum": ["text"]},
                                                                         "text": {"type": "string"}}}


class Content(fields.Field):
    """A string, or a list of text parts (`{"type": "text", "text": ...}`), joined; other parts are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                for part in value):
            return "".join(part["text"] for part in value)
        raise ValidationError("Only text content is supported: a string or a list of text parts.")


class Stop(fields.Field):
    """A string or up to four strings, as a tuple."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            return None
        sequences = [value] if isinstance(value, str) else value
        if (not isinstance(sequences, list) or not 1 <= len(sequences) <= MAX_STOP_SEQUENCES
                or not all(isinstance(item, str) and item for item in sequences)):
            raise ValidationError(f"Must be a string or a list of 1 to {MAX_STOP_SEQUENCES} non-empty strings.")
        return tuple(sequences)


class OpenAISchema(Schema):
    class Meta:
        unknown = EXCLUDE


class ChatMessageSchema(OpenAISchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Content(required=True, allow_none=True, validate=validate.Length(max=MAX_CONTENT_CHARS), metadata={
        "oneOf": [{"type": "string", "maxLength": MAX_CONTENT_CHARS}, {"type": "array", "items": TEXT_PART}]})


class StreamOptionsSchema(OpenAISchema):
    include_usage = fields.Boolean(load_default=False)


class ChatCompletionRequestSchema(OpenAISchema):
    model = fields.String(required=True, validate=validate.Length(min=1, max=200))
    messages = fields.List(fields.Nested(ChatMessageSchema), required=True, validate=validate.Length(min=1), metadata={
        "description": "At most V1_MAX_MESSAGES messages (1,000 by default), with at most V1_MAX_TOTAL_CHARS "
                       "characters of content in all (512,000 by default); over either is a 400 naming the limit."})
    temperature = fields.Float(allow_none=True, validate=TEMPERATURE)
    top_p = fields.Float(allow_none=True, validate=TOP_P)
    max_tokens = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1_000_000))
    max_completion_tokens = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1_000_000))
    stop = Stop(allow_none=True, metadata={"oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": MAX_STOP_SEQUENCES}]})
    seed = fields.Integer(allow_none=True)
    user = fields.String(allow_none=True, validate=validate.Length(max=256))
    n = fields.Integer(allow_none=True, validate=validate.Equal(1, error="Only n=1 is supported."))
    stream = fields.Boolean(allow_none=True, load_default=False)
    stream_options = fields.Nested(StreamOptionsSchema, allow_none=True)

    @pre_load
    def bound_message_count(self, data, **_kwargs):
        # Before the messages are loaded one by one: counting 100,000 of them is cheap, loading them is not.
        limit = current_app.config["SETTINGS"].v1_max_messages
        if isinstance(data, dict) and isinstance(data.get("messages"), list) and len(data["messages"]) > limit:
            raise ValidationError({"messages": [f"At most {limit} messages are accepted (V1_MAX_MESSAGES)."]})
        return data

    @validates_schema
    def bound_total_characters(self, data, **_kwargs):
        limit = current_app.config["SETTINGS"].v1_max_total_chars
        # A null content stays None (allow_none): it counts as no characters, as it is sent.
        if sum(len(message.get("content") or "") for message in data.get("messages", ())) > limit:
            raise ValidationError(
                [f"At most {limit} characters of content are accepted over all messages (V1_MAX_TOTAL_CHARS)."],
                "messages")
