"""What an operator sees from real gunicorn: JSON log lines, request ids, start-up errors, provider health."""
import json
import socket
import subprocess
import time

import pytest
import requests

from bench.fake_model import FakeModelServer, closed_port_url
from tests.support.gateway import gateway, logged_in
from tests.support.servers import Gunicorn, free_port, wait_until

pytestmark = pytest.mark.slow


def test_every_line_is_json_and_a_request_id_follows_a_chat(tmp_path):
    # Rate limits on, in memory: the default, whose storage starts a timer before the fork.
    env = {"LOG_FORMAT": "json", "RATE_LIMITS_ENABLED": "true"}
    with FakeModelServer() as fake, gateway(tmp_path, fake, workers=2, env=env) as server:
        client = logged_in(server)
        conversation = client.conversation()
        answered = client.post(f"/conversations/{conversation}/messages", json={"content": "a private question"},
                               headers={"X-Request-ID": "op-trace-1"})
        assert answered.status_code == 200 and answered.headers["X-Request-ID"] == "op-trace-1"
        assert fake.last_request.headers["X-Request-ID"] == "op-trace-1"
        streamed = client.stream_events(conversation, "another one")
        assert streamed[-1]["type"] == "end"
        generated = requests.get(f"{server.url}/livez", timeout=5).headers["X-Request-ID"]
        assert len(generated) == 32
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    assert {"gunicorn.error", "gunicorn.access"} <= {r["logger"] for r in records}
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert any(r["requestId"] == "op-trace-1" and r["status"] == "200" and r["method"] == "POST" for r in access)
    assert any(r["requestId"] == generated and r["path"] == "/livez" for r in access)
    completions = [r for r in records if r["message"].startswith("chat completion")]
    assert len(completions) == 2
    first = next(r for r in completions if r["requestId"] == "op-trace-1")
    assert first["model"] == "llama3.1" and first["provider"] == "ollama" and first["outcome"] == "success"
    assert first["completionTokens"] > 0 and first["durationMs"] >= 0
    streamed_line = next(r for r in completions if r is not first)
    assert streamed_line["streaming"] is True and streamed_line["timeToFirstTokenMs"] is not None
    assert "private question" not in server.log() and "test-jwt-secret" not in server.log()
    started = [r["message"] for r in records if r["message"].startswith("gateway ready")]
    assert len(started) == 1 and f"API http://127.0.0.1:{server.port}" in started[0]
    assert "database sqlite" in started[0] and "llama3.1 (ollama)" in started[0]
    assert sum("database schema" in r["message"] for r in records) == 1
    assert not any(r["logger"].startswith("alembic") for r in records)


def start_failure(tmp_path, env) -> tuple[int, list[str], float]:
    server = Gunicorn(tmp_path, env=env)
    argv, environ, cwd = server.command()
    began = time.monotonic()
    done = subprocess.run(argv, env=environ, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, output, time.monotonic() - began


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("setting", ["API_PORT", "METRICS_PORT"])
def test_a_port_in_use_stops_the_start_with_one_line(tmp_path, setting):
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        code, output, _ = start_failure(tmp_path, {setting: str(port)})
    assert code != 0
    assert output == [output[0]] and output[0].startswith("gateway: cannot start:"), output
    assert f"{setting}={port}" in output[0] and "in use" in output[0]


@pytest.mark.parametrize(("env", "named"), [
    ({"DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:{port}/test"}, "DATABASE_URL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"PROVIDER_PROBE_SECONDS": "often"}, "PROVIDER_PROBE_SECONDS"),
    ({"OLLAMA_BASE_URL": "localhost:11434"}, "OLLAMA_BASE_URL"),
    ({"APP_ENV": "production", "JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY"),
])
def test_an_unreachable_database_or_a_bad_setting_stops_the_start_with_one_line(tmp_path, env, named):
    env = {key: value.format(port=free_port()) for key, value in env.items()}
    code, output, seconds = start_failure(tmp_path, env)
    assert code != 0
    assert len(output) == 1 and output[0].startswith("gateway: cannot start:"), output
    assert named in output[0] and "Traceback" not in output[0]
    assert "hunter2" not in output[0]  # never the database password
    assert seconds < 30


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("GUNICORN_THREADS", "x", "GUNICORN_THREADS must be an integer, got 'x'"),
    ("GUNICORN_MAX_REQUESTS", "abc", "GUNICORN_MAX_REQUESTS must be an integer, got 'abc'"),
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be between 1 and 256, got 0"),
    # Refused, not run: gunicorn would swap `sync` for gthread (threads > 1) while the ready line said sync.
    ("GUNICORN_WORKER_CLASS", "sync", "GUNICORN_WORKER_CLASS must be one of gevent, gthread, got 'sync'"),
    ("GUNICORN_PRELOAD", "maybe", "GUNICORN_PRELOAD must be true or false, got 'maybe'"),
    ("GUNICORN_HEADER_TIMEOUT", "0", "GUNICORN_HEADER_TIMEOUT must be between 1 and 3600, got 0"),
])
def test_a_bad_gunicorn_setting_stops_the_start_with_one_line(tmp_path, setting, value, message):
    code, output, _ = start_failure(tmp_path, {setting: value})
    assert code != 0
    assert output == [f"gateway: cannot start: {message}"], output


@pytest.mark.xfail(strict=True, reason="gunicorn itself reads WEB_CONCURRENCY with int() when it is imported, "
                                       "before any config file runs (see docs/configuration.md)")
def test_a_non_integer_web_concurrency_stops_the_start_with_one_line(tmp_path):
    code, output, _ = start_failure(tmp_path, {"WEB_CONCURRENCY": "abc"})
    assert code != 0
    assert output == ["gateway: cannot start: WEB_CONCURRENCY must be an integer, got 'abc'"], output


def test_health_reports_a_provider_down_within_the_probe_interval(tmp_path):
    interval = 1.0
    fake = FakeModelServer().start()
    try:
        with gateway(tmp_path, fake, workers=1, env={"PROVIDER_PROBE_SECONDS": str(interval)}) as server:
            def provider_status():
                response = requests.get(f"{server.url}/health", timeout=5)
                assert response.status_code == 200  # informational: a provider never makes the gateway unready
                [provider] = response.json()["providers"]
                assert provider["provider"] == "ollama" and provider["models"] == ["llama3.1"]
                return provider["status"]

            wait_until(lambda: provider_status() == "up", timeout=10, what="the provider probed up")
            fake.stop()
            stopped = time.monotonic()
            wait_until(lambda: provider_status() == "down", timeout=10, interval=0.05, what="the provider probed down")
            # One interval to the next probe, plus scheduling slack on a busy machine.
            assert time.monotonic() - stopped < interval + 1.0
    finally:
        fake.stop()


def test_an_empty_access_log_setting_still_turns_access_lines_off(tmp_path):
    with Gunicorn(tmp_path, workers=1, env={"LOG_FORMAT": "json", "GUNICORN_ACCESS_LOG": ""}) as server:
        for _ in range(3):
            assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert not [r for r in records if r["logger"] == "gunicorn.access"]
    assert any(r["message"].startswith("gateway ready") for r in records)


def test_with_no_model_server_the_gateway_says_so_from_the_start(tmp_path):
    # A new user's first start, with no model server: every place they look says what is wrong.
    url = closed_port_url()
    env = {"OLLAMA_BASE_URL": url, "DEFAULT_MODEL": "llama3.1", "OLLAMA_MODELS": "", "MODELS_FILE": "",
           "OPENAI_BASE_URL": "", "OPENAI_API_KEY": "", "LOG_FORMAT": "json",
           "PROVIDER_PROBE_SECONDS": "3600"}  # only the probe at each worker's start can have run
    with Gunicorn(tmp_path, workers=2, env=env) as server:
        server.wait_for_workers(2)

        def records():
            return [json.loads(line) for line in server.log().splitlines() if line.strip()]

        # Each worker probes at its start, with no /health asked yet.
        down = wait_until(lambda: len(found := [r for r in records() if r["message"] == f"provider ollama at {url} is down"])
                          == 2 and found, timeout=15, what="each worker's first probe")
        assert len({r["pid"] for r in down}) == 2
        health = requests.get(f"{server.url}/health", timeout=5).json()
        assert [p["status"] for p in health["providers"]] == ["down"]

        client = logged_in(server)
        answer = client.post(f"/conversations/{client.conversation()}/messages", json={"content": "hello?"})
        assert answer.status_code == 502
        message = answer.json()["error"]["message"]
        assert "'llama3.1'" in message and "None of the upstreams" in message and "/health" in message
        assert "127.0.0.1" not in message  # the URL is in the log, for the operator
    [ready] = [r for r in records() if r["message"].startswith("gateway ready")]
    assert ready["level"] == "WARNING"
    assert f"no upstream of the default model llama3.1 answers (ollama at {url})" in ready["message"]
    assert any(url in r["message"] and r["level"] == "WARNING" and "request to" in r["message"] for r in records())
