"""Request bodies as strict JSON: what the database and our code can hold, or a clear 400.

Python's json module accepts things that later fail far from the request:
duplicate keys (the last silently wins, so `"role":"MEMBER","role":"OWNER"`
means OWNER), NUL characters (PostgreSQL refuses them), lone surrogates
(no UTF-8 encoding exists), integers longer than Python will convert, and
nesting deep enough to exhaust recursion. Each becomes a 400 naming the
problem and where it is, before any view runs.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ApiError

MAX_DEPTH = 32


class InvalidJson(ApiError):
    def __init__(self, message: str, where: str = "_schema"):
        super().__init__(400, "invalid_json", message, {where: [message]})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidJson(f"The key {key!r} appears more than once.", key)
        result[key] = value
    return result


def loads(data: bytes | str) -> Any:
    """Parse a request body; JSONDecodeError for what is not JSON at all, InvalidJson for the rest."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data  # UnicodeDecodeError: not JSON
    if _depth_exceeds(text, MAX_DEPTH):
        raise InvalidJson(f"The body is nested more than {MAX_DEPTH} levels deep.")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise InvalidJson("A number in the body is too large.") from None  # over int_max_str_digits
    check_text(value)
    return value


def check_text(value: Any) -> None:
    """Every string, key and value, must be storable: no NUL, no lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, "_schema")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, key)
                stack.append((child, key))
        elif isinstance(item, list):
            stack.extend((child, where) for child in item)
        elif isinstance(item, str):
            _check_string(item, where)


def _check_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidJson("Text must not contain NUL characters.", _printable(where))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("Text must not contain unpaired surrogate characters.", _printable(where)) from None


def _printable(where: str) -> str:
    return where.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _depth_exceeds(text: str, limit: int) -> bool:
    """Brackets outside strings, counted without recursion (the parser would recurse)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the usual body: nothing to count
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
