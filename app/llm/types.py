"""The data that crosses the model layer's boundary, in one shape each."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

# Where a completion's token counts came from.
REPORTED = "reported"  # by the provider
COUNTED_BY_CHUNKS = "chunks"  # one streamed content chunk is one token on llama.cpp, vLLM and Ollama
COUNTED_BY_CHARACTERS = "characters"  # about four characters per token, for whole replies
# The prompt counted by the server's own tokenizer, the completion by its streamed chunks: both exact.
COUNTED_BY_TOKENIZER = "tokenizer"

CHAT, EMBEDDINGS = "chat", "embeddings"  # what a catalogue model is for (`kind`)


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
    kind: str = CHAT  # EMBEDDINGS models are refused by the chat routes
    # Ask the server's tokenizer for the prompt's tokens when a stream reports no usage (OpenAI-compatible only).
    count_prompt_tokens: bool = True
    # The reply's token limit when a request sets none: a small CPU model otherwise writes to its whole context.
    default_max_tokens: int | None = None

    # Where this spec sends its calls: one upstream's name (a metric label value) and its share of the calls.
    upstream: str = ""
    weight: float = 1.0
    # A model's servers, each a whole spec of its own (the fields above are the first one's), and the
    # catalogue models tried, in order, when every one of them failed before the first token.
    upstreams: tuple[ModelSpec, ...] = field(default=(), repr=False)
    fallbacks: tuple[str, ...] = ()

    @property
    def routes(self) -> tuple[ModelSpec, ...]:
        """The specs a call to this model may go to: one per upstream."""
        return self.upstreams or (self,)

    def limited(self, options: GenerationOptions) -> GenerationOptions:
        """`options` with this model's default_max_tokens, when the request named no limit of its own."""
        if self.default_max_tokens is None or options.max_tokens is not None or options.max_completion_tokens is not None:
            return options
        return replace(options, max_tokens=self.default_max_tokens)


@dataclass(frozen=True)
class GenerationOptions:
    """What a request asks of the model, in OpenAI's terms; each provider maps it or has refused it before.

    `extra` holds the request's parameters the gateway has no field for; they
    reach OpenAI-compatible servers unchanged (Ollama refuses them earlier).
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    user: str | None = None  # the end user, for the provider's abuse monitoring; only OpenAI-compatible servers take it
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: tuple[dict[str, Any], ...] | None = None  # OpenAI's tool definitions
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; `arguments` is a JSON text, as in OpenAI's API."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call: the first of a call has its id and name, the rest add to its arguments."""

    index: int | None  # None from a provider that sends calls whole: the stream numbers them
    id: str | None = None
    name: str | None = None
    arguments: str = ""


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
    tool_calls: tuple[ToolCall, ...] = ()
    logprobs: dict[str, Any] | None = None  # OpenAI's choice.logprobs, when asked for and given


@dataclass(frozen=True)
class StreamPiece:
    """What one line of a provider's stream meant."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    logprobs: dict[str, Any] | None = None

    @property
    def plain(self) -> bool:
        """Only text: no tool call, no logprobs."""
        return not self.tool_calls and self.logprobs is None


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int | None  # None when the provider did not report it
