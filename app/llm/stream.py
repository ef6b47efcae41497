"""A streamed reply as an iterator of deltas, closable from another thread."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

import requests

from ..logs import fingerprint
from .calls import UpstreamCall
from .errors import UNREADABLE, ProviderError, cut_short, translate
from .types import StreamPiece, Usage

log = logging.getLogger(__name__)


class ProviderStream:
    """Deltas of one streamed reply; `usage` and `finish_reason` are set when it ends.

    A delta is its text (a str), or, when it carries tool-call pieces or
    logprobs, the whole StreamPiece; tool-call pieces all have their index.

    Closing it closes the upstream HTTP response, which is how a client that
    went away stops the provider's work.
    """

    def __init__(self, response: requests.Response, parse_line: Callable[[str], StreamPiece | None],
                 call: UpstreamCall, *, trace=None):
        self._response = response
        self._call = call
        self._parse_line = parse_line
        # `trace`: the call's span (app/tracing), ended with the stream; None when traces are off.
        self._trace = trace
        self._deltas = self._read() if trace is None else trace.follow_stream(self, self._read())
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.completed = False
        self.tool_calls = 0  # calls begun so far
        self._begun: set[int] = set()  # indexes whose first piece went by

    def __iter__(self) -> Iterator[str | StreamPiece]:
        return self._deltas

    def _numbered(self, piece: StreamPiece) -> StreamPiece:
        """Each piece with its call's index, and the id and name in a call's first piece only.

        Calls from a provider that sends them whole are numbered here, in the
        order they came; a server that repeats the id and name in every piece
        (llama-cpp-python's does) would have clients concatenate the name.
        """
        deltas = []
        for delta in piece.tool_calls:
            if delta.index is None:
                if delta.id is not None:
                    self.tool_calls += 1
                delta = replace(delta, index=self.tool_calls - 1)
            elif delta.index in self._begun:
                delta = replace(delta, id=None, name=None)
            elif delta.id is not None:
                self.tool_calls = max(self.tool_calls, delta.index + 1)
            self._begun.add(delta.index)
            deltas.append(delta)
        return replace(piece, tool_calls=tuple(deltas))

    def _read(self) -> Iterator[str | StreamPiece]:
        try:
            for line in self._response.iter_lines(chunk_size=None, decode_unicode=False):
                if self.completed:
                    continue  # drain to the end so the connection goes back to the pool
                try:
                    piece = self._parse_line(line.decode("utf-8", errors="replace"))
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    log.warning("unreadable stream line: %s", fingerprint(line))
                    raise ProviderError("The model provider sent an unreadable answer.", reason=UNREADABLE) from None
                if piece is None:
                    continue
                if piece.usage is not None:
                    self.usage = piece.usage
                if piece.finish_reason is not None:
                    self.finish_reason = piece.finish_reason
                if not piece.plain:
                    yield self._numbered(piece)
                elif piece.text:
                    yield piece.text
                if piece.done:
                    self.completed = True
        except requests.RequestException as exc:
            raise translate(exc, self._call) from None
        finally:
            self._response.close()
            self._call.finish()
        # Some OpenAI-compatible servers end with a finish_reason but no [DONE]: the reply is whole all the same.
        if not self.completed and self.finish_reason is None:
            raise cut_short(self._call) or ProviderError("The model provider ended the reply early.")
        self.completed = True
        if self.tool_calls and self.finish_reason in (None, "stop"):  # Ollama says "stop" after calling tools
            self.finish_reason = "tool_calls"

    def close(self) -> None:
        self._deltas.close()
        self._response.close()
        self._call.finish()
        if self._trace is not None:
            self._trace.end_stream(self)

    def __enter__(self) -> ProviderStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
