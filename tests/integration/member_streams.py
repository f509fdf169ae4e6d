"""One member's world history moved to just before now, as the feature store's sources carry it:
shared by the feature store's online and offline integration tests."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from services.common import features as F
from services.common.envelope import wrap
from services.common.feast_config import open_feature_store
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import (
    MobileMoneyTransaction,
    TransactionKind,
)
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.settings import InfraSettings
from services.feature_store.activity import NS_PER_MICROSECOND
from training.world import World


@dataclass
class MemberStream:
    """One member's world rows moved forward in time, and the envelopes that carry them."""

    member_id: str
    transactions: pd.DataFrame
    repayments: pd.DataFrame

    @property
    def key(self) -> str:
        """The member's key in Feast and the tables: the world's book is the dev tenant's."""
        return member_key(DEV_TENANT, self.member_id)

    def transaction_envelopes(self, rows: pd.DataFrame | None = None) -> list[EventEnvelope]:
        out = []
        for r in (self.transactions if rows is None else rows).itertuples():
            txn = MobileMoneyTransaction(
                transaction_id=str(r.transaction_id),
                tenant_id=DEV_TENANT,
                member_id=self.member_id,
                kind=TransactionKind.Value(f"TRANSACTION_KIND_{str(r.kind).upper()}"),
                amount_kes=float(r.amount_kes),
                balance_kes=float(r.balance_kes),
            )
            txn.occurred_at.FromNanoseconds(pd.Timestamp(r.occurred_at).value)
            out.append(wrap(txn, producer="mobile-money", subject=self.key))
        return out

    def repayment_envelopes(self) -> list[EventEnvelope]:
        out = []
        for r in self.repayments.itertuples():
            due = pd.Timestamp(r.due_date)
            rp = RepaymentRecorded(
                repayment_id=f"{r.loan_id}:{due:%Y%m}",
                tenant_id=DEV_TENANT,
                member_id=self.member_id,
                loan_id=str(r.loan_id),
                amount_due_kes=float(r.amount_due_kes),
                amount_paid_kes=float(r.amount_paid_kes),
                days_late=int(r.days_late),
            )
            rp.due_date.FromNanoseconds(due.value)
            rp.recorded_at.FromNanoseconds(pd.Timestamp(r.recorded_at).value)
            out.append(wrap(rp, producer="core-banking", subject=self.key))
        return out

    def expected(self, transactions: pd.DataFrame | None = None) -> pd.Series:
        """Training's computation on these rows, as of just after each stream's latest event."""
        txns = self.transactions if transactions is None else transactions
        micro = pd.Timedelta(NS_PER_MICROSECOND, "ns")
        index = pd.Index([self.member_id])
        mm = F.mobile_money_features(
            txns, pd.Series([txns["occurred_at"].max() + micro], index=index)
        )
        rp = F.repayment_features(
            self.repayments, pd.Series([self.repayments["recorded_at"].max() + micro], index=index)
        )
        return pd.concat([mm, rp], axis=1).iloc[0]


def member_stream(world: World, nth: int = 0) -> MemberStream:
    """The nth member with both histories, shifted so its latest event is an hour ago (after
    every snapshot training stored, and after whatever an earlier run pushed: Redis keeps only
    writes newer than what it holds)."""
    both = world.mobile_money["member_id"].isin(world.repayments["member_id"].unique())
    member = str(world.mobile_money.loc[both, "member_id"].unique()[nth])
    mine = world.mobile_money[world.mobile_money["member_id"] == member].copy()
    repay = world.repayments[world.repayments["member_id"] == member].copy()
    latest = max(mine["occurred_at"].max(), repay["recorded_at"].max())
    shift = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1) - latest).floor("s")
    for frame, columns in ((mine, ["occurred_at"]), (repay, ["due_date", "recorded_at"])):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column], utc=True) + shift
        frame["member_id"] = frame["member_id"].astype(str)
    mine["kind"] = mine["kind"].astype(str)
    repay["loan_id"] = repay["loan_id"].astype(str)
    return MemberStream(member, mine.reset_index(drop=True), repay.reset_index(drop=True))


def forget_online(infra: InfraSettings, member_id: str) -> None:
    """Drop what earlier runs pushed for the member: Redis keeps only newer writes, and a rerun
    minutes later replays events older than the previous run's last push."""
    import redis
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    store = open_feature_store(infra)
    key = _redis_key(
        store.project,
        EntityKey(join_keys=["member_id"], entity_values=[Value(string_val=member_id)]),
        store.config.entity_key_serialization_version,
    )
    client = redis.Redis.from_url(infra.redis_url)
    try:
        client.delete(key)
    finally:
        client.close()
