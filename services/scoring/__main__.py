"""Scoring: `python -m services.scoring` (or `... run`) serves gRPC and consumes applications.

SIGTERM or SIGINT stops both gracefully: health goes NOT_SERVING, the consumer finishes and
commits the batch in hand, the gRPC server lets in-flight calls complete within the grace period.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.common.bundle import load_served_bundle
from services.common.cli import service_cli
from services.common.feast_config import REPO_ROOT, open_feature_store
from services.common.logs import configure_logging
from services.common.redis_store import create_redis
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics
from services.scoring.consumer import build_consumer
from services.scoring.ledger import KEY_PREFIX as LEDGER_PREFIX
from services.scoring.ledger import RedisLedger
from services.scoring.online_features import RedisOnlineFeatures
from services.scoring.publisher import DecisionPublisher
from services.scoring.scorer import Scorer
from services.scoring.server import start_server
from services.scoring.settings import ScoringSettings

log = logging.getLogger("services.scoring")


def build_ledger(settings: ScoringSettings) -> RedisLedger:
    """The decision ledger of this deployment's namespace (tests use one each)."""
    return RedisLedger(
        create_redis(settings.infra),
        ttl_seconds=settings.ledger_days * 86_400,
        prefix=f"{LEDGER_PREFIX}{settings.ledger_namespace}:",
    )


def build_scorer(settings: ScoringSettings) -> Scorer:
    """Load the promoted bundle and open Feast; fails at start-up rather than at first request."""
    repo = Path(settings.feature_repo)
    store = open_feature_store(settings.infra, repo if repo.is_absolute() else REPO_ROOT / repo)
    return Scorer(
        RedisOnlineFeatures(store),
        load_served_bundle(settings.bundle_dir, threads=settings.model_threads),
        bundle_dir=settings.bundle_dir,
        ledger=build_ledger(settings),
        threads=settings.model_threads,
        max_reasons=settings.max_reasons,
    )


async def serve(settings: ScoringSettings, stop: asyncio.Event) -> None:
    """Run the gRPC server, the Kafka consumer and the bundle watcher until `stop` is set."""
    scorer = build_scorer(settings)
    publisher = DecisionPublisher(settings)
    await publisher.start()
    grpc_server = await start_server(
        scorer,
        host=settings.grpc_host,
        port=settings.grpc_port,
        max_call_applications=settings.max_call_applications,
        max_waiting=settings.max_waiting_calls,
        publisher=publisher,
    )
    consumer = build_consumer(settings, scorer, publisher)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            await consumer.start()
        except BaseException:
            await consumer.close()
            raise
        consuming = asyncio.create_task(consumer.run(), name="scoring-consumer")
        consuming.add_done_callback(lambda _task: stop.set())  # a dead consumer stops the service
        tasks = [
            consuming,
            asyncio.create_task(scorer.watch_bundle(stop, settings.bundle_check_seconds)),
        ]
        log.info(
            "scoring started",
            extra={"grpc_port": grpc_server.port, "model_version": scorer.model_version},
        )
        await stop.wait()
    finally:
        log.info("scoring stopping")
        stop.set()
        await grpc_server.not_serving()
        await consumer.stop()  # run() finishes and commits the batch in hand, then closes
        await grpc_server.stop(settings.shutdown_grace_seconds)
        await publisher.stop()  # after both paths: every queued decision is delivered
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("a scoring task failed", exc_info=result)
        scorer.close()
        await scorer.ledger.close()


def run() -> None:
    """Serve gRPC and consume loan applications until SIGTERM/SIGINT."""
    settings = ScoringSettings()
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings)
    start_metrics(settings)

    run_until_signalled(lambda stop: serve(settings, stop), settings.infra.event_loop)


app = service_cli(run, help=__doc__)

if __name__ == "__main__":
    app()
