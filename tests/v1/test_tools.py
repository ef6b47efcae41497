"""Tool calls through /v1, whole and streamed, for both provider kinds: what reaches the model, what comes back."""
import json

import pytest

from bench.fake_model import Script
from tests.usage.conftest import usage_rows
from tests.v1.conftest import CHAT_MODELS, OLLAMA, OPENAI, chunks

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_whole_tool_call_comes_back_in_openais_shape(v1, fake_llm, db_session, model):
    fake_llm.script = Script(tokens=[], tool_calls=CALLS, prompt_tokens=30, completion_tokens=12)

    status, body = v1("/chat/completions", {"model": model, "messages": ASK, "tools": [WEATHER],
                                            "tool_choice": "auto", "parallel_tool_calls": True})

    assert status == 200, body
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}), ("function", "get_time", {"zone": "Europe/Paris"})]
    assert len({c["id"] for c in calls}) == 2 and all(c["id"] for c in calls)
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    sent = fake_llm.last_request.body
    assert sent["tools"] == [WEATHER]
    if model == OPENAI:  # forwarded unchanged
        assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", True)
    else:  # Ollama has neither: auto is what it does
        assert "tool_choice" not in sent and "parallel_tool_calls" not in sent
    [row] = usage_rows(db_session)
    assert (row.prompt_tokens, row.completion_tokens, row.method, row.outcome) == (30, 12, "reported", "success")


def accumulate(stream: list[dict]) -> dict[int, dict]:
    """What an SDK builds from the deltas: each call's id, name and concatenated arguments, by index."""
    calls: dict[int, dict] = {}
    for chunk in stream:
        for choice in chunk["choices"]:
            for piece in choice["delta"].get("tool_calls") or ():
                call = calls.setdefault(piece["index"], {"id": None, "name": None, "arguments": "", "pieces": 0})
                if "id" in piece:
                    assert call["id"] is None, "id in the first piece only"
                    call["id"] = piece["id"]
                    call["name"] = piece["function"]["name"]
                    assert piece["type"] == "function"
                else:
                    assert call["id"] is not None, "the id and name come first"
                call["arguments"] += piece["function"]["arguments"]
                call["pieces"] += 1
    return calls


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_streamed_tool_call_arrives_in_indexed_deltas(v1, fake_llm, db_session, model):
    fake_llm.script = Script(tokens=[], tool_calls=CALLS, prompt_tokens=30, completion_tokens=12)

    status, data = v1("/chat/completions", {"model": model, "messages": ASK, "tools": [WEATHER], "stream": True,
                                            "stream_options": {"include_usage": True}})

    assert status == 200
    stream = chunks(data)
    calls = accumulate(stream)
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in (0, 1)] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"zone": "Europe/Paris"})]
    # Ollama sends a call whole: id and name, then its arguments; OpenAI-compatible servers split them further.
    assert all(calls[i]["pieces"] >= (2 if model == OLLAMA else 3) for i in (0, 1))
    finishes = [c["choices"][0]["finish_reason"] for c in stream if c["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert stream[-1]["usage"] == {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    [row] = usage_rows(db_session)
    assert (row.prompt_tokens, row.completion_tokens, row.outcome) == (30, 12, "success")


def round_trip(arguments: str = '{"city": "Paris"}') -> list[dict]:
    return ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 21}'}]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_results_are_forwarded_in_each_kinds_shape(v1, fake_llm, model):
    status, body = v1("/chat/completions", {"model": model, "messages": round_trip(), "tools": [WEATHER]})

    assert status == 200 and body["choices"][0]["message"]["content"] == "Hello, world!"
    assert body["choices"][0]["finish_reason"] == "stop"
    sent = fake_llm.last_request.body["messages"]
    if model == OLLAMA:  # arguments as an object; the result named by its function
        assert sent[1:] == [
            {"role": "assistant", "content": "",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": '{"celsius": 21}', "tool_name": "get_weather"}]
    else:  # arguments as the JSON text they came as
        assert sent[1:] == [
            {"role": "assistant", "content": "", "tool_calls": [  # not null: some servers refuse it
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "content": '{"celsius": 21}', "tool_call_id": "call_1"}]


def test_ollama_tool_choice_none_sends_no_tools(v1, fake_llm):
    assert v1("/chat/completions", {"model": OLLAMA, "messages": ASK, "tools": [WEATHER], "tool_choice": "none"})[0] == 200
    assert "tools" not in fake_llm.last_request.body


@pytest.mark.parametrize("body, param", [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"messages": round_trip("not json")}, "messages"),
])
def test_what_ollama_cannot_honour_is_a_400_naming_it(v1, fake_llm, body, param):
    status, answer = v1("/chat/completions", {"model": OLLAMA, "messages": ASK, "tools": [WEATHER], **body})

    assert status == 400 and answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["code"] == "unsupported_parameter"
    assert fake_llm.requests == []


def test_openai_compatible_servers_get_a_forced_tool_choice(v1, fake_llm):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    assert v1("/chat/completions", {"model": OPENAI, "messages": ASK, "tools": [WEATHER], "tool_choice": choice,
                                    "parallel_tool_calls": False})[0] == 200
    assert fake_llm.last_request.body["tool_choice"] == choice
    assert fake_llm.last_request.body["parallel_tool_calls"] is False


@pytest.mark.parametrize("body", [
    {"tools": [{"type": "function", "function": {"name": "has spaces"}}]},
    {"tools": [{"type": "code_interpreter"}]},
    {"tool_choice": "sometimes"},
    {"messages": [{"role": "tool", "content": "21"}]},
    {"messages": [{"role": "user", "content": None}]},
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]},
])
def test_malformed_tool_requests_are_400s(v1, fake_llm, body):
    status, answer = v1("/chat/completions", {"model": OPENAI, "messages": ASK, **body})
    assert status == 400 and answer["error"]["param"] in body
    assert fake_llm.requests == []
