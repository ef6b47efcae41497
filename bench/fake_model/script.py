"""What the fake model server is told to do (`Script`), what it saw (`ReceivedRequest`) and counts (`Stats`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_TOKENS = ("Hello", ",", " world", "!")

# Markers a load test puts in a request's X-Request-ID (which the gateway forwards), so that it knows exactly
# which of its requests should fail: a 500, a hang until the client leaves, or a reply ten times as long.
FAULT_500, FAULT_HANG, LONG_REPLY = "fault-500", "fault-hang", "long-reply"


@dataclass
class Script:
    tokens: tuple[str, ...] | list[str] = DEFAULT_TOKENS
    headers_delay: float = 0.0       # before the status line: a model loading (math.inf: see `hang`)
    first_token_delay: float = 0.0   # after the headers, before the first token
    token_delay: float = 0.0         # between tokens, paced from the first one (a late wake-up does not add up)
    report_usage: bool = True        # False: a server that sends no usage (in streams or at all)
    prompt_tokens: int | None = 17   # None: one per word of the request's messages, as a tokenizer would vary
    completion_tokens: int | None = None   # None: the number of pieces sent
    finish_reason: str = "stop"
    status: int = 200                # anything else: an error answer before any streaming
    fail_after: int | None = None    # break the stream after this many tokens...
    fail_mode: str = "error"         # ...with the protocol's error object ("error"), by cutting the connection ("drop"),
                                     # or with a line that is not JSON ("garbage"; a whole reply is then a 200 HTML page)
    refuse: bool = False             # read the request, then close the connection without a word
    hang: bool = False               # read the request, then say nothing until the client leaves (a stuck server)
    api_key: str | None = None       # when set, a request without this bearer key gets 401
    # Tool calls, each {"name": ..., "arguments": {...}} (and an optional "id"): the reply calls them instead of
    # answering in text, when the request offered tools (a model cannot call what it was not given).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    json_content: Any = None         # JSON mode: this value as the reply; None: one built from the requested schema
    embedding_dimensions: int = 16   # unless the request asks for `dimensions`
    # Hold every answer (before its headers) until this many requests have been open at once, then let all go:
    # a load test then knows its requests were held together, however slow the machine that sent them.
    release_together: int = 0

    def __post_init__(self) -> None:
        if self.hang:
            self.headers_delay = math.inf

    @classmethod
    def paced(cls, tokens: int, seconds: float, **changes: Any) -> Script:
        """`tokens` tokens spread evenly over `seconds`: what the benchmarks ask for."""
        return cls(tokens=[f"t{i} " for i in range(tokens)], token_delay=seconds / max(tokens, 1), **changes)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Script:
        """A script sent to a running fake (POST /_fake/script): a bare `tokens` count with `seconds` is paced."""
        data = dict(data)
        if isinstance(data.get("tokens"), int):
            return cls.paced(data.pop("tokens"), float(data.pop("seconds", 0.0)), **_known(data))
        data.pop("seconds", None)
        return cls(**_known(data))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = list(self.tokens)
        data["headers_delay"] = None if math.isinf(self.headers_delay) else self.headers_delay
        return data


def _known(data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(Script)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown script fields: {sorted(unknown)}")
    return data


@dataclass
class ReceivedRequest:
    protocol: str                    # "ollama" or "openai"
    path: str
    headers: dict[str, str]          # as the client spelled them
    body: dict[str, Any]
    received_at: float               # time.monotonic()
    kind: str = "chat"               # "chat" or "embeddings"
    tokens_sent: int = 0
    finished_at: float | None = None
    client_closed_at: float | None = None   # set when the client went away mid-answer

    @property
    def stream(self) -> bool:
        return self.kind == "chat" and bool(self.body.get("stream", self.protocol == "ollama"))


@dataclass
class Stats:
    """Counts a load test reads back (GET /_fake/stats): requests open, served, and left by the client."""

    open: int = 0
    peak_open: int = 0               # the most requests open at once
    served: int = 0
    client_left: int = 0
    faults_500: int = 0
    faults_hang: int = 0
