"""Scoring: `python -m services.scoring` (or `... run`) serves gRPC and consumes applications;
`compact-ledger` strips the inputs from ledger entries that earlier versions kept whole.

Which model serves: in registry mode (the default) MLflow's `champion` alias, followed as it
moves, with the `challenger` in shadow (`aliases.py`, `shadow.py`); in link mode whatever
`bundle_dir` points at.

SIGTERM or SIGINT stops both gracefully: health goes NOT_SERVING, the consumer finishes and
commits the batch in hand, the gRPC server lets in-flight calls complete within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import typer

from services.common.bundle import ServedBundle, load_served_bundle
from services.common.cli import service_cli
from services.common.feast_config import REPO_ROOT, open_feature_store
from services.common.logs import configure_logging
from services.common.model_registry import ModelLocator
from services.common.redis_store import create_redis
from services.common.runtime import run_until_signalled
from services.common.telemetry import setup_tracing, start_metrics
from services.scoring.aliases import AliasFollower, RegistryListener, load_champion
from services.scoring.consumer import build_consumer
from services.scoring.ledger import KEY_PREFIX as LEDGER_PREFIX
from services.scoring.ledger import WHOLE_PREFIX, RedisLedger
from services.scoring.online_features import RedisOnlineFeatures
from services.scoring.publisher import DecisionPublisher
from services.scoring.scorer import Scorer
from services.scoring.server import start_server
from services.scoring.settings import ScoringSettings
from services.scoring.shadow import Shadow

log = logging.getLogger("services.scoring")


def build_ledger(settings: ScoringSettings) -> RedisLedger:
    """The decision ledger of this deployment's namespace (tests use one each)."""
    return RedisLedger(
        create_redis(settings.infra),
        ttl_seconds=settings.ledger_days * 86_400,
        retry_seconds=round(settings.ledger_retry_minutes * 60),
        prefix=f"{LEDGER_PREFIX}{settings.ledger_namespace}:",
        whole_prefix=f"{WHOLE_PREFIX}{settings.ledger_namespace}:",
    )


def build_locator(settings: ScoringSettings) -> ModelLocator:
    """The registry (MLFLOW_TRACKING_URI, else the local store) and where its bundles go."""
    return ModelLocator(model_name=settings.registered_model, bundle_root=settings.bundle_root)


def load_bundle_with_threads(folder: Path, threads: int) -> ServedBundle:
    return load_served_bundle(folder, threads=threads)


def build_scorer(settings: ScoringSettings, locator: ModelLocator | None = None) -> Scorer:
    """Load the champion (or the linked bundle) and open Feast; fails at start-up rather than
    at first request."""
    repo = Path(settings.feature_repo)
    store = open_feature_store(settings.infra, repo if repo.is_absolute() else REPO_ROOT / repo)
    if settings.model_source == "registry":
        model = load_champion(
            locator or build_locator(settings), load_bundle_with_threads, settings.model_threads
        )
    else:
        model = load_served_bundle(settings.bundle_dir, threads=settings.model_threads)
    return Scorer(
        RedisOnlineFeatures(store),
        model,
        bundle_dir=settings.bundle_dir,
        ledger=build_ledger(settings),
        threads=settings.model_threads,
        max_reasons=settings.max_reasons,
    )


async def serve(
    settings: ScoringSettings, stop: asyncio.Event, locator: ModelLocator | None = None
) -> None:
    """Run the gRPC server, the Kafka consumer and the model's follower until `stop` is set."""
    if settings.model_source == "registry":
        locator = locator or build_locator(settings)
    else:
        locator = None
    scorer = build_scorer(settings, locator)
    publisher = DecisionPublisher(settings)
    await publisher.start()
    shadow: Shadow | None = None
    follower: AliasFollower | None = None
    if locator is not None:
        shadow = Shadow(scorer, publisher, max_pending=settings.shadow_max_pending)
        follower = AliasFollower(
            scorer, shadow, locator, load_bundle_with_threads, threads=settings.model_threads
        )
        try:  # the challenger, and a champion moved since it was loaded
            await follower.refresh()
        except Exception:
            log.warning("could not read the registry's aliases; retrying", exc_info=True)
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
    shadowing: asyncio.Task[None] | None = None
    try:
        try:
            await consumer.start()
        except BaseException:
            await consumer.close()
            raise
        consuming = asyncio.create_task(consumer.run(), name="scoring-consumer")
        consuming.add_done_callback(lambda _task: stop.set())  # a dead consumer stops the service
        tasks.append(consuming)
        if follower is not None and shadow is not None:
            listener = RegistryListener(
                settings.infra,
                settings.registry_topic,
                follower,
                model_name=settings.registered_model,
                client_id=f"{settings.service_name}-registry",
            )
            shadowing = asyncio.create_task(shadow.run(), name="scoring-shadow")
            tasks += [
                asyncio.create_task(listener.run(stop), name="scoring-registry-listener"),
                asyncio.create_task(follower.follow(stop, settings.bundle_check_seconds)),
            ]
        else:
            tasks.append(
                asyncio.create_task(scorer.watch_bundle(stop, settings.bundle_check_seconds))
            )
        log.info(
            "scoring started",
            extra={
                "grpc_port": grpc_server.port,
                "model_version": scorer.model_version,
                "model_source": settings.model_source,
                "challenger": shadow.model.version if shadow and shadow.model else None,
            },
        )
        await stop.wait()
    finally:
        log.info("scoring stopping")
        stop.set()
        await grpc_server.not_serving()
        await consumer.stop()  # run() finishes and commits the batch in hand, then closes
        await grpc_server.stop(settings.shutdown_grace_seconds)
        if shadow is not None and shadowing is not None:
            # a moment for the shadow work in hand; the rest is dropped (nothing acts on it)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shadow.queue.join(), timeout=1.0)
            shadowing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shadowing
        await publisher.stop()  # after both paths: every queued decision is delivered
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("a scoring task failed", exc_info=result)
        if shadow is not None:
            shadow.close()
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


@app.command("compact-ledger")
def compact_ledger() -> None:
    """Rewrite the standing ledger entries that versions before the two copies kept whole
    (~5 KB of inputs each, for `ledger_days`) without their inputs, keeping their expiry; once
    after upgrading, beside running replicas if need be. Prints what it found and freed."""

    async def compact() -> None:
        ledger = build_ledger(ScoringSettings())
        try:
            done = await ledger.compact()
        finally:
            await ledger.close()
        typer.echo(
            f"{done.entries:,} standing entries, {done.rewritten:,} rewritten without their"
            f" inputs, {done.freed_bytes / 2**20:,.1f} MiB of values freed"
        )

    asyncio.run(compact())


if __name__ == "__main__":
    app()
