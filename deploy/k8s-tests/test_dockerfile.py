"""Rules for deploy/docker/Dockerfile, checked without a Docker engine (standard library only).

What we care about: multi-stage with one target per binary; dependency caching; SQLX_OFFLINE; pinned base images;
small runtime images that run as a numeric non-root user and carry no build tools, only the binary; no HEALTHCHECK
(Kubernetes probes /healthz and /readyz); a .dockerignore that keeps secrets and build output out of the context
but keeps every workspace member in.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
import unittest
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "docker" / "Dockerfile.dockerignore"

# Docker target -> the binary it ships.
TARGETS = {
    "auth": "shopbridge-auth",
    "listings": "shopbridge-listings",
    "orders": "shopbridge-orders",
    "gateway": "shopbridge-gateway",
    "scheduler": "shopbridge-scheduler",
    "nats-topology": "shopbridge-nats-topology",
    "cli": "shopbridge",
}
RUNTIME_BASES = ("gcr.io/distroless/", "debian:", "cgr.dev/chainguard/glibc-dynamic", "scratch")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|cmake|build-essential|cargo|rustc|rustup|pkg-config|libssl-dev|git|curl|wget)\b")


@dataclass
class Instruction:
    op: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        out = []
        current: str | None = name
        names = {s.name for s in self.stages}
        while current in names:
            st = self.stage(current)
            out.append(st)
            current = st.base
        return out

    def external_base(self, name: str) -> str:
        return self.chain(name)[-1].base


def parse(path: Path) -> Dockerfile:
    text = path.read_text(encoding="utf-8")
    directives: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    in_header = True
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if in_header and (m := re.match(r"^#\s*(syntax|escape|check)\s*=\s*(\S+)", line)):
            directives[m.group(1)] = m.group(2)
            continue
        if line.lstrip().startswith("#") and not buf:
            continue
        if not line.strip() and not buf:
            continue
        in_header = False
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        logical.append((start, buf.strip()))
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for no, stmt in logical:
        op, _, args = stmt.partition(" ")
        op = op.upper()
        args = args.strip()
        if op == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
        elif op == "FROM":
            parts = [p for p in args.split() if not p.startswith("--")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"line {no}: {op} before the first FROM"
            stages[-1].instructions.append(Instruction(op, args, no))
    return Dockerfile(directives, global_args, stages)


def image_is_pinned(ref: str) -> bool:
    """Pinned to a release line: a digest, or a tag or image name that carries a version, never `latest`."""
    if "@sha256:" in ref:
        return True
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    name, tag = last.split(":", 1)
    if tag == "latest":
        return False
    return bool(re.search(r"\d", tag) or re.search(r"\d", name))


class DockerfileRules(unittest.TestCase):
    df: Dockerfile

    @classmethod
    def setUpClass(cls) -> None:
        cls.df = parse(DOCKERFILE)
        cls.names = [s.name for s in cls.df.stages]

    def test_uses_buildkit_syntax_for_cache_mounts(self) -> None:
        self.assertRegex(self.df.directives.get("syntax", ""), r"^docker/dockerfile:1(\.\d+)?$")

    def test_is_multi_stage_with_one_target_per_binary(self) -> None:
        self.assertGreaterEqual(len(self.df.stages), 3)
        for target in TARGETS:
            self.assertIn(target, self.names, f"no target {target}")
        self.assertEqual(len(self.names), len(set(self.names)), "duplicate stage names")

    def test_base_images_are_pinned(self) -> None:
        for stage in self.df.stages:
            if stage.base in self.names:
                continue
            self.assertNotIn("$", stage.base, f"stage {stage.name}: unresolved base {stage.base}")
            self.assertTrue(image_is_pinned(stage.base), f"stage {stage.name}: base image {stage.base} is not pinned")

    def test_base_images_are_build_args_so_release_builds_can_pin_digests(self) -> None:
        for stage in self.df.stages:
            if stage.base in self.names:
                continue
            self.assertIn(stage.base, self.df.global_args.values(), f"stage {stage.name}: base image not from an ARG")

    def test_base_images_are_pinned_by_digest(self) -> None:
        loose = sorted({s.base for s in self.df.stages if s.base not in self.names and "@sha256:" not in s.base})
        if loose:
            self.skipTest("not pinned by digest (pass --build-arg RUST_IMAGE=...@sha256:..., "
                          "RUNTIME_IMAGE=...@sha256:... in release builds): " + ", ".join(loose))

    def test_builder_compiles_offline_for_sqlx_with_locked_dependencies_and_caching(self) -> None:
        builder = self.df.chain("builder")
        envs = " ".join(i.args for s in builder for i in s.instructions if i.op == "ENV")
        self.assertRegex(envs, r"\bSQLX_OFFLINE=true\b")
        runs = [i.args for s in builder for i in s.instructions if i.op == "RUN"]
        builds = [r for r in runs if "cargo build" in r]
        self.assertTrue(builds, "the builder runs no cargo build")
        for r in builds:
            self.assertIn("--release", r)
            self.assertIn("--locked", r)
        chef = any("cargo chef cook" in r for r in runs)
        cache_mount = any("--mount=type=cache" in r for r in builds)
        self.assertTrue(chef or cache_mount, "no dependency caching (cargo-chef cook or a cache mount)")
        if chef:
            cook_index = next(i for i, r in enumerate(runs) if "cargo chef cook" in r)
            build_index = next(i for i, r in enumerate(runs) if "cargo build" in r)
            self.assertLess(cook_index, build_index)
            # The source must come in after the dependencies are cooked, or the cache is useless.
            ops = [(i.op, i.args) for i in self.df.stage("builder").instructions]
            cook_at = next(n for n, (op, a) in enumerate(ops) if op == "RUN" and "cargo chef cook" in a)
            copy_all = [n for n, (op, a) in enumerate(ops) if op == "COPY" and re.match(r"^(--\S+\s+)*\.\s+\.$", a)]
            self.assertTrue(copy_all and min(copy_all) > cook_at, "COPY . . comes before cargo chef cook")

    def test_runtime_targets_are_small_non_root_and_ship_only_their_binary(self) -> None:
        for target, binary in TARGETS.items():
            chain = self.df.chain(target)
            base = self.df.external_base(target)
            self.assertTrue(base.startswith(RUNTIME_BASES), f"{target}: runtime base {base} is not a small runtime image")
            self.assertNotRegex(base, r"^(rust|golang|python|node)[:@]", f"{target} is based on a toolchain image")
            instructions = [i for s in reversed(chain) for i in s.instructions]
            users = [i.args for i in instructions if i.op == "USER"]
            self.assertTrue(users, f"{target}: no USER")
            user = users[-1].split(":")[0]
            self.assertRegex(user, r"^\d+$", f"{target}: USER {users[-1]} must be numeric for runAsNonRoot")
            self.assertNotEqual(int(user), 0, f"{target}: runs as root")
            for i in instructions:
                if i.op == "RUN":
                    self.assertIsNone(BUILD_TOOLS.search(i.args), f"{target}: line {i.line} installs or runs build tools")
                self.assertNotEqual(i.op, "ADD", f"{target}: line {i.line}: use COPY")
                self.assertNotEqual(i.op, "HEALTHCHECK", f"{target}: Kubernetes probes replace HEALTHCHECK")
            copies = [i.args for i in instructions if i.op == "COPY"]
            self.assertTrue(copies, f"{target}: copies nothing")
            for c in copies:
                self.assertIn("--from=builder", c, f"{target}: COPY not from the builder: {c}")
                srcs = [p for p in shlex.split(c) if not p.startswith("--")][:-1]
                self.assertEqual(srcs, [f"/out/{binary}"], f"{target}: copies more than its binary: {c}")
            entry = [i.args for i in instructions if i.op == "ENTRYPOINT"]
            self.assertEqual(entry[-1:], [f'["/usr/local/bin/{binary}"]'], f"{target}: ENTRYPOINT")

    def test_no_secrets_or_remote_downloads(self) -> None:
        for stage in self.df.stages:
            for i in stage.instructions:
                if i.op in ("ENV", "ARG"):
                    self.assertNotRegex(i.args, r"(?i)(secret|password|token|api_key)\w*\s*=\s*\S",
                                        f"line {i.line}: a secret in the image")
                if i.op in ("ADD", "RUN"):
                    self.assertNotRegex(i.args, r"https?://", f"line {i.line}: downloads at build time")

    def test_service_images_default_to_serve(self) -> None:
        for target in ("auth", "listings", "orders", "gateway", "scheduler"):
            cmds = [i.args for i in self.df.stage(target).instructions if i.op == "CMD"]
            self.assertEqual(cmds, ['["serve"]'], target)


def ignore_patterns() -> list[tuple[bool, str]]:
    out = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        out.append((negate, line.lstrip("!").rstrip("/")))
    return out


def ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a pattern matches a path or any parent of it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, pat in patterns:
        if any(fnmatch.fnmatchcase(p, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(p.split("/")[-1], pat[3:]))
               for p in prefixes):
            result = not negate
    return result


class DockerignoreRules(unittest.TestCase):
    def test_keeps_build_output_vcs_and_local_state_out(self) -> None:
        pats = ignore_patterns()
        for path in (".git", "target", "target/release/x", ".local/venv-k8s", "services/auth/target", "helm/shopbridge"):
            self.assertTrue(ignored(path, pats), f"{path} would be sent to the builder")

    def test_keeps_everything_cargo_needs(self) -> None:
        pats = ignore_patterns()
        with open(ROOT / "Cargo.toml", "rb") as f:
            members = tomllib.load(f)["workspace"]["members"]
        needed = ["Cargo.toml", "Cargo.lock", "proto", "migrations/auth/0001_init.sql", ".sqlx/query-x.json",
                  "services/auth/.sqlx/query-x.json", "services/auth/config/default.toml", "deploy/nats/topology.yaml",
                  *members, *(f"{m}/Cargo.toml" for m in members), *(f"{m}/src/main.rs" for m in members)]
        for path in needed:
            self.assertFalse(ignored(path, pats), f"{path} is excluded from the build context")


if __name__ == "__main__":
    unittest.main()
