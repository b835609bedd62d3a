"""The NATS topology: the chart's copy matches deploy/nats/topology.yaml, and the Job applies it from a ConfigMap."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import CHART, ROOT, by_kind, copy_chart, objects, pod_spec, render

SOURCE = ROOT / "deploy" / "nats" / "topology.yaml"
CHART_COPY = CHART / "files" / "topology.yaml"


def test_chart_copy_of_the_topology_is_byte_for_byte_the_source() -> None:
    if not SOURCE.exists():
        pytest.skip("deploy/nats/topology.yaml does not exist yet; the Job applies the topology embedded in the binary")
    assert CHART_COPY.exists(), "copy deploy/nats/topology.yaml to helm/shopbridge/files/topology.yaml"
    assert CHART_COPY.read_bytes() == SOURCE.read_bytes(), (
        "helm/shopbridge/files/topology.yaml differs from deploy/nats/topology.yaml: "
        "cp deploy/nats/topology.yaml helm/shopbridge/files/topology.yaml")


def test_topology_job_mounts_the_file_from_a_hook_config_map(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    if CHART_COPY.exists():
        content = CHART_COPY.read_bytes()
    else:
        content = b"# sample\nstreams:\n  - name: EVENTS\n    subjects: [\"events.>\"]\n    note: \"<quoted> & tabs\t\"\n"
        (chart / "files" / "topology.yaml").write_bytes(content)
    objs = objects(render({}, chart_dir=chart))
    cm = by_kind(objs, "ConfigMap")["shopbridge-nats-topology"]
    assert cm["data"]["topology.yaml"].encode() == content
    ann = cm["metadata"]["annotations"]
    assert "pre-install" in ann["helm.sh/hook"]
    job = by_kind(objs, "Job")["shopbridge-nats-topology"]
    assert int(ann["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    spec = pod_spec(job)
    (c,) = spec["containers"]
    path = c["args"][c["args"].index("--file") + 1]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "topology"]
    assert path == f"{mount['mountPath']}/topology.yaml"
    (vol,) = [v for v in spec["volumes"] if v["name"] == "topology"]
    assert vol["configMap"]["name"] == "shopbridge-nats-topology"
    yaml.safe_load(cm["data"]["topology.yaml"])


def test_without_a_chart_copy_the_job_applies_the_embedded_topology(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    (chart / "files" / "topology.yaml").unlink(missing_ok=True)
    objs = objects(render({}, chart_dir=chart))
    assert "shopbridge-nats-topology" not in by_kind(objs, "ConfigMap")
    (c,) = pod_spec(by_kind(objs, "Job")["shopbridge-nats-topology"])["containers"]
    assert "--file" not in c["args"]
