"""`python -m bench.rolling --quick`: one rolling restart (each instance in turn, then HUP both) under load, behind
HAProxy, on PostgreSQL with Redis: no failed request, no stream without its end, every reply received is stored."""
import json

import pytest
import redis

from bench import rolling
from tests.conftest import IN_CI
from tests.monitoring.test_haproxy_scale_out import haproxy_bin  # noqa: F401 (fixture: skip or fail without it)
from tests.support.databases import postgres_available

pytestmark = pytest.mark.slow


def test_a_rolling_restart_under_load_fails_no_request_and_loses_no_reply(tmp_path, haproxy_bin):  # noqa: F811
    if not postgres_available():
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable; CI must run the rolling restart on it")
        pytest.skip("PostgreSQL is not reachable")
    try:
        redis.Redis(socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.fail("Redis is not reachable at 127.0.0.1:6379 (bash .ci/run starts it)")
    output = tmp_path / "rolling.md"

    exit_code = rolling.main(["--quick", "--output", str(output)])

    [run] = json.loads(output.with_suffix(".json").read_text())["runs"]
    assert exit_code == 0, run
    assert run["failed_total"] == 0 and run["streams_without_end"] == 0, run["failed"]
    assert run["replies_stored"] == run["replies_received"] > 50
    assert set(run["sent"]) == {"whole", "stream", "read"}
    events = [event for _, event in run["timeline"]]
    assert events[:6] == ["SIGTERM gateway 1", "gateway 1 started again", "gateway 1 serves through HAProxy",
                          "SIGTERM gateway 2", "gateway 2 started again", "gateway 2 serves through HAProxy"]
    assert "both reloaded" in events
