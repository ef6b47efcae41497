"""The providers' side of tool calls: how each kind's wire becomes OpenAI's calls and indexed deltas."""
import json

from app.llm import GenerationOptions
from app.llm.calls import UpstreamCall
from app.llm.ollama import OllamaProvider
from app.llm.openai import OpenAIProvider
from app.llm.stream import ProviderStream
from app.llm.types import StreamPiece, ToolCallDelta
from bench.fake_model import Script


class Lines:
    """A response whose body is these lines."""

    def __init__(self, lines):
        self.lines = [line.encode() for line in lines]

    def iter_lines(self, **kwargs):
        return iter(self.lines)

    def close(self):
        pass


def ollama_line(*calls, done=False):
    message = {"role": "assistant", "content": "",
               "tool_calls": [{"function": {"name": name, "arguments": args}} for name, args in calls]}
    return json.dumps({"message": message, "done": done, **({"done_reason": "stop", "prompt_eval_count": 3,
                                                              "eval_count": 4} if done else {})})


def pieces(stream: ProviderStream) -> list[ToolCallDelta]:
    return [delta for piece in stream if isinstance(piece, StreamPiece) for delta in piece.tool_calls]


def test_ollama_calls_in_separate_lines_are_numbered_in_order_and_the_reply_finishes_with_tool_calls():
    provider = OllamaProvider(base_url="http://127.0.0.1:1")
    lines = [ollama_line(("a", {"x": 1})), ollama_line(("b", {"y": 2}), ("c", {})), ollama_line(done=True)]
    stream = ProviderStream(Lines(lines), provider.parse_stream_line, UpstreamCall())

    deltas = pieces(stream)

    assert [(d.index, d.name, d.arguments) for d in deltas] == [
        (0, "a", ""), (0, None, '{"x": 1}'), (1, "b", ""), (1, None, '{"y": 2}'), (2, "c", ""), (2, None, "{}")]
    assert all(d.id for d in deltas[::2]) and len({d.id for d in deltas[::2]}) == 3
    assert stream.finish_reason == "tool_calls" and stream.usage.completion_tokens == 4
    provider.close()


def test_openai_deltas_keep_the_servers_index_and_id():
    provider = OpenAIProvider(base_url="http://127.0.0.1:1/v1")

    def sse(delta, finish=None):
        return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    lines = [sse({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                  "function": {"name": "f", "arguments": ""}}]}),
             sse({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
             sse({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
             sse({}, "tool_calls"), "data: [DONE]"]
    stream = ProviderStream(Lines(lines), provider.parse_stream_line, UpstreamCall())

    deltas = pieces(stream)

    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "call_9", "f", ""), (0, None, None, '{"a"'), (0, None, None, ": 1}")]
    assert stream.finish_reason == "tool_calls"
    provider.close()


def test_a_server_repeating_the_id_and_name_in_every_piece_is_sent_on_with_them_in_the_first_only():
    provider = OpenAIProvider(base_url="http://127.0.0.1:1/v1")
    piece = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    lines = ["data: " + json.dumps({"choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {**piece, "function": {**piece["function"], "arguments": text}}]}}]}) for text in ('{"a"', ": 1}")]
    stream = ProviderStream(Lines(lines + ["data: [DONE]"]), provider.parse_stream_line, UpstreamCall())

    assert [(d.index, d.id, d.name, d.arguments) for d in pieces(stream)] == [
        (0, "call_1", "f", '{"a"'), (0, None, None, ": 1}")]
    provider.close()


def test_an_object_for_arguments_from_an_openai_compatible_server_becomes_json_text(fake_llm):
    provider = OpenAIProvider(base_url=fake_llm.openai_url)
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
        "finish_reason": "tool_calls"}]}
    [call] = provider.parse_completion(body).tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("c1", "f", {"a": 1})
    provider.close()


def test_the_tokenizer_dialect_is_learned_once(fake_llm):
    provider = OpenAIProvider(base_url=fake_llm.openai_url)
    fake_llm.script = Script(tokenizer="vllm", tokenizer_count=9)
    messages = [{"role": "user", "content": "hi"}]

    counts = [provider.tokenizer.count(model="m", messages=messages, tools=None) for _ in range(2)]

    assert counts == [9, 9] and provider.tokenizer.dialect == "vllm"
    # The first count found out that /apply-template is not there; the second asks vLLM's route alone.
    assert [path for path, _ in fake_llm.tokenize_requests] == ["/apply-template", "/tokenize", "/tokenize"]
    provider.close()


def test_ollama_payload_maps_tools_and_json_schema():
    provider = OllamaProvider(base_url="http://127.0.0.1:1")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    payload = provider.payload(model="m", messages=[{"role": "user", "content": "x"}], stream=False, options=GenerationOptions(
        tools=(tool,), response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}))
    assert (payload["tools"], payload["format"]) == ([tool], schema)
    provider.close()


