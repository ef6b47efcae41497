"""A key's chats show on /metrics under its id, as the usage API names it."""
import pytest

from tests.support.keys import bearer, create_key
from tests.support.metrics import parse
from tests.usage.conftest import FREE


@pytest.fixture
def app_overrides():
    return {"USAGE_METRICS_REFRESH_SECONDS": "0"}


def test_a_keys_tokens_this_month_are_its_gauge(client, user, fake_llm):
    created = create_key(client, user)
    for _ in range(2):
        assert client.post("/v1/chat/completions", json={"model": FREE, "messages": [{"role": "user", "content": "x"}]},
                           headers=bearer(created["key"])).status_code == 200
    samples = parse(client.get("/metrics").text)
    assert samples.value("gateway_usage_api_key_month_tokens", api_key=created["id"]) == 42
    assert samples.value("gateway_usage_month_api_keys") == 1
