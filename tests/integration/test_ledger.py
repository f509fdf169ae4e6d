"""The decision ledger on the real Redis: two replicas racing on one application agree on one
decision, entries expire, and namespaces keep deployments (and tests) apart."""

from __future__ import annotations

import asyncio
import uuid

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings
from services.scoring.decisions import content_digest
from services.scoring.ledger import KEY_PREFIX, RedisLedger


def _pair(
    app_id: str, pd_: float, amount: float = 100.0
) -> tuple[LoanApplicationSubmitted, CreditDecision]:
    application = LoanApplicationSubmitted(application_id=app_id, member_id="M", amount_kes=amount)
    return application, CreditDecision(
        decision_id=f"d-{app_id}-{pd_}", application_id=app_id, probability_of_default=pd_
    )


async def test_racing_replicas_agree_and_entries_expire(infra: InfraSettings) -> None:
    namespace = f"{KEY_PREFIX}it-{uuid.uuid4().hex[:8]}:"
    one = RedisLedger(create_redis(infra), ttl_seconds=60, prefix=namespace)
    two = RedisLedger(create_redis(infra), ttl_seconds=60, prefix=namespace)
    elsewhere = RedisLedger(create_redis(infra), ttl_seconds=60, prefix=namespace + "other:")
    try:
        a, b = await asyncio.gather(
            one.claim([_pair("X1", 0.1)]), two.claim([_pair("X1", 0.2, amount=5.0)])
        )
        assert a == b  # whoever came first, both replicas now hold the same entry
        [standing] = a
        assert standing.decision.probability_of_default in (0.1, 0.2)
        assert await one.lookup(["/X1", "/X2"]) == [standing, None]
        assert standing.digest == content_digest(
            _pair(
                "X1", 0, amount=100.0 if standing.decision.probability_of_default == 0.1 else 5.0
            )[0]
        )
        assert await elsewhere.lookup(["/X1"]) == [None]
        ttl = await one.redis.ttl(namespace + "/X1")
        assert 0 < ttl <= 60
    finally:
        for ledger in (one, two, elsewhere):
            await ledger.close()
