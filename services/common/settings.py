"""Settings every service shares, read from the environment, and the refusal of unsafe secrets.

Infrastructure addresses live in one class (`InfraSettings`, prefix ``ALAMA_``) so that a
single ``ALAMA_KAFKA_BOOTSTRAP`` reaches every service; each service's own class (prefix
``ALAMA_<NAME>_``) extends `ServiceSettings` and nests the infrastructure block.
The defaults are the project ports that ``make infra-up`` starts on a developer's machine.

Secrets have development defaults so that a laptop runs without configuration, which makes
them public. A service's settings therefore refuse, unless ``ALAMA_DEV_MODE`` is on, every
secret (any `SecretStr` anywhere in the settings, and the password inside a connection URL)
that starts with ``dev-only-``, is shorter than 32 bytes, or is one of the class's
`development_values` (the gateway's development API key). The rule knows no setting by name,
so a secret added later is covered the day it is added. The local ``make`` targets and the
test suite turn development mode on; compose and the Helm charts never do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, Field, SecretBytes, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A second instance of the whole system on one machine (the test suite's, `make test`) moves
#: every port by ALAMA_PORT_OFFSET and its data to its own ALAMA_RUN_DIR, so the tests never
#: share a broker, database, Redis or service with the demo or a developer's running system.
PORT_OFFSET_VARIABLE = "ALAMA_PORT_OFFSET"
PORT_OFFSET = int(os.environ.get(PORT_OFFSET_VARIABLE) or 0)


def service_port(base: int) -> int:
    """A project port as this instance uses it."""
    return base + PORT_OFFSET


KAFKA_PORT = service_port(19092)
KAFKA_CONTROLLER_PORT = service_port(19093)
REDIS_PORT = service_port(16379)
POSTGRES_PORT = service_port(15432)

#: the variable that accepts development secrets (``1``, ``true``, ``yes`` or ``on``)
DEV_MODE_VARIABLE = "ALAMA_DEV_MODE"
#: how every development default secret starts, so none can be mistaken for a real one
DEV_SECRET_PREFIX = "dev-only-"
#: HMAC and JWT keys below 256 bits are guessable offline from one signed token
MIN_SECRET_BYTES = 32
SECRET_RECIPE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class UnsafeSettings(RuntimeError):
    """A service was given a development or weak secret outside development mode.

    Deliberately not a ValueError: pydantic would wrap it in a ValidationError and bury the
    advice under field paths; this reaches the operator as written.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        #: (environment variable, what is wrong with its value)
        self.problems = problems


class InfraSettings(BaseSettings):
    """Where Kafka, Redis and PostgreSQL are."""

    model_config = SettingsConfigDict(env_prefix="ALAMA_", extra="ignore")

    kafka_bootstrap: str = f"127.0.0.1:{KAFKA_PORT}"
    redis_url: str = f"redis://127.0.0.1:{REDIS_PORT}/0"
    postgres_dsn: str = f"postgresql://alama:alama@127.0.0.1:{POSTGRES_PORT}/alama"
    postgres_toast_compression: str = Field(
        default="lz4",
        pattern=r"^[a-z0-9]{1,16}$",
        description="how PostgreSQL compresses the large values the services write (decision"
        " payloads, the audit chain's JSON); lz4 took half pglz's CPU per audit row here."
        " `server`: the server's own default. A server that lacks it keeps its default (warned)",
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/gRPC collector address; spans are not exported when unset"
    )
    environment: str = "local"
    trace_file: str | None = Field(
        default=None,
        description="append every finished span to this file as JSON lines (local runs, tests)",
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="share of new traces recorded (a span follows its parent's choice); lower it"
        " when tracing every request costs too much",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="the asyncio event loop services run on"
    )

    # How every Kafka client authenticates (`services.common.kafka_security`) and how durable
    # the topics ensure_topics and Faust create are. A local broker speaks PLAINTEXT on one
    # node; a cluster gets SASL/SCRAM or mTLS, replication 3 and min ISR 2.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = Field(default=None, description="SASL/SCRAM user")
    kafka_password: SecretStr | None = Field(default=None, description="SASL/SCRAM password")
    kafka_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM) that signed the brokers' certificates"
    )
    kafka_cert_file: str | None = Field(default=None, description="client certificate (mTLS)")
    kafka_key_file: str | None = Field(default=None, description="client private key (mTLS)")
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_username and self.kafka_password
        ):
            raise ValueError(
                f"ALAMA_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " ALAMA_KAFKA_USERNAME and ALAMA_KAFKA_PASSWORD"
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ValueError("ALAMA_KAFKA_CERT_FILE and ALAMA_KAFKA_KEY_FILE go together (mTLS)")
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                "ALAMA_KAFKA_MIN_INSYNC_REPLICAS cannot exceed ALAMA_KAFKA_REPLICATION_FACTOR"
            )
        return self


class ServiceSettings(BaseSettings):
    """Base of every service's settings class: name, logging, metrics and infrastructure."""

    model_config = SettingsConfigDict(
        env_prefix="ALAMA_SERVICE_", extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    #: secret values that are public (value -> what it is), refused outside development mode
    development_values: ClassVar[Mapping[str, str]] = {}

    service_name: str = "alama"
    log_level: str = "INFO"
    metrics_port: int = Field(default=0, description="Prometheus scrape port; 0 disables it")
    # How long the broker holds a fetch until it has this much to return: a consumer off the
    # synchronous path trades a few milliseconds of latency for batches (fewer fetches, commits
    # and transactions per event). aiokafka's defaults (1 byte, 500 ms) answer every record alone.
    consumer_fetch_min_bytes: int = Field(
        default=1, ge=1, description="bytes a fetch waits for (up to the wait below)"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=500, ge=0, le=10_000, description="longest a fetch waits for those bytes"
    )
    infra: InfraSettings = Field(default_factory=InfraSettings)
    dev_mode: bool = Field(
        default=False,
        validation_alias=DEV_MODE_VARIABLE,
        description="accept development and weak secrets (a developer's machine, tests only)",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Self:
        if self.dev_mode:
            return self
        problems = list(self.unsafe_secrets())
        if problems:
            lines = "\n".join(f"  - {variable} {why}" for variable, why in problems)
            raise UnsafeSettings(
                f"{type(self).__name__}: refusing to start with development or weak secrets:\n"
                f"{lines}\n"
                f"Set each to a random value of at least {MIN_SECRET_BYTES} bytes, for example"
                f" `{SECRET_RECIPE}` (an API key list holds the SHA-256 of such keys; a"
                " connection URL carries it as its password). Only on a developer's machine,"
                f" {DEV_MODE_VARIABLE}=1 accepts them (the make targets set it).",
                problems,
            )
        return self

    def unsafe_secrets(self) -> Iterator[tuple[str, str]]:
        """(environment variable, what is wrong) for each secret that only development allows."""
        yield from _unsafe_in_model(self, None, self.development_values)


class ConsumerSettings(ServiceSettings):
    """Base of every service that consumes Kafka topics (aiokafka or Faust): the settings they
    share, named the same everywhere. A subclass gives its own defaults and keeps the bounds.

    Not every consumer uses every field: drift handles decisions one at a time (no batch) and
    audit and drift finish the record or batch in hand without a time bound (no grace).
    """

    consumer_group: str = Field(
        description="the Kafka consumer group (for a Faust worker, its app id: the group, and the"
        " prefix of its changelog topics)"
    )
    max_batch: int = Field(
        default=500,
        ge=1,
        description="most records the consumer takes in one batch (one poll, or one take of a"
        " Faust stream)",
    )
    shutdown_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how long the work in hand (in-flight calls, a batch being processed) gets"
        " to finish when the service is stopped",
    )


def _variable(model: BaseModel, name: str, field: FieldInfo) -> str:
    """The environment variable a settings field is read from."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    prefix = model.model_config.get("env_prefix", "") if isinstance(model, BaseSettings) else ""
    return f"{prefix}{name}".upper()


def _unsafe_in_model(
    model: BaseModel, variable: str | None, development: Mapping[str, str]
) -> Iterator[tuple[str, str]]:
    """A nested settings class names its own variables; a plain model inside a list or a
    field (an API key entry) is reported under the variable that holds it."""
    own_names = isinstance(model, BaseSettings)
    for name, field in type(model).model_fields.items():
        where = _variable(model, name, field) if own_names or variable is None else variable
        yield from _unsafe_in_value(getattr(model, name), where, development)


def _unsafe_in_value(
    value: Any, variable: str, development: Mapping[str, str]
) -> Iterator[tuple[str, str]]:
    if isinstance(value, SecretStr | SecretBytes):
        secret = value.get_secret_value()
        text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        size = len(secret) if isinstance(secret, bytes) else len(secret.encode("utf-8", "replace"))
        why = _weakness(text, size, development)
        if why:
            yield variable, why
    elif isinstance(value, BaseModel):
        yield from _unsafe_in_model(value, variable, development)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _unsafe_in_value(item, variable, development)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _unsafe_in_value(item, variable, development)
    elif isinstance(value, str):
        if value in development:
            yield variable, f"holds {development[value]}"
        password = url_password(value)
        if password is not None:
            why = _weakness(password, len(password.encode("utf-8", "replace")), development)
            if why:
                yield variable, f"has a password that {why}"


def _weakness(secret: str, size: int, development: Mapping[str, str]) -> str | None:
    if secret.startswith(DEV_SECRET_PREFIX):
        return "is the public development default"
    if secret in development:
        return f"is {development[secret]}"
    if size < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def url_password(value: str) -> str | None:
    """The password a connection URL carries (userinfo or a ``password`` query parameter)."""
    if "://" not in value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.password is not None:
        return unquote(parts.password)
    found = parse_qs(parts.query).get("password")
    return found[0] if found else None
