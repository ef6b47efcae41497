"""OpenAI's chat completion and embeddings requests, checked at the edge.

Field names are OpenAI's, snake_case. Every parameter is either mapped for the
model's provider kind or refused there (see the providers' `refuse_unsupported`);
parameters this schema does not name are kept (`unknown = INCLUDE`) so they can
be passed on to OpenAI-compatible servers. Tool definitions, tool calls and
`response_format` are checked, then forwarded exactly as the client wrote them.
"""
import re

from flask import current_app
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from ..chat.schemas import MAX_CONTENT_CHARS
from ..conversations.schemas import TEMPERATURE, TOP_P

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128  # OpenAI's limit
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TEXT_PART = {"type": "object", "required": ["type", "text"], "properties": {"type": {"type": "string", "enum": ["text"]},
                                                                         "text": {"type": "string"}}}
OBJECT = {"type": "object", "additionalProperties": True}
TOOL = {"type": "object", "required": ["type", "function"], "properties": {
    "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "required": ["name"], "additionalProperties": True, "properties": {
        "name": {"type": "string", "pattern": FUNCTION_NAME.pattern}, "description": {"type": "string"},
        "parameters": OBJECT, "strict": {"type": "boolean", "nullable": True}}}}}
TOOL_CALL = {"type": "object", "required": ["id", "type", "function"], "properties": {
    "id": {"type": "string", "minLength": 1}, "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "required": ["name", "arguments"], "properties": {
        "name": {"type": "string", "pattern": FUNCTION_NAME.pattern}, "arguments": {"type": "string"}}}}}
NAMED_TOOL = {"type": "object", "required": ["type", "function"], "properties": {
    "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "pattern": FUNCTION_NAME.pattern}}}}}
MAX_TOKEN_ID = 2 ** 31 - 1
CONTENT = {"oneOf": [{"type": "string", "maxLength": MAX_CONTENT_CHARS}, {"type": "array", "items": TEXT_PART}]}
NAME = {"type": "string", "minLength": 1, "maxLength": 64}


def _message_doc(roles: list[str], required: list[str], **properties) -> dict:
    return {"type": "object", "required": ["role", *required], "properties": {
        "role": {"type": "string", "enum": roles}, "name": NAME, **properties}}


# Each role's message exactly, for the OpenAPI document (the schema below checks the same rules).
MESSAGE_DOC = {"anyOf": [
    _message_doc(["system", "developer", "user"], ["content"], content=CONTENT),
    _message_doc(["assistant"], ["content"], content=CONTENT,
                 tool_calls={"type": "array", "items": TOOL_CALL, "maxItems": 128}),
    _message_doc(["assistant"], ["tool_calls"], content={"nullable": True, **CONTENT},
                 tool_calls={"type": "array", "items": TOOL_CALL, "minItems": 1, "maxItems": 128}),
    _message_doc(["tool"], ["content", "tool_call_id"], content=CONTENT,
                 tool_call_id={"type": "string", "minLength": 1, "maxLength": 256}),
]}


class Content(fields.Field):
    """A string, or a list of text parts (`{"type": "text", "text": ...}`), joined; other parts are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            return None
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


def _function_name(value) -> bool:
    return isinstance(value, str) and bool(FUNCTION_NAME.match(value))


class Tools(fields.Field):
    """OpenAI's function tool definitions, kept as written."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or len(value) > MAX_TOOLS:
            raise ValidationError(f"Must be a list of at most {MAX_TOOLS} tools.")
        for tool in value:
            function = tool.get("function") if isinstance(tool, dict) else None
            if (not isinstance(function, dict) or tool.get("type") != "function"
                    or not _function_name(function.get("name"))
                    or not isinstance(function.get("parameters", {}), dict)
                    or not isinstance(function.get("description", ""), str)):
                raise ValidationError('Each tool must be {"type": "function", "function": {"name": ..., '
                                      '"parameters": {...}}} with a name of letters, digits, _ or -.')
        return tuple(value)


class ToolChoice(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("none", "auto", "required"):
            return value
        function = value.get("function") if isinstance(value, dict) else None
        if isinstance(function, dict) and value.get("type") == "function" and _function_name(function.get("name")):
            return value
        raise ValidationError('Must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.')


class ToolCalls(fields.Field):
    """An assistant message's earlier calls: arguments are a JSON text, as OpenAI sends them."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or len(value) > MAX_TOOLS:
            raise ValidationError(f"Must be a list of at most {MAX_TOOLS} tool calls.")
        calls = []
        for call in value:
            function = call.get("function") if isinstance(call, dict) else None
            if (not isinstance(function, dict) or call.get("type", "function") != "function"
                    or not isinstance(call.get("id"), str) or not call["id"]
                    or not _function_name(function.get("name")) or not isinstance(function.get("arguments"), str)):
                raise ValidationError('Each tool call must be {"id": ..., "type": "function", "function": '
                                      '{"name": ..., "arguments": "<JSON text>"}}.')
            calls.append({"id": call["id"], "type": "function",
                          "function": {"name": function["name"], "arguments": function["arguments"]}})
        return calls


class ResponseFormat(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in ("text", "json_object"):
            return value
        if kind == "json_schema":
            spec = value.get("json_schema")
            if (isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]
                    and isinstance(spec.get("schema", {}), dict)):
                return value
        raise ValidationError('Must be {"type": "text"}, {"type": "json_object"} or '
                              '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}.')


class LogitBias(fields.Field):
    """Token ids (the server's own: it checks them) to biases."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and all(
                isinstance(bias, (int, float)) and not isinstance(bias, bool) and -100 <= bias <= 100
                for bias in value.values()):
            return value
        raise ValidationError("Must map token ids to biases from -100 to 100.")


class OpenAISchema(Schema):
    class Meta:
        unknown = EXCLUDE


class ChatMessageSchema(OpenAISchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Content(load_default=None, allow_none=True, validate=validate.Length(max=MAX_CONTENT_CHARS), metadata={
        "oneOf": [{"type": "string", "maxLength": MAX_CONTENT_CHARS}, {"type": "array", "items": TEXT_PART}],
        "nullable": True, "description": "Required except in an assistant message with `tool_calls`"})
    name = fields.String(validate=validate.Length(min=1, max=64))
    tool_calls = ToolCalls(metadata={"type": "array", "items": TOOL_CALL, "maxItems": MAX_TOOLS,
                                     "description": "An assistant message's calls"})
    tool_call_id = fields.String(validate=validate.Length(min=1, max=256),
                                 metadata={"description": "Which call a `tool` message answers; required there"})

    @validates_schema
    def _complete(self, data, **kwargs):
        if data["role"] == "tool" and not data.get("tool_call_id"):
            raise ValidationError("A tool message needs the tool_call_id it answers.", "tool_call_id")
        if data.get("tool_calls") and data["role"] != "assistant":
            raise ValidationError("Only assistant messages carry tool calls.", "tool_calls")
        if data.get("content") is None and not (data["role"] == "assistant" and data.get("tool_calls")):
            raise ValidationError("Missing data for required field.", "content")


class Messages(fields.Field):
    """The conversation so far; documented per role (MESSAGE_DOC), which a nested schema cannot say."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a list of at least one message.")
        return ChatMessageSchema(many=True).load(value)


class StreamOptionsSchema(OpenAISchema):
    include_usage = fields.Boolean(load_default=False)


class ChatCompletionRequestSchema(OpenAISchema):
    class Meta:
        unknown = INCLUDE  # passed on to OpenAI-compatible servers; refused (or dropped, if harmless) for Ollama

    model = fields.String(required=True, validate=validate.Length(min=1, max=200))
    messages = Messages(required=True, metadata={
        "type": "array", "items": MESSAGE_DOC, "minItems": 1,
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
    presence_penalty = fields.Float(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = fields.Float(allow_none=True, validate=validate.Range(min=-2, max=2))
    logit_bias = LogitBias(allow_none=True, metadata={"type": "object", "additionalProperties": {
        "type": "number", "minimum": -100, "maximum": 100}})
    logprobs = fields.Boolean(allow_none=True)
    top_logprobs = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=20))
    tools = Tools(allow_none=True, metadata={"type": "array", "items": TOOL, "maxItems": MAX_TOOLS})
    tool_choice = ToolChoice(allow_none=True, metadata={"oneOf": [
        {"type": "string", "enum": ["none", "auto", "required"]}, NAMED_TOOL]})
    parallel_tool_calls = fields.Boolean(allow_none=True)
    response_format = ResponseFormat(allow_none=True, metadata={"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
        "json_schema": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1}, "schema": OBJECT, "strict": {"type": "boolean"},
            "description": {"type": "string"}}}}})

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
