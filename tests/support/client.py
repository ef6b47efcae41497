"""A logged-in HTTP client for a real gateway (gunicorn): register, converse, chat, stream."""
import itertools
import uuid

import requests

from tests.support.sse import read_events

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


class GatewayClient(requests.Session):
    """requests.Session bound to one gateway URL; `register()` logs it in with a real JWT."""

    def __init__(self, base_url: str, timeout: float = 30):
        super().__init__()
        self.base_url, self.timeout = base_url, timeout
        self.user: dict | None = None

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, self.base_url + url if url.startswith("/") else url, *args, **kwargs)

    def register(self, email: str | None = None) -> "GatewayClient":
        email = email or f"user{next(_numbers)}-{uuid.uuid4().hex[:8]}@example.com"
        response = self.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        self.user = response.json()["user"]
        self.headers["Authorization"] = f"Bearer {response.json()['accessToken']}"
        return self

    def conversation(self, **body) -> str:
        response = self.post("/conversations", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def message(self, conversation_id: str, content: str = "hello", **body) -> dict:
        response = self.post(f"/conversations/{conversation_id}/messages", json={"content": content, **body})
        assert response.status_code == 200, response.text
        return response.json()

    def stream_events(self, conversation_id: str, content: str = "hello", *, limit: int | None = None, **body) -> list[dict]:
        """The stream's events; with `limit`, read only that many and then leave (close the connection)."""
        with self.post(f"/conversations/{conversation_id}/stream", json={"content": content, **body},
                       stream=True) as response:
            assert response.status_code == 200, response.text
            assert response.headers["Content-Type"].startswith("text/event-stream")
            return read_events(response.iter_lines(), limit=limit)

    def messages(self, conversation_id: str) -> list[dict]:
        response = self.get(f"/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        return response.json()["messages"]
