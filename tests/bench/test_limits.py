"""`python -m bench.limits --quick` still runs end to end and reports every limit (never judged for speed)."""
import json

import pytest

from bench import limits
from tests.support import redisdb

pytestmark = pytest.mark.slow

MEASURED = {"revocation", "rate_limit_memory", "rate_limit_redis", "budget_with_budget", "budget_without_budget"}
IN_PROCESS = {"stream_cap_memory", "stream_cap_redis", "chat_cap"}
# As in test_rate_limits: one Redis database per xdist worker, flushed by the benchmark.
REDIS_URL = redisdb.redis_url(redisdb.RATE_LIMITS)


def test_quick_limits_benchmark_runs_and_reports_every_limit(tmp_path):
    output = tmp_path / "limits.md"

    limits.main(["--quick", "--redis-url", REDIS_URL, "--output", str(output)])

    results = json.loads(output.with_suffix(".json").read_text())
    assert set(results) == {"sqlite", "postgresql", "none (in process)"}
    assert set(results["sqlite"]) == set(results["postgresql"]) == MEASURED
    assert set(results["none (in process)"]) == IN_PROCESS
    for measured in results.values():
        for r in measured.values():
            assert r["calls"] > 0 and r["on_us"] > 0 and r["off_us"] >= 0 and "cost_us" in r and r["ratio"]
            assert len(r["spread_on_us"]) == len(r["spread_off_us"]) == 2
    text = output.read_text()
    assert "| database | limit | on | off | cost | ratio |" in text
    assert text.count("\n| sqlite |") == text.count("\n| postgresql |") == len(MEASURED)
