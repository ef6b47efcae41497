"""The HTTP side of every provider: a pooled session per upstream, requests, and error translation.

Provider exceptions carry a message that is safe to show to API clients; the
upstream's own error text only goes to the log.
"""
from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter

from .errors import ProviderError, translate
from .stream import ProviderStream
from .types import Completion, GenerationOptions, StreamPiece, Timeouts

log = logging.getLogger(__name__)


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
