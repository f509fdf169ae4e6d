"""Consumers off the synchronous path fetch in batches (the defaults answer every record alone),
and a rebalance in the middle of a batch does not end one."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord, TopicPartition

from services.audit.settings import AuditSettings
from services.common.kafka import EventConsumer, Route
from services.common.lag import CONSUMER_LAG
from services.common.settings import ServiceSettings
from services.console.settings import ConsoleSettings
from services.explanation.settings import ExplanationSettings
from services.outcomes.settings import OutcomesSettings
from services.scoring.settings import ScoringSettings


def _fetch(settings: ServiceSettings) -> tuple[int, int]:
    async def build() -> tuple[int, int]:
        consumer = EventConsumer(settings, group_id="g", routes={})
        fetch = consumer.consumer._fetch_min_bytes, consumer.consumer._fetch_max_wait_ms
        await consumer.close()  # never started: nothing left open
        return fetch

    return asyncio.run(build())


def test_downstream_consumers_wait_for_a_batch_and_the_rest_keep_aiokafkas_defaults() -> None:
    assert _fetch(AuditSettings(dev_mode=True)) == (65536, 150)
    assert _fetch(ExplanationSettings(dev_mode=True)) == (65536, 150)
    assert _fetch(ConsoleSettings(dev_mode=True)) == (65536, 200)
    assert _fetch(OutcomesSettings(dev_mode=True)) == (65536, 200)
    assert _fetch(ScoringSettings(dev_mode=True)) == (16384, 50)
    assert _fetch(ServiceSettings()) == (1, 500)


def test_the_batching_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALAMA_AUDIT_CONSUMER_FETCH_MAX_WAIT_MS", "5")
    monkeypatch.setenv("ALAMA_AUDIT_CONSUMER_FETCH_MIN_BYTES", "1")
    assert _fetch(AuditSettings(dev_mode=True)) == (1, 5)


class _Rebalancing:
    """aiokafka's consumer as a rebalance leaves it mid-batch: the batch held two partitions,
    one of them is assigned elsewhere by the time the batch is committed."""

    def __init__(self, kept: TopicPartition, lost: TopicPartition, stop: asyncio.Event) -> None:
        self.kept, self.lost, self.stopping = kept, lost, stop
        self.polls = 0

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.polls += 1
        if self.polls > 1:
            self.stopping.set()
            return {}
        return {tp: [_record(tp, offset=4)] for tp in (self.kept, self.lost)}

    async def commit(self) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return {self.kept}

    def highwater(self, tp: TopicPartition) -> int:
        if tp != self.kept:  # as aiokafka: no state for a partition it no longer holds
            raise AttributeError("'NoneType' object has no attribute 'highwater'")
        return 10

    async def stop(self) -> None:
        return None


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, None, b"", None, 0, 0, [("skip", b"1")]
    )


def test_a_partition_lost_to_a_rebalance_mid_batch_does_not_end_the_consumer() -> None:
    kept, lost = TopicPartition("t", 0), TopicPartition("t", 1)

    async def run() -> None:
        consumer = EventConsumer(
            ServiceSettings(service_name="rebalanced"),
            group_id="g",
            routes={"t": Route((), _never, skip=lambda headers: True)},
        )
        await consumer.close()  # the real client, never started: swapped for the stand-in
        consumer.consumer = _Rebalancing(kept, lost, consumer._stopping)  # type: ignore[assignment]
        await consumer.run()  # returns when stopped, having committed and exported the batch

    asyncio.run(run())
    gauge = CONSUMER_LAG.labels("rebalanced", "t", "0")._value.get()
    assert gauge == 10 - 5  # the partition it kept: the end minus the next offset
    assert ("rebalanced", "t", "1") not in {
        tuple(s.labels.values()) for m in CONSUMER_LAG.collect() for s in m.samples
    }


async def _never(event, record) -> None:  # type: ignore[no-untyped-def]
    raise AssertionError("a skipped record is never handled")
