"""Outages are told apart from poison: only outages are retried for as long as they last."""

from __future__ import annotations

import asyncpg
import redis.exceptions
from aiokafka import errors as kafka_errors

from services.common.errors import InvalidEvent
from services.common.retries import RetryPolicy, TransientFailure, is_transient


def test_outages_of_every_dependency_are_transient() -> None:
    for exc in (
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:16379"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.TimeoutError(),
        kafka_errors.KafkaConnectionError("no broker"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.NotLeaderForPartitionError(),
        TransientFailure("feast is away"),
    ):
        assert is_transient(exc), exc


def test_an_error_raised_from_an_outage_is_transient() -> None:
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("feast push failed") from inner
    except RuntimeError as exc:
        assert is_transient(exc)


def test_poison_is_not_transient() -> None:
    for exc in (
        ValueError("could not convert"),
        KeyError("feature"),
        InvalidEvent("invalid_amount", "negative"),
        asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence 0x00"),
        asyncpg.exceptions.DataError("date/time field value out of range"),
        kafka_errors.CommitFailedError("rebalanced"),
        ExceptionGroup("mixed", [ConnectionResetError(), ValueError()]),
    ):
        assert not is_transient(exc), exc
    assert is_transient(ExceptionGroup("all outages", [ConnectionResetError(), TimeoutError()]))


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_s=0.1, max_s=2.0)
    assert 0.05 <= policy.delay(0) <= 0.1
    assert 0.2 <= policy.delay(2) <= 0.4
    assert all(1.0 <= policy.delay(n) <= 2.0 for n in (10, 100, 10_000))
