import threading
import time

import pytest

from app.llm import GenerationOptions, ProviderError, ProviderTimeout, Timeouts
from app.llm.calls import UpstreamCall
from app.llm.errors import ProviderUnreachable, unreachable_message
from app.llm.ollama import OllamaProvider
from app.llm.openai import OpenAIProvider
from bench.fake_model import Script, closed_port_url

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
FAST = Timeouts(connect=1, read=2)


@pytest.fixture(params=["ollama", "openai"])
def provider(request, fake_llm):
    if request.param == "ollama":
        client = OllamaProvider(base_url=fake_llm.ollama_url)
    else:
        client = OpenAIProvider(base_url=fake_llm.openai_url, api_key="sk-test")
    yield client
    client.close()


def complete(provider, timeouts=FAST, **options):
    return provider.complete(model="upstream-m", messages=MESSAGES,
                             options=GenerationOptions(**options), timeouts=timeouts)


def stream(provider, timeouts=FAST, call=None, **options):
    return provider.stream(model="upstream-m", messages=MESSAGES,
                           options=GenerationOptions(**options), timeouts=timeouts, call=call)


def test_complete_returns_content_usage_and_finish_reason(provider, fake_llm):
    fake_llm.script = Script(tokens=["Hel", "lo"], prompt_tokens=9, completion_tokens=2)

    result = complete(provider)

    assert result.content == "Hello"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (9, 2)
    sent = fake_llm.last_request.body
    assert sent["model"] == "upstream-m" and sent["messages"] == MESSAGES and sent["stream"] is False


def test_complete_without_reported_usage(provider, fake_llm):
    fake_llm.script = Script(report_usage=False)

    assert complete(provider).usage is None


def test_stream_yields_tokens_then_usage(provider, fake_llm):
    fake_llm.script = Script(tokens=["a", "b", "c"], prompt_tokens=5, finish_reason="length")

    with stream(provider) as reply:
        tokens = list(reply)

    assert tokens == ["a", "b", "c"]
    assert reply.completed and reply.finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 3)


def test_stream_without_reported_usage(provider, fake_llm):
    fake_llm.script = Script(report_usage=False)

    with stream(provider) as reply:
        assert "".join(reply) == "Hello, world!"
    assert reply.usage is None and reply.completed


def test_ollama_request_shape(fake_llm):
    client = OllamaProvider(base_url=fake_llm.ollama_url)
    with client.stream(model="llama3.1:8b", messages=MESSAGES, timeouts=FAST,
                       options=GenerationOptions(temperature=0.2, top_p=0.9, max_tokens=64)) as reply:
        list(reply)
    client.close()

    request = fake_llm.last_request
    assert request.path == "/api/chat"
    assert request.body == {"model": "llama3.1:8b", "messages": MESSAGES, "stream": True,
                            "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 64}}


def test_openai_request_shape(fake_llm):
    client = OpenAIProvider(base_url=fake_llm.openai_url, api_key="sk-test")
    with client.stream(model="gpt-4o-mini", messages=MESSAGES, timeouts=FAST,
                       options=GenerationOptions(temperature=1.5, max_tokens=10)) as reply:
        list(reply)
    client.close()

    request = fake_llm.last_request
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
                            "temperature": 1.5, "max_tokens": 10,
                            "stream_options": {"include_usage": True}}


def test_wrong_api_key_is_a_provider_error(fake_llm):
    fake_llm.script = Script(api_key="sk-right")
    client = OpenAIProvider(base_url=fake_llm.openai_url, api_key="sk-wrong")

    with pytest.raises(ProviderError) as caught:
        complete(client)
    client.close()

    assert caught.value.status == 502
    assert "401" in caught.value.message and "api key" not in caught.value.message


@pytest.mark.parametrize("call", [complete, stream])
def test_server_error_before_streaming(provider, fake_llm, call):
    fake_llm.script = Script(status=500)

    with pytest.raises(ProviderError) as caught:
        call(provider)

    assert type(caught.value) is ProviderError and caught.value.status == 502
    assert "crashed" not in caught.value.message  # the upstream's own words stay in the log


@pytest.mark.parametrize("call", [complete, stream])
def test_connection_refused(call):
    client = OllamaProvider(base_url=closed_port_url())

    with pytest.raises(ProviderError) as caught:
        call(client)
    client.close()

    assert type(caught.value) is ProviderUnreachable and caught.value.status == 502
    assert caught.value.message == unreachable_message(None)  # the model layer names the catalogue model


@pytest.mark.parametrize("call", [complete, stream])
def test_connection_closed_without_answer(provider, fake_llm, call):
    fake_llm.script = Script(refuse=True)

    with pytest.raises(ProviderError) as caught:
        call(provider)

    assert type(caught.value) is ProviderError


@pytest.mark.parametrize("call", [complete, stream])
def test_hang_before_answer_is_a_timeout(provider, fake_llm, call):
    fake_llm.script = Script(headers_delay=10)
    started = time.monotonic()

    with pytest.raises(ProviderTimeout) as caught:
        call(provider, timeouts=Timeouts(connect=1, read=0.3))

    assert time.monotonic() - started < 2
    assert caught.value.status == 504 and caught.value.code == "provider_timeout"


def test_stall_mid_stream_is_a_timeout(provider, fake_llm):
    fake_llm.script = Script(tokens=["a", "b"], token_delay=10)
    reply = stream(provider, timeouts=Timeouts(connect=1, read=0.3))

    received = []
    with pytest.raises(ProviderTimeout), reply:
        for token in reply:
            received.append(token)

    assert received == ["a"]


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_failure_mid_stream(provider, fake_llm, mode):
    fake_llm.script = Script(tokens=["a", "b", "c"], fail_after=2, fail_mode=mode)
    reply = stream(provider)

    received = []
    with pytest.raises(ProviderError) as caught, reply:
        for token in reply:
            received.append(token)

    assert received == ["a", "b"]
    assert type(caught.value) is ProviderError and not reply.completed


def test_closing_a_stream_closes_the_upstream_connection(provider, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i}" for i in range(200)], token_delay=0.05)
    reply = stream(provider)
    tokens = iter(reply)
    assert [next(tokens), next(tokens)] == ["t0", "t1"]

    closed = time.monotonic()
    reply.close()

    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)
    assert fake_llm.last_request.client_closed_at - closed < 1
    assert fake_llm.last_request.tokens_sent < 200


def _read_in_thread(action) -> tuple[threading.Thread, list]:
    outcome = []

    def run():
        try:
            outcome.append(action())
        except ProviderError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_cancel_unblocks_a_reader_in_another_thread(provider, fake_llm):
    fake_llm.script = Script(first_token_delay=30)
    call = UpstreamCall()
    reply = stream(provider, timeouts=Timeouts(connect=1, read=30), call=call)
    reader, outcome = _read_in_thread(lambda: list(reply))
    time.sleep(0.2)
    call.cancel()
    reader.join(timeout=2)
    reply.close()

    assert not reader.is_alive()
    assert isinstance(outcome[0], ProviderError)
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)


def test_cancel_before_the_provider_sent_its_headers_frees_the_upstream_at_once(provider, fake_llm):
    fake_llm.script = Script(headers_delay=30)
    call = UpstreamCall()
    opener, outcome = _read_in_thread(lambda: stream(provider, timeouts=Timeouts(connect=1, read=30), call=call))
    assert fake_llm.wait_until(lambda: fake_llm.requests, timeout=2)

    cancelled = time.monotonic()
    call.cancel()
    opener.join(timeout=2)

    assert not opener.is_alive() and isinstance(outcome[0], ProviderError)
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)
    assert fake_llm.last_request.client_closed_at - cancelled < 1


def test_a_stream_past_its_total_deadline_is_a_timeout(provider, fake_llm):
    # Never idle longer than the read timeout, but slower in all than the total deadline.
    fake_llm.script = Script(tokens=[f"t{i}" for i in range(100)], token_delay=0.05)
    started = time.monotonic()
    reply = stream(provider, timeouts=Timeouts(connect=1, read=5, total=0.5))

    received = []
    with pytest.raises(ProviderTimeout) as caught, reply:
        for token in reply:
            received.append(token)

    assert 0.5 <= time.monotonic() - started < 1.5
    assert 3 < len(received) < 100 and "deadline" in caught.value.message
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)


def test_a_whole_reply_past_its_total_deadline_is_a_timeout(provider, fake_llm):
    fake_llm.script = Script(headers_delay=5)
    started = time.monotonic()

    with pytest.raises(ProviderTimeout) as caught:
        complete(provider, timeouts=Timeouts(connect=1, read=10, total=0.5))

    assert 0.5 <= time.monotonic() - started < 1.5
    assert caught.value.status == 504 and "deadline" in caught.value.message


def test_connections_are_pooled(provider, fake_llm):
    for _ in range(3):
        complete(provider)
        with stream(provider) as reply:
            list(reply)

    assert len(fake_llm.requests) == 6
    assert fake_llm.connections == 1
