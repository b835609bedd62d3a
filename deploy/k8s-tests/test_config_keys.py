"""Every config key of every service is set by the chart, and the chart sets no key a service does not know.

The keys come from services/<crate>/config/default.toml, read at test time: a key added to a service fails this
test until the chart's values carry it (and values.schema.json allows it). Unknown keys make a service fail at start,
so the reverse direction is checked too. Keys a default.toml documents commented out (`# key = value`, built into
the service) are optional: the chart may set them; under a table documented commented out (`# [a.b]`, a map such
as service.encryption_keys) any key is allowed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, SERVICE_CRATES, by_kind, objects, pod_spec, render

ENV_PREFIX = "SHOPBRIDGE__"

def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}. Sections are one level deep in our config; deeper tables flatten too."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def default_toml(service: str) -> str:
    return (ROOT / "services" / SERVICE_CRATES[service] / "config" / "default.toml").read_text(encoding="utf-8")


def default_keys(service: str) -> dict[str, Any]:
    """The keys default.toml sets: every one must be set by the chart."""
    return flatten(tomllib.loads(default_toml(service)))


def documented_keys(text: str) -> tuple[dict[str, Any], set[str]]:
    """Keys shown commented out (`# key = value`) and tables shown commented out (`# [a.b]`)."""
    section, keys, open_tables = "", {}, set()
    for line in text.splitlines():
        s = line.strip()
        if m := re.match(r"^\[([A-Za-z0-9_.-]+)\]$", s):
            section = m.group(1)
        elif m := re.match(r"^#\s*\[([A-Za-z0-9_.-]+)\]\s*$", s):
            section = m.group(1)
            open_tables.add(section)
        elif m := re.match(r"^#\s*([A-Za-z0-9_-]+)\s*=\s*(.+)$", s):
            try:
                keys[f"{section}.{m.group(1)}"] = tomllib.loads(f"v = {m.group(2)}")["v"]
            except tomllib.TOMLDecodeError:
                continue
    return keys, open_tables


def known(service: str) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """(required keys, optional documented keys, open tables) of a service."""
    text = default_toml(service)
    documented, open_tables = documented_keys(text)
    return flatten(tomllib.loads(text)), documented, open_tables


def env_key(name: str) -> str | None:
    """SHOPBRIDGE__DATABASE__URL -> database.url; other variables -> None."""
    if not name.startswith(ENV_PREFIX):
        return None
    return ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))


def rendered_keys(rendered: dict[str, str], service: str) -> tuple[dict[str, Any], set[str], set[str]]:
    """(keys of the service's config file, keys set by its Deployment's environment, by its migration Job's)."""
    objs = objects(rendered)
    name = f"shopbridge-{service}"
    cm = by_kind(objs, "ConfigMap")[name]
    file_keys = flatten(tomllib.loads(cm["data"]["config.toml"]))
    (container,) = pod_spec(by_kind(objs, "Deployment")[name])["containers"]
    deploy_env = {k for e in container.get("env", []) if (k := env_key(e["name"]))}
    job = by_kind(objs, "Job").get(f"{name}-migrate")
    job_env: set[str] = set()
    if job:
        (jc,) = pod_spec(job)["containers"]
        job_env = {k for e in jc.get("env", []) if (k := env_key(e["name"]))}
    return file_keys, deploy_env, job_env


def same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        return isinstance(value, list) and all(same_type(default[0], v) for v in value) if default else isinstance(value, list)
    return type(default) is type(value)


def coverage_problems(defaults: dict[str, Any], file_keys: dict[str, Any], env: set[str],
                      documented: dict[str, Any] | None = None, open_tables: set[str] = frozenset()) -> list[str]:
    documented = documented or {}
    problems = []
    for key, default in sorted(defaults.items()):
        if key not in file_keys and key not in env:
            problems.append(f"{key}: in default.toml but set neither in the ConfigMap nor in the environment")
    for key, value in sorted(file_keys.items()):
        default = defaults[key] if key in defaults else documented.get(key)
        if default is not None and not same_type(default, value):
            problems.append(f"{key}: the ConfigMap has {value!r}, default.toml a {type(default).__name__}")
    for key in sorted(set(file_keys) | env):
        if key in defaults or key in documented or any(key.startswith(t + ".") for t in open_tables):
            continue
        problems.append(f"{key}: set by the chart but unknown to the service (it would fail at start)")
    return problems


SCENARIOS_FOR_KEYS = {
    "defaults": {},
    "example": "examples/small-cluster.yaml",
    "with credentials": {"natsCredentials": {"existingSecret": "c"}},
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS_FOR_KEYS))
def keys_render(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    from conftest import CHART, load_values_file

    values = SCENARIOS_FOR_KEYS[request.param]
    if isinstance(values, str):
        values = load_values_file(CHART / values)
    return request.param, render(values)


@pytest.mark.parametrize("service", sorted(SERVICE_CRATES))
def test_every_default_toml_key_is_set_by_the_chart_and_no_other(keys_render, service: str) -> None:
    scenario, rendered = keys_render
    defaults, documented, open_tables = known(service)
    assert defaults, f"no keys read from {service}'s default.toml"
    file_keys, deploy_env, _ = rendered_keys(rendered, service)
    problems = coverage_problems(defaults, file_keys, deploy_env, documented, open_tables)
    assert problems == [], f"{scenario}, {service}:\n" + "\n".join(problems)


@pytest.mark.parametrize("service", sorted(SERVICE_CRATES))
def test_migration_job_sets_only_known_keys(keys_render, service: str) -> None:
    _, rendered = keys_render
    defaults, documented, open_tables = known(service)
    _, _, job_env = rendered_keys(rendered, service)
    unknown = {k for k in job_env - set(defaults) - set(documented) if not any(k.startswith(t + ".") for t in open_tables)}
    assert not unknown, unknown


@pytest.mark.parametrize("service", sorted(SERVICE_CRATES))
def test_secrets_never_land_in_the_config_map(keys_render, service: str) -> None:
    _, rendered = keys_render
    file_keys, deploy_env, _ = rendered_keys(rendered, service)
    assert "database.url" not in file_keys
    assert "database.url" in deploy_env
    assert file_keys["database.migrate_on_start"] is False
    assert file_keys["telemetry.log_format"] == "json"
    assert file_keys["grpc.listen"].startswith("0.0.0.0:") and file_keys["http.listen"].startswith("0.0.0.0:")
    secret_keys = secret_env_keys(rendered, service)
    assert secret_keys and not secret_keys & set(file_keys), secret_keys & set(file_keys)


def secret_env_keys(rendered: dict[str, str], service: str) -> set[str]:
    (c,) = pod_spec(by_kind(objects(rendered), "Deployment")[f"shopbridge-{service}"])["containers"]
    return {k for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {}) and (k := env_key(e["name"]))}


def test_the_shopify_and_encryption_secrets_come_from_secrets() -> None:
    rendered = render({})
    assert secret_env_keys(rendered, "auth") == {"database.url", "service.encryption_keys.k1",
                                                 "service.oauth.client_secret"}
    assert secret_env_keys(rendered, "gateway") == {"database.url", "service.webhooks.client_secret",
                                                    "service.webhooks.previous_client_secret",
                                                    "service.auth.client_secret"}
    file_keys, _, _ = rendered_keys(rendered, "auth")
    assert file_keys["service.active_encryption_key"] == "k1"


def test_the_checker_catches_a_new_key_and_an_unknown_one() -> None:
    """A key added to default.toml (e.g. under [service]) is reported until the chart sets it, and vice versa."""
    defaults = {"grpc.listen": "x", "service.page_size": 50, "consumer.backoff_ms": [1, 2]}
    assert coverage_problems(defaults, {"grpc.listen": "y", "consumer.backoff_ms": [3]}, set()) == [
        "service.page_size: in default.toml but set neither in the ConfigMap nor in the environment"]
    assert coverage_problems(defaults, {"grpc.listen": "y", "service.page_size": "50", "consumer.backoff_ms": []},
                             set()) == ["service.page_size: the ConfigMap has '50', default.toml a int"]
    assert coverage_problems({"a.b": 1}, {"a.b": 1}, {"a.c"}) == [
        "a.c: set by the chart but unknown to the service (it would fail at start)"]


def test_documented_keys_are_optional_and_known() -> None:
    text = """[service]
# Lifetime of tokens.
# access_token_ttl_secs = 900
# e.g. SHOPBRIDGE__SERVICE__X=1 is prose, not a key
# [service.encryption_keys]
# dev = "abc"
[other]
real = 1
"""
    documented, open_tables = documented_keys(text)
    assert documented == {"service.access_token_ttl_secs": 900, "service.encryption_keys.dev": "abc"}
    assert open_tables == {"service.encryption_keys"}
    defaults = {"other.real": 1}
    assert coverage_problems(defaults, {"other.real": 2, "service.access_token_ttl_secs": 60},
                             {"service.encryption_keys.prod1"}, documented, open_tables) == []
    assert coverage_problems(defaults, {"other.real": 2, "service.access_token_ttl_secs": "60"}, set(),
                             documented, open_tables) == [
        "service.access_token_ttl_secs: the ConfigMap has '60', default.toml a int"]
    assert coverage_problems(defaults, {"other.real": 2}, {"service.encryption_key"}, documented, open_tables) == [
        "service.encryption_key: set by the chart but unknown to the service (it would fail at start)"]


def test_a_service_key_set_in_values_reaches_only_that_service() -> None:
    rendered = render({"services": {"listings": {"config": {"service": {"page_size": 250, "dry_run": True,
                                                                         "tags": ["a", "b"], "ratio": 0.5}}}}})
    file_keys, _, _ = rendered_keys(rendered, "listings")
    assert file_keys["service.page_size"] == 250 and file_keys["service.dry_run"] is True
    assert file_keys["service.tags"] == ["a", "b"] and file_keys["service.ratio"] == 0.5
    other, _, _ = rendered_keys(rendered, "orders")
    assert not any(k in other for k in ("service.page_size", "service.dry_run", "service.tags", "service.ratio"))
