"""Loan-book rows as Kafka events: they decode, come in time order, and their ids are
deterministic in the book's namespace."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC
from typing import Any

from services.common import topics
from services.common.envelope import Event, decode, encode
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.applications_pb2 import (
    CHANNEL_UNSPECIFIED,
    Channel,
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.mobile_money_pb2 import MobileMoneyTransaction
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from simulator.events import (
    application_envelope,
    book_events,
    book_namespace,
    hash_national_id,
    repayment_envelopes,
    world_namespace,
)
from simulator.scenario import build_scenario
from training.contract import LoanBook

PAYLOADS = {
    topics.LOAN_APPLICATIONS: (LoanApplicationSubmitted, "core-banking", "applications"),
    topics.REPAYMENTS: (RepaymentRecorded, "core-banking", "repayments"),
    topics.MOBILE_MONEY_TRANSACTIONS: (MobileMoneyTransaction, "mobile-money", "mobile_money"),
}


def test_book_events_are_every_row_in_time_order_and_decode(small_book: LoanBook) -> None:
    events = list(book_events(small_book))

    counts = Counter(topic for topic, _ in events)
    assert counts == {
        topic: len(small_book.table(name)) for topic, (_, _, name) in PAYLOADS.items()
    }
    times = [envelope.occurred_at.ToNanoseconds() for _, envelope in events]
    assert times == sorted(times)
    assert len({envelope.event_id for _, envelope in events}) == len(events)
    national = dict(
        zip(small_book.members["member_id"], small_book.members["national_id"], strict=True)
    )
    for topic, envelope in events:
        payload_type, producer, _ = PAYLOADS[topic]
        event: Event[Any] = decode(encode(envelope), payload_type)
        assert envelope.producer == producer
        if isinstance(event.payload, LoanApplicationSubmitted):
            assert envelope.subject == event.payload.member_id
        else:  # keyed like the feature store's tables: the tenant's member
            assert envelope.subject == member_key(DEV_TENANT, event.payload.member_id)
        assert event.payload.tenant_id == DEV_TENANT
        if isinstance(event.payload, LoanApplicationSubmitted):
            assert event.payload.applied_at == envelope.occurred_at
            assert event.payload.national_id_hash == hash_national_id(
                national[event.payload.member_id]
            )
    replay = [envelope.event_id for _, envelope in book_events(small_book)]
    assert replay == [envelope.event_id for _, envelope in events]  # replays deduplicate


def test_the_namespace_is_the_world_for_a_synthetic_book_and_the_source_otherwise(
    small_book: LoanBook, sparse_book: LoanBook
) -> None:
    assert book_namespace(small_book) == world_namespace(
        int(small_book.meta["world_seed"]), len(small_book.members)
    )
    imported = book_namespace(sparse_book)
    assert imported == uuid.uuid5(
        uuid.NAMESPACE_URL, "https://alama.local/loanbook/csv:sparse-lender"
    )
    other = LoanBook(tables=sparse_book.tables, source="csv:another", cutoff=sparse_book.cutoff)
    assert book_namespace(other) != imported
    ids = {e.event_id for _, e in book_events(sparse_book)}
    assert ids.isdisjoint(e.event_id for _, e in book_events(other))


def test_a_runs_repayments_are_the_books_repayment_events(small_book: LoanBook) -> None:
    """History a run publishes and a replay of the whole book are the same events, byte for
    byte, so the two never double a member's repayments downstream."""
    namespace = book_namespace(small_book)
    scenario = build_scenario(small_book, 30, "ev")
    sent = {e.event_id: encode(e) for e in repayment_envelopes(scenario.repayments, namespace)}
    replayed = {
        e.event_id: encode(e) for topic, e in book_events(small_book) if topic == topics.REPAYMENTS
    }
    assert sent and all(replayed[event_id] == data for event_id, data in sent.items())


def test_repayment_envelopes_decode_with_deterministic_ids(small_book: LoanBook) -> None:
    namespace = book_namespace(small_book)
    scenario = build_scenario(small_book, 30, "ev")
    envelopes = list(repayment_envelopes(scenario.repayments, namespace))
    other = build_scenario(small_book, 30, "other")
    again = list(repayment_envelopes(other.repayments, namespace))

    assert len(envelopes) == len(scenario.repayments) > 0
    assert [e.event_id for e in envelopes] == [e.event_id for e in again]
    assert len({e.event_id for e in envelopes}) == len(envelopes)
    for envelope, row in zip(envelopes, scenario.repayments.itertuples(), strict=True):
        event = decode(envelope.SerializeToString(), RepaymentRecorded)
        assert envelope.producer == "core-banking"
        assert envelope.subject == member_key(DEV_TENANT, row.member_id)
        assert event.payload.member_id == row.member_id
        assert event.payload.tenant_id == DEV_TENANT
        assert event.payload.repayment_id == row.repayment_id
        assert event.payload.amount_paid_kes == row.amount_paid_kes
        assert event.payload.days_late == row.days_late
        assert event.occurred_at == row.recorded_at


def test_application_envelope_carries_the_run_scoped_id(small_book: LoanBook) -> None:
    namespace = book_namespace(small_book)
    first = build_scenario(small_book, 5, "runA").applications
    second = build_scenario(small_book, 5, "runB").applications

    for a, b in zip(first, second, strict=True):
        assert a.channel is not None and a.national_id is not None
        envelope = application_envelope(a, namespace)
        event = decode(envelope.SerializeToString(), LoanApplicationSubmitted)
        assert event.payload.application_id == a.application_id
        assert event.payload.product == LoanProduct.Value(f"LOAN_PRODUCT_{a.product.upper()}")
        assert event.payload.channel == Channel.Value(f"CHANNEL_{a.channel.upper()}")
        assert event.payload.national_id_hash == hash_national_id(a.national_id)
        assert a.national_id not in envelope.SerializeToString().decode(errors="replace")
        assert event.payload.applied_at.ToDatetime(tzinfo=UTC) == a.applied_at
        assert envelope.subject == a.member_id
        assert application_envelope(a, namespace).event_id == envelope.event_id
        assert application_envelope(b, namespace).event_id != envelope.event_id


def test_empty_optional_columns_travel_as_the_protos_defaults(sparse_book: LoanBook) -> None:
    """No national id, no declared income, and channels the wire cannot name (empty, agent,
    other) still make valid application events; a book without history tables has none."""
    events = list(book_events(sparse_book))
    assert {topic for topic, _ in events} == {topics.LOAN_APPLICATIONS}
    assert len(events) == len(sparse_book.applications)
    channels = dict(
        zip(
            sparse_book.applications["application_id"],
            sparse_book.applications["channel"],
            strict=True,
        )
    )
    for _, envelope in events:
        payload = decode(encode(envelope), LoanApplicationSubmitted).payload
        assert payload.national_id_hash == ""
        assert payload.declared_monthly_income_kes == 0.0
        wanted = channels[payload.application_id]
        assert payload.channel == (
            Channel.Value("CHANNEL_USSD") if wanted == "ussd" else CHANNEL_UNSPECIFIED
        )
        assert payload.amount_kes > 0 and payload.term_months > 0
