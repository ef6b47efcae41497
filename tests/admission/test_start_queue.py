"""The start queue: CHAT_START_LIMIT chats start at once per worker, the rest wait in arrival order, and one
that waited CHAT_QUEUE_TIMEOUT gets 503 chat_capacity with Retry-After."""
import threading

import pytest
from flask import Flask

from app.admission.start_queue import StartQueue
from app.config import Settings
from app.errors import ApiError


@pytest.fixture
def context():
    app = Flask(__name__)
    app.config["SETTINGS"] = Settings()
    with app.app_context():
        yield


def wait_in_line(queue: StartQueue, name: str, admitted: list, lined_up: threading.Event):
    def run():
        lined_up.set()
        release = queue.enter(1, 10)
        admitted.append(name)
        release_of[name] = release

    release_of: dict = {}
    thread = threading.Thread(target=run)
    thread.start()
    return thread, release_of


def test_chats_over_the_limit_start_first_in_first_served(context):
    queue, admitted = StartQueue(), []
    first = queue.enter(1, 10)
    waiting = []
    for name in ("second", "third", "fourth"):
        lined_up = threading.Event()
        waiting.append(wait_in_line(queue, name, admitted, lined_up))
        lined_up.wait(5)
        while len(queue._waiting) < len(waiting):  # in line before the next one arrives
            threading.Event().wait(0.001)
    assert admitted == []

    first()
    first()  # a second release of the same slot changes nothing
    for index, (thread, release_of) in enumerate(waiting):
        thread.join(5)
        assert admitted == ["second", "third", "fourth"][:index + 1]
        release_of[admitted[-1]]()
    assert queue._starting == 0 and not queue._waiting


def test_a_chat_that_waited_too_long_gets_503_chat_capacity_with_retry_after(context):
    queue = StartQueue()
    release = queue.enter(1, 10)

    with pytest.raises(ApiError) as refused:
        queue.enter(1, 0.05)

    assert refused.value.status == 503 and refused.value.code == "chat_capacity"
    assert refused.value.headers["Retry-After"] == str(Settings().retry_after_seconds)
    assert not queue._waiting  # it left the line
    release()
    assert queue.enter(1, 0.05) is not None  # the slot is free again
