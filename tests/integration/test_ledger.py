"""The decision ledger on the real Redis: two replicas racing on one application agree on one
decision, entries expire, namespaces keep deployments (and tests) apart, and a published
decision's whole copy goes after the retry window while its outcome stands."""

from __future__ import annotations

import asyncio
import uuid

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.redis_store import create_redis
from services.common.settings import InfraSettings
from services.scoring.decisions import content_digest
from services.scoring.ledger import KEY_PREFIX, WHOLE_PREFIX, Entry, RedisLedger, ledger_key


def _pair(
    app_id: str, pd_: float, amount: float = 100.0
) -> tuple[LoanApplicationSubmitted, CreditDecision]:
    application = LoanApplicationSubmitted(application_id=app_id, member_id="M", amount_kes=amount)
    return application, CreditDecision(
        decision_id=f"d-{app_id}-{pd_}", application_id=app_id, probability_of_default=pd_
    )


async def test_racing_replicas_agree_and_entries_expire(infra: InfraSettings) -> None:
    namespace = f"{KEY_PREFIX}it-{uuid.uuid4().hex[:8]}:"
    whole = namespace.replace(KEY_PREFIX, WHOLE_PREFIX)

    def ledger(suffix: str = "") -> RedisLedger:
        return RedisLedger(
            create_redis(infra),
            ttl_seconds=60,
            retry_seconds=60,
            prefix=namespace + suffix,
            whole_prefix=whole + suffix,
        )

    one, two, elsewhere = ledger(), ledger(), ledger("other:")
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
        assert 0 < await one.redis.ttl(whole + "/X1") <= 60
    finally:
        for ledger in (one, two, elsewhere):
            await ledger.close()


def _heavy(app_id: str) -> tuple[LoanApplicationSubmitted, CreditDecision]:
    application, decision = _pair(app_id, 0.3)
    decision.features["savings_balance"] = 12_000.0
    decision.contributions.extend([0.1] * 40)
    decision.reasons.add(code="SAVINGS", description="savings balance")
    return application, decision


def _scratch_ledger(infra: InfraSettings, *, retry_seconds: int) -> RedisLedger:
    """A ledger in namespaces of its own, outcomes kept ten minutes."""
    tag = uuid.uuid4().hex[:8]
    return RedisLedger(
        create_redis(infra),
        ttl_seconds=600,
        retry_seconds=retry_seconds,
        prefix=f"{KEY_PREFIX}it-{tag}:",
        whole_prefix=f"{WHOLE_PREFIX}it-{tag}:",
    )


async def test_a_published_decision_keeps_its_outcome_after_the_retry_window(
    infra: InfraSettings,
) -> None:
    ledger = _scratch_ledger(infra, retry_seconds=1)
    prefix, whole = ledger.prefix, ledger.whole_prefix
    try:
        published, unpublished = _heavy("P1"), _heavy("U1")
        [p, u] = await ledger.claim([published, unpublished])
        assert not p.recorded and p.decision.features["savings_balance"] == 12_000.0
        # until the broker acknowledges it, the whole copy lives as long as the outcome
        assert await ledger.redis.ttl(whole + "/P1") > 500
        await ledger.settle(["/P1"])
        assert 0 < await ledger.redis.ttl(whole + "/P1") <= 1
        assert await ledger.redis.ttl(whole + "/U1") > 500
        await asyncio.sleep(1.5)
        late, pending = await ledger.lookup(["/P1", "/U1"])
        assert late is not None and pending is not None
        # the retry window is over: the outcome, marked as on the broker already, inputs gone
        assert late.recorded and late.digest == p.digest
        assert late.decision.decision_id == p.decision.decision_id
        assert late.decision.probability_of_default == 0.3
        assert [r.code for r in late.decision.reasons] == ["SAVINGS"]
        assert not late.decision.features and not late.decision.contributions
        # never acknowledged: still whole, so a retry publishes it
        assert pending == u and not pending.recorded
        standing = await ledger.redis.get(prefix + "/P1")
        assert standing is not None and len(standing) < len(p.encode()) / 3
        # a claim racing past the window loses to the standing outcome and leaves no copy
        [again] = await ledger.claim([(published[0], _pair("P1", 0.9)[1])])
        assert again == late
        assert await ledger.lookup(["/P1"]) == [late]
    finally:
        await ledger.close()


async def test_without_a_retry_window_a_published_decision_is_left_as_its_outcome_at_once(
    infra: InfraSettings,
) -> None:
    ledger = _scratch_ledger(infra, retry_seconds=0)
    whole = ledger.whole_prefix
    try:
        [p] = await ledger.claim([_heavy("Q1")])
        await ledger.settle(["/Q1"])
        # deleted, not left for Redis's sampling of expired keys to find
        assert await ledger.redis.exists(whole + "/Q1") == 0
        [late] = await ledger.lookup(["/Q1"])
        assert late is not None and late.recorded
        assert late.decision.decision_id == p.decision.decision_id
        assert not late.decision.features
    finally:
        await ledger.close()


async def test_compaction_strips_the_inputs_older_versions_kept_and_keeps_each_expiry(
    infra: InfraSettings,
) -> None:
    """An upgrade's one-off step: a standing entry an earlier version wrote whole becomes the
    outcome alone, with the same digest, decision and expiry; new entries are left as they are."""
    ledger = _scratch_ledger(infra, retry_seconds=0)
    prefix = ledger.prefix
    try:
        old_application, old_decision = _heavy("OLD1")
        old = Entry(content_digest(old_application), old_decision)
        await ledger.redis.set(prefix + ledger_key(old_application), old.encode(), ex=500)
        [new] = await ledger.claim([_heavy("NEW1")])
        new_raw = await ledger.redis.get(prefix + ledger_key(_heavy("NEW1")[0]))

        done = await ledger.compact(count=1)  # one key per batch: the batching is exercised

        assert (done.entries, done.rewritten) == (2, 1)
        assert done.freed_bytes == len(old.encode()) - len(old.standing().encode()) > 0
        [found] = await ledger.lookup([ledger_key(old_application)])
        assert found is not None and found.recorded and found.digest == old.digest
        assert found.decision == old.standing().decision
        assert not found.decision.features and not found.decision.contributions
        assert 490 < await ledger.redis.ttl(prefix + ledger_key(old_application)) <= 500
        assert await ledger.redis.get(prefix + ledger_key(_heavy("NEW1")[0])) == new_raw
        again = await ledger.compact()
        assert (again.entries, again.rewritten, again.freed_bytes) == (2, 0, 0)
        # the same content still gets the same decision; other content is still a conflict
        [same] = await ledger.claim([(old_application, _heavy("OLD1")[1])])
        assert same.decision.decision_id == old_decision.decision_id
        assert new.decision.decision_id == _heavy("NEW1")[1].decision_id
    finally:
        keys = [k async for k in ledger.redis.scan_iter(match=f"{prefix}*")]
        keys += [k async for k in ledger.redis.scan_iter(match=f"{ledger.whole_prefix}*")]
        if keys:
            await ledger.redis.delete(*keys)
        await ledger.close()
