"""How a service serves gRPC (scoring, explanation): one grpc.aio server with the standard health
service beside the service's own, started and stopped the same way everywhere.

Start-up binds, starts and reports SERVING for the whole server ("") and for the service's name,
so Kubernetes' native gRPC probes and the gateway's checks see the same thing. Stopping is two
steps a service may take apart: `not_serving()` as soon as it is told to stop (load balancers
stop sending), then `stop(grace)` once its other work is finished, which lets in-flight calls
complete within the grace period. Signals are handled by `services.common.runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

#: Largest request a server takes (a whole ScoreBatch arrives as one message).
MAX_RECEIVE_BYTES = 32 * 1024 * 1024
#: Largest reply a server sends.
MAX_SEND_BYTES = 64 * 1024 * 1024


@dataclass
class GrpcServer:
    """A started server, its health servicer and the port it bound."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int

    async def not_serving(self) -> None:
        """Report NOT_SERVING for every name (idempotent); calls still in flight go on."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None) -> None:
        """NOT_SERVING, then stop, letting in-flight calls finish within `grace` seconds (None
        cancels them at once)."""
        await self.not_serving()
        await self.server.stop(grace)


async def start_grpc_server(
    service_name: str,
    add_servicer: Callable[[grpc.aio.Server], None],
    *,
    host: str,
    port: int,
    max_receive_bytes: int = MAX_RECEIVE_BYTES,
    max_send_bytes: int = MAX_SEND_BYTES,
) -> GrpcServer:
    """Serve what `add_servicer` adds and the health service on host:port (0 picks a port),
    SERVING for "" and `service_name` (the service's full name, e.g. alama.scoring.v1.X)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", max_send_bytes),
        ]
    )
    add_servicer(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ("", service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, health_servicer, bound)
