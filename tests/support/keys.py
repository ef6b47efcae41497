"""API keys through the real API: create one, and the header that presents it."""
ALL_SCOPES = ["inference", "conversations", "usage:read"]


def create_key(client, user, **body) -> dict:
    response = client.post("/api-keys", json={"name": "laptop", **body}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}
