"""Provider failures, each with one name used everywhere: HTTP status, API code, metric outcome.

The API code is also what a partial reply stores as `meta.reason`, so a client,
a log line and a dashboard all speak of the same failure the same way. The
message is safe to show to API clients; the upstream's own error text only
goes to the log.
"""
from __future__ import annotations

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from ..errors import ApiError

# Why one upstream attempt failed: a bounded set, used as the `reason` metric label and in a 502's attempts.
CONNECT = "connect"  # refused, unreachable, or the connect timed out
TIMEOUT = "timeout"  # an idle deadline: no headers, or no chunk, in time
RESET = "reset"  # the connection closed before the answer was whole
HTTP_5XX, HTTP_429, HTTP_408, HTTP_4XX = "http_5xx", "http_429", "http_408", "http_4xx"
UNREADABLE = "unreadable"
DEADLINE = "deadline"  # the call's total deadline passed: no time is left for another upstream
CANCELLED = "cancelled"  # the client left
# Failures that say nothing against the request: another upstream may well answer it.
RETRYABLE = frozenset({CONNECT, TIMEOUT, RESET, HTTP_5XX, HTTP_429, HTTP_408})


class ProviderError(ApiError):
    """The provider was unreachable, or answered with an error."""

    status = 502
    code = "provider_error"
    outcome = "provider_error"  # the chat_completions_total{outcome} label value
    default_message = "The model provider failed to answer."
    default_reason = RESET

    def __init__(self, message: str | None = None, *, reason: str | None = None, details: dict | None = None):
        super().__init__(self.status, self.code, message or self.default_message, details)
        self.reason = reason or self.default_reason


class ProviderTimeout(ProviderError):
    """The provider took longer than one of its deadlines."""

    status = 504
    code = "provider_timeout"
    outcome = "timeout"
    default_message = "The model provider timed out."
    default_reason = TIMEOUT


def status_reason(status: int) -> str:
    """The failure reason for an upstream's HTTP error status."""
    if status >= 500:
        return HTTP_5XX
    return {429: HTTP_429, 408: HTTP_408}.get(status, HTTP_4XX)


class ClientLeft(ProviderError):
    """The gateway cancelled the call because nobody wants the answer any more: the client left.

    Nobody reads this response; 499 (nginx's "client closed request") keeps it
    out of the 5xx a dashboard counts as the gateway failing.
    """

    status = 499
    code = "client_closed_request"
    outcome = "client_disconnect"
    default_message = "The client closed its connection before the reply was ready."
    default_reason = CANCELLED


class ProviderUnreachable(ProviderError):
    """No upstream of the model answered: refused, unresolvable, or not connected within the connect timeout.

    The message is built here alone, for every route and every way of choosing
    an upstream; it names the catalogue model, never an upstream's URL (that is
    for the log).
    """

    default_reason = CONNECT

    def __init__(self, model: str | None = None, *, details: dict | None = None):
        self.model = model
        super().__init__(unreachable_message(model), details=details)


def unreachable_message(model: str | None) -> str:
    named = f"model {model!r}" if model else "this model"
    return (f"None of the upstreams of {named} answered: the model server is down or unreachable. "
            "GET /health shows which model servers the gateway reaches.")



def cut_short(call) -> ProviderError | None:
    """Why the gateway cut an UpstreamCall short, if it did: its deadline, or the client leaving."""
    if call is not None and call.expired:
        return ProviderTimeout("The model provider did not finish within the deadline.", reason=DEADLINE)
    if call is not None and call.cancelled:
        return ClientLeft()
    return None


def translate(exc: requests.RequestException, call=None) -> ProviderError:
    """What a failed request means for the client; `call` (an UpstreamCall) knows if we cut it short."""
    reason = cut_short(call)
    if reason is not None:
        return reason
    # requests reports a read timeout in the middle of a body as a ConnectionError
    # wrapping urllib3's ReadTimeoutError, and a connect timeout as a Timeout:
    # only the first two are the provider being slow, the last is it being away.
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return ProviderUnreachable()
    if isinstance(exc, requests.Timeout) or (
        exc.args and isinstance(exc.args[0], ReadTimeoutError)
    ):
        return ProviderTimeout()
    if isinstance(exc, requests.ConnectionError):
        refused = exc.args and isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
        return ProviderError("The model provider is unreachable or closed the connection.",
                             reason=CONNECT if refused else RESET)
    return ProviderError()


def _never_connected(exc: requests.RequestException) -> bool:
    """Refused or unresolvable: requests wraps urllib3's NewConnectionError in a MaxRetryError."""
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


class UnsupportedParameter(ApiError):
    """A request parameter the model's provider kind cannot honour: refused rather than dropped."""

    def __init__(self, param: str, message: str):
        super().__init__(400, "unsupported_parameter", message, {"param": param})
