"""docker-compose.yml and the service Dockerfiles, checked without Docker.

The Compose file is validated against the Compose Specification's JSON schema as shipped by the
reference implementation, the Go module github.com/compose-spec/compose-go/v2 (its
`schema/compose-spec.json`), fetched once from the Go module proxy (`GOPROXY`, default
https://proxy.golang.org), checked against a pinned SHA-256 and cached under the run folder.
No network there fails the test, as a missing server does; it never skips.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import subprocess
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infra.local import FEAST_USER, PG_DATABASE, PG_USER
from infra.supervisor import BY_NAME
from tests.unit.service_settings import settings_class

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"

COMPOSE_GO_MODULE = "github.com/compose-spec/compose-go/v2"
COMPOSE_GO_VERSION = "v2.16.2"
COMPOSE_GO_ZIP_SHA256 = "75410c9723430b920592093014fc53641f6207e01b52c016c848ba62bf2da805"
COMPOSE_SPEC_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"

#: the deployables, as the supervisor knows them (a new one needs a Dockerfile too)
SERVICES = tuple(BY_NAME)
#: the images that run training (the retrainer's job, `python -m training.retrain`): they hold the
#: training package and the training-only packages the other images leave out
TRAINING_IMAGES = ("retrainer",)


def _cache_dir() -> Path:
    return Path(os.environ.get("ALAMA_RUN_DIR", REPO / ".run")).resolve() / "cache"


def _module_proxy() -> str:
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def compose_spec_schema() -> dict[str, Any]:
    """The Compose Specification schema of compose-go at the pinned version (cached)."""
    cached = _cache_dir() / f"compose-spec-{COMPOSE_GO_VERSION}.json"
    if cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == COMPOSE_SPEC_SHA256:
        return json.loads(cached.read_bytes())
    url = f"{_module_proxy()}/{COMPOSE_GO_MODULE}/@v/{COMPOSE_GO_VERSION}.zip"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            archive = response.read()
    except OSError as exc:
        pytest.fail(f"cannot fetch the Compose Specification schema from {url}: {exc}")
    assert hashlib.sha256(archive).hexdigest() == COMPOSE_GO_ZIP_SHA256, f"{url} changed"
    member = f"{COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION}/schema/compose-spec.json"
    schema = zipfile.ZipFile(io.BytesIO(archive)).read(member)
    assert hashlib.sha256(schema).hexdigest() == COMPOSE_SPEC_SHA256
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(schema)
    return json.loads(schema)


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def dockerfile(name: str) -> Path:
    return REPO / "services" / name / "Dockerfile"


def compose_service_of(name: str) -> tuple[str, dict[str, Any]]:
    """The one compose service that runs `name` (an image tag, not the one-shot jobs)."""
    wanted = f"services/{name}/Dockerfile"
    found = [
        (key, svc)
        for key, svc in compose_services().items()
        if svc.get("build", {}).get("dockerfile") == wanted and "image" in svc
    ]
    assert len(found) == 1, f"expected one compose service built from {wanted}, got {found}"
    return found[0]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stage_instructions(path: Path, stage: str) -> list[tuple[str, str]]:
    """The instructions of the last stage (`runtime` section and the service's own part)."""
    found: list[tuple[str, str]] = []
    inside = False
    for keyword, args in instructions(path):
        if keyword == "FROM":
            inside = args.endswith(f" AS {stage}") or args.endswith(f" as {stage}")
        if inside:
            found.append((keyword, args))
    return found


def cmd(path: Path) -> list[str]:
    commands = [json.loads(args) for keyword, args in instructions(path) if keyword == "CMD"]
    assert len(commands) == 1, f"{path}: expected one CMD in exec form"
    return commands[0]


def service_settings_defaults(name: str) -> dict[str, Any]:
    """Defaults of the service's settings class (its ports), read from the class, not the env,
    as a container has them: without the test instance's port offset (ALAMA_PORT_OFFSET)."""
    from services.common.settings import PORT_OFFSET

    defaults = {key: field.default for key, field in settings_class(name).model_fields.items()}
    for key in ("port", "grpc_port", "metrics_port"):
        if defaults.get(key):
            defaults[key] -= PORT_OFFSET
    return defaults


def service_ports(name: str) -> set[int]:
    defaults = service_settings_defaults(name)
    return {
        int(defaults[key]) for key in ("port", "grpc_port", "metrics_port") if defaults.get(key)
    }


# ---- the Compose file -------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        validator_class(schema).iter_errors(compose()), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_every_service_is_built_from_its_own_dockerfile() -> None:
    on_disk = {p.parent.name for p in (REPO / "services").glob("*/Dockerfile")}
    assert on_disk == set(SERVICES), "one Dockerfile per deployable service, no strays"
    for name in SERVICES:
        key, svc = compose_service_of(name)
        assert svc["build"]["context"] == ".", f"{key}: the build context is the repository root"
        assert dockerfile(name).is_file()


def test_every_build_points_at_an_existing_dockerfile() -> None:
    for key, svc in compose_services().items():
        if "build" in svc:
            build = svc["build"]
            context = (REPO / build.get("context", ".")).resolve()
            assert context == REPO, f"{key}: build from the repository root"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), key
        else:
            image = svc.get("image", "")
            assert re.search(r":[\w][\w.-]*$", image) and not image.endswith(":latest"), (
                f"{key}: pin the image tag ({image!r})"
            )


def test_depends_on_names_real_services_with_the_state_they_wait_for() -> None:
    services = compose_services()
    for key, svc in services.items():
        for target, rule in svc.get("depends_on", {}).items():
            assert target in services, f"{key} depends on unknown service {target}"
            assert target != key
            condition = rule["condition"]
            other = services[target]
            if condition == "service_healthy":
                image_check = "build" in other and any(
                    k == "HEALTHCHECK" for k, _ in instructions(REPO / other["build"]["dockerfile"])
                )
                assert ("healthcheck" in other and not other["healthcheck"].get("disable")) or (
                    image_check
                ), f"{key} waits for {target} to be healthy, but it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert other.get("restart") == "no", f"{target} is a one-shot job"
            else:
                assert condition == "service_started", f"{key} -> {target}: {condition}"


def test_the_services_wait_for_their_servers_and_the_topics() -> None:
    for name in SERVICES:
        key, svc = compose_service_of(name)
        needs = svc["depends_on"]
        assert needs["kafka"]["condition"] == "service_healthy", key
        assert needs["topics-init"]["condition"] == "service_completed_successfully", key
    for caller, upstreams in (
        ("gateway", ("scoring", "explanation")),
        ("console", ("explanation",)),
    ):
        _, svc = compose_service_of(caller)
        for upstream in upstreams:
            key, _ = compose_service_of(upstream)
            assert svc["depends_on"][key]["condition"] == "service_healthy", caller


def test_services_reach_each_other_by_compose_name() -> None:
    services = compose_services()
    for name in SERVICES:
        key, svc = compose_service_of(name)
        env = svc["environment"]
        host, port = env["ALAMA_KAFKA_BOOTSTRAP"].split(":")
        assert host in services and host == "kafka", key
        assert env["ALAMA_OTLP_ENDPOINT"].split(":")[0] in services, key
    _, gateway = compose_service_of("gateway")
    for target, upstream in (("SCORING", "scoring"), ("EXPLANATION", "explanation")):
        host, port = gateway["environment"][f"ALAMA_GATEWAY_{target}_TARGET"].split(":")
        key, _ = compose_service_of(upstream)
        assert host == key
        assert int(port) == service_settings_defaults(upstream)["grpc_port"]
    _, console = compose_service_of("console")
    for target, upstream in (
        ("EXPLANATION", "explanation"),
        ("AUDIT", "audit"),
        ("SCORING", "scoring"),
    ):
        host, port = console["environment"][f"ALAMA_CONSOLE_{target}_TARGET"].split(":")
        assert host == compose_service_of(upstream)[0]
        assert int(port) == service_settings_defaults(upstream)["grpc_port"]
    # the oversight page reads drift's PSI and outcomes' live AUC and ECE from their metrics
    for target, upstream in (("DRIFT", "drift"), ("OUTCOMES", "outcomes")):
        url = console["environment"][f"ALAMA_CONSOLE_{target}_METRICS_URL"]
        key, _ = compose_service_of(upstream)
        port = service_settings_defaults(upstream)["metrics_port"]
        assert url == f"http://{key}:{port}/metrics", target


def test_topics_job_runs_the_declared_topic_list() -> None:
    job = compose_services()["topics-init"]
    script = " ".join(job["command"])
    assert "from services.common.topics import ensure_topics" in script
    from services.common.topics import ensure_topics  # noqa: F401  (the import the job runs)


def test_postgres_init_creates_what_infra_local_bootstraps() -> None:
    sql = compose()["configs"]["postgres-init"]["content"]
    assert f"CREATE ROLE {PG_USER} LOGIN" in sql
    assert re.search(rf"CREATE ROLE {FEAST_USER} LOGIN .* IN ROLE {PG_USER};", sql)
    assert f"ALTER ROLE {FEAST_USER} SET enable_nestloop = off;" in sql
    assert f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER};" in sql
    postgres = compose_services()["postgres"]
    assert any(
        c["source"] == "postgres-init" and c["target"].startswith("/docker-entrypoint-initdb.d/")
        for c in postgres["configs"]
    )


def test_bind_mounted_files_exist() -> None:
    for key, svc in compose_services().items():
        for volume in svc.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{key} mounts missing {source}"


def test_bundle_mount_matches_the_image_paths() -> None:
    for name, setting in (
        ("scoring", "ALAMA_SCORING_BUNDLE_DIR"),
        ("explanation", "ALAMA_EXPLANATION_BUNDLE_ROOT"),
        ("drift", "ALAMA_DRIFT_BUNDLE_DIR"),
        ("outcomes", "ALAMA_OUTCOMES_BUNDLE_ROOT"),  # each bundle's reference AUC and ECE
    ):
        _, svc = compose_service_of(name)
        targets = [v["target"] for v in svc["volumes"] if isinstance(v, dict)]
        assert any(svc["environment"][setting].startswith(t) for t in targets), name
        assert all(v.get("read_only") for v in svc["volumes"] if isinstance(v, dict)), name
    # compose has no MLflow server: scoring serves the mounted link (registry mode is the charts')
    _, scoring = compose_service_of("scoring")
    assert scoring["environment"]["ALAMA_SCORING_MODEL_SOURCE"] == "link"
    assert not [k for k, svc in compose_services().items() if "MLFLOW_TRACKING_URI" in str(svc)]


def test_retrainer_writes_the_bundles_the_services_read_and_runs_on_demand() -> None:
    """Its challengers' bundles (and promotion's `current` link) go into the bundle folder the
    services mount read-only; its own files (runs, MLflow's local store, the outbox) into its
    volume at training's artifacts folder; a bare `up` leaves it out, as `make up` does."""
    from training.paths import ARTIFACTS, LOAN_BOOKS

    key, svc = compose_service_of("retrainer")
    assert svc["profiles"] == ["retrainer"] and BY_NAME["retrainer"].on_demand
    env = svc["environment"]
    artifacts = Path("/app") / ARTIFACTS.relative_to(REPO)
    mounts = {(v["target"] if isinstance(v, dict) else v.split(":")[1]): v for v in svc["volumes"]}
    assert mounts[str(artifacts)].split(":")[0] in compose()["volumes"], "a named volume"
    bundles = mounts[env["ALAMA_RETRAINER_BUNDLE_ROOT"]]
    _, scoring = compose_service_of("scoring")
    shared = next(v for v in scoring["volumes"] if isinstance(v, dict))
    assert bundles["source"] == shared["source"] and not bundles.get("read_only"), key
    books = mounts[str(artifacts / LOAN_BOOKS.relative_to(ARTIFACTS))]
    assert books["read_only"], "it reads the champion's book, never writes it"
    for setting in ("ALAMA_RETRAINER_WORK_DIR", "ALAMA_REGISTRY_OUTBOX"):
        assert env[setting].startswith(f"{artifacts}/"), setting


# ---- the Dockerfiles --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_cmd_runs_the_service_module(name: str) -> None:
    """Every image starts its service the one way: `python -m services.<name>`, the command the
    charts and the supervisor use too."""
    assert cmd(dockerfile(name)) == ["python", "-m", f"services.{name}"]
    assert BY_NAME[name].command[-2:] == ["-m", f"services.{name}"]
    main = REPO / "services" / name / "__main__.py"
    assert builds_service_cli(main), f"{main} builds no services.common.cli.service_cli app"


def builds_service_cli(main: Path) -> bool:
    """Whether the module's `app` is `service_cli(run, ...)`: the bare module runs the service."""
    for node in ast.walk(ast.parse(main.read_text())):
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["app"]
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "service_cli"
        ):
            return True
    return False


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_image_is_non_root_exposes_its_ports_and_checks_health(name: str) -> None:
    runtime = stage_instructions(dockerfile(name), "runtime")
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "run as a non-root user"
    exposed = {int(p) for k, args in runtime if k == "EXPOSE" for p in args.split()}
    assert exposed == service_ports(name)
    checks = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "CMD" in checks[0]
    assert any(str(port) in checks[0] for port in exposed)


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_image_copies_only_what_the_service_imports(name: str) -> None:
    copies = [args for k, args in stage_instructions(dockerfile(name), "runtime") if k == "COPY"]
    sources = {src for args in copies if not args.startswith("--from") for src in args.split()[:-1]}
    wanted = {"services/__init__.py", "services/common", f"services/{name}"}
    if "services.common.feast_config" in imported_modules(REPO / "services" / name):
        wanted.add("feature_repo")
    if name in TRAINING_IMAGES:
        # the job's package, and the Feast repo it reads the training set through; the lock
        # again for the training-only packages' layer
        wanted |= {"training", "pyproject.toml", "uv.lock"}
        if "services.common.feast_config" in imported_modules(REPO / "training"):
            wanted.add("feature_repo")
        for module in imported_modules(REPO / "training"):
            if module.startswith("services."):
                assert module.split(".")[1] == "common", f"training imports {module}"
            assert module.split(".")[0] not in {"simulator", "bench", "infra", "tests"}, module
    assert sources == wanted
    # a service may import the shared library and itself only: nothing else is in its image
    for module in imported_modules(REPO / "services" / name):
        if module.startswith("services."):
            assert module.split(".")[1] in {"common", name}, f"services.{name} imports {module}"
    assert any(args.startswith("--from=deps /opt/venv") for args in copies)


def test_dockerfiles_share_everything_but_the_service_section() -> None:
    def common_part(name: str) -> str:
        text = dockerfile(name).read_text()
        start = text.index("\nARG PYTHON_IMAGE=")  # the stages, not the header's words
        end = text.index(f"# ---- {name}\n")
        return text[start:end]

    first, *rest = SERVICES
    for name in rest:
        assert common_part(name) == common_part(first), f"{name}'s shared stages drifted"


def test_dockerfiles_pin_the_makefiles_uv_and_install_the_lock() -> None:
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert makefile_uv
    for name in SERVICES:
        steps = instructions(dockerfile(name))
        assert ("ARG", f"UV_VERSION={makefile_uv.group(1)}") in steps, name
        syncs = [args for k, args in steps if k == "RUN" and "uv sync" in args]
        assert all("--frozen" in sync and "--no-dev" in sync for sync in syncs), name
        if name in TRAINING_IMAGES:
            # the shared stage's sync, then the same lock whole on top: the training-only layer
            shared, training = syncs
            assert "--no-install-package" in shared and "--no-install-package" not in training
            assert "from=deps,source=/usr/local/bin/uv" in training, "the pinned uv, reused"
        else:
            assert len(syncs) == 1, name
        base = [args for k, args in steps if k == "ARG" and args.startswith("PYTHON_IMAGE=")]
        assert base and re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base[0]), name


def _lock_graph() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    graph: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for package in lock["package"]:
        edges = [(d["name"], tuple(d.get("extra", []))) for d in package.get("dependencies", [])]
        for extra, deps in package.get("optional-dependencies", {}).items():
            edges += [(d["name"], (f"@{extra}", *d.get("extra", []))) for d in deps]
        graph[package["name"]] = edges
    return graph


def _runtime_closure(
    graph: dict[str, list[tuple[str, tuple[str, ...]]]], skip: set[str]
) -> set[str]:
    """Packages `uv sync --no-dev` installs (all platforms' markers kept), minus `skip`'s."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = list(graph["alama"])
    while stack:
        name, extras = stack.pop()
        if name in skip or (name, extras) in seen:
            continue
        seen.add((name, extras))
        for dep, dep_extras in graph[name]:
            if dep_extras[:1] and dep_extras[0].startswith("@"):
                if dep_extras[0][1:] not in extras:
                    continue
                dep_extras = dep_extras[1:]
            stack.append((dep, dep_extras))
    return {name for name, _ in seen}


def training_only_packages() -> set[str]:
    common = dockerfile(SERVICES[0]).read_text()
    match = re.search(r'ARG TRAINING_ONLY_PACKAGES="([^"]*)"', common)
    assert match
    return set(match.group(1).replace("\\", " ").split())


def test_images_leave_out_exactly_what_only_pytorch_needs() -> None:
    graph = _lock_graph()
    everything = _runtime_closure(graph, set())
    without_torch = _runtime_closure(graph, {"torch"})
    assert training_only_packages() == everything - without_torch


def test_no_service_imports_a_package_the_images_leave_out() -> None:
    left_out = {name.split("-")[0].replace("-", "_") for name in training_only_packages()}
    # the reason the training images hold them: the job they run imports PyTorch
    assert "torch" in {m.split(".")[0] for m in imported_modules(REPO / "training")}
    for name in SERVICES:
        for root in (REPO / "services" / name, REPO / "services" / "common"):
            imported = {m.split(".")[0] for m in imported_modules(root)}
            assert not imported & left_out, f"{root} imports {imported & left_out}"
    assert not {m.split(".")[0] for m in imported_modules(REPO / "feature_repo")} & left_out


def imported_modules(root: Path) -> set[str]:
    """Every module imported anywhere under `root` (lazy imports inside functions included)."""
    found: set[str] = set()
    for path in _python_files(root):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def _python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if "protos" not in path.relative_to(REPO).parts:
            yield path


# ---- .dockerignore ----------------------------------------------------------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatchcase(c, glob) or fnmatchcase(c, glob.replace("**/", "")) for c in candidates):
            verdict = not negate
    return verdict


def test_dockerignore_sends_the_build_only_what_the_images_copy() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "uv.lock",
        "services/__init__.py",
        "feature_repo/feature_store.yaml",
    ]
    needed += [str(p.relative_to(REPO)) for p in _python_files(REPO / "services" / "common")]
    needed += [str(p.relative_to(REPO)) for p in _python_files(REPO / "training")]
    for name in SERVICES:
        needed += [f"services/{name}/__main__.py", f"services/{name}/settings.py"]
    for path in needed:
        assert not _ignored(path, patterns), f".dockerignore drops {path}"
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "artifacts/bundles/current/gbm.onnx",
        "artifacts/loanbooks/synthetic-quick/loanbook.json",
        "artifacts/mlflow/mlflow.db",
        "tests/conftest.py",
        "simulator/events.py",
        "services/common/__pycache__/settings.cpython-311.pyc",
        "alama-drift-it-1-data/v1/tables",
    ):
        assert _ignored(path, patterns), f".dockerignore sends {path} to the builder"


# ---- safe defaults: local ports, no default secrets -------------------------------------------

#: variables that hold a password, a key or a secret (or a URL that carries one)
SECRET_VARIABLE = re.compile(r"PASSWORD|SECRET|_KEY$|_KEYS$|_DSN$")
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


def published_ports(svc: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    """(host address or None for every address, published port) of each published port."""
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            yield port.get("host_ip"), str(port.get("published", port["target"]))
            continue
        parts = str(port).split(":")
        if len(parts) == 3:
            yield parts[0], parts[1]
        else:
            yield None, parts[0]


def test_only_the_gateway_api_port_is_published_beyond_this_machine() -> None:
    gateway_key, _ = compose_service_of("gateway")
    api_port = str(service_settings_defaults("gateway")["port"])
    public = []
    for key, svc in compose_services().items():
        for host, port in published_ports(svc):
            if host != "127.0.0.1":
                public.append((key, host, port))
    assert public == [(gateway_key, None, api_port)]
    _, gateway = compose_service_of("gateway")
    operator = str(service_settings_defaults("gateway")["metrics_port"])
    assert ("127.0.0.1", operator) in set(published_ports(gateway)), "docs and metrics: local"


def _required(value: str) -> bool:
    """The whole value is one variable that must be set (no default)."""
    match = INTERPOLATION.fullmatch(value)
    return bool(match and match["op"] == ":?")


def test_no_secret_has_a_default() -> None:
    text = COMPOSE_FILE.read_text()
    for match in INTERPOLATION.finditer(text):
        if SECRET_VARIABLE.search(match["name"]):
            assert match["op"] == ":?", f"${{{match[0]}}}: a secret is required, never defaulted"
    checked = 0
    for key, svc in compose_services().items():
        for name, value in (svc.get("environment") or {}).items():
            if not SECRET_VARIABLE.search(name):
                continue
            checked += 1
            in_url = re.fullmatch(r"\w+://[^:@/]+:(?P<password>.*)@[^@]*", str(value))
            secret = in_url["password"] if in_url else str(value)
            assert _required(secret), f"{key}: {name} holds a literal secret or a default"
    assert checked >= 10
    sql = compose()["configs"]["postgres-init"]["content"]
    passwords = re.findall(r"PASSWORD '([^']*)'", sql)
    assert passwords and all(_required(p) for p in passwords), passwords


def required_variables() -> set[str]:
    return {m["name"] for m in INTERPOLATION.finditer(COMPOSE_FILE.read_text()) if m["op"] == ":?"}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["name"] in variables:
            return variables[match["name"]]
        assert match["op"] in {"-", ":-"}, f"{match[0]} is not set"
        return match["arg"]

    return INTERPOLATION.sub(replace, value)


def test_make_compose_env_generates_secrets_every_service_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make compose-env` writes every required variable, and with them each service's settings
    pass the production rule (development mode off, as compose runs them)."""
    from services.common.settings import UnsafeSettings
    from services.gateway.security import authenticate_api_key

    env_file = tmp_path / "run" / "compose.env"
    runs = [
        subprocess.run(
            ["make", "-s", "compose-env", f"COMPOSE_ENV={env_file}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for _ in range(2)  # the second run keeps the first secrets
    ]
    partner_key = runs[0].stderr.strip().rsplit(" ", 1)[-1]
    assert "exists" in runs[1].stdout and not runs[1].stderr
    generated = read_env_file(env_file)
    assert set(generated) == required_variables()
    assert env_file.stat().st_mode & 0o077 == 0, "only its owner may read the secrets"
    for name in SERVICES:
        _, svc = compose_service_of(name)
        for variable in list(os.environ):
            if variable.startswith("ALAMA_"):
                monkeypatch.delenv(variable)
        for variable, value in svc["environment"].items():
            monkeypatch.setenv(variable, interpolate(str(value), generated))
        cls = settings_class(name)
        try:
            settings = cls()
        except UnsafeSettings as exc:
            pytest.fail(f"{name} refuses compose's generated secrets: {exc}")
        assert not settings.dev_mode
        if name == "gateway":  # the key it printed is the one the gateway accepts
            assert authenticate_api_key(settings, partner_key).subject == "api-key:partner"


def test_compose_never_turns_on_development_mode() -> None:
    assert "ALAMA_DEV_MODE" not in json.dumps(compose())  # comments may explain it, no more
    for name in SERVICES:
        assert "ALAMA_DEV_MODE" not in dockerfile(name).read_text(), name


def test_the_synchronous_path_gets_the_larger_cpu_share() -> None:
    """As the supervisor's nice: gateway and scoring at Docker's default weight (1024), the
    services that work from Kafka below it, so a burst of their work cannot starve a reply."""
    services = compose()["services"]
    for name in ("gateway", "scoring", "kafka", "redis"):  # what a reply waits on
        assert "cpu_shares" not in services[name], name
    for name in (
        "feature-store",
        "explanation",
        "audit",
        "drift",
        "outcomes",
        "console",
        "postgres",
    ):
        assert services[name]["cpu_shares"] < 1024, name
    # the feature store's lag is what scoring reads stale: ahead of the rest, as locally
    assert services["feature-store"]["cpu_shares"] > services["audit"]["cpu_shares"]
