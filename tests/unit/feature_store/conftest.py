"""A small seeded synthetic world and its events (the simulator's replay of its loan book), the
data every feature_store test streams."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from services.common.envelope import Event, decode
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from services.common.topics import MOBILE_MONEY_TRANSACTIONS, REPAYMENTS
from simulator.events import book_events
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world


@dataclass(frozen=True)
class WorldEvents:
    world: World
    mobile_money: list[EventEnvelope]
    repayments: list[EventEnvelope]

    def members(self, n: int) -> list[str]:
        """The first `n` members that have both transactions and repayments."""
        both = set(self.world.repayments["member_id"].astype(str))
        ids = self.world.members["member_id"].astype(str)
        return [m for m in ids if m in both][:n]

    def of(self, envelopes: list[EventEnvelope], members: list[str]) -> list[EventEnvelope]:
        """These members' events (keyed by the tenant-scoped member key, like the tables)."""
        keys = {member_key(DEV_TENANT, m) for m in members}
        return [e for e in envelopes if e.subject in keys]

    def table(self, name: str, members: list[str]) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self.world, name)
        return frame[frame["member_id"].astype(str).isin(members)]


@pytest.fixture(scope="session")
def world_events_small() -> WorldEvents:
    world = generate_world(40, seed=23)
    mobile, repay = [], []
    for topic, envelope in book_events(loan_book_from_world(world)):
        if topic == MOBILE_MONEY_TRANSACTIONS:
            mobile.append(envelope)
        elif topic == REPAYMENTS:
            repay.append(envelope)
    return WorldEvents(world, mobile, repay)


def transaction_event(envelope: EventEnvelope) -> Event[MobileMoneyTransaction]:
    return decode(envelope.SerializeToString(), MobileMoneyTransaction)


def repayment_event(envelope: EventEnvelope) -> Event[RepaymentRecorded]:
    return decode(envelope.SerializeToString(), RepaymentRecorded)
