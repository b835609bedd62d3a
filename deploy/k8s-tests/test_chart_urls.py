"""The services find each other under any release name: every in-cluster URL of every rendered config names a Service
of the release and one of its ports, and NOTES.txt names the objects the release has.

Rendered under several release names (with and without the chart name in them, with fullnameOverride and
nameOverride), other ports, and the chart's value files: a URL that assumes the release name "shopbridge" or the
services' local development ports (auth's HTTP 8081, the gateway's gRPC 50054) fails here.
"""

from __future__ import annotations

import itertools
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from conftest import EXAMPLES, NAMESPACE, ROOT, by_kind, load_values_file, objects, pod_spec, render

# release name -> values that change how objects are named.
RELEASES: dict[str, dict[str, Any]] = {
    "shopbridge": {},
    "acme": {},
    "prod-shopbridge-eu": {},
    "edge:fullnameOverride": {"fullnameOverride": "sb"},
    "edge:nameOverride": {"nameOverride": "bridge"},
}

VALUE_FILES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ingress": {"ingress": {"enabled": True, "host": "hooks.acme.example", "tls": {"enabled": True}}},
    "other ports": {"ports": {"grpc": 9000, "http": 9090}},
    **{f"example:{p.name}": load_values_file(p) for p in EXAMPLES},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def release_name(key: str) -> str:
    return key.split(":")[0]


_cache: dict[tuple[str, str], dict[str, str]] = {}


def rendered(release: str, values_file: str) -> dict[str, str]:
    if (release, values_file) not in _cache:
        values = merged(VALUE_FILES[values_file], RELEASES[release])
        _cache[release, values_file] = render(values, name=release_name(release))
    return _cache[release, values_file]


COMBINATIONS = list(itertools.product(sorted(RELEASES), sorted(VALUE_FILES)))


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, string) of every string in a parsed TOML document, lists included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def service_in_namespace(host: str, namespace: str) -> str | None:
    """The Service a cluster host name addresses in `namespace`: `name`, `name.ns`, `name.ns.svc` or
    `name.ns.svc.cluster.local` with ns = `namespace`; None for any other host (outside the cluster, or another
    namespace's)."""
    labels = host.lower().split(".")
    if len(labels) == 1:
        return labels[0]
    for suffix in (["svc", "cluster", "local"], ["svc"], []):
        if suffix and labels[-len(suffix):] != suffix:
            continue
        rest = labels[:len(labels) - len(suffix)]
        return rest[0] if len(rest) == 2 and rest[1] == namespace else None
    return None


def in_cluster(url: str, namespace: str) -> bool:
    """http(s) URLs whose host is a cluster name: no dot, `<name>.<namespace>`, or ending in .svc or
    .svc.cluster.local."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "https") and bool(host) and (
        "." not in host or host.endswith((".svc", ".svc.cluster.local", f".{namespace}")))


def url_problems(objs: list[dict[str, Any]], namespace: str = NAMESPACE) -> tuple[list[str], int]:
    """(problems, in-cluster URLs checked) over every config.toml of a render."""
    services = {name: {p["port"] for p in svc["spec"]["ports"]} for name, svc in by_kind(objs, "Service").items()}
    problems, checked = [], 0
    for cm_name, cm in sorted(by_kind(objs, "ConfigMap").items()):
        text = (cm.get("data") or {}).get("config.toml")
        if text is None:
            continue
        for key, value in strings(tomllib.loads(text)):
            if not in_cluster(value, namespace):
                continue
            parts = urlsplit(value)
            target = service_in_namespace(parts.hostname or "", namespace)
            if target is None:
                continue
            checked += 1
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if target not in services:
                problems.append(f"{cm_name}: {key} = {value!r}: no Service {target!r} (Services: {sorted(services)})")
            elif port not in services[target]:
                problems.append(f"{cm_name}: {key} = {value!r}: Service {target} has ports {sorted(services[target])}")
    return problems, checked


@pytest.mark.parametrize("release,values_file", COMBINATIONS, ids=[f"{r}/{v}" for r, v in COMBINATIONS])
def test_every_in_cluster_url_names_a_rendered_service_and_one_of_its_ports(release: str, values_file: str) -> None:
    problems, checked = url_problems(objects(rendered(release, values_file)))
    assert problems == [], "\n".join(problems)
    # auth -> gateway, gateway -> auth and its JWKS, listings' and the scheduler's JWKS.
    assert checked >= 5, f"only {checked} in-cluster URLs found"


# (service, key) -> (target service, Service port name, path): the wiring between the services.
WIRING = {
    ("auth", "service.gateway.url"): ("gateway", "grpc", ""),
    ("gateway", "service.auth.url"): ("auth", "grpc", ""),
    ("gateway", "service.tokens.jwks_url"): ("auth", "http", "/.well-known/jwks.json"),
    ("listings", "service.auth.jwks_url"): ("auth", "http", "/.well-known/jwks.json"),
    ("scheduler", "service.auth.jwks_url"): ("auth", "http", "/.well-known/jwks.json"),
}


def config_of(objs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    (cm,) = [o for o in by_kind(objs, "ConfigMap").values()
             if o["metadata"]["labels"]["app.kubernetes.io/component"] == service
             and "helm.sh/hook" not in o["metadata"].get("annotations", {})]
    return tomllib.loads(cm["data"]["config.toml"])


def dig(table: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        table = table[part]
    return table


@pytest.mark.parametrize("release,values_file", COMBINATIONS, ids=[f"{r}/{v}" for r, v in COMBINATIONS])
def test_each_service_reaches_the_right_service_on_the_right_port(release: str, values_file: str) -> None:
    objs = objects(rendered(release, values_file))
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in by_kind(objs, "Service").values()}
    for (service, key), (target, port_name, path) in WIRING.items():
        url = urlsplit(dig(config_of(objs, service), key))
        svc = services[target]
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert (url.scheme, url.hostname, url.port, url.path) == (
            "http", svc["metadata"]["name"], ports[port_name], path), f"{service}: {key}"


def test_the_webhook_callback_follows_the_ingress() -> None:
    gateway = config_of(objects(rendered("acme", "ingress")), "gateway")
    assert gateway["service"]["webhooks"]["callback_url"] == "https://hooks.acme.example/shopify/webhooks"
    assert gateway["service"]["webhooks"]["topics"] == ["app/uninstalled", "orders/create", "orders/updated"]
    assert config_of(objects(rendered("acme", "defaults")), "gateway")["service"]["webhooks"]["callback_url"] == ""


def test_a_url_set_in_values_is_kept_as_an_override() -> None:
    over = {
        "auth": {"config": {"service": {"gateway": {"url": "http://gw.other.svc:7000"}}}},
        "gateway": {"config": {"service": {"auth": {"url": "http://auth.other.svc:7001"},
                                           "tokens": {"jwks_url": "https://auth.example/jwks.json"},
                                           "webhooks": {"callback_url": "https://hooks.example/shopify/webhooks"}}}},
        "listings": {"config": {"service": {"auth": {"jwks_url": "http://auth.other.svc:7002/.well-known/jwks.json"}}}},
    }
    objs = objects(render({"services": over, "ingress": {"enabled": True}}, name="acme"))
    assert config_of(objs, "auth")["service"]["gateway"]["url"] == "http://gw.other.svc:7000"
    gateway = config_of(objs, "gateway")["service"]
    assert gateway["auth"]["url"] == "http://auth.other.svc:7001"
    assert gateway["tokens"]["jwks_url"] == "https://auth.example/jwks.json"
    assert gateway["webhooks"]["callback_url"] == "https://hooks.example/shopify/webhooks"
    assert config_of(objs, "listings")["service"]["auth"]["jwks_url"] == "http://auth.other.svc:7002/.well-known/jwks.json"
    # Not overridden: still derived.
    assert config_of(objs, "scheduler")["service"]["auth"]["jwks_url"] == (
        "http://acme-shopbridge-auth:8080/.well-known/jwks.json")


def test_a_disabled_gateway_leaves_auths_gateway_url_empty() -> None:
    objs = objects(render({"services": {"gateway": {"enabled": False}}}, name="acme"))
    assert config_of(objs, "auth")["service"]["gateway"]["url"] == ""
    assert url_problems(objs)[0] == []


def test_a_disabled_auth_needs_its_urls_set() -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError, match="auth is disabled"):
        render({"services": {"auth": {"enabled": False}}})
    elsewhere = "http://auth.other.svc:8080/.well-known/jwks.json"
    objs = objects(render({"services": {
        "auth": {"enabled": False},
        "gateway": {"config": {"service": {"auth": {"url": "http://auth.other.svc:50051"},
                                           "tokens": {"jwks_url": elsewhere}}}},
        "listings": {"config": {"service": {"auth": {"jwks_url": elsewhere}}}},
        "scheduler": {"config": {"service": {"auth": {"jwks_url": elsewhere}}}},
        "orders": {"config": {"service": {"auth": {"jwks_url": elsewhere}}}},
    }}))
    assert config_of(objs, "listings")["service"]["auth"]["jwks_url"] == elsewhere


def test_the_checker_finds_a_url_that_assumes_the_release_name_or_a_local_port() -> None:
    objs = objects(render({}, name="acme"))
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "acme-shopbridge-listings"]
    cm["data"]["config.toml"] += '\n[extra]\na = "http://shopbridge-auth:8081/x"\nb = "http://acme-shopbridge-auth:8081/"\n' \
                                 'c = "http://acme-shopbridge-auth.shopbridge.svc.cluster.local:8080/"\n' \
                                 'd = "http://otel.observability.svc:4317"\ne = "https://shop.example.com/"\n'
    problems = [p for p in url_problems(objs)[0] if ": extra." in p]
    assert [p.split(" = ")[0] for p in problems] == ["acme-shopbridge-listings: extra.a",
                                                      "acme-shopbridge-listings: extra.b"], problems
    assert service_in_namespace("x.shopbridge.svc.cluster.local", "shopbridge") == "x"
    assert service_in_namespace("x.shopbridge.svc", "shopbridge") == "x"
    assert service_in_namespace("x.other.svc", "shopbridge") is None
    assert service_in_namespace("x", "shopbridge") == "x"


# --- NOTES.txt: commands that work as written ----------------------------------------------------------------------


def long_flags(body: str) -> set[str]:
    """The `--flags` of the fields in a clap struct or variant body: fields under an #[arg(long ...)] attribute."""
    flags, attrs = set(), ""
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("//"):
            continue
        if m := re.match(r"(?:pub\s+)?([a-z_]+):", line):
            if re.search(r"#\[arg\([^]]*\blong\b", attrs):
                flags.add("--" + m.group(1).replace("_", "-"))
            attrs = ""
        else:
            attrs += " " + line
    return flags


def subcommands(path: Path, enum: str) -> dict[str, set[str]]:
    """A clap Subcommand enum's subcommands (kebab-case variant names) with their long flags."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index(f"enum {enum}"):]
    body = body[:body.index("\n}\n")]
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"^ {4}([A-Z][A-Za-z]+)\b(\s*\{(.*?)^ {4}\},|[,(])", body, re.M | re.S):
        out[re.sub(r"(?<!^)([A-Z])", r"-\1", m.group(1)).lower()] = long_flags(m.group(3) or "")
    return out


def struct_flags(path: Path, struct: str) -> set[str]:
    text = path.read_text(encoding="utf-8")
    body = text[text.index(f"pub struct {struct}"):]
    return long_flags(body[:body.index("\n}\n")])


AUTH_MAIN = ROOT / "services" / "auth" / "src" / "main.rs"
CLI = ROOT / "cli" / "src" / "cli.rs"


def commands(notes: str) -> list[list[str]]:
    """The indented command lines of NOTES.txt, continuation lines joined, split as a shell would (without the
    redirection of standard input)."""
    lines = notes.replace("\\\n", " ").splitlines()
    return [shlex.split(line.split(" < ")[0]) for line in lines if re.match(r"^ {5}(kubectl|shopbridge|helm) ", line)]


def test_the_source_parsers_find_the_operator_commands_and_cli_flags() -> None:
    auth = subcommands(AUTH_MAIN, "AuthCommand")
    assert auth["bootstrap-admin"] == {"--tenant"} and auth["bootstrap-gateway"] == set(), auth
    channels = subcommands(CLI, "ChannelsCommand")
    assert channels["connect-token"] == {"--shop", "--token-stdin", "--token", "--scopes"}, channels
    assert channels["add"] == set() and channels["connect-oauth"] == {"--shop"}, channels
    assert {"--auth-url", "--listings-url", "--scheduler-url", "--client-id", "--client-secret-stdin"} <= \
        struct_flags(CLI, "ConfigureArgs")


def secret_of(deployment: dict[str, Any], env: str) -> tuple[str, str]:
    (container,) = pod_spec(deployment)["containers"]
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == env]
    return ref["name"], ref["key"]


@pytest.mark.parametrize("release,values_file", [(r, v) for r in sorted(RELEASES) for v in ("ingress", "defaults")])
def test_notes_commands_name_the_releases_objects_and_real_commands(release: str, values_file: str) -> None:
    out = rendered(release, values_file)
    objs = objects(out)
    notes = out["shopbridge/templates/NOTES.txt"]
    deployments, services = by_kind(objs, "Deployment"), by_kind(objs, "Service")
    auth = subcommands(AUTH_MAIN, "AuthCommand")
    channels = subcommands(CLI, "ChannelsCommand")
    forwards: dict[str, int] = {}
    seen = set()
    for argv in commands(notes):
        if argv[0] == "kubectl":
            assert argv[1:3] == ["-n", NAMESPACE], argv
            verb, *rest = argv[3:]
            if verb == "rollout":
                assert rest[0] == "status" and rest[1].removeprefix("deployment/") in deployments, argv
            elif verb == "exec":
                name = rest[0].removeprefix("deployment/")
                binary, sub, *args = argv[argv.index("--") + 1:]
                (container,) = pod_spec(deployments[name])["containers"]
                assert container["command"] == [binary] and binary == "shopbridge-auth", argv
                assert sub in auth, f"{sub}: not a subcommand of {binary} ({sorted(auth)})"
                assert {a for a in args if a.startswith("--")} == auth[sub], argv
                seen.add(sub)
            elif verb == "port-forward":
                name = rest[0].removeprefix("service/")
                local, remote = rest[1].split(":")
                assert int(remote) in {p["port"] for p in services[name]["spec"]["ports"]}, argv
                forwards[services[name]["metadata"]["labels"]["app.kubernetes.io/component"]] = int(local)
            elif verb == "patch":
                gateway = [d for n, d in deployments.items() if n.endswith("-gateway")][0]
                secret, key = secret_of(gateway, "SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET")
                assert rest[:2] == ["secret", secret] and f'"{key}"' in rest[-1], argv
                seen.add("patch")
            else:
                pytest.fail(f"unexpected command {argv}")
        elif argv[0] == "shopbridge" and argv[1] == "configure":
            urls = {a: argv[i + 1] for i, a in enumerate(argv) if a.endswith("-url")}
            assert urls == {f"--{s}-url": f"http://127.0.0.1:{forwards[s]}" for s in ("auth", "listings", "scheduler")}
            assert {a for a in argv if a.startswith("--")} <= struct_flags(CLI, "ConfigureArgs"), argv
            seen.add("configure")
        elif argv[0] == "shopbridge" and argv[1] == "channels":
            assert argv[2] in channels and {a for a in argv if a.startswith("--")} <= channels[argv[2]], argv
            seen.add(argv[2])
        elif argv[0] == "helm":
            assert argv[1:3] == ["upgrade", release_name(release)] and "--reuse-values" in argv, argv
        else:
            pytest.fail(f"unexpected command {argv}")
    assert {"bootstrap-admin", "bootstrap-gateway", "patch", "configure", "add"} <= seen, seen
    assert set(forwards) == {"auth", "listings", "scheduler"}


def test_notes_say_when_the_gateway_has_its_identity_and_where_webhooks_go() -> None:
    notes = render({"services": {"gateway": {"config": {"service": {"auth": {"client_id": "gw"}}}}}},
                   name="acme")["shopbridge/templates/NOTES.txt"]
    assert "bootstrap-gateway" not in notes and 'client_id is "gw"' in notes
    notes = rendered("acme", "ingress")["shopbridge/templates/NOTES.txt"]
    assert "app/uninstalled, orders/create, orders/updated at https://hooks.acme.example/shopify/webhooks" in notes
    notes = rendered("acme", "defaults")["shopbridge/templates/NOTES.txt"]
    assert "No webhook subscriptions are registered" in notes
