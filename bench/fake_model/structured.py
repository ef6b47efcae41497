"""JSON mode: the reply a model constrained to JSON (or to a JSON schema) would give, always valid."""
from __future__ import annotations

import json
from typing import Any

_MAX_DEPTH = 8
_STRING_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00Z",
                   "email": "someone@example.com", "uri": "https://example.com/", "uuid":
                   "00000000-0000-4000-8000-000000000000"}


def requested_format(protocol: str, body: dict[str, Any]) -> tuple[bool, dict | None]:
    """(JSON asked for, its schema if any): OpenAI's `response_format`, Ollama's `format`."""
    if protocol == "ollama":
        wanted = body.get("format")
        if wanted == "json":
            return True, None
        return (True, wanted) if isinstance(wanted, dict) else (False, None)
    wanted = body.get("response_format")
    if not isinstance(wanted, dict):
        return False, None
    if wanted.get("type") == "json_object":
        return True, None
    if wanted.get("type") == "json_schema":
        schema = (wanted.get("json_schema") or {}).get("schema")
        return True, schema if isinstance(schema, dict) else None
    return False, None


def json_text(schema: dict | None, value: Any, words: str) -> str:
    """`value` if the script set one; else an instance of `schema`; else an object holding the scripted words."""
    if value is None:
        value = instance(schema, schema) if schema is not None else {"reply": words}
    return json.dumps(value)


def instance(schema: dict, root: dict, depth: int = 0) -> Any:
    """The smallest plain value that `schema` accepts: every property present, minimum lengths met."""
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return instance(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            options = [s for s in schema[combined] if s.get("type") != "null"] or schema[combined]
            return instance(options[0], root, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: instance(sub, root, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        item = schema.get("items") or {"type": "string"}
        return [instance(item, root, depth + 1) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        text = _STRING_FORMATS.get(schema.get("format", ""), "text")
        return text + "x" * max(0, schema.get("minLength", 0) - len(text))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0))
        value = max(0, low)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def _resolve(ref: str, root: dict) -> dict:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
