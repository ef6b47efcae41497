"""Embeddings: Ollama's POST /api/embed and OpenAI's POST /v1/embeddings, with deterministic vectors.

The same text always gets the same unit vector (from its SHA-256), so a test can
compare what came back through the gateway with `vector(text, dimensions)`.
"""
from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from .script import ReceivedRequest, Script


def inputs(body: dict[str, Any]) -> list[str | list[int]] | None:
    """The request's inputs as a list (a string, strings, a token array or token arrays), or None if malformed."""
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and given and all(isinstance(i, int) for i in given):
        return [given]
    if isinstance(given, list) and given and all(isinstance(i, str) or _tokens(i) for i in given):
        return given
    return None


def _tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, int) for i in value)


def vector(text: str | list[int], dimensions: int) -> list[float]:
    """A unit vector that depends only on the input and the dimensions."""
    seed = text if isinstance(text, str) else ",".join(map(str, text))
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{seed}\x00{counter}".encode()).digest()
        raw += [value / 2**31 - 1 for value in struct.unpack("<8I", digest)]
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    # Rounded through float32, so the float and base64 encodings carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]


def prompt_tokens(items: list[str | list[int]]) -> int:
    """One token per word of text, one per element of a token array."""
    return sum(len(item.split()) if isinstance(item, str) else len(item) for item in items)


def reply(request: ReceivedRequest, script: Script, items: list[str | list[int]]) -> dict[str, Any]:
    body, model = request.body, request.body["model"]
    dimensions = body.get("dimensions") if isinstance(body.get("dimensions"), int) and body["dimensions"] > 0 \
        else script.embedding_dimensions
    vectors = [vector(item, dimensions) for item in items]
    tokens = prompt_tokens(items)
    if request.protocol == "ollama":
        answer: dict[str, Any] = {"model": model, "embeddings": vectors, "total_duration": 1000,
                                  "load_duration": 10}
        if script.report_usage:
            answer["prompt_eval_count"] = tokens
        return answer
    encode = _base64 if body.get("encoding_format") == "base64" else (lambda v: v)
    answer = {"object": "list", "model": model,
              "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]}
    if script.report_usage:
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return answer


def _base64(values: list[float]) -> str:
    """OpenAI's base64 encoding: the little-endian float32 array."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
