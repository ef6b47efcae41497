"""Token estimates and the context budget: which past messages go into the prompt.

The estimate is deliberately simple and deterministic (about four characters
per token, the usual rule of thumb for English with BPE tokenizers): it decides
what fits in the budget and stands in for usage a provider did not report, in
which case the stored usage is marked as estimated.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CHARS_PER_TOKEN = 4
# Chat templates wrap every message in role markers and separators.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def message_tokens(content: str) -> int:
    return estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def prompt_tokens(messages: Iterable[dict]) -> int:
    """Tool calls count by their names and arguments; a message without text (only calls) by those alone."""
    return sum(message_tokens((message.get("content") or "") + "".join(
        call["function"]["name"] + call["function"]["arguments"] for call in message.get("tool_calls") or ()))
        for message in messages)


def history_limit(budget: int) -> int:
    """No more past messages than this can fit: each costs at least the overhead."""
    return budget // MESSAGE_OVERHEAD_TOKENS + 1


def history_budget(*, system_prompt: str | None, user_content: str, budget: int) -> int:
    """The tokens left for past messages once the system prompt and the new message are counted."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return budget - prompt_tokens(head) - prompt_tokens([{"role": "user", "content": user_content}])


@dataclass(frozen=True)
class PastMessage:
    role: str
    content: str


def build_prompt(*, system_prompt: str | None, recent_first: Iterable[PastMessage],
                 user_content: str, budget: int) -> list[dict[str, str]]:
    """System prompt, then the newest past messages that fit in `budget`, oldest first, then the new message.

    The system prompt and the new message are always sent, even when they
    alone exceed the budget; the history is cut at the first message that no
    longer fits, so what is kept is contiguous.
    """
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tail = [{"role": "user", "content": user_content}]
    remaining = history_budget(system_prompt=system_prompt, user_content=user_content, budget=budget)
    kept: list[dict[str, str]] = []
    for message in recent_first:
        cost = message_tokens(message.content)
        if cost > remaining:
            break
        remaining -= cost
        kept.append({"role": message.role, "content": message.content})
    kept.reverse()
    return head + kept + tail
