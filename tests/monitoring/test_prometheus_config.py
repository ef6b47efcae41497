"""The Prometheus configuration and rules: promtool-valid, unit-tested, and shaped as the monitoring issue asks."""
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from app.metrics import definitions
from tests.monitoring.prometheus_server import PROMETHEUS_DIR, RENDER_SCRIPT

RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.test.yml"))
JOB = "ai-chat-gateway"


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def all_rules():
    return [rule for path in RULE_FILES for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alert_rules():
    return [rule for rule in all_rules() if "alert" in rule]


def render(runtime_dir: Path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("METRICS_TOKEN", "METRICS_PORT", "GATEWAY_METRICS_TARGET", "GATEWAY_METRICS_HOST")}
    return subprocess.run(["sh", str(RENDER_SCRIPT), str(runtime_dir)], env={**base, **env},
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def runtime_dir(tmp_path) -> Path:
    result = render(tmp_path / "runtime")
    assert result.returncode == 0, result.stderr
    return tmp_path / "runtime"


# --- the runtime directory ------------------------------------------------------------------------


def test_runtime_defaults_to_local_metrics_port_and_an_empty_token_file(runtime_dir):
    targets = load_yaml(runtime_dir / "targets" / "gateway.yml")
    assert targets == [{"targets": ["127.0.0.1:4001"]}]
    token = runtime_dir / "secrets" / "metrics_token"
    assert token.is_file() and token.read_text() == ""  # must exist: Prometheus fails a scrape without it
    assert (runtime_dir / "prometheus.yml").resolve() == PROMETHEUS_DIR / "prometheus.yml"
    assert (runtime_dir / "rules").resolve() == RULES_DIR


def test_runtime_takes_port_host_target_and_token_from_the_environment(tmp_path):
    runtime = tmp_path / "runtime"
    assert render(runtime, METRICS_PORT="5001", METRICS_TOKEN="s3cret-token").returncode == 0
    assert load_yaml(runtime / "targets" / "gateway.yml") == [{"targets": ["127.0.0.1:5001"]}]
    token = runtime / "secrets" / "metrics_token"
    assert token.read_text() == "s3cret-token"
    assert token.stat().st_mode & 0o077 == 0, "the token file must not be readable by others"

    assert render(runtime, GATEWAY_METRICS_HOST="host.docker.internal").returncode == 0
    assert load_yaml(runtime / "targets" / "gateway.yml") == [{"targets": ["host.docker.internal:4001"]}]
    assert token.read_text() == "", "a token left from an earlier start must not survive its removal"

    assert render(runtime, GATEWAY_METRICS_TARGET="gateway.internal:9100", METRICS_PORT="1").returncode == 0
    assert load_yaml(runtime / "targets" / "gateway.yml") == [{"targets": ["gateway.internal:9100"]}]


@pytest.mark.parametrize("target", ["no-port", "host:", ":4001", "a b:1", "x:1'\n- evil"])
def test_runtime_rejects_a_malformed_target(tmp_path, target):
    result = render(tmp_path / "runtime", GATEWAY_METRICS_TARGET=target)
    assert result.returncode == 2
    assert "host:port" in result.stderr


# --- promtool -------------------------------------------------------------------------------------


def test_promtool_check_config(promtool, runtime_dir):
    result = subprocess.run([promtool, "check", "config", str(runtime_dir / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_check_rules(promtool):
    assert RULE_FILES, "no rule files"
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # promtool evaluates every rule test in a process of its own
def test_promtool_test_rules(promtool):
    assert RULE_TEST_FILES, "no rule unit tests"
    result = subprocess.run([promtool, "test", "rules", *[p.name for p in RULE_TEST_FILES]],
                            cwd=RULE_TESTS_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


# --- the scrape configuration ---------------------------------------------------------------------


def test_scrape_config_matches_the_gateway_contract():
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["rules/*.rules.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == JOB
    assert job["scrape_interval"] == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "secrets/metrics_token"}
    assert job["file_sd_configs"] == [{"files": ["targets/*.yml"], "refresh_interval": "30s"}]
    assert "static_configs" not in job, "targets come from the per-setup file_sd file only"


# --- the rules ------------------------------------------------------------------------------------


REQUIRED_ALERTS = {
    "GatewayDown", "GatewayHigh5xxRatio", "ChatErrorRatioHigh", "ChatCompletionLatencyP95High",
    "ChatTimeToFirstTokenP95High", "ChatAvailabilityBudgetBurnFast", "ChatAvailabilityBudgetBurnMedium",
    "ChatAvailabilityBudgetBurnSlow", "UpstreamEjected", "ModelUpstreamsAllDown",
}


def test_required_alerts_exist_with_summary_description_and_severity():
    alerts = {rule["alert"]: rule for rule in alert_rules()}
    assert REQUIRED_ALERTS <= alerts.keys()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        annotations = rule["annotations"]
        assert annotations.get("summary"), name
        description = annotations.get("description", "")
        assert re.search(r"\d", description), f"{name}: the description must give the threshold and duration"
        if not rule["expr"].startswith("absent("):
            assert "{{ $value" in description, f"{name}: the description must give the measured value"


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not():
    fired, silent = set(), set()
    for path in RULE_TEST_FILES:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - fired == set(), "alerts no unit test fires"
    assert alerts - silent == set(), "alerts no unit test proves silent"


def test_rule_tests_load_every_rule_file():
    for path in RULE_TEST_FILES:
        loaded = {(RULE_TESTS_DIR / f).resolve() for f in load_yaml(path)["rule_files"]}
        assert loaded == {p.resolve() for p in RULE_FILES}, path.name


def test_no_rule_depends_on_the_scrape_job_name():
    """The gateway may be scraped under any job name: rules find its targets by gateway_build_info."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                assert not re.search(r"\bjob\s*(=|!=|=~|!~)", rule["expr"]), f"{name} matches on a job name"
                assert "job" not in rule.get("labels", {}), f"{name} sets a job label"


def test_every_raw_selector_keeps_to_gateway_targets():
    # http_requests_total is a common name: other applications' series must not leak in.
    restricted = re.compile(r"(rate\([a-z_]+(\{[^}]*\})?\[\w+\]\)|up == 0) and on \(job, instance\) "
                            r"(last_over_time\()?gateway_build_info")
    for rule in all_rules():
        expr = " ".join(rule["expr"].split())
        raw = re.findall(r"\b(?:http|chat|process)_[a-z_]+(?:\{[^}]*\})?(?=\[)|\bup\b(?= ==)", expr)
        assert len(raw) == len(restricted.findall(expr)), f"{rule.get('alert') or rule.get('record')}: {expr}"


def test_slo_target_is_defined_once_and_burn_alerts_follow_the_sre_workbook():
    texts = "\n".join(path.read_text() for path in RULE_FILES)
    [objective] = [r for r in all_rules() if r.get("record") == "job:chat_availability:slo_objective"]
    match = re.fullmatch(r"vector\((0\.\d+)\)", objective["expr"].strip())
    assert match, objective["expr"]
    assert texts.count(match.group(1)) == 1, "the SLO target must appear in one place only"

    alerts = {rule["alert"]: rule for rule in alert_rules()}
    expected = {  # alert: (burn factor, long window, short window, severity)
        "ChatAvailabilityBudgetBurnFast": ("14.4", "1h", "5m", "page"),
        "ChatAvailabilityBudgetBurnMedium": ("6", "6h", "30m", "page"),
        "ChatAvailabilityBudgetBurnSlow": ("1", "3d", "6h", "ticket"),
    }
    for name, (factor, long_window, short_window, severity) in expected.items():
        expr = alerts[name]["expr"]
        assert f"job:chat_availability_errors:ratio_rate{long_window}" in expr, name
        assert f"job:chat_availability_errors:ratio_rate{short_window}" in expr, name
        assert expr.count(f"({factor} * (1 - scalar(job:chat_availability:slo_objective)))") == 2, name
        assert re.search(r"\)\s*and on \(job\)\s*\(", expr), name
        assert alerts[name]["labels"]["severity"] == severity


def test_every_chat_outcome_is_classified_for_availability():
    """A new outcome in the app must be placed on one side of the SLO by someone deciding it."""
    error_outcomes, excluded = set(), set()
    for rule in all_rules():
        for values in re.findall(r'outcome=~"([^"]+)"', rule["expr"]):
            error_outcomes.add(frozenset(values.split("|")))
        excluded.update(re.findall(r'outcome!="([^"]+)"', rule["expr"]))
    assert len(error_outcomes) == 1, f"the rules disagree on what an error is: {error_outcomes}"
    [errors] = error_outcomes
    assert excluded == {"client_disconnect"}
    assert errors | {"success"} | excluded == set(definitions.CHAT_OUTCOMES), (
        "classify every outcome of app.metrics.definitions.CHAT_OUTCOMES in the rules (error, success or excluded)"
    )
    assert "client_disconnect" in (RULES_DIR / "gateway-recording.rules.yml").read_text().split("groups:")[0], (
        "the rules file comment must say why client_disconnect is not an error"
    )
