"""The asyncio Redis client every Redis-backed service uses."""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.settings import InfraSettings


def create_redis(infra: InfraSettings, *, decode_responses: bool = False) -> Redis:
    return Redis.from_url(
        infra.redis_url,
        decode_responses=decode_responses,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
