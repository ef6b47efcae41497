"""The fake model server speaks each protocol as the real servers do, and holds up under a benchmark's load."""
import asyncio
import base64
import json
import re
import struct
import time
from pathlib import Path

import pytest
import requests

from bench.common import client
from bench.common.servers import FakeModel
from bench.fake_model import FakeModelServer, Script
from bench.fake_model.embeddings import vector

ROOT = Path(__file__).resolve().parents[2]
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
MESSAGES = [{"role": "user", "content": "what is the weather in Paris"}]


@pytest.fixture(scope="module")
def server():
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    yield server
    server.reset()


def ndjson(response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line]


def sse(response) -> list:
    data = [line[6:] for line in response.iter_lines() if line.startswith(b"data: ")]
    assert data[-1] == b"[DONE]"
    return [json.loads(d) for d in data[:-1]]


def ollama(fake, **body):
    return requests.post(f"{fake.ollama_url}/api/chat", json={"model": "m", "messages": MESSAGES, **body}, timeout=5)


def openai(fake, **body):
    return requests.post(f"{fake.openai_url}/chat/completions", json={"model": "m", "messages": MESSAGES, **body},
                         timeout=5)


def test_chats_whole_and_streamed_in_both_protocols(fake):
    fake.script = Script(tokens=["Hi", " there"], prompt_tokens=None)
    streamed = ndjson(ollama(fake))
    assert [e["message"]["content"] for e in streamed] == ["Hi", " there", ""] and streamed[-1]["done"]
    assert streamed[-1]["prompt_eval_count"] == 6 and streamed[-1]["eval_count"] == 2
    whole = openai(fake).json()
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "Hi there"}
    assert whole["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}
    chunks = sse(openai(fake, stream=True, stream_options={"include_usage": True}))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hi there"
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    assert [r.protocol for r in fake.requests] == ["ollama", "openai", "openai"]
    assert fake.last_request.stream and not fake.requests[1].stream


def test_ollama_sends_a_tool_call_whole_in_one_chunk_with_arguments_as_an_object(fake):
    fake.script = Script(tool_calls=[WEATHER])
    events = ndjson(ollama(fake, tools=TOOLS))
    assert len(events) == 2 and events[-1]["done"] and events[-1]["done_reason"] == "stop"
    assert events[0]["message"]["tool_calls"] == [{"function": WEATHER}]
    whole = ollama(fake, tools=TOOLS, stream=False).json()
    assert whole["message"]["tool_calls"] == [{"function": WEATHER}] and whole["message"]["content"] == ""


def test_openai_streams_a_tool_call_as_id_and_name_then_argument_pieces(fake):
    fake.script = Script(tool_calls=[WEATHER, {"id": "call_2", "name": "get_time", "arguments": {}}])
    chunks = sse(openai(fake, tools=TOOLS, stream=True))
    deltas = [c["choices"][0]["delta"].get("tool_calls") for c in chunks[:-1]]
    first = deltas[0][0]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [d[0]["function"]["arguments"] for d in deltas[1:] if d[0]["index"] == 0]
    assert len(pieces) > 2 and all("name" not in d[0]["function"] for d in deltas[1:len(pieces) + 1])
    assert json.loads("".join(pieces)) == WEATHER["arguments"]
    second = [d[0] for d in deltas if d[0]["index"] == 1]
    assert second[0]["id"] == "call_2" and second[0]["function"]["name"] == "get_time"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    whole = openai(fake, tools=TOOLS).json()["choices"][0]
    assert whole["finish_reason"] == "tool_calls" and whole["message"]["content"] is None
    call = whole["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER["arguments"]


def test_a_request_without_tools_gets_text_even_when_the_script_calls_one(fake):
    fake.script = Script(tokens=["no tools"], tool_calls=[WEATHER])
    assert openai(fake).json()["choices"][0]["message"]["content"] == "no tools"
    assert ollama(fake, stream=False, tools=[]).json()["message"]["content"] == "no tools"


SCHEMA = {"type": "object", "required": ["city", "days"], "$defs": {
    "Day": {"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                             "high": {"type": "number"}}}},
          "properties": {"city": {"type": "string", "minLength": 8}, "days": {"type": "array", "minItems": 2,
                                                                              "items": {"$ref": "#/$defs/Day"}},
                         "unit": {"enum": ["celsius", "fahrenheit"]}, "note": {"anyOf": [{"type": "null"},
                                                                                      {"type": "integer"}]}}}


def test_json_mode_replies_with_valid_json_matching_the_requested_schema(fake):
    expected = {"city": "textxxxx", "days": [{"date": "2026-01-01", "high": 0.0}] * 2, "unit": "celsius", "note": 0}
    schema_format = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": SCHEMA, "strict": True}}
    assert json.loads(openai(fake, response_format=schema_format).json()["choices"][0]["message"]["content"]) == expected
    chunks = sse(openai(fake, response_format=schema_format, stream=True))
    assert json.loads("".join(c["choices"][0]["delta"].get("content", "") for c in chunks)) == expected
    assert len(chunks) > 3  # in pieces, as tokens
    assert json.loads(ollama(fake, format=SCHEMA, stream=False).json()["message"]["content"]) == expected

    fake.script = Script(tokens=["Hi"])
    assert json.loads(ollama(fake, format="json", stream=False).json()["message"]["content"]) == {"reply": "Hi"}
    whole = openai(fake, response_format={"type": "json_object"}).json()
    assert json.loads(whole["choices"][0]["message"]["content"]) == {"reply": "Hi"}
    fake.script = Script(json_content={"answer": 42})
    assert json.loads(openai(fake, response_format={"type": "json_object"}).json()["choices"][0]["message"]
                      ["content"]) == {"answer": 42}


def test_embeddings_are_deterministic_in_both_protocols_and_encodings(fake):
    texts = ["the cat sat", "on the mat"]
    native = requests.post(f"{fake.ollama_url}/api/embed", json={"model": "e", "input": texts}, timeout=5).json()
    assert native["model"] == "e" and native["prompt_eval_count"] == 6
    assert native["embeddings"] == [vector(t, 16) for t in texts]
    assert abs(sum(v * v for v in native["embeddings"][0]) - 1) < 1e-5

    floats = requests.post(f"{fake.openai_url}/embeddings", json={"model": "e", "input": texts, "dimensions": 4},
                           timeout=5).json()
    assert floats["object"] == "list" and floats["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert [d["index"] for d in floats["data"]] == [0, 1] and floats["data"][0]["object"] == "embedding"
    assert [d["embedding"] for d in floats["data"]] == [vector(t, 4) for t in texts]
    encoded = requests.post(f"{fake.openai_url}/embeddings", timeout=5,
                            json={"model": "e", "input": texts, "dimensions": 4, "encoding_format": "base64"}).json()
    decoded = [list(struct.unpack("<4f", base64.b64decode(d["embedding"]))) for d in encoded["data"]]
    assert decoded == [d["embedding"] for d in floats["data"]]

    one = requests.post(f"{fake.openai_url}/embeddings", json={"model": "e", "input": "the cat sat"}, timeout=5).json()
    assert one["data"][0]["embedding"] == native["embeddings"][0]
    tokens = requests.post(f"{fake.openai_url}/embeddings", json={"model": "e", "input": [[1, 2, 3]]}, timeout=5)
    assert tokens.json()["usage"]["prompt_tokens"] == 3
    bad = requests.post(f"{fake.openai_url}/embeddings", json={"model": "e", "input": [1.5]}, timeout=5)
    assert bad.status_code == 400 and "input" in bad.json()["error"]["message"]
    assert [r.kind for r in fake.requests] == ["embeddings"] * 6 and not fake.last_request.stream


def test_scripted_errors_and_broken_streams(fake):
    fake.queue(Script(status=503), Script(fail_after=1), Script(fail_after=1, fail_mode="garbage"),
               Script(api_key="secret"), Script(refuse=True), Script(fail_after=1, fail_mode="drop"))
    unavailable = ollama(fake)
    assert unavailable.status_code == 503 and unavailable.json() == {"error": "the model runner crashed"}
    events = [line for line in openai(fake, stream=True).iter_lines() if line]
    assert len(events) == 2 and json.loads(events[1][6:])["error"]["type"] == "server_error"
    garbage = ollama(fake, stream=False)
    assert garbage.status_code == 200 and garbage.headers["Content-Type"] == "text/html"
    assert openai(fake).status_code == 401
    with pytest.raises(requests.ConnectionError):
        ollama(fake)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        ollama(fake).content
    assert ollama(fake, stream=False).json()["message"]["content"] == "Hello, world!"  # the queue is used up


def test_each_request_can_ask_for_its_own_fault_through_its_request_id(fake):
    fake.script = Script(tokens=["a", "b"])
    failed = requests.post(f"{fake.ollama_url}/api/chat", json={"model": "m", "messages": MESSAGES, "stream": False},
                           headers={"X-Request-ID": "soak-fault-500-1"}, timeout=5)
    assert failed.status_code == 500 and failed.json() == {"error": "injected fault"}
    long = requests.post(f"{fake.ollama_url}/api/chat", json={"model": "m", "messages": MESSAGES, "stream": False},
                         headers={"X-Request-ID": "x-long-reply"}, timeout=5)
    assert long.json()["message"]["content"] == "ab" * 10
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{fake.ollama_url}/api/chat", json={"model": "m", "messages": MESSAGES},
                      headers={"X-Request-ID": "fault-hang"}, timeout=0.3)
    assert fake.wait_until(lambda: fake.stats.client_left == 1, timeout=2)
    assert (fake.stats.faults_500, fake.stats.faults_hang, fake.stats.open) == (1, 1, 0)
    assert fake.last_request.client_closed_at is not None and fake.last_request.finished_at is None


def test_a_client_leaving_mid_stream_is_noticed_at_once(fake):
    fake.script = Script(tokens=["t"] * 100, token_delay=0.05)
    with requests.post(f"{fake.openai_url}/chat/completions", json={"model": "m", "messages": MESSAGES,
                                                                     "stream": True}, stream=True, timeout=5) as r:
        next(r.iter_lines())
    left = time.monotonic()
    assert fake.wait_until(lambda: fake.last_request.client_closed_at is not None, timeout=2)
    assert fake.last_request.client_closed_at - left < 0.5 and fake.last_request.tokens_sent < 20


def test_app_never_imports_the_fake_or_the_tests():
    importing = [path.relative_to(ROOT) for path in (ROOT / "app").rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+(bench|tests)\b", path.read_text(), flags=re.M)]
    assert importing == []


@pytest.mark.slow
def test_alone_it_holds_a_thousand_streams_and_takes_its_script_over_http(tmp_path):
    with FakeModel(tmp_path, tokens=5, seconds=1.0) as fake:
        assert requests.get(fake.url, timeout=5).text == "Ollama is running"
        assert fake.set_script(tokens=5, seconds=1.0, release_together=1000)["release_together"] == 1000
        payload = {"model": "m", "messages": MESSAGES, "stream": True}

        async def streams():
            return await asyncio.gather(*(client.stream("127.0.0.1", fake.port, "/api/chat", payload,
                                                        protocol="ndjson", timeout=30) for _ in range(1000)))

        results = asyncio.run(streams())
        assert [(r.ok, r.tokens) for r in results] == [(True, 5)] * 1000
        # All thousand open at once (its gate holds every reply until they are), whatever the machine's speed.
        assert fake.stats() == {"open": 0, "peak_open": 1000, "served": 1000, "client_left": 0, "faults_500": 0,
                                "faults_hang": 0}

        assert fake.set_script(tokens=2, seconds=0.0, status=500)["status"] == 500
        assert requests.post(f"{fake.url}/api/chat", json=payload, timeout=5).status_code == 500
        refused = requests.post(f"{fake.url}/_fake/script", json={"colour": "blue"}, timeout=5)
        assert refused.status_code == 400 and "colour" in refused.json()["error"]
