"""The Helm chart: lint, render, Kubernetes schema validation, security and probes, values schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import (
    ALL_FEATURES,
    CHART,
    EXAMPLES,
    K8S_VERSIONS,
    NAMESPACE,
    SERVICE_CRATES,
    by_kind,
    component,
    load_values_file,
    objects,
    pod_spec,
    render,
)

SERVICES = sorted(SERVICE_CRATES)
# Kinds from CRDs (Prometheus Operator): kubernetes-validate has no schema for them; checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PodMonitor"}


# --- lint -------------------------------------------------------------------------------------------------------


def _lint_problems(report: dict[str, Any]) -> list[str]:
    problems = list(report.get("errors") or [])
    # severity: 1 info, 2 warning, 3 error. Info ("icon is recommended") is fine.
    problems += [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems


@pytest.mark.parametrize("values_file", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
@pytest.mark.parametrize("kube_version", K8S_VERSIONS)
def test_chart_lints_cleanly_in_strict_mode(values_file: Path | None, kube_version: str) -> None:
    import helm_python as helm

    values = load_values_file(values_file) if values_file else None
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}")
    assert _lint_problems(report) == [], report


# --- Kubernetes schemas -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", K8S_VERSIONS)
def test_every_rendered_manifest_validates_strictly(scenario, kube_version: str) -> None:
    import kubernetes_validate as kv

    name, _, rendered = scenario
    failures = []
    for obj in objects(rendered):
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kv.validate(obj, kube_version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message}")
    assert failures == [], f"{name} against {kube_version}:\n" + "\n".join(failures)


def test_kubernetes_validate_cli_accepts_the_example_render(tmp_path: Path) -> None:
    """The same check through the `kubernetes-validate --strict` command line, as an operator would run it."""
    rendered = render(load_values_file(EXAMPLES[0]))
    docs = [o for o in objects(rendered) if o["kind"] not in CRD_KINDS]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    exe = Path(sys.executable).with_name("kubernetes-validate")
    args = [str(exe), "--strict", "--quiet"]
    for v in K8S_VERSIONS:
        args += ["-k", v]
    result = subprocess.run([*args, str(manifest)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_operator_objects_select_the_services_http_port(scenario) -> None:
    name, _, rendered = scenario
    objs = objects(rendered)
    monitors = [o for o in objs if o["kind"] in CRD_KINDS]
    for mon in monitors:
        assert mon["apiVersion"] == "monitoring.coreos.com/v1"
        endpoints = mon["spec"].get("endpoints") or mon["spec"].get("podMetricsEndpoints")
        assert endpoints and all(e["port"] == "http" and e["path"] == "/metrics" for e in endpoints)
        selected = set(mon["spec"]["selector"]["matchExpressions"][0]["values"])
        assert selected == {component(d) for d in by_kind(objs, "Deployment").values()}
    if name == "all-features":
        assert [m["kind"] for m in monitors] == ["PodMonitor"]


# --- what every workload must have ------------------------------------------------------------------------------


def _workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob")]


def test_every_container_runs_non_root_with_a_read_only_root_filesystem(scenario) -> None:
    name, _, rendered = scenario
    failures = []
    for wl in _workloads(objects(rendered)):
        spec = pod_spec(wl)
        pod_sc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, f"{wl['metadata']['name']} mounts an API token"
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            where = f"{name}: {wl['kind']}/{wl['metadata']['name']}/{c['name']}"

            def eff(key: str) -> Any:
                return sc.get(key, pod_sc.get(key))

            if eff("runAsNonRoot") is not True:
                failures.append(f"{where}: runAsNonRoot is not true")
            if eff("runAsUser") in (0, None):
                failures.append(f"{where}: no non-zero runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                failures.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                failures.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                failures.append(f"{where}: privileged")
            if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                failures.append(f"{where}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                failures.append(f"{where}: adds capabilities")
            if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
                failures.append(f"{where}: seccompProfile is not RuntimeDefault")
            image = c["image"]
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
                failures.append(f"{where}: image {image} has no pinned tag")
    assert failures == [], "\n".join(failures)


def test_every_container_has_cpu_and_memory_requests_and_limits(scenario) -> None:
    name, _, rendered = scenario
    failures = []
    for wl in _workloads(objects(rendered)):
        for c in pod_spec(wl)["containers"]:
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if not res.get(part, {}).get(r):
                        failures.append(f"{name}: {wl['metadata']['name']}/{c['name']}: no {part}.{r}")
    assert failures == [], "\n".join(failures)


def test_every_service_container_has_health_probes_on_the_http_port(scenario) -> None:
    name, _, rendered = scenario
    deployments = by_kind(objects(rendered), "Deployment")
    assert deployments, name
    for dname, dep in deployments.items():
        (c,) = pod_spec(dep)["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert set(ports) == {"grpc", "http"}, dname
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, dname
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, dname
        assert c["startupProbe"]["httpGet"]["port"] == "http", dname
        assert c["args"] == ["serve"], dname


def test_writable_paths_are_only_volumes(scenario) -> None:
    """With a read-only root filesystem, /tmp must be an emptyDir; the config is mounted read-only."""
    _, _, rendered = scenario
    for wl in _workloads(objects(rendered)):
        (c,) = pod_spec(wl)["containers"]
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, wl["metadata"]["name"]
        for path, m in mounts.items():
            if path != "/tmp":
                assert m.get("readOnly") is True, f"{wl['metadata']['name']}: {path} is writable"


# --- structure: one set of objects per service, labels, checksums, hooks ---------------------------------------


def test_each_service_gets_deployment_service_account_config_and_pdb(scenario) -> None:
    name, _, rendered = scenario
    objs = objects(rendered)
    for kind in ("Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget"):
        comps = sorted(component(o) for o in objs if o["kind"] == kind and "helm.sh/hook" not in o["metadata"].get("annotations", {}))
        assert comps == SERVICES, f"{name}: {kind}: {comps}"
    if name == "all-features":
        assert sorted(component(o) for o in objs if o["kind"] == "HorizontalPodAutoscaler") == SERVICES
        for dep in by_kind(objs, "Deployment").values():
            assert "replicas" not in dep["spec"], "an autoscaled Deployment must leave replicas to the HPA"


def test_every_object_carries_the_standard_labels(scenario) -> None:
    _, _, rendered = scenario
    for obj in objects(rendered):
        labels = obj["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "app.kubernetes.io/version",
                    "helm.sh/chart"):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"
        assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


def test_selectors_match_pod_labels_and_services_route_to_named_ports(scenario) -> None:
    _, _, rendered = scenario
    objs = objects(rendered)
    deployments = by_kind(objs, "Deployment")
    for svc in by_kind(objs, "Service").values():
        dep = deployments[svc["metadata"]["name"]]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {"grpc": "grpc", "http": "http"}
    for pdb in by_kind(objs, "PodDisruptionBudget").values():
        dep = deployments[pdb["metadata"]["name"]]
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_pods_spread_over_zones_and_nodes(scenario) -> None:
    _, _, rendered = scenario
    for dep in by_kind(objects(rendered), "Deployment").values():
        keys = {t["topologyKey"] for t in pod_spec(dep)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_a_config_change_rolls_only_that_services_pods() -> None:
    before = by_kind(objects(render({})), "Deployment")
    after = by_kind(objects(render({"services": {"orders": {"config": {"consumer": {"concurrency": 8}}}}})), "Deployment")

    def checksum(dep: dict[str, Any]) -> str:
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    changed = sorted(n for n in before if checksum(before[n]) != checksum(after[n]))
    assert changed == ["shopbridge-orders"]


def test_migration_jobs_run_each_binary_migrate_before_install_and_upgrade(scenario) -> None:
    name, values, rendered = scenario
    objs = objects(rendered)
    jobs = by_kind(objs, "Job")
    deployments = by_kind(objs, "Deployment")
    configmaps = by_kind(objs, "ConfigMap")
    for svc in SERVICES:
        job = jobs[f"shopbridge-{svc}-migrate"]
        ann = job["metadata"]["annotations"]
        assert set(ann["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
        (c,) = pod_spec(job)["containers"]
        (dc,) = pod_spec(deployments[f"shopbridge-{svc}"])["containers"]
        assert c["command"] == dc["command"] and c["args"] == ["migrate"], name
        assert c["image"] == dc["image"]
        # The Job runs with the service's own config file and secrets.
        secret_env = [e for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
        assert secret_env and secret_env == [e for e in dc["env"] if "secretKeyRef" in e.get("valueFrom", {})]
        job_cm = configmaps[f"shopbridge-{svc}-migrate"]
        assert "pre-install" in job_cm["metadata"]["annotations"]["helm.sh/hook"]
        assert int(job_cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(ann["helm.sh/hook-weight"])
        assert job_cm["data"] == configmaps[f"shopbridge-{svc}"]["data"]
        (vol,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "config"]
        assert vol["configMap"]["name"] == job_cm["metadata"]["name"]
        assert {e["name"]: e.get("value") for e in c["env"]}["SHOPBRIDGE_CONFIG"] == "/etc/shopbridge/config.toml"
        assert pod_spec(job)["restartPolicy"] == "Never"


def test_topology_job_runs_after_migrations_and_before_services(scenario) -> None:
    _, values, rendered = scenario
    jobs = by_kind(objects(rendered), "Job")
    topo = jobs["shopbridge-nats-topology"]
    ann = topo["metadata"]["annotations"]
    assert set(ann["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    migrate_weight = int(jobs["shopbridge-auth-migrate"]["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(ann["helm.sh/hook-weight"]) > migrate_weight
    (c,) = pod_spec(topo)["containers"]
    assert c["command"] == ["shopbridge-nats-topology"] and c["args"][0] == "apply"
    nats = (values.get("config") or {}).get("nats") or {}
    args = c["args"]
    assert args[args.index("--nats-url") + 1] == nats.get("url", "nats://nats.nats.svc.cluster.local:4222")
    if nats.get("namespace"):
        assert args[args.index("--namespace") + 1] == nats["namespace"]


def test_disabled_hooks_and_services_render_nothing_for_them() -> None:
    objs = objects(render({"migrations": {"enabled": False}, "natsTopology": {"enabled": False},
                           "services": {"scheduler": {"enabled": False}}}))
    assert not by_kind(objs, "Job")
    assert all(component(o) != "scheduler" for o in objs)
    # Without migration Jobs the services migrate at start.
    cm = by_kind(objs, "ConfigMap")["shopbridge-auth"]
    assert "migrate_on_start = true" in cm["data"]["config.toml"]


def test_ingress_exposes_only_the_two_shopify_callbacks() -> None:
    objs = objects(render(ALL_FEATURES))
    (ing,) = by_kind(objs, "Ingress").values()
    paths = {p["path"]: p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/shopify/webhooks": "shopbridge-gateway", "/shopify/oauth/callback": "shopbridge-auth"}
    assert ing["spec"]["tls"][0]["secretName"] == "shopbridge-tls"
    assert not by_kind(objects(render({})), "Ingress")


def test_nats_credentials_are_mounted_where_the_config_says() -> None:
    objs = objects(render(ALL_FEATURES))
    for dep in list(by_kind(objs, "Deployment").values()) + [by_kind(objs, "Job")["shopbridge-nats-topology"]]:
        spec = pod_spec(dep)
        (vol,) = [v for v in spec["volumes"] if v["name"] == "nats-credentials"]
        assert vol["secret"]["secretName"] == "nats-creds"
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "nats-credentials"]
        assert mount["readOnly"] is True
    cm = by_kind(objs, "ConfigMap")["shopbridge-listings"]
    assert f'credentials_file = "{mount["mountPath"]}/user.creds"' in cm["data"]["config.toml"]


def test_notes_explain_the_first_admin_client_and_connecting_a_store() -> None:
    notes = render({})["shopbridge/templates/NOTES.txt"]
    assert "shopbridge-auth bootstrap-admin" in notes
    assert "/shopify/oauth/callback" in notes and "/shopify/webhooks" in notes
    assert "rollout status deployment/shopbridge-gateway" in notes


# --- values.schema.json -----------------------------------------------------------------------------------------

BAD_VALUES = {
    "string replicaCount": {"defaults": {"replicaCount": "3"}},
    "string replicaCount of one service": {"services": {"orders": {"replicaCount": "two"}}},
    "unknown top-level key": {"replicas": 3},
    "unknown key of a service": {"services": {"auth": {"replicaCunt": 2}}},
    "unknown service": {"services": {"billing": {"enabled": True}}},
    "unknown config key": {"config": {"nats": {"ur1": "nats://x:4222"}}},
    "unknown config section": {"config": {"natz": {}}},
    "chart-owned config key": {"config": {"grpc": {"listen": "127.0.0.1:1"}}},
    "wrong config type": {"config": {"consumer": {"backoff_ms": "200,1000"}}},
    "bad log format": {"config": {"telemetry": {"log_format": "text"}}},
    "port out of range": {"ports": {"http": 80800}},
    "root filesystem made writable": {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
    "pod allowed to run as root": {"podSecurityContext": {"runAsNonRoot": False}},
    "resources without limits": {"defaults": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": None}}},
    "malformed memory quantity": {"defaults": {"resources": {"limits": {"memory": "lots"}}}},
    "secretEnv with a malformed key": {"services": {"auth": {"secretEnv": [{"configKey": "ENCRYPTION", "key": "k"}]}}},
    "bad ingress path type": {"ingress": {"pathType": "Regex"}},
}


@pytest.mark.parametrize("values", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_wrong_values_are_rejected_at_install(values: dict[str, Any]) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError):
        render(values)


@pytest.mark.parametrize("values", [
    {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}},
    {"defaults": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
], ids=["two monitors", "min above max replicas"])
def test_inconsistent_values_fail_the_render_with_a_message(values: dict[str, Any]) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError):
        render(values)


def test_every_example_and_the_defaults_satisfy_the_schema() -> None:
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values({}))
        for example in EXAMPLES:
            chart.validate_schema(chart.merge_values(load_values_file(example)))


def test_every_binary_the_chart_runs_has_a_dockerfile_target() -> None:
    values = load_values_file(CHART / "values.yaml")
    binaries = {s["binary"] for s in values["services"].values()} | {values["natsTopology"]["binary"]}
    dockerfile = (CHART.parents[1] / "deploy" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    shipped = set(re.findall(r'^ENTRYPOINT \["/usr/local/bin/([^"]+)"\]', dockerfile, re.M))
    assert binaries <= shipped, binaries - shipped
    repos = {s["image"]["repository"] for s in values["services"].values()}
    assert repos == {f"shopbridge-{s}" for s in SERVICES}
