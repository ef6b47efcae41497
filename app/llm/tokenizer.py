"""Prompt tokens counted by the model server's own tokenizer, for streams that report no usage.

llama.cpp's server sends no usage in streams, even when asked: its completion
tokens are counted exactly from the chunks, but a prompt estimated from its
characters was off by a quarter either way. Such servers can count it
themselves, with the model's chat template applied:

- llama.cpp: `POST /apply-template {messages, tools}` gives the prompt text,
  `POST /tokenize {content, add_special, parse_special}` its tokens;
- vLLM: `POST /tokenize {model, messages, tools}` gives `count`.

The count runs in a thread of its own from the moment the stream starts, so it
is ready, off the response path, long before the last chunk. Which dialect an
upstream speaks is learned on first use, per worker; an upstream with neither
(or one seen reporting stream usage) is not asked again.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import requests

from .types import ModelSpec

log = logging.getLogger(__name__)

LLAMA_CPP, VLLM, NEITHER = "llama.cpp", "vllm", "neither"
# The longest the end of a stream waits for a count still running; then the prompt is estimated.
WAIT_SECONDS = 1.0
TIMEOUT = (2.0, 5.0)


class UpstreamTokenizer:
    """What one OpenAI-compatible upstream can count, learned as it answers."""

    def __init__(self, session: requests.Session, base_url: str, api_key: str | None):
        self._session, self._api_key = session, api_key
        # The tokenizer routes live at the server's root, beside /v1.
        self._root = base_url.removesuffix("/v1")
        self.dialect: str | None = None
        self.reports_stream_usage = False

    @property
    def worth_asking(self) -> bool:
        return self.dialect != NEITHER and not self.reports_stream_usage

    def count(self, *, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int | None:
        extra = {"tools": tools} if tools else {}
        if self.dialect in (None, LLAMA_CPP):
            template = self._post("/apply-template", {"messages": messages, **extra})
            if isinstance(template, dict) and isinstance(template.get("prompt"), str):
                tokens = self._post("/tokenize", {"content": template["prompt"], "add_special": True,
                                                  "parse_special": True})
                if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list):
                    self.dialect = LLAMA_CPP
                    return len(tokens["tokens"])
        if self.dialect in (None, VLLM):
            answer = self._post("/tokenize", {"model": model, "messages": messages, **extra})
            if isinstance(answer, dict) and isinstance(answer.get("count"), int):
                self.dialect = VLLM
                return answer["count"]
        if self.dialect is None:
            log.info("the server at %s counts no prompt tokens: its prompts will be estimated", self._root)
            self.dialect = NEITHER
        return None

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            response = self._session.post(self._root + path, json=body, headers=headers, timeout=TIMEOUT)
            with response:
                return response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError) as exc:
            log.info("prompt count at %s%s failed: %s", self._root, path, type(exc).__name__)
            return None


class PromptCount:
    """One prompt being counted in the background; `value()` is its tokens, or None."""

    def __init__(self, tokenizer: UpstreamTokenizer, *, model: str, messages: list[dict[str, Any]],
                 tools: list[dict[str, Any]] | None):
        self._tokenizer = tokenizer
        self._done = threading.Event()
        self._value: int | None = None
        self._thread = threading.Thread(target=self._run, args=(tokenizer, model, messages, tools),
                                        name="prompt-count", daemon=True)
        self._thread.start()

    def _run(self, tokenizer: UpstreamTokenizer, model: str, messages, tools) -> None:
        try:
            self._value = tokenizer.count(model=model, messages=messages, tools=tools)
        except Exception:  # noqa: BLE001 - a count that fails leaves the estimate, never the reply, broken
            log.exception("counting a prompt failed")
        finally:
            self._done.set()

    def not_needed(self) -> None:
        """The stream reported its usage after all: this upstream's streams are not counted again."""
        self._tokenizer.reports_stream_usage = True

    def value(self, wait: float = WAIT_SECONDS) -> int | None:
        self._done.wait(wait)
        return self._value


def start_count(client, spec: ModelSpec, messages: list[dict[str, Any]],
                tools: tuple[dict[str, Any], ...] | None) -> PromptCount | None:
    """A count for this stream's prompt, if its model allows it and its server may be able to."""
    tokenizer = getattr(client, "tokenizer", None)
    if not spec.count_prompt_tokens or tokenizer is None or not tokenizer.worth_asking:
        return None
    return PromptCount(tokenizer, model=spec.upstream_model, messages=messages, tools=list(tools) if tools else None)
