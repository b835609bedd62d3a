"""The rendered config and command lines, checked by the real binaries when they are built.

Each service loads its rendered config.toml plus its Deployment's (and migration Job's) environment with
`print-config`, which fails on an unknown key or a wrong type exactly as `serve` would. The topology Job's flags are
checked against `shopbridge-nats-topology apply --help`, and the chart's topology copy with `check`.
Skipped when no binaries are built (cargo build --workspace --bins); SHOPBRIDGE_BIN_DIR picks a directory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import CHART, ROOT, SERVICE_CRATES, by_kind, load_values_file, objects, pod_spec, render
from test_config_keys import env_key


def _bin_dir() -> Path | None:
    candidates = [os.environ.get("SHOPBRIDGE_BIN_DIR")] if os.environ.get("SHOPBRIDGE_BIN_DIR") else []
    candidates += [str(ROOT / "target" / "debug"), str(ROOT / "target" / "release")]
    for c in candidates:
        if c and all((Path(c) / f"shopbridge-{s}").is_file() for s in SERVICE_CRATES):
            return Path(c)
    return None


BIN_DIR = _bin_dir()
pytestmark = pytest.mark.skipif(BIN_DIR is None, reason="no built binaries (cargo build --workspace --bins)")

# Values the services parse, for Secrets whose content has a format.
STAND_INS = {
    "database.url": "postgres://user:pw@127.0.0.1:1/db",
    "service.encryption_keys": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",  # any key id: base64 of 32 bytes
}

SCENARIOS = {"defaults": {}, "example": CHART / "examples" / "small-cluster.yaml"}


def container_env(container: dict[str, Any], config_path: Path, service: str) -> dict[str, str]:
    """The container's environment with Secrets and the downward API replaced by stand-ins."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = str(e["value"])
        elif "secretKeyRef" in e.get("valueFrom", {}):
            key = env_key(name) or ""
            env[name] = next((v for prefix, v in STAND_INS.items() if key == prefix or key.startswith(prefix + ".")),
                             "stand-in-secret")
        else:
            env[name] = "stand-in"
    if "SHOPBRIDGE_CONFIG" in env:
        env["SHOPBRIDGE_CONFIG"] = str(config_path)
    return env


def stale(binary: Path, service: str | None) -> bool:
    """True when the service's (or the platform's) sources or config changed after the binary was built."""
    built = binary.stat().st_mtime
    dirs = [ROOT / "services" / "platform" / "src"]
    if service:
        dirs.append(ROOT / "services" / SERVICE_CRATES[service])
    return any(p.stat().st_mtime > built for d in dirs for p in d.rglob("*") if p.is_file() and "target" not in p.parts)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    values = SCENARIOS[request.param]
    return objects(render(load_values_file(values) if isinstance(values, Path) else values))


@pytest.mark.parametrize("service", sorted(SERVICE_CRATES))
def test_each_service_accepts_its_rendered_config_and_environment(rendered, service: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(by_kind(rendered, "ConfigMap")[f"shopbridge-{service}"]["data"]["config.toml"], encoding="utf-8")
    dep = by_kind(rendered, "Deployment")[f"shopbridge-{service}"]
    (c,) = pod_spec(dep)["containers"]
    binary = BIN_DIR / c["command"][0]
    if stale(binary, service):
        pytest.skip(f"{binary} is older than its sources: cargo build --workspace --bins")
    result = subprocess.run([str(binary), "print-config"], env=container_env(c, config, service),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "REDACTED" in result.stdout and "stand-in" not in result.stdout  # secrets stay redacted
    job = by_kind(rendered, "Job").get(f"shopbridge-{service}-migrate")
    if job:
        (jc,) = pod_spec(job)["containers"]
        assert jc["args"] == ["migrate"]
        result = subprocess.run([str(binary), "print-config"], env=container_env(jc, config, service),
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr


def test_topology_job_flags_exist_and_the_chart_copy_parses(rendered) -> None:
    tool = BIN_DIR / "shopbridge-nats-topology"
    if not tool.is_file():
        pytest.skip("shopbridge-nats-topology is not built")
    if stale(tool, None):
        pytest.skip(f"{tool} is older than its sources: cargo build --workspace --bins")
    (c,) = pod_spec(by_kind(rendered, "Job")["shopbridge-nats-topology"])["containers"]
    assert c["command"] == [tool.name]
    help_text = subprocess.run([str(tool), c["args"][0], "--help"], capture_output=True, text=True, timeout=30,
                               check=True).stdout
    for flag in (a for a in c["args"] if a.startswith("--")):
        assert flag in help_text, f"{tool.name} {c['args'][0]} has no {flag}"
    for e in c.get("env", []):
        if e["name"].startswith("SHOPBRIDGE__NATS__"):
            assert e["name"] in help_text, f"{tool.name} does not read {e['name']}"
    topology = CHART / "files" / "topology.yaml"
    if topology.exists():
        result = subprocess.run([str(tool), "check", "--file", str(topology)], capture_output=True, text=True,
                                timeout=30, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
