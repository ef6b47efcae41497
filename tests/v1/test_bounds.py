"""/v1 bounds: messages per request and characters over all of them, each a 400 naming its limit (issue 20, 7)."""
import pytest

LIMITS = {"V1_MAX_MESSAGES": "5", "V1_MAX_TOTAL_CHARS": "1000"}


@pytest.fixture
def app_config(app_config, fake_llm):
    return {**app_config, "DEFAULT_MODEL": "llama3.1", "OLLAMA_BASE_URL": fake_llm.ollama_url}


def complete(client, user, messages):
    return client.post("/v1/chat/completions", headers=user.headers,
                       json={"model": "llama3.1", "messages": messages})


def assert_openai_error(response, setting):
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert setting in error["message"]


@pytest.mark.parametrize("app_overrides", [LIMITS])
def test_one_message_too_many_is_a_400_naming_the_limit(client, user, fake_llm):
    assert_openai_error(complete(client, user, [{"role": "user", "content": "hi"}] * 6), "V1_MAX_MESSAGES")
    assert complete(client, user, [{"role": "user", "content": "hi"}] * 5).status_code == 200
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("app_overrides", [LIMITS])
def test_one_character_too_many_is_a_400_naming_the_limit(client, user, fake_llm):
    parts = [{"role": "user", "content": [{"type": "text", "text": "x" * 250}, {"type": "text", "text": "y" * 251}]},
             {"role": "system", "content": ""}, {"role": "user", "content": "z" * 500}]
    assert_openai_error(complete(client, user, parts), "V1_MAX_TOTAL_CHARS")
    parts[0]["content"][1]["text"] = "y" * 250
    assert complete(client, user, parts).status_code == 200
    assert len(fake_llm.requests) == 1


def test_the_defaults_are_documented_beside_the_field(client):
    messages = client.get("/openapi.json").get_json()["components"]["schemas"]["ChatCompletionRequest"]
    assert "V1_MAX_MESSAGES" in messages["properties"]["messages"]["description"]


def test_ten_thousand_messages_are_refused_by_default(client, user, fake_llm):
    """The probe's request: 10,000 messages were forwarded whole."""
    assert_openai_error(complete(client, user, [{"role": "user", "content": "hi"}] * 10_000), "V1_MAX_MESSAGES")
    assert not fake_llm.requests
