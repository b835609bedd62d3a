"""Shared helpers of the Kubernetes deployment tests: render the chart offline and index what comes out."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "shopbridge"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
DOCKER_DIR = ROOT / "deploy" / "docker"
RELEASE = "shopbridge"
NAMESPACE = "shopbridge"

# Kubernetes versions the rendered manifests must validate against (kubernetes-validate bundles 1.25 .. 1.37).
K8S_VERSIONS = os.environ.get("K8S_VERSIONS", "1.30.0 1.32.0").split()

# Chart service key -> crate directory under services/ (where config/default.toml lives).
SERVICE_CRATES = {
    "auth": "auth",
    "listings": "listings",
    "orders": "orders",
    "gateway": "shopify-gateway",
    "scheduler": "scheduler",
}

# Values that switch every optional feature on at once.
ALL_FEATURES: dict[str, Any] = {
    "natsCredentials": {"existingSecret": "nats-creds", "key": "user.creds"},
    "config": {"telemetry": {"otlp_endpoint": "http://otel-collector:4317"}, "nats": {"namespace": "t1"}},
    "otel": {"resourceAttributes": {"deployment.environment": "test"}},
    "defaults": {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80}},
    "services": {"gateway": {"pdb": {"minAvailable": "50%", "maxUnavailable": None}}},
    "ingress": {"enabled": True, "className": "nginx", "tls": {"enabled": True}},
    "metrics": {"podMonitor": {"enabled": True}},
    "imagePullSecrets": [{"name": "regcred"}],
}


def load_values_file(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def render(values: dict[str, Any] | None = None, chart_dir: Path = CHART, name: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, str]:
    """Render the chart as `helm install --name NAME` would (values checked against values.schema.json first)."""
    import helm_python as helm

    with helm.Chart.load(str(chart_dir)) as chart:
        return chart.render(copy.deepcopy(values or {}), name=name, namespace=namespace, is_install=True)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render, NOTES.txt excluded."""
    out: list[dict[str, Any]] = []
    for name, text in sorted(rendered.items()):
        if name.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def copy_chart(tmp_path: Path) -> Path:
    dest = tmp_path / "shopbridge"
    shutil.copytree(CHART, dest)
    return dest


# name -> values, for the renders that every manifest-level test runs over.
SCENARIOS: dict[str, dict[str, Any]] = {"defaults": {}, "all-features": ALL_FEATURES}
for example in EXAMPLES:
    SCENARIOS[f"example:{example.name}"] = load_values_file(example)


_render_cache: dict[str, dict[str, str]] = {}


@pytest.fixture(params=sorted(SCENARIOS), scope="session")
def scenario(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(name, values, rendered) for each scenario; each is rendered once per session."""
    name = request.param
    if name not in _render_cache:
        _render_cache[name] = render(SCENARIOS[name])
    return name, SCENARIOS[name], _render_cache[name]
