"""`python -m bench.failover --quick`: three upstreams under load, one SIGKILLed and restarted: no client-visible
error, the dead server ejected by every worker and serving again after its restart."""
import json

import pytest

from bench import failover

pytestmark = pytest.mark.slow


def test_a_killed_upstream_costs_no_client_an_error(tmp_path):
    output = tmp_path / "failover.md"

    exit_code = failover.main(["--quick", "--output", str(output)])

    report = json.loads(output.with_suffix(".json").read_text())
    assert exit_code == 0, report
    assert all(phase["errors"] == 0 for phase in report["phases"].values()), report["phases"]
    assert report["eject_seconds"] is not None and report["restore_seconds"] is not None
    assert all(phase["requests"] > 20 for phase in report["phases"].values())
