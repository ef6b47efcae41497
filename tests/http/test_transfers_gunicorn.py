"""Malformed transfers and slow bodies on real gunicorn: each a 4xx in the JSON contract (issue 20, 1 and 5).

gunicorn decodes the chunked encoding and hands the app a stream that raises
on a bad chunk; the app reads every body before routing, so each such error
is answered in the contract and the connection (whose next request nobody
can find any more) is closed. The one exception is what gunicorn refuses
before the app runs: a request line or header over its limits (414, 431),
which gunicorn answers itself, in text.
"""
import pytest

from tests.support.raw_http import exchange, request_head
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.slow

BODY_DEADLINE = 2.0
JSON_CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url):
    with Gunicorn(tmp_path_factory.mktemp("transfers"), database_url=module_database_url, workers=2,
                  env={"GUNICORN_BODY_TIMEOUT": str(BODY_DEADLINE)}) as server:
        yield server


def assert_json_error(response, status, code):
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


MALFORMED_CHUNKS = {
    "chunk size not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk size too large for the data, then the end": b"ff\r\n{}\r\n0\r\n\r\n",
    "chunk without its CRLF": b"2\r\n{}XX0\r\n\r\n",
    "invalid chunk extension": b"2;\x01\r\n{}\r\n0\r\n\r\n",
    "bare CR in a chunk extension": b"2;a=\rb\r\n{}\r\n0\r\n\r\n",
    "negative chunk size": b"-2\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_a_malformed_chunked_body_is_a_json_400_and_the_connection_closes(server, body):
    response = exchange(server.url, request_head("POST", "/auth/login", JSON_CHUNKED) + body, half_close=True)
    assert_json_error(response, 400, "malformed_body")
    assert response.closed


def test_a_truncated_chunk_is_a_json_400(server):
    response = exchange(server.url, request_head("POST", "/auth/login", JSON_CHUNKED) + b'10\r\n{"email"',
                        half_close=True)
    assert_json_error(response, 400, "malformed_body")


def test_a_body_shorter_than_its_content_length_is_a_json_400(server):
    head = request_head("POST", "/auth/login", {"Content-Type": "application/json", "Content-Length": "100"})
    assert_json_error(exchange(server.url, head + b'{"email":', half_close=True), 400, "malformed_body")


def test_a_valid_chunk_extension_is_read_past(server):
    response = exchange(server.url, request_head("POST", "/auth/login", JSON_CHUNKED)
                        + b'2;name=value;quoted="a b"\r\n{}\r\n0\r\n\r\n')
    assert_json_error(response, 400, "validation_error")  # the body arrived whole: {} lacks email and password


def test_a_body_that_stops_arriving_is_a_json_408_at_the_deadline(server):
    head = request_head("POST", "/auth/login", {"Content-Type": "application/json", "Content-Length": "100"})
    response = exchange(server.url, head + b'{"email":')
    assert_json_error(response, 408, "request_timeout")
    assert BODY_DEADLINE <= response.elapsed < BODY_DEADLINE + 5 and response.closed


def test_a_chunked_body_that_stops_arriving_is_a_json_408(server):
    response = exchange(server.url, request_head("POST", "/auth/login", JSON_CHUNKED) + b'10\r\n{"email"')
    assert_json_error(response, 408, "request_timeout")
    assert response.closed


def test_headers_within_gunicorns_limits_reach_the_app(server):
    """Up to gunicorn's 8190 bytes a header, 100 headers: the app answers, in JSON."""
    headers = {"Authorization": "Bearer " + "a" * 8000, **{f"X-Filler-{n}": "x" * 50 for n in range(90)}}
    assert_json_error(exchange(server.url, request_head("GET", "/auth/me", headers)), 401, "invalid_token")


@pytest.mark.parametrize("head, status", [
    (request_head("GET", "/auth/me", {"Authorization": "Bearer " + "a" * 9000}), 431),
    (request_head("GET", "/conversations?cursor=" + "a" * 9000), 414),
], ids=["header over 8190 bytes", "request line over 8190 bytes"])
def test_over_gunicorns_limits_gunicorn_answers_itself(server, head, status):
    """The documented exception to the JSON contract: refused before the app runs, as gunicorn words it."""
    response = exchange(server.url, head)
    assert response.status == status and response.closed


def test_no_transfer_left_a_traceback(server):
    assert "Traceback" not in server.log()


def test_gthread_workers_answer_a_stalled_body_with_a_json_408_too(tmp_path):
    """Outside gevent the deadline is a socket timeout (per read, not for the whole body): a body that stops
    arriving still gets its 408 and the connection closes."""
    with Gunicorn(tmp_path, workers=1, env={"GUNICORN_WORKER_CLASS": "gthread",
                                            "GUNICORN_BODY_TIMEOUT": str(BODY_DEADLINE)}) as server:
        head = request_head("POST", "/auth/login", {"Content-Type": "application/json", "Content-Length": "100"})
        response = exchange(server.url, head + b'{"email":')
    assert_json_error(response, 408, "request_timeout")
    assert BODY_DEADLINE <= response.elapsed < BODY_DEADLINE + 5 and response.closed
