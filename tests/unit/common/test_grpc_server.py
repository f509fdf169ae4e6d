"""services.common.grpc_server: SERVING for the server and the service once started,
NOT_SERVING for both when told to stop, and the port closed after stop."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import start_grpc_server

SERVICE = "alama.test.v1.TestService"


async def _status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
    return int(reply.status)


async def test_serving_then_not_serving_then_stopped() -> None:
    added: list[grpc.aio.Server] = []
    server = await start_grpc_server(SERVICE, added.append, host="127.0.0.1", port=0)
    assert added == [server.server] and server.port > 0
    try:
        for name in ("", SERVICE):
            assert await _status(server.port, name) == health_pb2.HealthCheckResponse.SERVING
        await server.not_serving()
        for name in ("", SERVICE):
            assert await _status(server.port, name) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.stop(0.5)
    with pytest.raises(grpc.aio.AioRpcError):
        await _status(server.port, "")
