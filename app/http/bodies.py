"""What every request's body and URL must be before routing: JSON when there is a body, read whole within
the size limit and the body deadline before anything opens a transaction, and no NUL anywhere in the URL."""
import logging
from contextlib import contextmanager

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from ..errors import ApiError, ValidationFailed

log = logging.getLogger(__name__)

# The methods whose requests carry a body; the OpenAPI document says so of the same ones (openapi.py).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def has_body() -> bool:
    """A declared length, or a chunked body whose length nobody declared."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def require_json_body() -> None:
    """Bodies must be JSON: a form post or plain text gets 415, not a confusing 400; chunked ones too."""
    if request.method in BODY_METHODS and has_body() and not request.is_json:
        raise UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json")


class BodyTimeout(Exception):
    """The client took longer than GUNICORN_BODY_TIMEOUT to send its body.

    An Exception, not gevent's BaseException Timeout: gunicorn's body reader marks
    the connection unusable on an Exception and closes it after the 408.
    """


def read_body() -> None:
    """Read the whole body now, within MAX_CONTENT_LENGTH and GUNICORN_BODY_TIMEOUT, before anything uses the database.

    Authentication looks up a revocation or an API key before a view parses its
    arguments: a body still arriving then would hold that transaction's pooled
    connection for as long as the client cares to send it, and a few dozen slow
    clients would exhaust the pool. Everything after this hook reads the cached body.
    """
    if not has_body():
        return
    seconds = current_app.config["SETTINGS"].gunicorn_body_timeout
    try:
        with _body_deadline(seconds):
            data = request.get_data(cache=True)
            # werkzeug stops reading a chunked body at the limit without a word, so look past it.
            too_large = (request.content_length is None and request.max_content_length
                         and len(data) >= request.max_content_length and request.environ["wsgi.input"].read(1))
    except RequestEntityTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the transfer did wrong, it is the client's to fix
        if _timed_out(exc):
            raise ApiError(408, "request_timeout",
                           f"The request body did not arrive within {seconds:g} seconds") from None
        # The class only (InvalidChunkSize, NoMoreData, ClientDisconnected...): its text quotes the client's bytes.
        log.info("unreadable request body on %s %s: %s", request.method, request.path, type(exc).__name__)
        raise _unreadable_body() from None
    if too_large:
        raise RequestEntityTooLarge()
    if request.content_length is not None and len(data) < request.content_length:
        # gunicorn ends the stream where the client stopped sending; werkzeug cannot tell that from the end.
        raise _unreadable_body()


def _timed_out(exc: BaseException | None) -> bool:
    """The deadline passed, perhaps under werkzeug's ClientDisconnected (a socket timeout, outside gevent)."""
    while exc is not None:
        if isinstance(exc, (BodyTimeout, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _unreadable_body() -> ApiError:
    return ApiError(400, "malformed_body", "The request body could not be read: its chunked encoding is "
                    "malformed, or it ended before its declared length")


@contextmanager
def _body_deadline(seconds: float):
    """The whole read under one deadline with gevent (gunicorn's worker here); elsewhere a timeout per socket read."""
    from gevent import Timeout, monkey

    if monkey.is_module_patched("socket"):
        with Timeout(seconds, BodyTimeout()):
            yield
        return
    sock = request.environ.get("gunicorn.socket")
    if sock is None:  # not gunicorn (the test client): the body is already in memory
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        sock.settimeout(previous)


def refuse_nul_in_url() -> None:
    """A NUL in the path or the query would reach the database, which refuses it with an error of its own."""
    if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        raise ValidationFailed("The URL must not contain NUL characters", {"url": ["Contains a NUL character."]})


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_in_url)
    app.before_request(require_json_body)
    # Before every hook that follows (rate-limit keys, authentication): they read the cached body.
    app.before_request(read_body)
