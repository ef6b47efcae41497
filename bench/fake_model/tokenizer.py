"""The prompt-counting routes of model servers, served when the script names one (`Script.tokenizer`).

llama.cpp's server: POST /apply-template {messages} gives the templated prompt,
POST /tokenize {content} its tokens. vLLM's: POST /tokenize {model, messages}
gives `count`. Without `Script.tokenizer` (Ollama, OpenAI itself) they are 404s.
"""
from __future__ import annotations

from typing import Any

from .script import Script

PATHS = ("/apply-template", "/tokenize")


def answer(script: Script, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The route's answer, or None for a 404."""
    if script.tokenizer == "llama.cpp":
        if path == "/apply-template" and isinstance(body.get("messages"), list):
            return {"prompt": "".join(f"<{m.get('role')}>{m.get('content') or ''}" for m in body["messages"]
                                      if isinstance(m, dict))}
        if path == "/tokenize" and isinstance(body.get("content"), str):
            return {"tokens": list(range(script.tokenizer_count))}
    if script.tokenizer == "vllm" and path == "/tokenize" and isinstance(body.get("messages"), list):
        return {"count": script.tokenizer_count, "max_model_len": 8192, "tokens": list(range(script.tokenizer_count))}
    return None
