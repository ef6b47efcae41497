"""Registering users through the real API and holding their real JWTs."""
import itertools
from dataclasses import dataclass

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


@dataclass
class TestUser:
    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.access_token}"}


class AuthActions:
    def __init__(self, client):
        self.client = client

    def register(self, email: str | None = None, password: str = PASSWORD, name: str | None = "Test User") -> TestUser:
        email = email or f"user{next(_numbers)}@example.com"
        response = self.client.post("/auth/register", json={"email": email, "password": password, "name": name})
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return TestUser(body["user"]["id"], body["user"]["email"], body["accessToken"], body["refreshToken"])
