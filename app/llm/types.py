"""The data that crosses the model layer's boundary, in one shape each."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# Where a completion's token counts came from.
REPORTED = "reported"  # by the provider
COUNTED_BY_CHUNKS = "chunks"  # one streamed content chunk is one token on llama.cpp, vLLM and Ollama
COUNTED_BY_CHARACTERS = "characters"  # about four characters per token, for whole replies


@dataclass(frozen=True)
class Timeouts:
    connect: float  # to open the TCP connection
    read: float  # idle: the longest silence before the headers or between two chunks
    total: float | None = None  # the whole call, headers to last chunk


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry: the name clients use and where it is served."""

    name: str
    provider: str
    base_url: str
    upstream_model: str
    timeouts: Timeouts
    api_key: str | None = field(default=None, repr=False)
    # USD per million tokens; None means the model has no price, so its completions have no cost.
    input_price: Decimal | None = None
    output_price: Decimal | None = None


@dataclass(frozen=True)
class GenerationOptions:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    user: str | None = None  # the end user, for the provider's abuse monitoring; only OpenAI-compatible servers take it


@dataclass(frozen=True)
class Usage:
    """Tokens of one completion: as the provider reported them, or counted by the gateway (`estimated`)."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    method: str = REPORTED  # or, when `estimated`, COUNTED_BY_CHUNKS or COUNTED_BY_CHARACTERS

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None
    usage: Usage | None  # None when the provider did not report it


@dataclass(frozen=True)
class StreamPiece:
    """What one line of a provider's stream meant."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
