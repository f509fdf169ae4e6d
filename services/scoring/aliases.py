"""Serving follows MLflow's aliases: `champion` decides, `challenger` runs in shadow.

At start-up the champion must exist (`make train` registers the first model and names it); after
that the aliases are read again as soon as a `ModelRegistryChanged` arrives on `model.registry`
(every replica reads every change: no consumer group, all partitions, from the end) and every
`bundle_check_seconds` in case an event was missed or the registry was moved by hand. A bundle
this machine lacks is downloaded from MLflow (`ModelLocator.folder`); it is loaded beside the one
serving and swapped in whole (`Scorer.swap`), so no request fails or mixes models. One that does
not load leaves the old model serving, logged and counted, and is tried again only after the
registry changes again (not at every poll).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.common.bundle import BundleError, ServedBundle
from services.common.envelope import decode
from services.common.kafka_security import client_options
from services.common.model_registry import (
    CHALLENGER,
    CHAMPION,
    ModelNotFound,
    RegisteredBundle,
)
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged, RegistryAction
from services.common.retries import is_transient
from services.common.settings import InfraSettings
from services.scoring.metrics import (
    BUNDLE_LOAD_FAILURES,
    REGISTRY_ERRORS,
    REGISTRY_LISTENING,
    SERVED_BUNDLE,
)
from services.scoring.scorer import Scorer
from services.scoring.shadow import Shadow

log = logging.getLogger(__name__)

#: loads a bundle folder with this many ONNX threads
Loader = Callable[[Path, int], ServedBundle]


class Locator(Protocol):
    """What serving needs of the registry (`services.common.model_registry.ModelLocator`)."""

    def by_alias(self, alias: str) -> RegisteredBundle: ...

    def folder(self, bundle_version: str) -> Path: ...

    def describe(self) -> str: ...


class NoChampion(RuntimeError):
    """The registry names no champion: there is nothing to serve."""


def open_bundle(
    locator: Locator, loader: Loader, bundle_version: str, threads: int
) -> ServedBundle:
    """The registered bundle loaded and verified (downloaded first when it is not here)."""
    model = loader(locator.folder(bundle_version), threads)
    if model.version != bundle_version:
        raise BundleError(f"the registry's bundle {bundle_version} holds {model.version}")
    return model


def load_champion(locator: Locator, loader: Loader, threads: int) -> ServedBundle:
    """The champion's bundle, for start-up; fails with what to do when there is none."""
    try:
        champion = locator.by_alias(CHAMPION)
    except ModelNotFound as exc:
        raise NoChampion(
            f"no `{CHAMPION}` model in the registry ({locator.describe()}): run `make train`,"
            f" which registers a model and names it {CHAMPION} ({exc})"
        ) from exc
    return open_bundle(locator, loader, champion.bundle_version, threads)


class AliasFollower:
    """Keeps the scorer on the champion and the shadow on the challenger."""

    def __init__(
        self,
        scorer: Scorer,
        shadow: Shadow | None,
        locator: Locator,
        loader: Loader,
        *,
        threads: int,
    ) -> None:
        self.scorer = scorer
        self.shadow = shadow
        self.locator = locator
        self.loader = loader
        self.threads = threads
        self.changed = asyncio.Event()
        self.failed: set[str] = set()  # bundle versions that would not load
        self._served: dict[str, str] = {}
        self._mark(CHAMPION, scorer.model_version)

    def poke(self) -> None:
        """The registry changed: read the aliases now, and retry bundles that failed."""
        self.changed.set()

    async def refresh(self) -> None:
        """Read both aliases and load what moved; raises when the registry cannot be read."""
        champion, challenger = await asyncio.to_thread(self._aliases)
        if champion is None:
            log.warning("the registry names no champion; the one loaded keeps serving")
        elif champion.bundle_version != self.scorer.model_version:
            model = await self._load(champion.bundle_version, CHAMPION, self.threads)
            if model is not None:
                self.scorer.swap(model)
                self._mark(CHAMPION, model.version)
        if self.shadow is not None:
            await self._follow_challenger(challenger)

    async def _follow_challenger(self, challenger: RegisteredBundle | None) -> None:
        assert self.shadow is not None
        wanted = None if challenger is None else challenger.bundle_version
        if wanted == self.scorer.model_version:  # promoted: it decides now, nothing to shadow
            wanted = None
        current = self.shadow.model
        if wanted is None:
            if current is not None:
                log.info("shadow stops", extra={"challenger": current.version})
                self.shadow.model = None
                self._mark(CHALLENGER, None)
            return
        if current is not None and current.version == wanted:
            return
        model = await self._load(wanted, CHALLENGER, 1)  # one thread: the champion comes first
        if model is not None:
            self.shadow.model = model
            self._mark(CHALLENGER, model.version)
            log.info("shadow runs", extra={"challenger": model.version})

    def _aliases(self) -> tuple[RegisteredBundle | None, RegisteredBundle | None]:
        found: list[RegisteredBundle | None] = []
        for alias in (CHAMPION, CHALLENGER):
            try:
                found.append(self.locator.by_alias(alias))
            except ModelNotFound:
                found.append(None)
        return found[0], found[1]

    async def _load(self, version: str, role: str, threads: int) -> ServedBundle | None:
        """The bundle, or None (logged, counted) when it does not load; the caller keeps the
        model it has."""
        if version in self.failed:
            return None
        try:
            return await asyncio.to_thread(open_bundle, self.locator, self.loader, version, threads)
        except Exception as exc:
            if not is_transient(exc):  # an outage is tried again at the next poll
                self.failed.add(version)
            BUNDLE_LOAD_FAILURES.labels(role).inc()
            log.exception(
                "could not load the registry's bundle; the model before keeps serving",
                extra={"role": role, "bundle_version": version},
            )
            return None

    def _mark(self, role: str, version: str | None) -> None:
        old = self._served.pop(role, None)
        if old is not None:
            SERVED_BUNDLE.remove(role, old)
        if version is not None:
            self._served[role] = version
            SERVED_BUNDLE.labels(role, version).set(1)

    async def follow(self, stop: asyncio.Event, every: float) -> None:
        """Refresh on every registry change and every `every` seconds, until stop."""
        while not stop.is_set():
            await _first_of(stop, self.changed, within=every)
            if stop.is_set():
                return
            if self.changed.is_set():
                self.changed.clear()
                self.failed.clear()
            try:
                await self.refresh()
            except Exception:
                REGISTRY_ERRORS.inc()
                log.warning("could not read the model registry's aliases", exc_info=True)


async def _first_of(*events: asyncio.Event, within: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class RegistryListener:
    """Pokes the follower on every `ModelRegistryChanged` of its model published from now on.

    Outside any consumer group (each replica must see every change), so it assigns itself every
    partition and starts at their ends; nothing is committed.
    """

    def __init__(
        self,
        infra: InfraSettings,
        topic: str,
        follower: AliasFollower,
        *,
        model_name: str,
        client_id: str = "scoring-registry",
    ) -> None:
        self.infra = infra
        self.topic = topic
        self.follower = follower
        self.model_name = model_name
        self.client_id = client_id
        self.listening = asyncio.Event()  # set once positioned: later changes are all seen

    async def run(self, stop: asyncio.Event, retry_seconds: float = 5.0) -> None:
        """Listen until stop; a broken connection is reopened (polling covers the gap)."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except Exception:
                REGISTRY_ERRORS.inc()
                log.warning("the registry topic cannot be read; retrying", exc_info=True)
                await _first_of(stop, within=retry_seconds)

    async def _listen(self, stop: asyncio.Event) -> None:
        # no group: the consumer assigns itself every partition, starting at their ends
        consumer = AIOKafkaConsumer(
            self.topic,
            **client_options(self.infra),
            group_id=None,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                while not consumer.assignment():  # the topic's metadata has not come yet
                    await consumer.getmany(timeout_ms=100)
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolved now: nothing later is missed
            self.listening.set()
            REGISTRY_LISTENING.set(1)
            self.follower.poke()  # a change made before we were positioned is read now
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self._on_record(record)
        finally:
            self.listening.clear()
            REGISTRY_LISTENING.set(0)
            await consumer.stop()

    def _on_record(self, record: ConsumerRecord) -> None:
        try:
            change: ModelRegistryChanged = decode(record.value, ModelRegistryChanged).payload
        except Exception as exc:  # not ours to dead-letter: the registry is read anyway
            log.warning("unreadable registry event ignored", extra={"error": str(exc)})
            return
        if change.model_name and change.model_name != self.model_name:
            return
        if change.action == RegistryAction.REGISTRY_ACTION_REFUSED:
            return  # a refusal moves nothing
        log.info(
            "model registry changed",
            extra={
                "action": RegistryAction.Name(change.action),
                "model_version": change.model_version,
                "bundle_version": change.bundle_version,
            },
        )
        self.follower.poke()
