"""A real Prometheus started the way every setup starts it: monitoring/prometheus/start-prometheus.sh."""
from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.support.servers import ManagedProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
START_SCRIPT = PROMETHEUS_DIR / "start-prometheus.sh"
RENDER_SCRIPT = PROMETHEUS_DIR / "render-runtime.sh"


class Prometheus(ManagedProcess):
    """Prometheus on a free loopback port with a temporary runtime and data directory,
    scraping `target` (host:port) with the project's configuration and rules."""

    name = "prometheus"

    def __init__(self, tmp_path, *, target: str, prometheus_bin: str = "prometheus", metrics_token: str | None = None):
        super().__init__()
        self.dir = Path(tmp_path) / f"prometheus-{free_port()}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime_dir = self.dir / "runtime"
        self.log_path = self.dir / "prometheus.log"
        env = {k: v for k, v in os.environ.items() if k not in ("METRICS_TOKEN", "METRICS_PORT", "GATEWAY_METRICS_HOST")}
        env.update({
            "GATEWAY_METRICS_TARGET": target,
            "PROMETHEUS_BIN": prometheus_bin,
            "PROMETHEUS_RUNTIME_DIR": str(self.runtime_dir),
            "PROMETHEUS_DATA_DIR": str(self.dir / "data"),
            "PROMETHEUS_LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
        })
        if metrics_token is not None:
            env["METRICS_TOKEN"] = metrics_token
        self.env = env

    def command(self):
        return ["sh", str(START_SCRIPT)], self.env, None

    def ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def api(self, path: str, **params):
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_target(self, health: str, timeout: float = 30.0, count: int = 1) -> dict:
        """The gateway target (the first of `count`) once every last scrape has `health` ("up" or "down")."""
        def matching():
            targets = self.targets()
            return targets[0] if len(targets) == count and all(t["health"] == health for t in targets) else None
        try:
            return wait_until(matching, timeout=timeout, interval=0.5, what=f"target {health}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; targets: {self.targets()}\nlog:\n{self.log()}") from None

    def rule_groups(self) -> list[dict]:
        return self.api("rules")["groups"]

    def wait_for_rules_evaluated(self, timeout: float = 40.0) -> list[dict]:
        """Every rule, once each has been evaluated at least once."""
        def evaluated():
            rules = [rule for group in self.rule_groups() for rule in group["rules"]]
            return rules if rules and all(rule.get("health") != "unknown" for rule in rules) else None
        return wait_until(evaluated, timeout=timeout, interval=0.5, what="every rule evaluated")
