"""The disbursement phase: decisions learnt from the gateway, then LoanDisbursed on core.loans and
the instalments on core.repayments, as core banking publishes them (a recording producer, no
broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC

import httpx
from pydantic import SecretStr

from services.common import topics
from services.common.envelope import decode
from services.common.members import member_key
from services.common.protos.alama.events.v1.loans_pb2 import LoanDisbursed
from services.common.protos.alama.events.v1.repayments_pb2 import RepaymentRecorded
from simulator.events import book_namespace, loan_envelope, loan_event_id
from simulator.loans import synthesize_loan
from simulator.run import LiveStatus, SimulationOptions, _disburse
from simulator.scenario import build_scenario, repayment_id
from simulator.senders import GatewayClient, KafkaCoreBanking, Outcome
from simulator.settings import SimulatorSettings
from training.contract import LoanBook


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: object = None
    ) -> asyncio.Future[object]:
        self.sent.append((topic, value, key))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_a_loan_envelope_is_core_bankings_loan_disbursed(small_book: LoanBook) -> None:
    application = build_scenario(small_book, 1, "env").applications[0]
    loan = synthesize_loan(application, defaulted=False)
    namespace = uuid.uuid4()
    envelope = loan_envelope(loan, namespace, "sacco-a")
    event = decode(envelope.SerializeToString(), LoanDisbursed)
    assert envelope.producer == "core-banking"
    assert envelope.subject == member_key("sacco-a", application.member_id)
    assert envelope.event_id == loan_event_id(namespace, loan.loan_id)
    assert event.occurred_at == loan.disbursed_at
    payload = event.payload
    assert (payload.loan_id, payload.application_id, payload.member_id, payload.tenant_id) == (
        loan.loan_id,
        application.application_id,
        application.member_id,
        "sacco-a",
    )
    assert payload.principal_kes == application.amount_kes
    assert payload.term_months == application.term_months
    assert payload.disbursed_at.ToDatetime(tzinfo=UTC) == loan.disbursed_at


async def test_approved_applications_get_a_loan_and_their_instalments(
    small_book: LoanBook,
) -> None:
    scenario = build_scenario(small_book, 8, "disb")
    ids = [a.application_id for a in scenario.applications]
    bands = ["approve", "decline", "review", "review", None, "approve", "approve", "decline"]
    review_bands = {2: "approve", 3: None}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        index = next((n for n, i in enumerate(ids) if i in path), None)
        if index is None or bands[index] is None:
            return httpx.Response(404, json={"detail": "not decided yet"})
        review = review_bands.get(index)
        body = {
            "decision_id": f"dec-{ids[index]}",
            "band": bands[index],
            "review": {"band": review} if path.startswith("/v1/decisions/") and review else None,
        }
        return httpx.Response(200, json=body)

    answers = {i: Outcome(accepted=True, status="202") for i in ids[:-1]}
    answers[ids[-1]] = Outcome(accepted=False, status="422", count=0)  # never taken
    producer = RecordingProducer()
    settings = SimulatorSettings(api_key=SecretStr("k"), decision_poll_seconds=0.01)
    namespace = book_namespace(small_book)
    core_banking = KafkaCoreBanking(
        producer,  # type: ignore[arg-type]
        namespace,
        applications_topic=topics.LOAN_APPLICATIONS,
        repayments_topic=topics.REPAYMENTS,
        loans_topic=topics.LOANS,
        tenant="sacco-a",
    )
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://gateway"
    ) as client:
        gateway = GatewayClient(client, api_key="k", webhook_secret="s")
        summary = await _disburse(
            gateway,
            core_banking,
            small_book,
            scenario,
            answers,
            SimulationOptions(decision_wait_seconds=0.05),
            settings,
            LiveStatus(),
        )

    funded = [ids[0], ids[2], ids[5], ids[6]]
    assert summary.verdicts == {
        "approved": 3,
        "declined": 1,
        "approved_on_review": 1,
        "in_review": 1,
        "undecided": 2,  # no decision yet, and the one the gateway refused
    }
    assert summary.funded == summary.synthesized == 4 and summary.from_book == 0
    assert summary.unsettled == 3
    assert summary.loans.accepted == 4 and not summary.loans.errors

    by_topic = Counter(topic for topic, _, _ in producer.sent)
    assert by_topic[topics.LOANS] == 4
    assert by_topic[topics.REPAYMENTS] == summary.instalments.accepted > 0
    loans = [
        decode(value, LoanDisbursed).payload
        for topic, value, _ in producer.sent
        if topic == topics.LOANS
    ]
    assert [loan.application_id for loan in loans] == funded
    assert {loan.loan_id for loan in loans} == {f"L-{i}" for i in funded}
    assert all(loan.tenant_id == "sacco-a" for loan in loans)
    repayments = [
        (decode(value, RepaymentRecorded).payload, key)
        for topic, value, key in producer.sent
        if topic == topics.REPAYMENTS
    ]
    assert {r.loan_id for r, _ in repayments} == {loan.loan_id for loan in loans}
    for r, key in repayments:
        assert r.tenant_id == "sacco-a"
        assert key == member_key("sacco-a", r.member_id).encode()  # keyed like repayments
        assert r.repayment_id == repayment_id(r.loan_id, r.due_date.ToDatetime(tzinfo=UTC))
