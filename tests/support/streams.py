"""A streamed reply read in a background thread, for tests that do something while it is open."""
import json
import threading

import requests


class OpenStream(threading.Thread):
    """A streamed reply read in the background, as a browser would: every event, and how the body ended."""

    def __init__(self, http, conversation: str):
        super().__init__(daemon=True)
        self.http, self.conversation = http, conversation
        self.events: list[dict] = []
        self.status: int | None = None
        self.broken: Exception | None = None  # the body was cut without its chunked ending
        self.started = threading.Event()

    def run(self):
        try:
            with self.http.post(f"/conversations/{self.conversation}/stream", json={"content": "go"},
                                stream=True) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith(b"data: "):
                        self.events.append(json.loads(line[len(b"data: "):]))
                        self.started.set()
        except requests.RequestException as exc:
            self.broken = exc
        finally:
            self.started.set()

    def open(self) -> "OpenStream":
        self.start()
        assert self.started.wait(10) and self.events, self.broken
        return self

    def finished(self, timeout: float) -> "OpenStream":
        self.join(timeout)
        assert not self.is_alive(), "the stream did not end"
        return self

    @property
    def text(self) -> str:
        return "".join(event["token"] for event in self.events if event["type"] == "token")
