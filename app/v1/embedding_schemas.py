"""OpenAI's embeddings request, checked at the edge; the provider kinds refuse what they cannot take."""
from marshmallow import ValidationError, fields, validate, validates_schema

from ..chat.schemas import MAX_CONTENT_CHARS
from .schemas import MAX_EMBEDDING_INPUTS, MAX_TOKEN_ID, OpenAISchema


class EmbeddingInput(fields.Field):
    """A string, a list of strings, a token array, or a list of token arrays; always returned as a list."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and 1 <= len(value) <= MAX_EMBEDDING_INPUTS:
            if all(isinstance(item, str) for item in value):
                return value
            if all(_token(item) for item in value):
                return [value]
            if all(isinstance(item, list) and item and all(_token(t) for t in item) for item in value):
                return value
        raise ValidationError(f"Must be a string, or a list of 1 to {MAX_EMBEDDING_INPUTS} strings, "
                              "or a token array, or a list of token arrays.")


TOKEN_ID = {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}


def _token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


class EmbeddingRequestSchema(OpenAISchema):
    model = fields.String(required=True, validate=validate.Length(min=1, max=200))
    input = EmbeddingInput(required=True, metadata={"oneOf": [
        {"type": "string", "maxLength": MAX_CONTENT_CHARS},
        {"type": "array", "items": {"type": "string", "maxLength": MAX_CONTENT_CHARS}, "minItems": 1,
         "maxItems": MAX_EMBEDDING_INPUTS},
        {"type": "array", "items": TOKEN_ID, "minItems": 1},
        {"type": "array", "items": {"type": "array", "items": TOKEN_ID, "minItems": 1},
         "minItems": 1, "maxItems": MAX_EMBEDDING_INPUTS}]})
    dimensions = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=65536))
    encoding_format = fields.String(load_default="float", validate=validate.OneOf(("float", "base64")))
    user = fields.String(allow_none=True, validate=validate.Length(max=256))

    @validates_schema
    def _sizes(self, data, **kwargs):
        texts = [item for item in data.get("input") or () if isinstance(item, str)]
        if any(len(text) > MAX_CONTENT_CHARS for text in texts):
            raise ValidationError(f"Each input is at most {MAX_CONTENT_CHARS} characters.", "input")
        if sum(len(item) for item in data.get("input") or ()) > MAX_EMBEDDING_INPUTS * 512:
            raise ValidationError("The input is too large for one request.", "input")
