"""Which failures are outages that pass, and how long to wait before trying again.

A consumer must treat the two kinds of failure oppositely. An outage of what it talks to (a
refused or reset connection, a timeout, PostgreSQL restarting, Redis loading, the broker without a
leader) says nothing about the record: retrying it later succeeds, so it is retried until it does,
never dead-lettered and never committed past. Any other error may be the record's fault (poison):
it gets a few attempts, then the record goes to the dead-letter topic and the consumer goes on.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

import asyncpg
import redis.exceptions
from aiokafka import errors as kafka_errors

from services.common.errors import AlamaError


class TransientFailure(AlamaError):
    """Raised by a service to say a dependency is away and the work must be tried again."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    TransientFailure,
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # asyncio.timeout and socket timeouts
    socket.gaierror,  # a name that does not resolve yet (a restarting container)
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE 08: the connection failed or broke
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # 40: serialization failure, deadlock
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
    redis.exceptions.TryAgainError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    # the broker forgot the producer's sequence (an unclean restart): the producer starts a new
    # producer id on its next send (services.common.kafka.HealingProducer), so sending again works
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.UnknownProducerId,
)


def _optional_transient() -> tuple[type[BaseException], ...]:
    """Feast's offline pushes go through psycopg; its OperationalError is a connection problem."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg comes with Feast's PostgreSQL extra
        return ()
    return (psycopg.OperationalError,)


_TRANSIENT += _optional_transient()


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is an infrastructure outage that passes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            return all(is_transient(inner) for inner in current.exceptions)
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, kafka_errors.KafkaError) and current.retriable:
            return True
        current = current.__cause__
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, and how often poison is tried before it is
    dead-lettered (outages are retried for as long as they last)."""

    attempts: int = 3
    initial_s: float = 0.1
    max_s: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return random.uniform(ceiling / 2, ceiling)
