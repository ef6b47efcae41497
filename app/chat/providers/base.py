"""What every provider client shares: the HTTP session, error translation and the stream wrapper.

Provider exceptions carry a message that is safe to show to API clients; the
upstream's own error text only goes to the log.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider was unreachable, or answered with an error."""

    status = 502
    reason = "upstream_error"

    def __init__(self, message: str = "The model provider failed to answer."):
        super().__init__(message)
        self.message = message


class ProviderTimeout(ProviderError):
    """The provider stopped sending data for longer than the read timeout."""

    status = 504
    reason = "upstream_timeout"

    def __init__(self, message: str = "The model provider timed out."):
        super().__init__(message)


@dataclass(frozen=True)
class GenerationOptions:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


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


def translate(exc: requests.RequestException) -> ProviderError:
    # requests reports a read timeout in the middle of a body as a ConnectionError
    # wrapping urllib3's ReadTimeoutError, and a connect timeout as a Timeout:
    # only the first two are the provider being slow, the last is it being away.
    if isinstance(exc, requests.ConnectTimeout):
        return ProviderError("The model provider is unreachable.")
    if isinstance(exc, requests.Timeout) or (
        exc.args and isinstance(exc.args[0], ReadTimeoutError)
    ):
        return ProviderTimeout()
    if isinstance(exc, requests.ConnectionError):
        return ProviderError("The model provider is unreachable or closed the connection.")
    return ProviderError()


class ProviderStream:
    """Text deltas of one streamed reply; `usage` and `finish_reason` are set when it ends.

    Closing it closes the upstream HTTP response, which is how a client that
    went away stops the provider's work.
    """

    def __init__(self, response: requests.Response, parse_line: Callable[[str], StreamPiece | None]):
        self._response = response
        self._parse_line = parse_line
        self._deltas = self._read()
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.completed = False

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def _read(self) -> Iterator[str]:
        try:
            for line in self._response.iter_lines(chunk_size=None, decode_unicode=False):
                if self.completed:
                    continue  # drain to the end so the connection goes back to the pool
                try:
                    piece = self._parse_line(line.decode("utf-8", errors="replace"))
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    log.warning("unreadable stream line: %r", line[:200])
                    raise ProviderError("The model provider sent an unreadable answer.") from None
                if piece is None:
                    continue
                if piece.usage is not None:
                    self.usage = piece.usage
                if piece.finish_reason is not None:
                    self.finish_reason = piece.finish_reason
                if piece.text:
                    yield piece.text
                if piece.done:
                    self.completed = True
        except requests.RequestException as exc:
            raise translate(exc) from None
        finally:
            self._response.close()
        # Some OpenAI-compatible servers end with a finish_reason but no [DONE]: the reply is whole all the same.
        if not self.completed and self.finish_reason is None:
            raise ProviderError("The model provider ended the reply early.")
        self.completed = True

    def interrupt(self) -> None:
        """Unblock a read waiting in another thread; `close()` must still follow."""
        try:
            self._response.raw.shutdown()
        except (AttributeError, ValueError, RuntimeError, OSError):
            pass  # already released, or a transport without sockets

    def close(self) -> None:
        self._deltas.close()
        self._response.close()

    def __enter__(self) -> ProviderStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChatProvider:
    """One upstream server: its URL, optional key and a pooled session (one per worker)."""

    kind: ClassVar[str]
    path: ClassVar[str]

    def __init__(self, *, base_url: str, api_key: str | None = None, pool_size: int = 32):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def payload(self, *, model: str, messages: list[dict[str, str]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        raise NotImplementedError

    def parse_stream_line(self, line: str) -> StreamPiece | None:
        raise NotImplementedError

    def complete(self, *, model: str, messages: list[dict[str, str]],
                 options: GenerationOptions, timeouts: Timeouts) -> Completion:
        payload = self.payload(model=model, messages=messages, options=options, stream=False)
        response = self._post(payload, timeouts=timeouts, stream=False)
        try:
            body = response.json()
            return self.parse_completion(body)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            log.warning("unreadable completion from %s", self.base_url, exc_info=True)
            raise ProviderError("The model provider sent an unreadable answer.") from None
        finally:
            response.close()

    def stream(self, *, model: str, messages: list[dict[str, str]],
               options: GenerationOptions, timeouts: Timeouts) -> ProviderStream:
        payload = self.payload(model=model, messages=messages, options=options, stream=True)
        response = self._post(payload, timeouts=timeouts, stream=True)
        return ProviderStream(response, self.parse_stream_line)

    def close(self) -> None:
        self.session.close()

    def _post(self, payload: dict[str, Any], *, timeouts: Timeouts, stream: bool) -> requests.Response:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = self.session.post(
                self.base_url + self.path, json=payload, headers=headers,
                timeout=(timeouts.connect, timeouts.read), stream=stream,
            )
        except requests.RequestException as exc:
            log.warning("%s request to %s failed: %r", self.kind, self.base_url, exc)
            raise translate(exc) from None
        if response.status_code >= 400:
            detail = _error_detail(response)
            log.warning("%s at %s answered %s: %r", self.kind, self.base_url,
                        response.status_code, detail)
            raise ProviderError(f"The model provider answered with HTTP {response.status_code}.")
        return response


def _error_detail(response: requests.Response) -> bytes:
    try:
        return response.raw.read(500, decode_content=True) or response.content[:500]
    except (requests.RequestException, OSError, ValueError):
        return b""
    finally:
        response.close()


def parse_json_line(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value
