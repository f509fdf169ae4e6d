"""The registry's changes as events on `model.registry`, never lost on the way to the audit chain.

Every change (`training.registry.RegistryChange`) becomes a `ModelRegistryChanged` in an envelope
whose event id is the change's own id, so the audit service chains it once however often it is
sent. Before it is sent it is appended to a local outbox (JSON lines, fsynced): a change made
while the broker cannot be reached (offline training, a broker restart in the middle of a
promotion) stays there and is published, oldest first, by the next registry command that reaches
the broker. An entry leaves the outbox only once the broker acknowledged it.

Settings come from the environment (`ALAMA_REGISTRY_*`, and InfraSettings' `ALAMA_KAFKA_*` for
where the broker is and how to log in).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from aiokafka import AIOKafkaProducer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.envelope import decode, encode, wrap
from services.common.kafka import create_producer, publish_acknowledged
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.models_pb2 import (
    GateCheck,
    ModelRegistryChanged,
    RegistryAction,
)
from services.common.settings import InfraSettings
from services.common.topics import MODEL_REGISTRY
from training.gate import HELD_OUT
from training.paths import ARTIFACTS
from training.registry import (
    CHALLENGER_REGISTERED,
    PROMOTED,
    REFUSED,
    ROLLED_BACK,
    RegistryChange,
)

PRODUCER = "training"
ACTIONS: Mapping[str, RegistryAction] = {
    CHALLENGER_REGISTERED: RegistryAction.REGISTRY_ACTION_CHALLENGER_REGISTERED,
    PROMOTED: RegistryAction.REGISTRY_ACTION_PROMOTED,
    REFUSED: RegistryAction.REGISTRY_ACTION_REFUSED,
    ROLLED_BACK: RegistryAction.REGISTRY_ACTION_ROLLED_BACK,
}
ACTION_NAMES: Mapping[int, str] = {value: name for name, value in ACTIONS.items()}


class RegistrySettings(BaseSettings):
    """Where the registry's changes go: the topic, the outbox, how long to wait for the broker."""

    model_config = SettingsConfigDict(env_prefix="ALAMA_REGISTRY_", extra="ignore")

    topic: str = MODEL_REGISTRY
    outbox: Path = Field(
        default=ARTIFACTS / "mlflow" / "registry-outbox.jsonl",
        description="changes not yet acknowledged by the broker (JSON lines)",
    )
    kafka_timeout_seconds: float = Field(
        default=10.0, gt=0, description="how long to wait for the broker to connect or to ack"
    )
    infra: InfraSettings = Field(default_factory=InfraSettings)


class BrokerUnreachable(RuntimeError):
    """The broker could not be reached (or did not acknowledge) within the time limit."""


def _set_of(check_name: str) -> str:
    """The evaluation set a check was measured on: `auc_vs_champion[matured_outcomes]` names it,
    calibration and fairness are measured on the held-out set."""
    inside = check_name.partition("[")[2].rstrip("]")
    return inside if check_name.startswith(("auc_vs_champion", "ece")) else HELD_OUT


def registry_event(change: RegistryChange, rows: Mapping[str, int] | None = None) -> EventEnvelope:
    """The change as a `ModelRegistryChanged` in its envelope (event id = change id). `rows`:
    how many rows each evaluation set had, recorded beside each check."""
    rows = rows or {}
    message = ModelRegistryChanged(
        change_id=change.change_id,
        action=ACTIONS[change.action],
        requested_by=change.requested_by,
        model_name=change.model_name,
        model_version=change.model_version or "",
        bundle_version=change.bundle_version or "",
        replaced_model_version=change.replaced_version or "",
        replaced_bundle_version=change.replaced_bundle_version or "",
        reason=change.reason,
        trigger=change.trigger,
        checks=[
            GateCheck(
                name=check.name,
                measured=check.value is not None,
                value=check.value if check.value is not None else 0.0,
                ci_lower=check.interval[0] if check.interval is not None else 0.0,
                ci_upper=check.interval[1] if check.interval is not None else 0.0,
                threshold=str(check.threshold),
                passed=check.passed,
                rows=rows.get(_set_of(check.name), 0),
            )
            for check in change.checks
        ],
    )
    changed_at = datetime.fromisoformat(change.at)
    message.changed_at.FromDatetime(changed_at)
    return wrap(
        message,
        producer=PRODUCER,
        subject=change.model_name,
        event_id=change.change_id,
        occurred_at=changed_at,
    )


@dataclass(frozen=True)
class OutboxEntry:
    event_id: str
    envelope: EventEnvelope


class Outbox:
    """Changes waiting for the broker's acknowledgement, in one append-only JSON-lines file.

    A line is an entry (`{"event_id", "envelope"}`, the envelope's bytes in base64), a receipt
    (`{"sent": event_id}`), an intent (`{"intent": event_id, "envelope"}`) or its settlement
    (`{"settled": event_id}`). What has no receipt is pending. An intent is written before an
    alias moves and settled after: once the move is made the change is added as an entry, and
    an intent a crash left unsettled is settled by the next command from what the registry
    shows (`training.promotion.settle_intents`), so no alias moves without its record and no
    record claims a move that was never made. Every write is fsynced under an exclusive lock,
    so two commands at once neither lose nor interleave lines; the file is emptied once nothing
    in it is pending or unsettled.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _write(handle: IO[str], lines: list[dict[str, str]]) -> None:
        end = handle.seek(0, os.SEEK_END)
        torn = False
        if end:
            handle.seek(end - 1)
            torn = handle.read(1) != "\n"  # a line cut short by a crash: start a new one
            handle.seek(0, os.SEEK_END)
        text = "".join(json.dumps(line) + "\n" for line in lines)
        handle.write(("\n" if torn else "") + text)
        handle.flush()
        os.fsync(handle.fileno())

    @staticmethod
    def _read(handle: IO[str]) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
        """(pending entries, unsettled intents), oldest first."""
        handle.seek(0)
        entries: dict[str, OutboxEntry] = {}
        intents: dict[str, OutboxEntry] = {}
        for text in handle:
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its change was never acknowledged
            if "sent" in line:
                entries.pop(str(line["sent"]), None)
            elif "settled" in line:
                intents.pop(str(line["settled"]), None)
            elif "envelope" in line:
                envelope = decode(base64.b64decode(line["envelope"])).envelope
                kept = intents if "intent" in line else entries
                kept.setdefault(envelope.event_id, OutboxEntry(envelope.event_id, envelope))
        return list(entries.values()), list(intents.values())

    @classmethod
    def _pending(cls, handle: IO[str]) -> list[OutboxEntry]:
        return cls._read(handle)[0]

    @staticmethod
    def _line(envelope: EventEnvelope, key: str = "event_id") -> dict[str, str]:
        return {key: envelope.event_id, "envelope": base64.b64encode(encode(envelope)).decode()}

    def add(self, envelope: EventEnvelope) -> None:
        with self._locked() as handle:
            self._write(handle, [self._line(envelope)])

    def intend(self, envelope: EventEnvelope) -> None:
        """Before an alias moves: the change it will be, not to be sent until it is made."""
        with self._locked() as handle:
            self._write(handle, [self._line(envelope, "intent")])

    def settle(self, envelope: EventEnvelope, *, made: bool) -> None:
        """The intended change was made (it becomes pending, to be sent) or was not (dropped)."""
        lines = [self._line(envelope)] if made else []
        with self._locked() as handle:
            self._write(handle, [*lines, {"settled": envelope.event_id}])
            self._empty_when_done(handle)

    def intents(self) -> list[OutboxEntry]:
        """Intents not yet settled, oldest first."""
        if not self.path.exists():
            return []
        with self._locked() as handle:
            return self._read(handle)[1]

    def pending(self) -> list[OutboxEntry]:
        """Entries not yet acknowledged, oldest first."""
        if not self.path.exists():
            return []
        with self._locked() as handle:
            return self._pending(handle)

    def mark_sent(self, event_ids: list[str]) -> None:
        if not event_ids:
            return
        with self._locked() as handle:
            self._write(handle, [{"sent": event_id} for event_id in event_ids])
            self._empty_when_done(handle)

    @classmethod
    def _empty_when_done(cls, handle: IO[str]) -> None:
        if not any(cls._read(handle)):
            handle.truncate(0)
            handle.flush()
            os.fsync(handle.fileno())


class RegistryPublisher:
    """A producer on `model.registry` that sends the outbox, oldest first, and acknowledges.

    Entering connects to the broker (BrokerUnreachable when it cannot within the time limit), so
    a command can refuse to move an alias it could not record.
    """

    def __init__(self, settings: RegistrySettings | None = None) -> None:
        self.settings = settings or RegistrySettings()
        self.outbox = Outbox(self.settings.outbox)
        self.producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        timeout = self.settings.kafka_timeout_seconds
        producer = create_producer(
            self.settings.infra,
            client_id="training-registry",
            request_timeout_ms=int(timeout * 1000),
        )
        try:
            async with asyncio.timeout(timeout):
                await producer.start()
        except Exception as exc:  # KafkaConnectionError, TimeoutError, a refused login
            with contextlib.suppress(Exception):
                await producer.stop()
            raise BrokerUnreachable(f"the Kafka broker cannot be reached ({exc!r})") from exc
        self.producer = producer
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def flush(self) -> int:
        """Send every pending entry in order; returns how many were acknowledged. Stops at the
        first that is not (BrokerUnreachable), leaving it and those after it pending."""
        assert self.producer is not None, "use `async with RegistryPublisher(...)`"
        sent = 0
        for entry in self.outbox.pending():
            try:
                await publish_acknowledged(
                    self.producer,
                    self.settings.topic,
                    entry.envelope,
                    self.settings.kafka_timeout_seconds,
                )
            except Exception as exc:
                raise BrokerUnreachable(f"the broker did not acknowledge: {exc!r}") from exc
            self.outbox.mark_sent([entry.event_id])
            sent += 1
        return sent

    async def record(self, envelope: EventEnvelope) -> int:
        """Keep the change in the outbox, then send everything pending."""
        self.outbox.add(envelope)
        return await self.flush()


@dataclass(frozen=True)
class Recorded:
    """What became of a change: acknowledged, or kept in the outbox (with why)."""

    acknowledged: bool
    pending: int
    problem: str = ""


async def record_or_keep(
    envelope: EventEnvelope, settings: RegistrySettings | None = None
) -> Recorded:
    """Keep the change in the outbox and try to publish it with everything pending; a broker
    that cannot be reached leaves it there for the next registry command."""
    settings = settings or RegistrySettings()
    outbox = Outbox(settings.outbox)
    outbox.add(envelope)
    try:
        async with RegistryPublisher(settings) as publisher:
            await publisher.flush()
    except BrokerUnreachable as exc:
        return Recorded(False, len(outbox.pending()), str(exc))
    return Recorded(True, len(outbox.pending()))


async def flush_outbox(settings: RegistrySettings | None = None) -> Recorded:
    """Publish what earlier commands left in the outbox (nothing to do: no broker needed)."""
    settings = settings or RegistrySettings()
    if not Outbox(settings.outbox).pending():
        return Recorded(True, 0)
    try:
        async with RegistryPublisher(settings) as publisher:
            await publisher.flush()
    except BrokerUnreachable as exc:
        return Recorded(False, len(Outbox(settings.outbox).pending()), str(exc))
    return Recorded(True, 0)
