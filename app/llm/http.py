"""The HTTP side of every provider: a pooled session per upstream, requests, and error translation.

Provider exceptions carry a message that is safe to show to API clients; the
upstream's own error text only goes to the log.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, ClassVar

import requests

from .. import tracing
from ..http import request_id
from ..logs import fingerprint
from .calls import CancellableAdapter, UpstreamCall
from .errors import UNREADABLE, ClientLeft, ProviderError, status_reason, translate
from .stream import ProviderStream
from .types import Completion, Embeddings, GenerationOptions, StreamPiece, Timeouts

log = logging.getLogger(__name__)


class ChatProvider:
    """One upstream server: its URL, optional key and a pooled session (one per worker)."""

    kind: ClassVar[str]
    path: ClassVar[str]
    embed_path: ClassVar[str]

    # Keep-alive connections kept per upstream: as many as there are concurrent calls, up to this.
    POOL_SIZE = 1000

    def __init__(self, *, base_url: str, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        # The environment's proxy and CA-bundle settings are read once, here: with trust_env
        # requests reads every proxy variable and looks for ~/.netrc on each call, a
        # visible share of a chat's CPU time. (netrc credentials are not used: keys go in the models' settings.)
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        adapter = CancellableAdapter(pool_connections=1, pool_maxsize=self.POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._requests: dict[str, requests.PreparedRequest] = {}  # per path: its URL parsed once (see _prepare)
        # The headers every call sends (the session's defaults, ours), built once; by stream or not.
        fixed = {**self.session.headers, **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._headers = {stream: {**fixed, "Accept": "text/event-stream" if stream else "application/json"}
                         for stream in (False, True)}

    @classmethod
    def refuse_unsupported(cls, options: GenerationOptions, messages: list[dict[str, Any]]) -> None:
        """Raise UnsupportedParameter, naming it, for what this kind cannot honour; before any call."""
        raise NotImplementedError

    @classmethod
    def refuse_unsupported_embedding(cls, *, token_input: bool, dimensions: int | None) -> None:
        raise NotImplementedError

    def payload(self, *, model: str, messages: list[dict[str, Any]],
                options: GenerationOptions, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def embed_payload(self, *, model: str, inputs: list[str] | list[list[int]],
                      dimensions: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def parse_embeddings(self, body: dict[str, Any]) -> Embeddings:
        raise NotImplementedError

    def parse_completion(self, body: dict[str, Any]) -> Completion:
        raise NotImplementedError

    def parse_stream_line(self, line: str) -> StreamPiece | None:
        raise NotImplementedError

    def complete(self, *, model: str, messages: list[dict[str, Any]], options: GenerationOptions,
                 timeouts: Timeouts, call: UpstreamCall | None = None) -> Completion:
        """The whole reply; ProviderTimeout when it takes longer than `timeouts.total` in all.

        `call` lets another thread (or greenlet) cancel it: a client that left.
        """
        payload = self.payload(model=model, messages=messages, options=options, stream=False)
        with self._attempt("chat", model, options=options, messages=messages) as attempt:
            return attempt.replied(self._whole(self.path, payload, timeouts, self.parse_completion, call))

    def embed(self, *, model: str, inputs: list[str] | list[list[int]], dimensions: int | None,
              timeouts: Timeouts, call: UpstreamCall | None = None) -> Embeddings:
        """One vector per input, in order; ProviderTimeout when it takes longer than `timeouts.total`."""
        payload = self.embed_payload(model=model, inputs=inputs, dimensions=dimensions)
        with self._attempt("embeddings", model, dimensions=dimensions) as attempt:
            embeddings = self._whole(self.embed_path, payload, timeouts, self.parse_embeddings, call)
            if len(embeddings.vectors) != len(inputs):
                log.warning("%s at %s sent %d vectors for %d inputs", self.kind, self.base_url,
                            len(embeddings.vectors), len(inputs))
                raise ProviderError("The model provider sent an unreadable answer.", reason=UNREADABLE)
            return attempt.embedded(embeddings)

    def _whole(self, path: str, payload: dict[str, Any], timeouts: Timeouts, parse, call: UpstreamCall | None):
        call = call or UpstreamCall(timeouts.total)
        try:
            response = self._post(payload, timeouts=timeouts, stream=False, call=call, path=path)
        finally:
            call.finish()
        try:
            return parse(response.json())
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # No traceback: a parser's exception may quote the body, and the body may echo the prompt.
            log.warning("unreadable answer from %s: %s, body %s", self.base_url, type(exc).__name__,
                        fingerprint(response.content))
            raise ProviderError("The model provider sent an unreadable answer.", reason=UNREADABLE) from None
        finally:
            response.close()

    def stream(self, *, model: str, messages: list[dict[str, Any]], options: GenerationOptions,
               timeouts: Timeouts, call: UpstreamCall | None = None) -> ProviderStream:
        """The reply as it is generated. `call` lets another thread cancel it, even before the headers came."""
        payload = self.payload(model=model, messages=messages, options=options, stream=True)
        call = call or UpstreamCall(timeouts.total)
        with self._attempt("chat", model, options=options, messages=messages) as attempt:
            try:
                response = self._post(payload, timeouts=timeouts, stream=True, call=call)
            except BaseException:
                call.finish()
                raise
            return ProviderStream(response, self.parse_stream_line, call, trace=attempt.follow())

    def close(self) -> None:
        self.session.close()

    def _attempt(self, operation: str, model: str, **call):
        """This call's CLIENT span (app/tracing), or nothing when traces are off."""
        return tracing.upstream_call(operation, provider=self.kind, base_url=self.base_url, model=model, **call)

    def _post(self, payload: dict[str, Any], *, timeouts: Timeouts, stream: bool,
              call: UpstreamCall, path: str | None = None) -> requests.Response:
        headers = dict(self._headers[stream])
        if rid := request_id.current.get():
            headers[request_id.HEADER] = rid
        tracing.inject(headers)
        try:
            with call.bound():
                response = self.session.send(self._prepare(path or self.path, headers, payload),
                                             timeout=(timeouts.connect, timeouts.read), stream=stream)
        except requests.RequestException as exc:
            error = translate(exc, call)
            if isinstance(error, ClientLeft):  # our doing, not the provider's failure
                log.info("%s request to %s cancelled: the client left", self.kind, self.base_url)
            else:
                log.warning("%s request to %s failed: %r", self.kind, self.base_url, exc)
            raise error from None
        if response.status_code >= 400:
            detail = _error_detail(response)
            log.warning("%s at %s answered %s: body %s", self.kind, self.base_url,
                        response.status_code, fingerprint(detail))
            raise ProviderError(f"The model provider answered with HTTP {response.status_code}.",
                                reason=status_reason(response.status_code))
        return response

    def _prepare(self, path: str, headers: dict[str, str], payload: dict[str, Any]) -> requests.PreparedRequest:
        """What session.post would send, for less CPU: the URL is parsed once per path, and the session's
        settings are not merged again on every call (no cookies, no auth, no environment: see __init__)."""
        template = self._requests.get(path)
        if template is None:
            template = self._requests[path] = requests.Request("POST", self.base_url + path).prepare()
        prepared = template.copy()
        prepared.prepare_headers(headers)
        prepared.prepare_body(data=None, files=None, json=payload)
        return prepared


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
