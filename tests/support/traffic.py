"""Client traffic that keeps going through a fault, recording what every request got back.

Each round is what one user does: log in, list, create a conversation, ask for
a whole reply in it, stream one. A request answers with a status (and its JSON
error code) or breaks off (status None); the records say which conversations and
assistant messages a client was told exist, for checking the database afterwards.
"""
import http.client
import threading
from dataclasses import dataclass, field

import requests

from tests.support.client import PASSWORD, GatewayClient
from tests.support.sse import parse_sse

OPERATIONS = ("login", "list", "create", "chat", "stream")


@dataclass
class Outcome:
    operation: str
    status: int | None                 # None: the request broke off (connection reset, timeout)
    code: str | None = None            # the JSON error code, for 4xx/5xx
    retry_after: str | None = None
    events: list[dict] = field(default_factory=list)   # a 200 stream's events

    @property
    def stream_ending(self) -> str | None:
        """`end`, or the code of the `error` event, for a 200 stream."""
        if not self.events:
            return None
        last = self.events[-1]
        return "end" if last["type"] == "end" else last.get("error", {}).get("code")


def describe(operation: str, response: requests.Response) -> Outcome:
    outcome = Outcome(operation, response.status_code, retry_after=response.headers.get("Retry-After"))
    if response.status_code >= 400:
        try:
            outcome.code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            # Outside the JSON contract: keep what came, so the failure shows which server answered and how.
            outcome.code = f"not JSON: {response.headers.get('Content-Type')} {response.text[:200]!r}"
    elif operation == "stream":
        outcome.events = parse_sse(response.content)
    return outcome


class Traffic(threading.Thread):
    """One user's rounds, again and again until `stop()`; never raises, records everything."""

    def __init__(self, http: GatewayClient, email: str, model: str | None = None):
        super().__init__(daemon=True)
        self.http, self.email = http, email
        self.conversation_body = {"title": "traffic", **({"model": model} if model else {})}
        self.outcomes: list[Outcome] = []
        self.created: list[str] = []             # conversation ids answered with a 201
        self.replies: set[str] = set()           # assistant message ids a client was sent
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def count(self, predicate) -> int:
        with self._lock:
            return sum(1 for outcome in self.outcomes if predicate(outcome))

    def failures(self) -> list[Outcome]:
        """Anything but a success: for traffic that no fault should touch."""
        return [o for o in self.outcomes if o.status not in (200, 201)
                or (o.operation == "stream" and o.stream_ending != "end")]

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)
        assert not self.is_alive(), "a traffic thread hung"

    def run(self) -> None:
        while not self._stopping.is_set():
            conversation = None
            for operation in OPERATIONS:
                if operation in ("chat", "stream") and conversation is None:
                    continue
                outcome, result = self._send(operation, conversation)
                with self._lock:
                    self.outcomes.append(outcome)
                if operation == "create" and outcome.status == 201:
                    conversation = result["id"]
                    self.created.append(conversation)
                elif operation == "chat" and outcome.status == 200 and result["assistantMessage"]:
                    self.replies.add(result["assistantMessage"]["id"])
                elif operation == "stream" and outcome.stream_ending == "end":
                    self.replies.add(outcome.events[-1]["message"]["id"])

    def _send(self, operation: str, conversation: str | None) -> tuple[Outcome, dict | None]:
        requests_for = {
            "login": lambda: self.http.post("/auth/login", json={"email": self.email, "password": PASSWORD}),
            "list": lambda: self.http.get("/conversations"),
            "create": lambda: self.http.post("/conversations", json=self.conversation_body),
            "chat": lambda: self.http.post(f"/conversations/{conversation}/messages", json={"content": "hi"}),
            "stream": lambda: self.http.post(f"/conversations/{conversation}/stream", json={"content": "hi"}),
        }
        try:
            response = requests_for[operation]()
            outcome = describe(operation, response)
        except (requests.RequestException, http.client.HTTPException) as exc:
            return Outcome(operation, None, code=type(exc).__name__), None
        body = response.json() if response.status_code in (200, 201) and operation != "stream" else None
        return outcome, body
