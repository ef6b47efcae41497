"""OpenAI's response shapes, for the OpenAPI document only: completions.py and streaming.py build the bodies."""
from marshmallow import Schema, fields

from ..http.openapi import event_stream


class OpenAIErrorDetailSchema(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True, metadata={"description": "`invalid_request_error`, `permission_error`, "
                                                                 "`rate_limit_error` or `server_error`"})
    param = fields.String(required=True, allow_none=True, metadata={"description": "The request field at fault"})
    code = fields.String(required=True, allow_none=True, metadata={"description": "The gateway's error code"})


class OpenAIErrorSchema(Schema):
    """OpenAI's error shape, which /v1 answers in so SDKs raise their usual exceptions."""

    error = fields.Nested(OpenAIErrorDetailSchema, required=True)


class OpenAIModelSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("model", required=True, metadata={"enum": ["model"]})
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True, metadata={"description": "The provider: ollama or openai"})


class OpenAIModelListSchema(Schema):
    object = fields.Constant("list", required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(OpenAIModelSchema), required=True)


class CompletionUsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)


class CompletionMessageSchema(Schema):
    role = fields.Constant("assistant", required=True, metadata={"enum": ["assistant"]})
    content = fields.String(required=True)


class CompletionChoiceSchema(Schema):
    index = fields.Integer(required=True)
    message = fields.Nested(CompletionMessageSchema, required=True)
    logprobs = fields.Raw(required=True, allow_none=True)
    finish_reason = fields.String(required=True)


class ChatCompletionSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("chat.completion", required=True, metadata={"enum": ["chat.completion"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(CompletionChoiceSchema), required=True)
    usage = fields.Nested(CompletionUsageSchema, required=True)


class ChunkDeltaSchema(Schema):
    role = fields.Constant("assistant", metadata={"enum": ["assistant"], "description": "In the first chunk only"})
    content = fields.String()


class ChunkChoiceSchema(Schema):
    index = fields.Integer(required=True)
    delta = fields.Nested(ChunkDeltaSchema, required=True)
    logprobs = fields.Raw(required=True, allow_none=True)
    finish_reason = fields.String(required=True, allow_none=True)


class ChatCompletionChunkSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("chat.completion.chunk", required=True, metadata={"enum": ["chat.completion.chunk"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChunkChoiceSchema), required=True,
                          metadata={"description": "Empty in the usage chunk"})
    usage = fields.Nested(CompletionUsageSchema, allow_none=True, metadata={
        "description": "With `stream_options.include_usage`: null in every chunk but the last, which has it"})


COMPLETION_DOC = event_stream(
    "A `chat.completion` (JSON), or with `stream: true` server-sent events: `chat.completion.chunk`s (the first "
    "with the role, then the content, then one with `finish_reason`, and with `stream_options.include_usage` one "
    "with `usage` and no choices), then `data: [DONE]`. A provider failing mid-stream ends it with one event in "
    "OpenAI's error shape instead. While the model is silent a `: keep-alive` comment comes every "
    "SSE_HEARTBEAT_SECONDS.",
    ChatCompletionChunkSchema, OpenAIErrorSchema, also="[DONE]")
COMPLETION_DOC["content"]["application/json"] = {"schema": ChatCompletionSchema}
