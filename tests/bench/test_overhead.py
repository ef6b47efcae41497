"""`python -m bench.overhead --quick` still runs end to end and produces numbers (never judged for speed)."""
import json

import pytest

from bench import overhead

pytestmark = pytest.mark.slow


def test_quick_overhead_benchmark_runs_and_reports_numbers(tmp_path):
    output = tmp_path / "overhead.md"

    overhead.main(["--quick", "--output", str(output)])

    results = json.loads(output.with_suffix(".json").read_text())
    chat, scrapes = results["chat"], results["metrics"]
    c1 = chat["chat_c1"][0]
    assert c1["errors"] == 0 and c1["count"] > 0
    assert c1["gateway_total_p50"] > 0 and c1["direct_total_p50"] > 0 and c1["header_overhead_p50"] > 0
    assert chat["stream_c1"][0]["gateway_ttft_p50"] > 0 and chat["stream_c1"][0]["direct_ttft_p50"] > 0
    for load in (chat["chat_load"], chat["metrics_cost"], chat["floor_load"]):
        for runs in load.values():
            assert runs[0]["ok"] > 0 and runs[0]["errors"] == 0
    assert all(cpu["server"] > 0 for cpu in chat["metrics_cost_cpu"].values())
    assert all(s["api"]["p50"] > 0 and s["master"]["p50"] > 0 for s in scrapes["by_workers"].values())
    restarts = {int(n): s for n, s in scrapes["by_restarts"].items()}
    assert restarts[20]["served"] == 20 and restarts[20]["master"]["p50"] > 0
    hellos = chat["hellos"]
    assert sorted(int(c) for c in hellos) == [1, 16]
    for runs in hellos.values():
        assert set(runs) == {"hello", "/livez", "/v1 whole", "/v1 streamed", "conversation whole",
                             "conversation streamed", "conversation floor", "/v1 floor"}
        assert all(run[0]["ok"] > 0 and run[0]["errors"] == 0 for run in runs.values())
    steps = chat["steps"]
    assert all(run["ok"] > 0 and run["errors"] == 0 for runs in steps["runs"].values() for run in runs)
    # CPU is read per process. /proc counts in 10 ms ticks, and a quick round is 0.2 s: a step's client may
    # spend less than a tick in it (the suite's CI run saw 0 for one), so the groups are summed over the steps.
    spent = {group: sum(cpu[group] * sum(run["ok"] for run in steps["runs"][name])
                        for name, cpu in steps["cpu"].items()) for group in ("server", "load client", "machine")}
    assert all(seconds > 0 for seconds in spent.values()), spent
    assert "## Where a chat's CPU goes" in output.read_text()
    assert chat["long_conversation"]["ratio"] > 0
    assert output.with_name("overhead-chart.svg").read_text().startswith("<svg")
    text = output.read_text()
    assert "## Targets" in text and "cores" in text and "gunicorn" in text
    assert "## In hellos" in text and "hello round trips" in text
    # Each whole chat row of the table carries the stack's floor, measured in the same rounds.
    floor_rows = [line for line in text.splitlines() if line.startswith("| conversation whole throughput")
                  or line.startswith("| /v1 whole throughput")]
    assert len(floor_rows) == 2 and all(row.split("|")[4].strip().startswith("1/") for row in floor_rows)
