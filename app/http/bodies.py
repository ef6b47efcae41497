"""What every request's body and URL must be before routing: JSON when there is a body, within the size
limit when chunked, and no NUL anywhere in the URL."""
from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from ..errors import ValidationFailed

# The methods whose requests carry a body; the OpenAPI document says so of the same ones (openapi.py).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def has_body() -> bool:
    """A declared length, or a chunked body whose length nobody declared."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def require_json_body() -> None:
    """Bodies must be JSON: a form post or plain text gets 415, not a confusing 400; chunked ones too."""
    if request.method in BODY_METHODS and has_body() and not request.is_json:
        raise UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json")


def limit_chunked_body() -> None:
    """MAX_CONTENT_LENGTH for chunked bodies: werkzeug stops reading at the limit without a word, so look past it."""
    if request.content_length is None and has_body() and request.max_content_length:
        data = request.get_data(cache=True)
        if len(data) >= request.max_content_length and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()


def refuse_nul_in_url() -> None:
    """A NUL in the path or the query would reach the database, which refuses it with an error of its own."""
    if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        raise ValidationFailed("The URL must not contain NUL characters", {"url": ["Contains a NUL character."]})


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_in_url)
    app.before_request(require_json_body)
    app.before_request(limit_chunked_body)
