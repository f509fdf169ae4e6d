"""Who gets a loan: approved, or approved on review; not declined, still in review or undecided
when the bounded wait ends. Decisions are learnt from a fake gateway, and from the gateway
client's real requests against a mock transport."""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx

from simulator.approvals import DecisionView, Verdict, learn_verdicts, verdict_of
from simulator.run import funded_applications
from simulator.scenario import build_scenario
from simulator.senders import GatewayClient
from training.contract import LoanBook


class FakeGateway:
    """Answers by round: `decisions[app][k]` is what the k-th ask of that application reads
    (the last answer repeats); `reviews[decision_id]` the same for the decision route."""

    def __init__(
        self,
        decisions: dict[str, Sequence[DecisionView | None]],
        reviews: dict[str, Sequence[DecisionView | None]] | None = None,
    ) -> None:
        self.decisions = decisions
        self.reviews = reviews or {}
        self.asked: list[str] = []

    @staticmethod
    def _nth(answers: Sequence[DecisionView | None], n: int) -> DecisionView | None:
        return answers[min(n, len(answers) - 1)] if answers else None

    async def application_decision(self, application_id: str) -> DecisionView | None:
        n = self.asked.count(application_id)
        self.asked.append(application_id)
        return self._nth(self.decisions.get(application_id, ()), n)

    async def reviewed_decision(self, decision_id: str) -> DecisionView | None:
        n = self.asked.count(decision_id)
        self.asked.append(decision_id)
        return self._nth(self.reviews.get(decision_id, ()), n)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def view(decision_id: str, band: str, review: str | None = None) -> DecisionView:
    return DecisionView(decision_id=decision_id, band=band, review_band=review)


async def test_approved_and_approved_on_review_are_funded_the_rest_not() -> None:
    gateway = FakeGateway(
        decisions={
            "approve": [view("d1", "approve")],
            "decline": [view("d2", "decline")],
            "reviewed-yes": [view("d3", "review")],
            "reviewed-no": [view("d4", "review")],
            "late": [None, None, view("d5", "approve")],  # decided on the third ask
            "waiting": [view("d6", "review")],  # nobody reviews it
            "never": [None],
        },
        reviews={
            "d3": [view("d3", "review"), view("d3", "review", "approve")],
            "d4": [view("d4", "review", "decline")],
        },
    )
    time = FakeTime()
    verdicts = await learn_verdicts(
        gateway,
        ["approve", "decline", "reviewed-yes", "reviewed-no", "late", "waiting", "never"],
        within=10.0,
        interval=1.0,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert verdicts == {
        "approve": Verdict.APPROVED,
        "decline": Verdict.DECLINED,
        "reviewed-yes": Verdict.APPROVED_ON_REVIEW,
        "reviewed-no": Verdict.DECLINED_ON_REVIEW,
        "late": Verdict.APPROVED,
        "waiting": Verdict.IN_REVIEW,
        "never": Verdict.UNDECIDED,
    }
    assert {v for v in verdicts.values() if v.funded} == {
        Verdict.APPROVED,
        Verdict.APPROVED_ON_REVIEW,
    }
    assert time.now == 10.0  # the wait is bounded: it gave up on the two still pending
    assert gateway.asked.count("approve") == 1  # a settled application is not asked again
    assert gateway.asked.count("d6") == 11  # the review waited on: asked every round


async def test_a_synchronous_answer_is_not_asked_again_unless_it_waits_on_a_review() -> None:
    gateway = FakeGateway(decisions={}, reviews={"d2": [view("d2", "review", "approve")]})
    verdicts = await learn_verdicts(
        gateway,
        ["sync-approve", "sync-review"],
        known={"sync-approve": view("d1", "approve"), "sync-review": view("d2", "review")},
        within=0.0,
    )
    assert verdicts == {
        "sync-approve": Verdict.APPROVED,
        "sync-review": Verdict.APPROVED_ON_REVIEW,
    }
    assert gateway.asked == ["d2"]


async def test_nothing_to_wait_for_returns_at_once() -> None:
    time = FakeTime()
    assert await learn_verdicts(FakeGateway({}), [], clock=time.clock, sleep=time.sleep) == {}
    assert time.now == 0.0


def test_verdicts_of_bands() -> None:
    assert verdict_of(None) is Verdict.UNDECIDED
    assert verdict_of(view("d", "unspecified")) is Verdict.UNSPECIFIED
    assert not Verdict.UNSPECIFIED.funded and Verdict.UNSPECIFIED.settled
    assert verdict_of(view("d", "review", "review")) is Verdict.IN_REVIEW


def test_only_funded_applications_get_a_loan_in_send_order(small_book: LoanBook) -> None:
    applications = build_scenario(small_book, 6, "fund").applications
    ids = [a.application_id for a in applications]
    verdicts = {
        ids[0]: Verdict.APPROVED,
        ids[1]: Verdict.DECLINED,
        ids[2]: Verdict.APPROVED_ON_REVIEW,
        ids[3]: Verdict.IN_REVIEW,
        ids[4]: Verdict.UNDECIDED,
    }  # ids[5] was never sent (absent): undecided
    funded = funded_applications(applications, verdicts)
    assert [a.application_id for a in funded] == [ids[0], ids[2]]


DECISION = {
    "decision_id": "dec-1",
    "application_id": "app-1",
    "member_id": "M1",
    "probability_of_default": 0.1,
    "score": 700,
    "band": "review",
    "reasons": [],
    "model_version": "v1",
    "decided_at": "2025-01-01T00:00:00Z",
    "review": None,
}


async def test_the_gateway_client_reads_the_decision_routes(small_book: LoanBook) -> None:
    paths: list[tuple[str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append((request.method, request.url.path, request.headers.get("x-api-key")))
        if request.url.path == "/v1/applications/app-1/decision":
            return httpx.Response(200, json=DECISION)
        if request.url.path == "/v1/decisions/dec-1":
            reviewed = DECISION | {"review": {"band": "approve", "review_id": "r1"}}
            return httpx.Response(200, json=reviewed)
        if request.url.path == "/v1/scores":
            body = json.loads(request.content)
            return httpx.Response(200, json=DECISION | {"application_id": body["application_id"]})
        return httpx.Response(404, json={"detail": "not decided yet"})

    application = build_scenario(small_book, 1, "sync").applications[0]
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://gateway"
    ) as client:
        gateway = GatewayClient(client, api_key="k", webhook_secret="s")
        assert await gateway.application_decision("app-1") == view("dec-1", "review")
        assert await gateway.application_decision("app-2") is None
        assert await gateway.reviewed_decision("dec-1") == view("dec-1", "review", "approve")
        scored = await gateway.score(application)
    assert scored.accepted and scored.decision == view("dec-1", "review")
    assert paths == [
        ("GET", "/v1/applications/app-1/decision", "k"),
        ("GET", "/v1/applications/app-2/decision", "k"),
        ("GET", "/v1/decisions/dec-1", "k"),
        ("POST", "/v1/scores", "k"),
    ]
