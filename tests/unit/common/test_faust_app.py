"""Faust agents decode the same envelopes as every other consumer (in-memory test context)."""

from services.common.envelope import decode, encode, wrap
from services.common.faust_app import create_faust_app
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    TRANSACTION_KIND_INFLOW,
    MobileMoneyTransaction,
)
from services.common.settings import ServiceSettings


async def test_agent_reads_envelopes_in_test_context() -> None:
    app = create_faust_app(ServiceSettings(service_name="t"), app_id="alama-unit-faust")
    topic = app.topic("mobile_money.transactions")
    seen: list[MobileMoneyTransaction] = []

    @app.agent(topic)
    async def ingest(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            event = decode(value, MobileMoneyTransaction)
            seen.append(event.payload)
            yield event.payload.amount_kes

    txn = MobileMoneyTransaction(
        transaction_id="t-1", member_id="m-1", kind=TRANSACTION_KIND_INFLOW, amount_kes=1200.0
    )
    async with ingest.test_context() as agent:
        result = await agent.put(encode(wrap(txn, producer="mpesa", subject="m-1")))
        assert agent.results[result.message.offset] == 1200.0
    assert seen == [txn]


def test_factory_points_at_the_configured_broker() -> None:
    settings = ServiceSettings(service_name="t")
    app = create_faust_app(settings, app_id="alama-unit-faust-2")
    assert str(app.conf.broker[0]) == f"kafka://{settings.infra.kafka_bootstrap}"
    assert app.conf.topic_replication_factor == 1
