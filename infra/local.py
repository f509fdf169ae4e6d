"""Start, stop and check the local Kafka (KRaft), Redis and PostgreSQL servers.

Each server runs as its own process on a project port with its data under the run folder
(``.run/`` by default, ``ALAMA_RUN_DIR`` to move it), never the machine's default instances.
``up`` is idempotent: it starts only what is not running (a server that died comes back with its
data), waits for real readiness, creates the project database and the declared Kafka topics.

    python -m infra.local up|down|status
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

import asyncpg
import redis
from aiokafka import AIOKafkaClient
from rich.console import Console
from rich.table import Table

from services.audit.settings import (
    AUDIT_OWNER_ROLE,
    AUDIT_WRITER_ROLE,
    DEV_OWNER_PASSWORD,
    DEV_WRITER_PASSWORD,
)
from services.common.settings import (
    KAFKA_CONTROLLER_PORT,
    KAFKA_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    InfraSettings,
)
from services.common.topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
KAFKA_HOME = REPO / "infra" / "kafka"
PG_BIN = Path(os.environ.get("ALAMA_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER, PG_PASSWORD, PG_DATABASE = "alama", "alama", "alama"
FEAST_USER = "alama_feast"  # the role Feast's offline store queries as
# The audit chain's owner (schema changes) and writer (INSERT and SELECT only): neither is the
# shared login, nor a member of it, so the shared login cannot rewrite the chain.
AUDIT_ROLES = ((AUDIT_OWNER_ROLE, DEV_OWNER_PASSWORD), (AUDIT_WRITER_ROLE, DEV_WRITER_PASSWORD))
AUDIT_SCHEMA = "audit"

console = Console(stderr=False, highlight=False)


class InfraError(RuntimeError):
    """A server could not be started or did not become ready; the message says where to look."""


def run_dir() -> Path:
    return Path(os.environ.get("ALAMA_RUN_DIR", REPO / ".run")).resolve()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Status:
    name: str
    running: bool
    ready: bool
    pid: int | None
    port: int
    detail: str
    data: Path


class Server(ABC):
    name: str
    port: int

    def __init__(self, root: Path) -> None:
        self.root = root / self.name

    @property
    @abstractmethod
    def log_path(self) -> Path: ...

    @abstractmethod
    def pid(self) -> int | None:
        """The server's pid if it is running, else None."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def ready(self) -> str | None:
        """None when the server answers like a client needs it to, else why not."""

    @abstractmethod
    def stop(self) -> None: ...

    def owned_pids(self) -> list[int]:
        """Every live process whose command line points into this server's run folder."""
        marker = str(self.root)
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and marker in _cmdline(int(entry.name)):
                if int(entry.name) != os.getpid() and pid_alive(int(entry.name)):
                    pids.append(int(entry.name))
        return pids

    def kill_leftovers(self, timeout: float = 20.0) -> None:
        pids = self.owned_pids()
        for pid in pids:
            with _suppress_lookup():
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if pid_alive(pid):
                with _suppress_lookup():
                    os.kill(pid, signal.SIGKILL)

    def status(self) -> Status:
        pid = self.pid()
        reason = self.ready() if pid else "not running"
        return Status(
            self.name, pid is not None, reason is None, pid, self.port, reason or "ready", self.root
        )


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is ProcessLookupError


class PidFileServer(Server):
    """A server we launch ourselves and track by pid file."""

    process_marker: str

    @property
    def pid_path(self) -> Path:
        return self.root / f"{self.name}.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.process_marker in _cmdline(pid):
            return pid
        return None

    def _await_own_pid(self, launched: int | None = None, within: float = 30.0) -> None:
        """Until `pid()` sees the server: a daemon writes its pid file after the launcher has
        returned, and a fresh child shows its command line only once it has exec'd; on a busy
        machine either can take a while, and until then the server would look as if it had
        exited during start-up. Returns early if the launched process did exit."""
        deadline = time.monotonic() + within
        while self.pid() is None and time.monotonic() < deadline:
            if launched is not None and not pid_alive(launched):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        self.kill_leftovers()
        self.pid_path.unlink(missing_ok=True)


#: ``1`` adds a SASL_PLAINTEXT listener with SCRAM-SHA-512 on `KAFKA_SCRAM_PORT` beside the
#: PLAINTEXT one, and its user (``ALAMA_KAFKA_USERNAME``/``ALAMA_KAFKA_PASSWORD``, the variables
#: the clients read) when the storage is formatted; an existing run folder keeps its users.
KAFKA_SCRAM_VARIABLE = "ALAMA_LOCAL_KAFKA_SCRAM"
KAFKA_SCRAM_PORT = KAFKA_PORT + 2
KAFKA_SCRAM_MECHANISM = "SCRAM-SHA-512"
DEV_KAFKA_USER, DEV_KAFKA_PASSWORD = "alama", "dev-only-kafka-scram-password"


def kafka_scram_enabled() -> bool:
    return os.environ.get(KAFKA_SCRAM_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def kafka_scram_user() -> tuple[str, str]:
    return (
        os.environ.get("ALAMA_KAFKA_USERNAME") or DEV_KAFKA_USER,
        os.environ.get("ALAMA_KAFKA_PASSWORD") or DEV_KAFKA_PASSWORD,
    )


class Kafka(PidFileServer):
    name = "kafka"
    port = KAFKA_PORT
    process_marker = "kafka.Kafka"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        return self.root / "logs" / "stdout.log"

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise InfraError(
                "kafka: no `java` on PATH; Kafka 4 needs Java 17 (make setup installs it)"
            )
        jars = KAFKA_HOME / "lib"
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise InfraError(f"kafka: no broker jars in {jars}; run `make setup` (it runs Maven)")
        return [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={KAFKA_HOME / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.root / 'logs'}",
            "-cp",
            f"{jars}/*",
        ]

    def _wait_for_released_lock(self, within: float = 60.0) -> None:
        """A killed broker's threads can outlive its pid for a moment, still holding the log
        directory's lock; a broker started then exits at once. Wait until the lock is free."""
        lock = self.root / "data" / ".lock"
        if not lock.exists():
            return
        deadline = time.monotonic() + within
        with lock.open("a") as handle:
            while True:
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    if time.monotonic() > deadline:
                        raise InfraError(
                            f"kafka: {lock} is still locked by another process"
                        ) from None
                    time.sleep(0.2)
                    continue
                fcntl.lockf(handle, fcntl.LOCK_UN)
                return

    def _write_config(self) -> Path:
        props = self.root / "server.properties"
        template = Template((KAFKA_HOME / "server.properties.template").read_text())
        props.write_text(
            template.substitute(
                KAFKA_PORT=self.port,
                CONTROLLER_PORT=KAFKA_CONTROLLER_PORT,
                DATA_DIR=self.root / "data",
            )
            + (self._scram_config() if kafka_scram_enabled() else "")
        )
        return props

    def _scram_config(self) -> str:
        """Later keys win in a properties file: these replace the template's listeners."""
        plain, scram = f"127.0.0.1:{self.port}", f"127.0.0.1:{KAFKA_SCRAM_PORT}"
        module = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return (
            "\n# ALAMA_LOCAL_KAFKA_SCRAM: a SASL/SCRAM listener beside the PLAINTEXT one\n"
            f"listeners=PLAINTEXT://{plain},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT},"
            f"SASL_PLAINTEXT://{scram}\n"
            f"advertised.listeners=PLAINTEXT://{plain},SASL_PLAINTEXT://{scram}\n"
            "listener.security.protocol.map="
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT\n"
            f"sasl.enabled.mechanisms={KAFKA_SCRAM_MECHANISM}\n"
            f"listener.name.sasl_plaintext.{KAFKA_SCRAM_MECHANISM.lower()}.sasl.jaas.config="
            f"{module} required;\n"
        )

    def _scram_format_args(self) -> list[str]:
        if not kafka_scram_enabled():
            return []
        user, password = kafka_scram_user()
        return ["--add-scram", f"{KAFKA_SCRAM_MECHANISM}=[name={user},password={password}]"]

    def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.kill_leftovers()
        self._wait_for_released_lock()
        props = self._write_config()
        java = self._java()
        if not (self.root / "data" / "meta.properties").exists():
            id_path = self.root / "cluster.id"
            if not id_path.exists():
                cluster_id = subprocess.run(
                    [*java, "kafka.tools.StorageTool", "random-uuid"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                id_path.write_text(cluster_id)
            fmt = subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    id_path.read_text().strip(),
                    "-c",
                    str(props),
                    *self._scram_format_args(),
                ],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise InfraError(f"kafka: formatting storage failed:\n{fmt.stdout}{fmt.stderr}")
        with self.stdout_path.open("ab") as out:
            proc = subprocess.Popen(
                [*java, "kafka.Kafka", str(props)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        self.pid_path.write_text(str(proc.pid))
        self._await_own_pid(proc.pid)

    def ready(self) -> str | None:
        async def probe() -> str | None:
            client = AIOKafkaClient(
                bootstrap_servers=f"127.0.0.1:{self.port}", request_timeout_ms=3000
            )
            quiet = logging.getLogger("aiokafka")
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)  # a refused probe is expected while starting
            try:
                await client.bootstrap()  # a Metadata request against the broker
                return None if client.cluster.brokers() else "metadata has no broker"
            except Exception as exc:  # the probe reports any failure as not-ready
                return f"metadata request failed: {exc!r}"
            finally:
                quiet.setLevel(level)
                await client.close()

        return asyncio.run(probe())


class Redis(PidFileServer):
    name = "redis"
    port = REDIS_PORT
    process_marker = "redis-server"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise InfraError(
                "redis: no `redis-server`; run `make setup` (installs Debian's redis-server)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.kill_leftovers()
        subprocess.run(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_path),
                "--logfile",
                str(self.log_path),
                # the append-only file alone: an RDB snapshot a minute forked the whole dataset
                # (2 GiB with a large world's online features) and compressed it on one of the
                # two cores, every minute the webhooks and the ledger wrote (`make bench` saw it)
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            check=True,
            capture_output=True,
        )
        self._await_own_pid()

    def ready(self) -> str | None:
        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
            try:
                return None if client.ping() else "PING got no PONG"
            finally:
                client.close()
        except redis.RedisError as exc:
            return f"PING failed: {exc}"


#: The CPU priority (nice) of what works off the synchronous path, on one machine. A loan
#: officer waits on the gateway and scoring (and on Kafka and Redis, which they use);
#: explanation, audit, drift, outcomes, the console, the feature store's ingestion and the
#: retrainer work from Kafka and may fall seconds behind and catch up, and so may PostgreSQL,
#: which only they use. At equal priority they took the cores from the synchronous path
#: whenever decisions arrived faster than they were processed: on 2 cores `make bench-quick`
#: gave p99 41 ms at 50/s and 278 ms at 100/s, and 23 and 145 ms with only the services' main
#: threads at nice 10. The supervisor starts those services at it; `up` puts PostgreSQL (the
#: postmaster and its backends) there. With the kernel's autogroups on (Debian's default) a
#: nice value counts only inside its session and every service leads its own, so both also
#: lower the session (`lower_session`): 2026-12-02, `make bench-quick` on 2 cores, at 100/s,
#: gave p50 1.7 s and 948 and 1,087 of 3,000 refused or late in two runs with the nice values
#: alone, 1.0 s and 365 with the sessions lowered too (README, Benchmarks). Compose gives
#: them a lower `cpu_shares` (on Kubernetes each pod's CPU request sets its weight, and the
#: synchronous path scales on its own HPA).
OFF_PATH_NICE = 10
#: The feature store's ingestion sits between the two: it is off the synchronous path, but what
#: it is behind on is what scoring reads (a member's mobile money of the last seconds), and the
#: issue asks its lag back to 0 within 10 s of a burst. At `OFF_PATH_NICE` it got almost no CPU
#: while the API was saturated and then shared the catch-up with the audit's and explanation's
#: backlogs: 2026-12-02, the bench's mixed load alone (200 and 1,000 requests/s with webhooks at
#: 1,000 transactions/s, 2 cores) gave lag 0 13.9 and 16.9 s after the last webhook at nice 10,
#: 2.7 and 5.7 s at nice 5, 1.1 s at 0 (the API's p99 varied more between runs of one setting
#: than between settings).
FRESHNESS_NICE = 5


def lowered(by: int = OFF_PATH_NICE) -> int:
    """The nice value `by` below this process's (19 at most)."""
    return min(os.getpriority(os.PRIO_PROCESS, 0) + by, 19)


def lower_priority(pid: int, by: int = OFF_PATH_NICE) -> None:
    """Put a process and its children `by` below this process's priority, and the sessions
    they lead too (`lower_session`). A PostgreSQL backend forked later inherits the postmaster's
    nice value but leads a new session at the default priority (the supervisor lowers the
    backends again whenever it has started a service)."""
    target = lowered(by)
    family = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                family.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    for member in family:
        try:
            os.setpriority(os.PRIO_PROCESS, member, target)
        except ProcessLookupError:
            continue
        lower_session(member, target)  # each PostgreSQL backend leads its own session


#: Linux's autogroups (sched(7)): when on, every session is a scheduling group of its own, and
#: a nice value weighs only against threads of the same session.
AUTOGROUPS = Path("/proc/sys/kernel/sched_autogroup_enabled")


def autogroups_on() -> bool:
    try:
        return AUTOGROUPS.read_text().strip() == "1"
    except OSError:  # a kernel without them
        return False


def lower_session(pid: int, nice: int) -> bool:
    """Give the session `pid` leads the priority `nice` against other sessions; False where
    the kernel has no autogroups or `pid` leads none (then its own nice value is what counts).

    Every service, Kafka, Redis and each PostgreSQL backend leads a session of its own, so with
    autogroups on (Debian's default) a niced service still got as much CPU as the gateway: the
    nice value alone lowered it against nothing."""
    if not autogroups_on():
        return False
    try:
        if os.getsid(pid) != pid:
            return False
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
    except OSError:  # gone meanwhile
        return False
    return True


def session_priority(pid: int) -> int | None:
    """The priority of the session (autogroup) `pid` is in; None where the kernel has none."""
    if not autogroups_on():
        return None
    try:
        # "/autogroup-96 nice 10"
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


class Postgres(Server):
    name = "postgres"
    port = POSTGRES_PORT

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        if os.geteuid() == 0 and not _postgres_user_reaches(root):
            # A checkout under a private folder (/root is 0700): keep the cluster where the
            # postgres user can reach it, one folder per checkout, and say where it is.
            digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
            self.root = Path("/var/tmp") / f"alama-{digest}" / self.name

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _as_owner(self, *args: str) -> list[str]:
        """PostgreSQL refuses to run as root: run it as the Debian package's postgres user."""
        if os.geteuid() != 0:
            return list(args)
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise InfraError("postgres: no `postgres` user; run `make setup`") from exc
        return ["runuser", "-u", "postgres", "--", *args]

    def _bin(self, name: str) -> str:
        path = PG_BIN / name
        if not path.exists():
            raise InfraError(f"postgres: {path} missing; run `make setup` (installs postgresql-15)")
        return str(path)

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            reach = subprocess.run(self._as_owner("test", "-w", str(self.root)))
            if reach.returncode != 0:
                raise InfraError(
                    f"postgres: the postgres user cannot write {self.root}; "
                    "set ALAMA_RUN_DIR to a folder it can reach"
                )

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) and "postgres" in _cmdline(pid) else None

    def start(self) -> None:
        self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                self._as_owner(
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise InfraError(f"postgres: initdb failed:\n{result.stdout}{result.stderr}")
        self.kill_leftovers()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=200 -c shared_buffers=256MB -c fsync=on"
        )
        result = subprocess.run(
            self._as_owner(
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InfraError(f"postgres: pg_ctl start failed:\n{result.stdout}{result.stderr}")

    def stop(self) -> None:
        if self.pid() is not None:
            subprocess.run(
                self._as_owner(
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ),
                capture_output=True,
            )
        self.kill_leftovers()

    def ready(self) -> str | None:
        async def probe() -> str | None:
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=PG_USER,
                    password=PG_PASSWORD,
                    database=PG_DATABASE,
                    timeout=3,
                )
            except Exception as exc:  # the probe reports any failure as not-ready
                return f"cannot connect to database {PG_DATABASE!r}: {exc}"
            try:
                await conn.fetchval("SELECT 1")
            finally:
                await conn.close()
            return None

        return asyncio.run(probe())

    def bootstrap(self) -> None:
        """Create the project role and database once the server accepts connections."""

        async def create() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=5
            )
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname=$1", PG_USER):
                    await conn.execute(
                        f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}' CREATEDB"
                    )
                if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname=$1", FEAST_USER):
                    # Feast's point-in-time SQL defeats the planner's row estimates (CTEs filtered
                    # by sub-query parameters); with nested loops it takes minutes, not seconds.
                    await conn.execute(
                        f"CREATE ROLE {FEAST_USER} LOGIN PASSWORD '{PG_PASSWORD}' IN ROLE {PG_USER}"
                    )
                    await conn.execute(f"ALTER ROLE {FEAST_USER} SET enable_nestloop = off")
                for role, password in AUDIT_ROLES:
                    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname=$1", role):
                        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
                if not await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname=$1", PG_DATABASE
                ):
                    await conn.execute(f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}")
                await conn.execute(
                    f"GRANT CONNECT, CREATE ON DATABASE {PG_DATABASE} TO {AUDIT_OWNER_ROLE};"
                    f" GRANT CONNECT ON DATABASE {PG_DATABASE} TO {AUDIT_WRITER_ROLE}"
                )
            finally:
                await conn.close()
            await _hand_audit_schema_to_owner(self.port)

        asyncio.run(create())


async def _hand_audit_schema_to_owner(port: int) -> None:
    """An audit schema the shared login created (before the audit roles) goes to the owner role,
    so the shared login can no longer change it; only a superuser can move ownership."""
    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database=PG_DATABASE, timeout=5
    )
    try:
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname=$1", AUDIT_SCHEMA
        )
        if owner != PG_USER:
            return
        async with conn.transaction():
            await conn.execute(f"ALTER SCHEMA {AUDIT_SCHEMA} OWNER TO {AUDIT_OWNER_ROLE}")
            tables = await conn.fetch(
                "SELECT c.oid::regclass::text AS name FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v', 'm')",
                AUDIT_SCHEMA,
            )
            for table in tables:
                await conn.execute(f"ALTER TABLE {table['name']} OWNER TO {AUDIT_OWNER_ROLE}")
            functions = await conn.fetch(
                "SELECT p.oid::regprocedure::text AS name FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
                AUDIT_SCHEMA,
            )
            for function in functions:
                await conn.execute(f"ALTER FUNCTION {function['name']} OWNER TO {AUDIT_OWNER_ROLE}")
    finally:
        await conn.close()


def _postgres_user_reaches(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return True  # nothing to check yet; start() reports the missing package
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)])
    return probe.returncode == 0


def servers() -> list[Server]:
    root = run_dir()
    return [Kafka(root), Redis(root), Postgres(root)]


def _wait(server: Server, deadline: float) -> None:
    reason: str | None = "not checked"
    while time.monotonic() < deadline:
        if server.pid() is None:
            raise InfraError(
                f"{server.name}: the process exited during start-up; log: {server.log_path}\n"
                + _tail(getattr(server, "stdout_path", server.log_path))
            )
        reason = server.ready()
        if reason is None:
            return
        time.sleep(0.5)
    raise InfraError(
        f"{server.name} not ready on port {server.port} ({reason}); log: {server.log_path}\n"
        + _tail(server.log_path)
    )


def up(timeout: float = 120.0, echo: Callable[[str], None] = console.print) -> None:
    deadline = time.monotonic() + timeout
    all_servers = servers()
    for server in all_servers:
        if server.pid() is None:
            echo(f"starting {server.name} on port {server.port}")
            server.start()
    for server in all_servers:
        if isinstance(server, Postgres) and (pid := server.pid()):
            lower_priority(pid)  # only the services off the synchronous path use it
            _wait_accepting(server, deadline)
            server.bootstrap()  # idempotent: roles and database the project needs
        _wait(server, deadline)
    # the PLAINTEXT listener (always there, SCRAM or not) of a one-node broker, whatever the
    # client settings in this environment say
    local_kafka = InfraSettings(
        kafka_bootstrap=f"127.0.0.1:{KAFKA_PORT}",
        kafka_security_protocol="PLAINTEXT",
        kafka_replication_factor=1,
        kafka_min_insync_replicas=1,
    )
    changes = asyncio.run(ensure_topics(local_kafka))
    for change in changes:
        echo(f"topic {change.topic}: {change.action}")


def _wait_accepting(server: Postgres, deadline: float) -> None:
    """Wait until the superuser can connect, so bootstrap can create the project database."""

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=server.port, user="postgres", database="postgres", timeout=3
            )
        except Exception:  # not accepting yet
            return False
        await conn.close()
        return True

    while time.monotonic() < deadline:
        if asyncio.run(probe()):
            return
        time.sleep(0.5)
    raise InfraError(
        f"postgres not accepting connections; log: {server.log_path}\n" + _tail(server.log_path)
    )


def down(echo: Callable[[str], None] = console.print) -> None:
    for server in reversed(servers()):
        running = server.pid() is not None or server.owned_pids()
        server.stop()
        if running:
            echo(f"stopped {server.name}")
    left = [(s.name, p) for s in servers() for p in s.owned_pids()]
    if left:
        raise InfraError(f"processes still running after stop: {left}")


def status() -> list[Status]:
    return [server.status() for server in servers()]


def _print_status(rows: list[Status]) -> None:
    table = Table(title=f"Alama local infrastructure ({run_dir()})")
    for column in ("server", "state", "pid", "port", "detail", "data"):
        table.add_column(column)
    for row in rows:
        state = (
            "[green]up[/]"
            if row.ready
            else ("[yellow]starting[/]" if row.running else "[red]down[/]")
        )
        table.add_row(
            row.name, state, str(row.pid or "-"), str(row.port), row.detail, str(row.data)
        )
    console.print(table)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "up":
            up()
            rows = status()
            _print_status(rows)
            return 0 if all(r.ready for r in rows) else 1
        if command == "down":
            down()
            _print_status(status())
            return 0
        if command == "status":
            rows = status()
            _print_status(rows)
            return 0 if all(r.ready for r in rows) else 3
    except InfraError as exc:
        console.print(f"[bold red]infra {command} failed:[/] {exc}")
        return 1
    console.print(f"unknown command {command!r}; use up, down or status")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
