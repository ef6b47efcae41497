"""Fixtures for the monitoring tests: the Prometheus tools, or a clear skip (a failure under CI=true)."""
import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is not installed; CI must run the monitoring tests ({install_hint})")
    pytest.skip(f"{name} is not installed ({install_hint}); CI runs these tests")


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool", "Debian/Ubuntu: apt-get install prometheus")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _tool("prometheus", "Debian/Ubuntu: apt-get install prometheus")


@pytest.fixture(scope="session")
def node_bin() -> str:
    return _tool("node", "Debian/Ubuntu: apt-get install nodejs")
