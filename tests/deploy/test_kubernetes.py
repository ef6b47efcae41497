"""monitoring/deploy/kubernetes/, validated offline: core kinds against Kubernetes' schemas (kubernetes-validate,
strict), the operators' kinds against their CRDs' schemas vendored in tests/deploy/schemas/, then the wiring
between them (selectors, ports, secret keys, the stop sequence's timings)."""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from app.metrics import definitions

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "monitoring" / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.33.0"
# Vendored from the CRDs' openAPIV3Schema: prometheus-operator 0.93.0 (example/prometheus-operator-crd/),
# KEDA's config/crd/bases/keda.sh_scaledobjects.yaml (controller-gen v0.20.1).
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
                ("keda.sh/v1alpha1", "ScaledObject")}
SECRET = "ai-chat-gateway"
REQUIRED_SECRETS = {"DATABASE_URL", "JWT_SECRET_KEY", "METRICS_TOKEN"}


def load_all() -> dict[str, dict]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return {name: yaml.safe_load((MANIFESTS / name).read_text()) for name in kustomization["resources"]}


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in load_all().values()}


def strict(schema):
    """The CRD's schema, refusing fields it does not declare: the API server would drop them without a word."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def custom_schema(api_version: str, kind: str) -> dict:
    group, version = api_version.split("/")
    return strict(json.loads((SCHEMAS / f"{group}_{version}_{kind}.json").read_text()))


def test_the_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("name", sorted(load_all()))
def test_each_manifest_is_valid_for_its_kind(name):
    doc = load_all()[name]
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        jsonschema.Draft7Validator(custom_schema(doc["apiVersion"], doc["kind"])).validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_strict_schemas_catch_a_misspelt_field(manifests):
    monitor = copy.deepcopy(manifests["PodMonitor"])
    monitor["spec"]["podMetricsEndpoints"][0]["bearerToken"] = "oops"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(custom_schema(monitor["apiVersion"], "PodMonitor")).validate(monitor)
    deployment = copy.deepcopy(manifests["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_prometheus_rule_is_generated_from_the_rules_files(manifests):
    generated = subprocess.run([sys.executable, str(MANIFESTS / "prometheusrule.py"), "--print"],
                               capture_output=True, text=True, check=True).stdout
    assert (MANIFESTS / "prometheusrule.yaml").read_text() == generated, \
        "run python monitoring/deploy/kubernetes/prometheusrule.py"
    rules = ROOT / "monitoring" / "prometheus" / "rules"
    groups = [g for path in sorted(rules.glob("*.rules.yml")) for g in yaml.safe_load(path.read_text())["groups"]]
    assert manifests["PrometheusRule"]["spec"]["groups"] == groups


def pod(manifests) -> dict:
    return manifests["Deployment"]["spec"]["template"]


def container(manifests) -> dict:
    [gateway] = pod(manifests)["spec"]["containers"]
    return gateway


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def test_probes_and_the_stop_sequence_fit_the_graceful_timeout(manifests):
    gateway, config = container(manifests), manifests["ConfigMap"]["data"]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/livez"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = gateway["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    stop_margin = int(re.search(r"^STOP_MARGIN_SECONDS = (\d+)$", (ROOT / "gunicorn.conf.py").read_text(), re.M)[1])
    needed = int(pre_stop[1]) + float(config["DRAIN_DELAY_SECONDS"]) + int(config["GUNICORN_GRACEFUL_TIMEOUT"]) + stop_margin
    assert pod(manifests)["spec"]["terminationGracePeriodSeconds"] > needed
    # The readiness probe notices a drain within the drain delay.
    probe = gateway["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= float(config["DRAIN_DELAY_SECONDS"])


def test_the_pod_runs_non_root_read_only_with_an_empty_dir_for_metrics(manifests):
    spec, gateway = pod(manifests)["spec"], container(manifests)
    dockerfile_user = re.search(r"^USER (\d+)", (ROOT / "monitoring" / "deploy" / "Dockerfile").read_text(), re.M)[1]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == dockerfile_user
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    assert gateway["resources"]["requests"]["cpu"] and gateway["resources"]["limits"]["memory"]
    metrics_dir = next(e["value"] for e in gateway["env"] if e["name"] == "PROMETHEUS_MULTIPROC_DIR")
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert any(metrics_dir.startswith(m["mountPath"]) and m["name"] in empty_dirs for m in gateway["volumeMounts"])


def test_settings_and_secret_references_are_ones_the_gateway_reads(manifests):
    known = {spec.metadata["env"] for spec in Settings.__dataclass_fields__.values()}
    known.add("PROMETHEUS_MULTIPROC_DIR")  # read by gunicorn.conf.py and prometheus_client
    assert set(manifests["ConfigMap"]["data"]) <= known
    gateway = container(manifests)
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway["env"] if "valueFrom" in e}
    assert REQUIRED_SECRETS <= set(secrets) <= known
    assert all(ref["name"] == SECRET and ref["key"] == name for name, ref in secrets.items())
    assert [e["configMapRef"]["name"] for e in gateway["envFrom"]] == [manifests["ConfigMap"]["metadata"]["name"]]
    [migrate] = manifests["Job"]["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["python", "-m", "app.migrate"] and migrate["image"] == gateway["image"]
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in migrate["env"]} == {"DATABASE_URL"}


def test_service_monitor_budget_and_policy_select_the_gateway_pods(manifests):
    labels, gateway = pod(manifests)["metadata"]["labels"], container(manifests)
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert manifests["Deployment"]["spec"]["selector"]["matchLabels"] == labels
    assert selects(manifests["Service"]["spec"]["selector"], labels)
    assert [p["targetPort"] for p in manifests["Service"]["spec"]["ports"]] == ["http"]  # never the metrics port
    monitor = manifests["PodMonitor"]["spec"]
    assert selects(monitor["selector"]["matchLabels"], labels)
    [endpoint] = monitor["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and ports["metrics"] == 4001
    assert endpoint["authorization"]["credentials"] == {"name": SECRET, "key": "METRICS_TOKEN"}
    assert selects(manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], labels)
    policy = manifests["NetworkPolicy"]["spec"]
    assert selects(policy["podSelector"]["matchLabels"], labels)
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == set(ports.values())


def test_the_autoscaler_scales_the_deployment_on_chats_in_flight(manifests):
    scaled = manifests["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    [trigger] = scaled["triggers"]
    assert definitions.CHAT_IN_FLIGHT._name in trigger["metadata"]["query"]
    assert int(trigger["metadata"]["threshold"]) > 0
    # Never below what the disruption budget keeps serving during a drain.
    assert scaled["minReplicaCount"] > manifests["PodDisruptionBudget"]["spec"]["maxUnavailable"]
