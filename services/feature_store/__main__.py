"""Feature-store service: `python -m services.feature_store` (or `... run`) streams mobile-money
and repayment events into Feast, online and offline; `check` says where pushed rows go.

`python -m services.feature_store` starts the Faust worker. SIGTERM or SIGINT stops it
gracefully: the worker stops fetching, lets the batches in hand finish (their members' state
written, their features pushed), commits only the offsets of processed records and leaves.
"""

from __future__ import annotations

import typer
from rich.console import Console

from services.common.cli import service_cli
from services.common.liveness import serve_health
from services.common.logs import configure_logging
from services.common.runtime import freeze_startup_heap, use_event_loop_policy
from services.common.telemetry import setup_tracing
from services.feature_store.settings import FeatureStoreSettings

console = Console()


def run() -> None:
    """Consume mobile_money.transactions and core.repayments and push features until stopped."""
    import asyncio

    import faust

    from services.common.faust_app import declare_table_topics, worker_ready
    from services.feature_store.agents import create_feature_store_app
    from services.feature_store.offline import OfflinePushUnsupported

    settings = FeatureStoreSettings()
    configure_logging(settings.service_name, settings.log_level)
    use_event_loop_policy(settings.infra.event_loop)  # before the app or the worker make a loop
    try:
        service = create_feature_store_app(settings)
    except OfflinePushUnsupported as exc:
        console.print(f"[red]cannot start feature_store[/red]: {exc}")
        raise typer.Exit(1) from exc
    asyncio.run(declare_table_topics(service.app, settings.infra))
    setup_tracing(settings)
    if settings.metrics_port:  # /metrics, /livez (agents making progress), /readyz on one port
        serve_health(
            settings.metrics_port, service.liveness, ready=lambda: worker_ready(service.app)
        )
    worker = faust.Worker(service.app, loglevel=settings.log_level)
    freeze_startup_heap()
    worker.execute_from_commandline()


app = service_cli(run, help=__doc__)


@app.command()
def check() -> None:
    """Open the Feast repo and say where pushed rows go: online, and the offline tables."""
    from services.feature_store.offline import OfflinePushUnsupported, offline_table
    from services.feature_store.push import FeastPusher
    from services.feature_store.settings import PushTarget

    settings = FeatureStoreSettings()
    pusher = FeastPusher.open(settings)
    try:
        console.print(f"project {pusher.store.project}: pushing {pusher.mode.name}")
        if settings.push_target is not PushTarget.ONLINE_AND_OFFLINE:
            console.print("offline writes are off (push_target online)")
            return
        for source in (settings.mobile_money_push_source, settings.repayment_push_source):
            try:
                table = offline_table(pusher.store, source)
            except OfflinePushUnsupported as exc:
                console.print(f"[red]{source}[/red]: {exc}")
                raise typer.Exit(1) from exc
            console.print(f"{source}: offline rows into {table.table} (keys in {table.journal})")
    finally:
        pusher.close()


if __name__ == "__main__":
    app()
