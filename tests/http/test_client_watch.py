"""The client socket watch: a FIN cancels, pipelined bytes end the watch, and the block's end ends it too.

In process the watch is a thread (gthread's way); tests/chat/test_gunicorn_disconnect.py proves the
greenlet under real gevent workers.
"""
import socket
import threading

import pytest
from flask import Flask

from app.http.client_watch import cancelled_if_client_leaves
from tests.support.servers import wait_until


@pytest.fixture
def app():
    return Flask(__name__)


@pytest.fixture
def sockets():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def watchers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "client-watch"]


def test_a_client_that_closes_its_connection_cancels_the_call(app, sockets):
    ours, theirs = sockets
    left = threading.Event()
    with app.test_request_context(environ_overrides={"gunicorn.socket": ours}):
        with cancelled_if_client_leaves(left.set):
            theirs.close()
            assert left.wait(timeout=5)


def test_pipelined_bytes_end_the_watch_without_cancelling(app, sockets):
    ours, theirs = sockets
    left = threading.Event()
    with app.test_request_context(environ_overrides={"gunicorn.socket": ours}):
        with cancelled_if_client_leaves(left.set):
            theirs.sendall(b"GET / HTTP/1.1\r\n")  # the next request: not ours to read, so we cannot tell
            wait_until(lambda: not watchers(), timeout=5, what="the watch to end")
            theirs.close()
    assert not left.is_set()
    assert ours.recv(64, socket.MSG_PEEK) == b"GET / HTTP/1.1\r\n"  # left for the server to read


def test_the_watch_ends_with_the_call(app, sockets):
    ours, theirs = sockets
    left = threading.Event()
    with app.test_request_context(environ_overrides={"gunicorn.socket": ours}):
        with cancelled_if_client_leaves(left.set):
            assert watchers()
        wait_until(lambda: not watchers(), timeout=5, what="the watch to end")
    theirs.close()  # the reply was sent: a client leaving now costs nothing
    assert not left.is_set()


def test_no_socket_no_watch(app):
    with app.test_request_context():
        with cancelled_if_client_leaves(lambda: pytest.fail("cancelled")):
            assert not watchers()
    with cancelled_if_client_leaves(lambda: pytest.fail("cancelled")):  # outside any request
        assert not watchers()
