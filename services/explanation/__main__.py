"""Explanation: `python -m services.explanation` (or `... run`) consumes decisions and serves
gRPC.

SIGTERM or SIGINT stops both gracefully: health goes NOT_SERVING, the consumer finishes, stores,
publishes and commits the batch in hand, the gRPC server lets in-flight calls complete within the
grace period, and the producer is flushed last.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.common.cli import service_cli
from services.common.logs import configure_logging
from services.common.member_rights import tenant_member_ref
from services.common.model_registry import ModelLocator
from services.common.postgres import create_pool
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics
from services.explanation.changes import OutcomeChanges
from services.explanation.consumer import build_consumer
from services.explanation.explainer import BundleCache, DecisionExplainer, ExplainerPool
from services.explanation.publisher import ExplanationPublisher
from services.explanation.server import start_server
from services.explanation.settings import ExplanationSettings
from services.explanation.store import DecisionStore

log = logging.getLogger("services.explanation")


def build_locator(settings: ExplanationSettings) -> ModelLocator | None:
    """The registry that holds the versions the bundle root lacks (None when turned off)."""
    if not settings.model_registry:
        return None
    return ModelLocator(model_name=settings.registered_model, bundle_root=settings.bundle_root)


def build_explainer(
    settings: ExplanationSettings, locator: ModelLocator | None = None
) -> ExplainerPool:
    """The explainer over the bundle root (a relative root is from the working directory),
    falling back on the registry for a version the root lacks."""
    cache = BundleCache(
        Path(settings.bundle_root),
        settings.max_cached_bundles,
        finder=locator or build_locator(settings),
    )
    return ExplainerPool(
        DecisionExplainer(cache, top_reasons=settings.top_reasons),
        threads=settings.explain_threads,
    )


async def serve(settings: ExplanationSettings, stop: asyncio.Event) -> None:
    """Run the gRPC server and the Kafka consumer until `stop` is set."""
    locator = build_locator(settings)
    explainer = build_explainer(settings, locator)
    pool = await create_pool(settings.infra, max_size=4)
    publisher = ExplanationPublisher(settings)
    try:
        key = settings.member_pseudonym_key.get_secret_value().encode()
        store = DecisionStore(
            pool, settings.db_schema, lambda tenant, member: tenant_member_ref(key, tenant, member)
        )
        await store.create_schema()
        await publisher.start()
        grpc_server = await start_server(
            store,
            explainer,
            host=settings.grpc_host,
            port=settings.grpc_port,
            changes=OutcomeChanges(
                settings.bundle_root, settings.max_cached_bundles, finder=locator
            ),
        )
        consumer = build_consumer(settings, explainer, store, publisher)
        consuming: asyncio.Task[None] | None = None
        try:
            try:
                await consumer.start()
            except BaseException:
                await consumer.close()
                raise
            consuming = asyncio.create_task(consumer.run(), name="explanation-consumer")
            consuming.add_done_callback(lambda _task: stop.set())  # a dead consumer stops all
            log.info("explanation started", extra={"grpc_port": grpc_server.port})
            await stop.wait()
        finally:
            log.info("explanation stopping")
            stop.set()
            await grpc_server.not_serving()
            await consumer.stop()  # run() finishes and commits the batch in hand, then closes
            if consuming is not None:
                for result in await asyncio.gather(consuming, return_exceptions=True):
                    if isinstance(result, BaseException):
                        log.error("the explanation consumer failed", exc_info=result)
            await grpc_server.stop(settings.shutdown_grace_seconds)
    finally:
        await publisher.stop()  # after both paths: every queued explanation is delivered
        await pool.close()
        explainer.close()


def run() -> None:
    """Consume decisions and serve gRPC until SIGTERM/SIGINT."""
    settings = ExplanationSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    start_metrics(settings)

    run_until_signalled(lambda stop: serve(settings, stop), settings.infra.event_loop)


app = service_cli(run, help=__doc__)

if __name__ == "__main__":
    app()
