"""The REST API on fake backends: every answer a caller can get, 2xx and 4xx."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry import trace

from services.common.envelope import decode
from services.common.protos.alama.events.v1.applications_pb2 import (
    CHANNEL_PARTNER_API,
    LOAN_PRODUCT_SCHOOL_FEES,
    LoanApplicationSubmitted,
)
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.protos.alama.events.v1.reviews_pb2 import (
    AppealLodged,
    ReviewKind,
    ReviewOutcome,
)
from services.common.protos.alama.explanation.v1 import explanation_pb2
from services.gateway.app import STATUS_CODES, create_app, create_operator_app
from services.gateway.clients import Backends
from services.gateway.errors import UpstreamUnavailable
from services.gateway.security import pseudonymise
from services.gateway.settings import GatewaySettings
from tests.unit.gateway.conftest import Gateway, bearer
from tests.unit.gateway.fakes import FakeEvents, FakeExplanations, FakeReplayStore, FakeScoring

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
NATIONAL_ID = "27364518"


def application(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "application_id": "A-100",
        "member_id": "M-1",
        "sacco_id": "S-1",
        "product": "school_fees",
        "amount_kes": 45_000,
        "term_months": 12,
        "national_id": NATIONAL_ID,
    }
    return body | overrides


def writer(g: Gateway) -> dict[str, str]:
    return bearer(g.settings, "score:write")


async def test_score_returns_the_decision_and_hashes_the_national_id(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores",
        json=application(),
        headers=writer(gateway) | {"traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision_id"] == "d-A-100" and body["application_id"] == "A-100"
    assert body["band"] == "approve" and body["score"] == 712
    assert body["probability_of_default"] == pytest.approx(0.04)
    assert body["reasons"] == [
        {"code": "on_time", "description": "Repaid on time for 24 months", "contribution": -0.4}
    ]
    assert body["model_version"] == "fake-1" and body["decided_at"].startswith("2026-01-05T08:30")

    (sent,) = gateway.grpc.scoring.applications
    assert sent.product == LOAN_PRODUCT_SCHOOL_FEES and sent.channel == CHANNEL_PARTNER_API
    assert sent.national_id_hash == pseudonymise(gateway.settings, NATIONAL_ID)
    assert NATIONAL_ID.encode() not in sent.SerializeToString()
    assert sent.applied_at.seconds > 0  # defaulted to now
    traceparent = gateway.grpc.scoring.metadata[0]["traceparent"]
    assert traceparent.split("-")[1] == TRACE_ID  # the caller's trace continues into scoring


async def test_an_api_key_works_like_a_token(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores", json=application(), headers={"X-API-Key": "dev-partner-key"}
    )
    assert response.status_code == 200, response.text


async def test_no_credential_is_401_with_a_challenge(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/scores", json=application())
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token or an X-API-Key" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "guessed-key"},
    ],
)
async def test_an_invalid_credential_is_401(gateway: Gateway, headers: dict[str, str]) -> None:
    response = await gateway.client.post("/v1/scores", json=application(), headers=headers)
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


async def test_an_expired_token_is_401(gateway: Gateway) -> None:
    headers = bearer(gateway.settings, "score:write", ttl=timedelta(seconds=-10))
    response = await gateway.client.post("/v1/scores", json=application(), headers=headers)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


async def test_a_missing_scope_is_403_and_admin_has_them_all(gateway: Gateway) -> None:
    reader = bearer(gateway.settings, "decisions:read")
    response = await gateway.client.post("/v1/scores", json=application(), headers=reader)
    assert response.status_code == 403
    assert "score:write" in response.json()["detail"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    admin = bearer(gateway.settings, "admin")
    response = await gateway.client.post("/v1/scores", json=application(), headers=admin)
    assert response.status_code == 200


async def test_malformed_json_is_422_with_the_reason(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores",
        content=b'{"application_id": "A-1", ',
        headers=writer(gateway) | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"member_id": None}, "member_id"),
        ({"product": "car"}, "product"),
        ({"amount_kes": 0}, "amount_kes"),
        ({"amount_kes": 10_000_001}, "amount_kes"),
        ({"term_months": 121}, "term_months"),
        ({"term_months": 0}, "term_months"),
        ({"application_id": "has space"}, "application_id"),
        ({"application_id": "x" * 65}, "application_id"),
        ({"channel": "fax"}, "channel"),
        ({"declared_monthly_income_kes": -1}, "declared_monthly_income_kes"),
        ({"applied_at": "2024-01-01T10:00:00"}, "applied_at"),  # no offset: ambiguous
        ({"applied_at": "0001-01-01T00:00:00+05:00"}, "applied_at"),
        ({"member_id": "M\u0000-1"}, "member_id"),
        ({"member_id": "   "}, "member_id"),
        ({"national_id": "27 36<script>"}, "national_id"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    gateway: Gateway, overrides: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in application(**overrides).items() if v is not None}
    response = await gateway.client.post("/v1/scores", json=body, headers=writer(gateway))
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert gateway.grpc.scoring.applications == []  # nothing reached scoring


async def test_non_finite_numbers_and_lone_surrogates_are_422(gateway: Gateway) -> None:
    for raw in (
        b'{"application_id":"A-1","member_id":"M-1","product":"asset",'
        b'"amount_kes":NaN,"term_months":6}',
        b'{"application_id":"A-1","member_id":"M-\\ud800","product":"asset",'
        b'"amount_kes":10,"term_months":6}',
    ):
        response = await gateway.client.post(
            "/v1/scores",
            content=raw,
            headers=writer(gateway) | {"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text


async def test_an_unknown_member_is_404_with_a_clear_detail(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores", json=application(member_id="M-ghost"), headers=writer(gateway)
    )
    assert response.status_code == 404
    assert "member 'M-ghost' is unknown to scoring" in response.json()["detail"]


async def test_scoring_invalid_argument_is_422_and_unavailable_is_503(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/scores", json=application(amount_kes=6_000_000), headers=writer(gateway)
    )
    assert response.status_code == 422
    assert "INVALID_APPLICATION" in response.json()["detail"][0]["msg"]
    response = await gateway.client.post(
        "/v1/scores", json=application(member_id="M-unavailable"), headers=writer(gateway)
    )
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


async def test_scoring_down_is_503(gateway: Gateway) -> None:
    await gateway.grpc.server.stop(None)
    response = await gateway.client.post("/v1/scores", json=application(), headers=writer(gateway))
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]


async def test_batch_results_keep_request_order(gateway: Gateway) -> None:
    apps = [
        application(application_id="B-1"),
        application(application_id="B-2", member_id="M-ghost"),
        application(application_id="B-3", member_id="M-2"),
    ]
    response = await gateway.client.post(
        "/v1/scores:batch", json={"applications": apps}, headers=writer(gateway)
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["application_id"] for r in results] == ["B-1", "B-2", "B-3"]
    assert results[0]["decision"]["decision_id"] == "d-B-1" and results[0]["error"] is None
    assert results[1]["decision"] is None
    assert results[1]["error"]["code"] == "unknown_member"
    assert "M-ghost" in results[1]["error"]["message"]
    assert results[2]["decision"]["member_id"] == "M-2"


async def test_a_batch_over_the_limit_is_422_naming_the_limit(gateway: Gateway) -> None:
    limit = gateway.settings.max_call_applications
    apps = [application(application_id=f"B-{i}") for i in range(limit + 1)]
    response = await gateway.client.post(
        "/v1/scores:batch", json={"applications": apps}, headers=writer(gateway)
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "applications"]
    assert f"at most {gateway.settings.max_call_applications} applications" in error["msg"]
    assert gateway.grpc.scoring.applications == []
    empty = await gateway.client.post(
        "/v1/scores:batch", json={"applications": []}, headers=writer(gateway)
    )
    assert empty.status_code == 422


async def test_an_application_is_published_and_accepted(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/applications",
        json=application(application_id="A-async"),
        headers=writer(gateway) | {"traceparent": TRACEPARENT},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "application_id": "A-async",
        "status": "accepted",
        "decision_url": "/v1/applications/A-async/decision",
    }
    assert response.headers["location"] == "/v1/applications/A-async/decision"
    (published,) = gateway.events.published
    assert published.topic == gateway.settings.applications_topic
    event = decode(published.envelope.SerializeToString(), LoanApplicationSubmitted)
    assert event.envelope.producer == "gateway" and event.envelope.subject == "M-1"
    assert event.payload.national_id_hash == pseudonymise(gateway.settings, NATIONAL_ID)
    assert NATIONAL_ID.encode() not in published.envelope.SerializeToString()
    carried = dict(published.headers)["traceparent"].decode()
    assert carried.split("-")[1] == TRACE_ID
    # a retry of the same application is the same event id: consumers deduplicate it
    again = await gateway.client.post(
        "/v1/applications", json=application(application_id="A-async"), headers=writer(gateway)
    )
    assert again.status_code == 202
    assert gateway.events.published[1].envelope.event_id == event.event_id


async def test_an_application_when_kafka_is_down_is_503(gateway: Gateway) -> None:
    gateway.events.down = True
    response = await gateway.client.post(
        "/v1/applications", json=application(), headers=writer(gateway)
    )
    assert response.status_code == 503


async def test_decisions_and_explanations_come_from_the_explanation_service(
    gateway: Gateway,
) -> None:
    reader = bearer(gateway.settings, "decisions:read", "explanations:read")
    by_application = await gateway.client.get("/v1/applications/A-stored/decision", headers=reader)
    assert by_application.status_code == 200, by_application.text
    assert by_application.json()["decision_id"] == "d-A-stored"
    by_id = await gateway.client.get("/v1/decisions/d-A-stored", headers=reader)
    assert by_id.json() == by_application.json()
    explanation = await gateway.client.get("/v1/decisions/d-A-stored/explanation", headers=reader)
    assert explanation.status_code == 200, explanation.text
    body = explanation.json()
    assert body["contributions"] == [
        {
            "feature": "late_repayments_6m",
            "value": 0.0,
            "contribution": -0.4,
            "explainer": "tree_shap",
        }
    ]
    assert len(body["repayment_attention"]) == 24 and body["mobile_money_attention"] == [0.5, 0.5]
    assert body["reasons"][0]["code"] == "on_time"


async def test_a_reviewed_decision_reports_the_outcome_that_stands(gateway: Gateway) -> None:
    reader = bearer(gateway.settings, "decisions:read")
    before = (await gateway.client.get("/v1/decisions/d-A-stored", headers=reader)).json()
    assert before["review"] is None
    review = ReviewOutcome(
        review_id="r-1",
        decision_id="d-A-stored",
        final_band=DecisionBand.DECISION_BAND_DECLINE,
        reason_codes=["REVIEW_ARREARS"],
        second_reviewer_id="bob",
        kind=ReviewKind.REVIEW_KIND_BAND,
        justification="not shown to partners",
    )
    review.reviewed_at.FromDatetime(datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    gateway.grpc.explanations.reviews["d-A-stored"] = review
    after = (await gateway.client.get("/v1/decisions/d-A-stored", headers=reader)).json()
    assert after["band"] == before["band"]  # the model's band stays what the model said
    assert after["review"] == {
        "review_id": "r-1",
        "band": "decline",
        "kind": "band",
        "reason_codes": ["REVIEW_ARREARS"],
        "reviewed_at": "2026-11-29T08:00:00Z",
        "four_eyes": True,
    }


async def test_a_partner_lodges_a_members_appeal_which_goes_to_the_appeals_topic(
    gateway: Gateway,
) -> None:
    grounds = "The member's salary is paid into a second account.\nStatement attached."
    response = await gateway.client.post(
        "/v1/decisions/d-A-stored/appeals", json={"grounds": grounds}, headers=writer(gateway)
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["decision_id"] == "d-A-stored" and body["status"] == "lodged"
    [published] = gateway.events.published
    assert published.topic == gateway.settings.appeals_topic
    appeal = decode(published.envelope.SerializeToString(), AppealLodged).payload
    assert (appeal.appeal_id, appeal.decision_id, appeal.application_id) == (
        body["appeal_id"],
        "d-A-stored",
        "A-stored",
    )
    assert (appeal.channel, appeal.lodged_by, appeal.grounds) == ("api", "officer-1", grounds)
    assert appeal.tenant_id == "dev-sacco"

    for decision_id, headers, body_json, status in (
        ("nope", writer(gateway), {"grounds": grounds}, 404),
        (
            "d-A-stored",
            bearer(gateway.settings, "score:write", tenant="t2"),
            {"grounds": grounds},
            404,
        ),
        ("d-A-stored", writer(gateway), {"grounds": "too short"}, 422),
        ("d-A-stored", writer(gateway), {"grounds": grounds + "\x00"}, 422),
        ("d-A-stored", bearer(gateway.settings, "decisions:read"), {"grounds": grounds}, 403),
    ):
        refused = await gateway.client.post(
            f"/v1/decisions/{decision_id}/appeals", json=body_json, headers=headers
        )
        assert refused.status_code == status, (decision_id, body_json, refused.text)
    assert len(gateway.events.published) == 1


async def test_a_decline_has_a_members_notice_in_english_and_kiswahili_as_json_and_pdf(
    gateway: Gateway,
) -> None:
    reader = bearer(gateway.settings, "decisions:read")
    stored = gateway.grpc.explanations.decisions["d-A-stored"]
    if stored.band == DecisionBand.DECISION_BAND_DECLINE:  # the fake decides by a rule
        stored.band = DecisionBand.DECISION_BAND_APPROVE
    not_declined = await gateway.client.get("/v1/decisions/d-A-stored/notice", headers=reader)
    assert not_declined.status_code == 404 and "not a decline" in not_declined.json()["detail"]

    stored.band = DecisionBand.DECISION_BAND_DECLINE
    stored.features["rp_late_count_6m"] = 3.0
    stored.features["n_guarantors"] = 0.0
    del stored.reasons[:]
    for code in ("rp_late_count_6m", "n_guarantors"):
        stored.reasons.add(code=code, description="as scored", contribution=0.3)
    gateway.grpc.explanations.changes["d-A-stored"] = [
        explanation_pb2.OutcomeChange(
            feature="amount_kes", en="Borrowing KES 1 less would do.", sw="Kukopa KES 1 pungufu."
        )
    ]
    response = await gateway.client.get("/v1/decisions/d-A-stored/notice", headers=reader)
    assert response.status_code == 200, response.text
    notice = response.json()
    assert notice["changes"] == [
        {
            "feature": "amount_kes",
            "en": "Borrowing KES 1 less would do.",
            "sw": "Kukopa KES 1 pungufu.",
        }
    ]
    assert [(r["en"], r["sw"]) for r in notice["reasons"]] == [
        (
            "3 late repayments in the last 6 months",
            "malipo 3 yaliyochelewa katika miezi 6 iliyopita",
        ),
        ("no guarantors", "hakuna wadhamini"),
    ]
    assert "appeal" in notice["how_to_appeal"]["en"] and "rufaa" in notice["how_to_appeal"]["sw"]
    pdf = await gateway.client.get("/v1/decisions/d-A-stored/notice.pdf", headers=reader)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    for text in (b"3 late repayments in the last 6 months", b"hakuna wadhamini", b"rufaa"):
        assert text in pdf.content
    other = bearer(gateway.settings, "decisions:read", tenant="t2")
    assert (
        await gateway.client.get("/v1/decisions/d-A-stored/notice", headers=other)
    ).status_code == 404


async def test_unknown_decisions_are_404(gateway: Gateway) -> None:
    reader = bearer(gateway.settings, "decisions:read", "explanations:read")
    pending = await gateway.client.get("/v1/applications/A-pending/decision", headers=reader)
    assert pending.status_code == 404
    assert pending.json()["detail"].startswith("no decision for application 'A-pending' yet")
    assert (await gateway.client.get("/v1/decisions/nope", headers=reader)).status_code == 404
    missing = await gateway.client.get("/v1/decisions/nope/explanation", headers=reader)
    assert missing.status_code == 404
    bad_id = await gateway.client.get("/v1/decisions/has%20space", headers=reader)
    assert bad_id.status_code == 422


async def test_explanations_need_their_own_scope(gateway: Gateway) -> None:
    reader = bearer(gateway.settings, "decisions:read")
    response = await gateway.client.get("/v1/decisions/d-A-stored/explanation", headers=reader)
    assert response.status_code == 403
    writer_only = await gateway.client.get("/v1/decisions/d-A-stored", headers=writer(gateway))
    assert writer_only.status_code == 403


async def test_health_readiness_and_metrics_by_route_template(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).status_code == 200
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"kafka": "ok", "redis": "ok", "scoring": "ok"}
    reader = bearer(gateway.settings, "decisions:read")
    await gateway.client.get("/v1/decisions/d-A-stored", headers=reader)
    async with operator_client(gateway) as operator:
        metrics = (await operator.get("/metrics")).text
    assert (
        'alama_http_requests_total{method="GET",route="/v1/decisions/{decision_id}",status="200"}'
        in metrics
    )
    assert "d-A-stored" not in metrics  # labelled by template, never the raw path
    assert "alama_http_request_seconds_bucket" in metrics
    assert 'alama_gateway_upstream_seconds_count{method="GetDecision"' in metrics

    gateway.events.down = True
    down = await gateway.client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["kafka"].startswith("error")
    assert down.json()["checks"]["redis"] == "ok"


async def test_readiness_reports_scoring_down(gateway: Gateway) -> None:
    await gateway.grpc.server.stop(None)
    response = await gateway.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["scoring"].startswith("error")


async def test_readiness_names_what_failed_but_never_where(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unreachable() -> None:
        raise UpstreamUnavailable(
            "kafka unreachable: KafkaConnectionError('Unable to bootstrap from"
            " [('kafka-0.kafka.credit.svc.cluster.local', 9092, <AddressFamily.AF_INET: 2>)]')"
        )

    async def refused() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('10.0.3.7', 16379)")

    monkeypatch.setattr(gateway.events, "ping", unreachable)
    monkeypatch.setattr(gateway.replay, "ping", refused)
    with caplog.at_level(logging.WARNING, logger="services.gateway.routes.health"):
        response = await gateway.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "kafka": "error: unavailable",
        "redis": "error: unavailable",
        "scoring": "ok",
    }
    for internal in ("kafka-0", "svc.cluster.local", "9092", "10.0.3.7", "16379", "Error"):
        assert internal not in response.text
    # the operator still finds the reason, in the log
    assert any("kafka-0.kafka.credit" in getattr(r, "error", "") for r in caplog.records)


@asynccontextmanager
async def operator_client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_operator_app(gateway.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway:9101") as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]
)
async def test_metrics_and_docs_are_not_on_the_public_port(gateway: Gateway, path: str) -> None:
    assert (await gateway.client.get(path)).status_code == 404
    admin = bearer(gateway.settings, "admin")
    assert (await gateway.client.get(path, headers=admin)).status_code == 404
    async with operator_client(gateway) as operator:
        assert (await operator.get(path)).status_code == 200


async def test_the_operator_port_serves_nothing_else(gateway: Gateway) -> None:
    reader = bearer(gateway.settings, "decisions:read")
    async with operator_client(gateway) as operator:
        for path in ("/v1/decisions/d-A-stored", "/healthz", "/readyz"):
            assert (await operator.get(path, headers=reader)).status_code == 404, path


async def test_the_lifespan_serves_the_operator_port_and_closes_it(
    settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_backends(_settings: GatewaySettings) -> Backends:
        return Backends(
            scoring=FakeScoring(),
            explanations=FakeExplanations(),
            events=FakeEvents(),
            replay=FakeReplayStore(),
        )

    with socket.socket() as probe:  # a free port for the operator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr("services.gateway.app.open_backends", fake_backends)
    app = create_app(settings.model_copy(update={"metrics_port": port}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as operator:
            metrics = await operator.get("/metrics")
            assert metrics.status_code == 200
            assert "alama_http_requests_total" in metrics.text
            schema = (await operator.get("/openapi.json")).json()
            assert "/v1/scores" in schema["paths"]
            assert (await operator.get("/docs")).status_code == 200
        public = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        async with public:
            assert (await public.get("/metrics")).status_code == 404
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as operator:
            await operator.get("/metrics")


async def test_a_taken_operator_port_fails_the_start(
    settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[bool] = []

    async def fake_backends(_settings: GatewaySettings) -> Backends:
        opened.append(True)
        raise AssertionError("the backends are not opened when the operator port is taken")

    monkeypatch.setattr("services.gateway.app.open_backends", fake_backends)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        app = create_app(settings.model_copy(update={"metrics_port": taken.getsockname()[1]}))
        with pytest.raises(OSError):
            async with app.router.lifespan_context(app):
                pass
    assert not opened


async def test_openapi_documents_every_route_and_the_security_schemes(gateway: Gateway) -> None:
    async with operator_client(gateway) as operator:
        schema = (await operator.get("/openapi.json")).json()
        assert (await operator.get("/docs")).status_code == 200
    assert {
        "/v1/scores",
        "/v1/scores:batch",
        "/v1/applications",
        "/v1/applications/{application_id}/decision",
        "/v1/decisions/{decision_id}",
        "/v1/decisions/{decision_id}/explanation",
        "/v1/webhooks/mobile-money",
        "/healthz",
        "/readyz",
    } <= set(schema["paths"])
    assert "/metrics" not in schema["paths"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    webhook = schema["paths"]["/v1/webhooks/mobile-money"]["post"]["requestBody"]
    ref = webhook["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "transactions" in schema["components"]["schemas"][ref]["properties"]


def test_every_domain_error_has_a_status() -> None:
    from services.gateway import errors

    domain = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.GatewayError)
        and cls is not errors.GatewayError
    }
    assert domain == set(STATUS_CODES)


def test_tracer_is_not_installed_by_create_app(settings: GatewaySettings) -> None:
    from services.gateway.app import create_app

    provider = trace.get_tracer_provider()
    create_app(settings)
    assert trace.get_tracer_provider() is provider
