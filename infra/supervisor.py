"""Run the eight services as supervised local processes (no Docker): start, check, stop, kill.

Each service is ``python -m services.<name>`` in its own session, its output in
``<run folder>/services/<name>.log`` and its pid in ``<name>.pid``. ``up`` starts what is not
running, in dependency order, and waits until each one answers like a client needs it to (gRPC
health, the gateway's /readyz, the console's /healthz, a consumer's metrics endpoint); a service
that dies or never gets ready fails the command with the end of its log. ``down`` sends SIGTERM
(the services commit their work and leave their groups), then SIGKILL after a grace period.

The services inherit this process's environment: under ``make`` that includes ALAMA_DEV_MODE=1,
without which they refuse the development secrets (services.common.settings) and exit at start.

The feature store, scoring, explanation and audit can run as several replicas in one consumer
group (``scale``, or ``ALAMA_SCORING_REPLICAS=3`` and the like for ``up``): replica n is
``<service>-<n>`` with its ports moved by ``REPLICA_PORT_STEP * (n - 1)``. The feature store's
Faust workers share the partitions, and each recovers the tables of those it holds.

    python -m infra.supervisor up|down|status [service ...]
    python -m infra.supervisor scale scoring 3
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from infra.local import (
    FRESHNESS_NICE,
    OFF_PATH_NICE,
    REPO,
    Postgres,
    lower_priority,
    lower_session,
    lowered,
    pid_alive,
    run_dir,
    servers,
)
from services.common.packages import ENV as WITHOUT_TRAINING_PACKAGES
from services.common.settings import service_port

console = Console()
PYTHON = sys.executable


class SupervisorError(RuntimeError):
    """A service did not start or did not become ready; the message shows its log."""


def _http_ok(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}"
    return None if response.status_code == 200 else f"{url}: HTTP {response.status_code}"


def _grpc_serving(target: str) -> str | None:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2.0
            )
        except grpc.RpcError as exc:
            return f"gRPC health at {target}: {exc.code().name}"  # type: ignore[attr-defined]
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        state = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return f"gRPC health at {target}: {state}"
    return None


#: A replica's ports are its service's, shifted by this much per replica number above 1.
REPLICA_PORT_STEP = 100


#: how every service process runs, here as in its image (the Dockerfiles' ENV): optimised, so
#: `typeguard.typechecked`, which Feast puts on its classes and which recompiles each method
#: with run-time type checks at import, is the no-op its documentation intends for production.
#: Importing Feast and the feature store took 9.4 s with it and 3.2 to 4.9 s without
#: (this machine, bytecode cached); every start of a service that reads Feast paid it. The
#: environment wins: ``PYTHONOPTIMIZE=`` (empty) runs the services unoptimised, asserts and all.
SERVICE_RUNTIME = {"PYTHONOPTIMIZE": "1"}


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # the process's name under the run folder: the service, or "<service>-<n>"
    #: None when the service answers like a client needs it to, else why not
    probe: Callable[[Mapping[str, str]], str | None]
    env: Mapping[str, str] = field(default_factory=dict)
    #: the settings (environment variable: default port) a second replica must move
    ports: Mapping[str, int] = field(default_factory=dict)
    service: str = ""  # the package under services/; the name when empty
    #: started only when named (`up retrainer`), never by a bare `up`; `down` stops it too
    on_demand: bool = False
    #: its image has the training-only packages (PyTorch): only the retrainer, which trains
    training_packages: bool = False
    #: how much lower than the supervisor's its CPU priority runs (`OFF_PATH_NICE`), its threads
    #: and children too; 0 on the synchronous path
    nice: int = OFF_PATH_NICE

    @property
    def module(self) -> str:
        return f"services.{self.service or self.name}"

    @property
    def command(self) -> list[str]:
        """`nice` runs the service itself (exec: the pid is the service's) at its priority,
        so every thread it starts inherits it."""
        niced = ["nice", "-n", str(self.nice)] if self.nice else []
        return [*niced, PYTHON, "-m", self.module]

    def process_env(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """The process's environment: ours, the caller's overrides, the spec's own; without
        the training-only packages unless its image has them (services/common/packages.py);
        optimised as the images run (`SERVICE_RUNTIME`)."""
        packages = {} if self.training_packages else {WITHOUT_TRAINING_PACKAGES: "1"}
        return {**SERVICE_RUNTIME, **os.environ, **packages, **overrides, **self.env}


def replica(name: str, number: int) -> ServiceSpec:
    """Replica `number` of a service (1 is the service itself): the same consumer group, its
    own pid, log and ports, so the broker spreads the partitions over the replicas."""
    base = BY_NAME[name]
    if number == 1:
        return base
    if number < 1 or not base.ports:
        raise SupervisorError(f"{name} has no replica {number}")
    moved = {
        key: str(service_port(port) + REPLICA_PORT_STEP * (number - 1))
        for key, port in base.ports.items()
    }
    return replace(base, name=f"{name}-{number}", service=name, env={**base.env, **moved})


def _env(env: Mapping[str, str], key: str, default: str) -> str:
    return env.get(key, os.environ.get(key, default))


def _metrics_probe(key: str, default: int) -> Callable[[Mapping[str, str]], str | None]:
    return lambda env: _http_ok(
        f"http://127.0.0.1:{_env(env, key, str(service_port(default)))}/metrics"
    )


def _grpc_probe(key: str, default: int) -> Callable[[Mapping[str, str]], str | None]:
    return lambda env: _grpc_serving(f"127.0.0.1:{_env(env, key, str(service_port(default)))}")


#: In start order: a service comes after what it calls.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "feature_store",
        _metrics_probe("ALAMA_FEATURE_STORE_METRICS_PORT", 9102),
        ports={"ALAMA_FEATURE_STORE_METRICS_PORT": 9102},
        nice=FRESHNESS_NICE,  # behind the synchronous path, ahead of the rest (infra/local.py)
    ),
    ServiceSpec(
        "scoring",
        _grpc_probe("ALAMA_SCORING_GRPC_PORT", 50051),
        ports={"ALAMA_SCORING_GRPC_PORT": 50051, "ALAMA_SCORING_METRICS_PORT": 9103},
        nice=0,  # the synchronous path
    ),
    ServiceSpec(
        "explanation",
        _grpc_probe("ALAMA_EXPLANATION_GRPC_PORT", 50052),
        ports={"ALAMA_EXPLANATION_GRPC_PORT": 50052, "ALAMA_EXPLANATION_METRICS_PORT": 9104},
    ),
    ServiceSpec(
        "audit",
        _grpc_probe("ALAMA_AUDIT_GRPC_PORT", 50053),
        ports={"ALAMA_AUDIT_GRPC_PORT": 50053, "ALAMA_AUDIT_METRICS_PORT": 9105},
    ),
    ServiceSpec("drift", _metrics_probe("ALAMA_DRIFT_METRICS_PORT", 9106)),
    # loans' outcomes and live performance (a consumer with no API): before the console, whose
    # oversight page reads its metrics
    ServiceSpec("outcomes", _metrics_probe("ALAMA_OUTCOMES_METRICS_PORT", 9107)),
    # trains challengers on alerts and a schedule (minutes of CPU each): started when named
    ServiceSpec(
        "retrainer",
        _metrics_probe("ALAMA_RETRAINER_METRICS_PORT", 9108),
        on_demand=True,
        training_packages=True,
    ),
    ServiceSpec(
        "gateway",
        lambda env: _http_ok(
            f"http://127.0.0.1:{_env(env, 'ALAMA_GATEWAY_PORT', str(service_port(8080)))}/readyz"
        ),
        nice=0,  # the synchronous path
    ),
    # the risk officers' console: /healthz answers once its store, producer and consumer are up
    ServiceSpec(
        "console",
        lambda env: _http_ok(
            f"http://127.0.0.1:{_env(env, 'ALAMA_CONSOLE_PORT', str(service_port(8090)))}/healthz"
        ),
    ),
)
BY_NAME = {s.name: s for s in SERVICES}


def services_dir() -> Path:
    return run_dir() / "services"


def log_path(name: str) -> Path:
    return services_dir() / f"{name}.log"


def _pid_path(name: str) -> Path:
    return services_dir() / f"{name}.pid"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pid_of(name: str) -> int | None:
    """The live pid of a supervised service (or replica), None when it is not running."""
    try:
        pid = int(_pid_path(name).read_text().strip())
    except (OSError, ValueError):
        return None
    module = f"services.{name.split('-', 1)[0]} "
    if pid_alive(pid) and module in _cmdline(pid) + " ":
        return pid
    return None


def running_replicas(name: str) -> list[str]:
    """The names of a service's replicas above the first that are running now."""
    return sorted(
        path.stem for path in services_dir().glob(f"{name}-*.pid") if pid_of(path.stem) is not None
    )


def _tail(name: str, lines: int = 25) -> str:
    path = log_path(name)
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _select(names: Sequence[str] | None, *, on_demand: bool = False) -> list[ServiceSpec]:
    """The named services, or every one (with the on-demand ones only when asked)."""
    if not names:
        return [s for s in SERVICES if on_demand or not s.on_demand]
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        raise SupervisorError(
            f"unknown service(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}"
        )
    return [s for s in SERVICES if s.name in names]


def start(
    spec: ServiceSpec, env: Mapping[str, str] | None = None, *, timeout: float = 120.0
) -> int:
    """Start one service (unless running) and wait until its probe passes; returns the pid."""
    overrides = dict(env or {})
    pid = pid_of(spec.name)
    if pid is None:
        services_dir().mkdir(parents=True, exist_ok=True)
        with log_path(spec.name).open("ab") as log:
            process = subprocess.Popen(
                spec.command,
                cwd=REPO,
                env=spec.process_env(overrides),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid = process.pid
        _pid_path(spec.name).write_text(str(pid))
        if spec.nice:
            # `nice` lowers it against its own session only: the service leads a new one
            lower_session(pid, lowered(spec.nice))
    deadline = time.monotonic() + timeout
    reason: str | None = "not checked yet"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise SupervisorError(
                f"{spec.name} exited during start-up; the end of {log_path(spec.name)}:\n"
                + _tail(spec.name)
            )
        reason = spec.probe({**overrides, **spec.env})
        if reason is None:
            if spec.nice:
                _lower_database()
            return pid
        time.sleep(0.5)
    raise SupervisorError(
        f"{spec.name} not ready after {timeout:.0f}s ({reason}); the end of "
        f"{log_path(spec.name)}:\n{_tail(spec.name)}"
    )


def _lower_database() -> None:
    """Each PostgreSQL connection a service opened while starting is a backend leading a
    session of its own, at the default priority: lower them like the postmaster (`infra.local
    up`). Connections a pool opens later keep the default until the next service starts."""
    for server in servers():
        if isinstance(server, Postgres) and (pid := server.pid()) is not None:
            lower_priority(pid)


def stop(name: str, *, grace: float = 30.0) -> None:
    """SIGTERM the service's process group, SIGKILL whatever is left after the grace period."""
    pid = pid_of(name)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
    _pid_path(name).unlink(missing_ok=True)


def kill(name: str) -> None:
    """SIGKILL a service mid-flight, as a crash would (reliability tests)."""
    pid = pid_of(name)
    if pid is None:
        raise SupervisorError(f"{name} is not running")
    _signal_group(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def up(
    names: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 120.0,
    echo: Callable[[str], None] = console.print,
) -> None:
    for spec in _select(names):
        began = time.monotonic()
        pid = start(spec, env, timeout=timeout)
        echo(f"  {spec.name:<13} ready (pid {pid}, {time.monotonic() - began:.1f}s)")
        wanted = replicas_wanted(spec.name, env or {})
        if wanted > 1:
            scale(spec.name, wanted, env, echo=echo)


#: the services that scale out in one consumer group (their topics have partitions to share)
SCALABLE = ("feature_store", "scoring", "explanation", "audit")


def replicas_wanted(name: str, env: Mapping[str, str]) -> int:
    """``ALAMA_<SERVICE>_REPLICAS`` (default 1) for a scalable service; 1 for the others."""
    key = f"ALAMA_{name.upper()}_REPLICAS"
    raw = _env(env, key, "1")
    if name not in SCALABLE:
        if raw != "1":
            raise SupervisorError(f"{key}: {name} runs as one process (scalable: {SCALABLE})")
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise SupervisorError(f"{key} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def down(
    names: Sequence[str] | None = None, *, echo: Callable[[str], None] = console.print
) -> None:
    for spec in reversed(_select(names, on_demand=True)):
        for name in [*running_replicas(spec.name), spec.name]:
            if pid_of(name) is not None:
                stop(name)
                echo(f"  {name:<13} stopped")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    detail: str

    @property
    def ready(self) -> bool:
        return self.pid is not None and self.detail == "ready"


def status(env: Mapping[str, str] | None = None) -> list[ServiceStatus]:
    rows = []
    for base in SERVICES:
        for spec in [
            base,
            *(replica(base.name, int(n.rsplit("-", 1)[1])) for n in running_replicas(base.name)),
        ]:
            pid = pid_of(spec.name)
            if pid is None and base.on_demand:
                continue  # not asked for: not missing either
            probe_env = {**(env or {}), **spec.env}
            detail = "not running" if pid is None else (spec.probe(probe_env) or "ready")
            rows.append(ServiceStatus(spec.name, pid, detail))
    return rows


def scale(
    name: str,
    replicas: int,
    env: Mapping[str, str] | None = None,
    *,
    echo: Callable[[str], None] = console.print,
) -> None:
    """Run exactly `replicas` processes of a service in its consumer group: start the missing
    ones (each waits until ready) and stop (SIGTERM: they finish and leave the group) the rest."""
    if replicas < 1:
        raise SupervisorError(f"{name} needs at least 1 replica, not {replicas}")
    for number in range(1, replicas + 1):
        spec = replica(name, number)
        if pid_of(spec.name) is None:
            pid = start(spec, env)
            echo(f"  {spec.name:<13} ready (pid {pid})")
    for extra in running_replicas(name):
        if int(extra.rsplit("-", 1)[1]) > replicas:
            stop(extra)
            echo(f"  {extra:<13} stopped")


def _print_status(rows: list[ServiceStatus]) -> None:
    table = Table("service", "pid", "state", "log")
    for row in rows:
        colour = "green" if row.ready else "red"
        table.add_row(
            row.name, str(row.pid or "-"), f"[{colour}]{row.detail}[/]", str(log_path(row.name))
        )
    console.print(table)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    names = argv[2:] or None
    try:
        if command == "up":
            up(names)
            return 0
        if command == "down":
            down(names)
            return 0
        if command == "scale" and len(argv) == 4 and argv[3].isdigit():
            scale(argv[2], int(argv[3]))
            return 0
        if command == "status":
            rows = status()
            _print_status(rows)
            return 0 if all(r.ready for r in rows) else 3
    except SupervisorError as exc:
        console.print(f"[bold red]services {command} failed:[/] {exc}")
        return 1
    console.print(f"unknown command {command!r}; use up, down, status or scale SERVICE N")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
