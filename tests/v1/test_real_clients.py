"""Tool calls, structured output and embeddings through the clients people use: the `openai` package and
langchain-openai, against a real two-worker gunicorn, for both provider kinds."""
import json

import pytest
from pydantic import BaseModel

from bench.fake_model import Script
from bench.fake_model.embeddings import vector
from tests.support.gateway import gateway, logged_in
from tests.support.lazy import Lazy

pytestmark = pytest.mark.slow
openai, langchain_openai, langchain_tools = Lazy("openai"), Lazy("langchain_openai"), Lazy("langchain_core.tools")
OLLAMA, OPENAI = "llama3.1", "gpt-test"
EMBEDDERS = {OLLAMA: "embed-ollama", OPENAI: "embed-openai"}
KINDS = [OLLAMA, OPENAI]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PARIS = [{"name": "get_weather", "arguments": {"city": "Paris"}}]


class Person(BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"  # made a langchain tool (`@tool`) where it is bound


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    directory = tmp_path_factory.mktemp("gateway")
    fake = _fake_llm_server
    models = directory / "models.json"
    models.write_text(json.dumps({"default_model": OLLAMA, "models": {
        OLLAMA: {"provider": "ollama", "base_url": fake.ollama_url},
        OPENAI: {"provider": "openai", "base_url": fake.openai_url},
        EMBEDDERS[OLLAMA]: {"provider": "ollama", "base_url": fake.ollama_url, "kind": "embeddings"},
        EMBEDDERS[OPENAI]: {"provider": "openai", "base_url": fake.openai_url, "kind": "embeddings"},
    }}))
    with gateway(directory, fake, database_url=module_database_url, workers=2,
                 env={"MODELS_FILE": str(models)}) as server:
        yield server


@pytest.fixture(scope="module")
def key(server):
    response = logged_in(server).post("/api-keys", json={"name": "clients"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture
def client(server, key):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30) as client:
        yield client


def chat(server, key, model, **kwargs) -> "langchain_openai.ChatOpenAI":
    return langchain_openai.ChatOpenAI(model=model, base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30, **kwargs)


@pytest.mark.parametrize("model", KINDS)
def test_openai_whole_tool_call(client, fake_llm, model):
    fake_llm.script = Script(tokens=[], tool_calls=PARIS)

    reply = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == ("function", "get_weather", {"city": "Paris"})
    assert call.id and fake_llm.last_request.body["tools"] == [WEATHER]


@pytest.mark.parametrize("model", KINDS)
def test_openai_streamed_tool_call_accumulated_from_deltas(client, fake_llm, model):
    fake_llm.script = Script(tokens=[], tool_calls=PARIS + [{"name": "get_time", "arguments": {"zone": "CET"}}])

    calls: dict[int, dict] = {}
    finish = None
    for chunk in client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], stream=True):
        for piece in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": piece.id, "name": piece.function.name, "arguments": ""})
            call["arguments"] += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish

    assert finish == "tool_calls"
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]
    assert all(call["id"] for call in calls.values())


@pytest.mark.parametrize("model", KINDS)
def test_openai_tool_result_round_trip(client, fake_llm, model):
    fake_llm.queue(Script(tokens=[], tool_calls=PARIS), Script(tokens=["Sunny", " in Paris."]))

    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])

    assert second.choices[0].message.content == "Sunny in Paris." and second.choices[0].finish_reason == "stop"
    assistant, result = fake_llm.last_request.body["messages"][1:]
    if model == OLLAMA:
        assert assistant["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
        assert result == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    else:
        assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
        assert result == {"role": "tool", "content": "sunny", "tool_call_id": call.id}


@pytest.mark.parametrize("model", KINDS)
def test_openai_parse_with_a_pydantic_model(client, fake_llm, model):
    fake_llm.script = Script(json_content={"name": "Ada", "age": 36})

    reply = client.chat.completions.parse(model=model, messages=[{"role": "user", "content": "Who?"}],
                                          response_format=Person)

    assert reply.choices[0].message.parsed == Person(name="Ada", age=36)
    sent = fake_llm.last_request.body
    schema = sent["format"] if model == OLLAMA else sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"].keys() == {"name", "age"}


@pytest.mark.parametrize("model", KINDS)
def test_openai_embeddings_of_a_list(client, fake_llm, model):
    result = client.embeddings.create(model=EMBEDDERS[model], input=["one", "three"])  # base64 on the wire

    assert [item.index for item in result.data] == [0, 1]
    assert [item.embedding for item in result.data] == [vector("one", 16), vector("three", 16)]
    assert result.usage.prompt_tokens == 2


@pytest.mark.parametrize("model", KINDS)
def test_langchain_bind_tools_whole_and_streamed(server, key, fake_llm, model):
    llm = chat(server, key, model).bind_tools([langchain_tools.tool(get_weather)])

    fake_llm.script = Script(tokens=[], tool_calls=PARIS)
    whole = llm.invoke("Weather in Paris?")
    streamed = None
    for chunk in llm.stream("Weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk

    for message in (whole, streamed):
        assert [(call["name"], call["args"]) for call in message.tool_calls] == [("get_weather", {"city": "Paris"})]
        assert message.tool_calls[0]["id"]
    assert fake_llm.last_request.body["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("model", KINDS)
def test_langchain_structured_output(server, key, fake_llm, model):
    fake_llm.script = Script(json_content={"name": "Ada", "age": 36})

    assert chat(server, key, model).with_structured_output(Person).invoke("Who?") == Person(name="Ada", age=36)


@pytest.mark.parametrize("model", KINDS)
def test_langchain_embed_documents(server, key, fake_llm, model):
    embedder = langchain_openai.OpenAIEmbeddings(model=EMBEDDERS[model], base_url=server.url + "/v1", api_key=key, max_retries=0,
                                check_embedding_ctx_length=False)  # no tiktoken download

    vectors = embedder.embed_documents(["one", "three"])

    assert vectors == [vector("one", 16), vector("three", 16)]
