"""One fake model server for the tests and the benchmarks: Ollama and OpenAI-compatible, as the real ones speak.

    with FakeModelServer() as fake:              # in a thread of this process
        fake.script = Script(tokens=["Hi", "!"], token_delay=0.05)
        ...                                      # point the gateway at fake.ollama_url or fake.openai_url
        assert fake.last_request.body["model"] == "llama3.1"

    python -m bench.fake_model --port 11434 --tokens 32 --seconds 2     # alone, as a model server

It speaks Ollama's POST /api/chat (NDJSON) and /api/embed, and the OpenAI-compatible
POST .../chat/completions (SSE) and .../embeddings; streamed or whole; with tool calls,
JSON mode (`format`, `response_format`) and embeddings (float or base64, deterministic).
It follows a `Script` (tokens and their pace, errors, broken streams, hangs), records
every request and when a client left mid-answer, and counts `Stats`. A request whose
X-Request-ID contains `fault-500`, `fault-hang` or `long-reply` gets that fault alone.
A running one is steered over HTTP: GET /_fake/stats, GET and POST /_fake/script.

It lives in bench/ because it is a tool in its own right (a benchmark or a newcomer runs
it as a model server, and benchmarks must not import the test suite); tests import it from
here. The product never imports it (tests/bench/test_fake_model.py checks).
"""
from .script import FAULT_500, FAULT_HANG, LONG_REPLY, ReceivedRequest, Script, Stats
from .server import GARBAGE, FakeModelServer, closed_port_url

__all__ = ["FAULT_500", "FAULT_HANG", "GARBAGE", "LONG_REPLY", "FakeModelServer", "ReceivedRequest", "Script",
           "Stats", "closed_port_url"]
