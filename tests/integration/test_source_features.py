"""Features follow the data: a loan book without mobile money or repayments but with bureau
records trains, leaves the missing features and the LSTM out, and serves through the bundle.

Runs in its own Feast project, on the real PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.common import features as F
from services.common.bundle import load_bundle
from services.common.settings import InfraSettings
from tests.integration.feast_projects import feast_project
from training import feature_tables, pipeline
from training.contract import LoanBook
from training.export import write_bundle
from training.profiles import get_profile
from training.report import write_report
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

pytestmark = pytest.mark.integration


def bureau_records(book: LoanBook, seed: int) -> pd.DataFrame:
    """CRB records for the tiny world: a written-off, 120-days-late account for each member the
    world lists with a bureau, and a few ordinary accounts for everybody (seeded)."""
    rng = np.random.default_rng(seed)
    snaps = book.profile_snapshots
    listed = set(snaps.loc[snaps["bureau_listed"] == 1, "member_id"])
    apps = book.applications
    rows = []
    for member, applied in zip(apps["member_id"], apps["applied_at"], strict=True):
        for k in range(int(rng.integers(0, 3))):
            rows.append((member, f"{member}-{k}", applied - pd.Timedelta(days=40), "open", 0, 0))
        if member in listed:
            rows.append(
                (member, f"{member}-w", applied - pd.Timedelta(days=60), "written_off", 120, 1)
            )
    frame = pd.DataFrame(
        rows, columns=["member_id", "account_id", "reported_at", "status", "dpd", "listing"]
    )
    return pd.DataFrame(
        {
            "member_id": frame["member_id"].astype(object),
            "bureau": "metropol",
            "account_id": frame["account_id"].astype(object),
            "reported_at": pd.to_datetime(frame["reported_at"], utc=True),
            "lender_type": "bank",
            "opened_at": pd.to_datetime(frame["reported_at"], utc=True) - pd.Timedelta(days=300),
            "amount_kes": pd.array([50_000.0] * len(frame), dtype="Float64"),
            "balance_kes": pd.array([20_000.0] * len(frame), dtype="Float64"),
            "arrears_kes": pd.array(
                np.where(frame["listing"] == 1, 15_000.0, 0.0), dtype="Float64"
            ),
            "days_past_due": pd.array(frame["dpd"].to_numpy(), dtype="Int64"),
            "status": frame["status"].astype(object),
            "negative_listing": pd.array(frame["listing"].to_numpy(), dtype="Int64"),
        }
    )


def test_a_source_without_sequences_trains_gbm_only_on_the_features_it_has(
    infra: InfraSettings, tmp_path: Path
) -> None:
    profile = get_profile("tiny")
    world_book = loan_book_from_world(generate_world(profile.n_members, profile.seed))
    tables = {
        name: table
        for name, table in world_book.tables.items()
        if name not in {"mobile_money", "repayments", "loans"}
    }
    tables["bureau"] = bureau_records(world_book, seed=profile.seed)
    book = LoanBook(tables=tables, source="no-sequences", cutoff=world_book.cutoff)
    with feast_project("source_features"):
        pipeline.load_into_feast(infra, book, echo=lambda _line: None)
        frame = feature_tables.training_set(infra, book)
        trained = pipeline.train(infra, profile, book, echo=lambda _line: None)
        metrics = pipeline.evaluate(trained)
    # the bureau features come out of Feast, point in time
    assert frame["bureau_negative_listings"].sum() > 0
    assert trained.lstm is None and "lstm" not in metrics["test"]
    assert trained.features.sequences == ()
    used = set(trained.features.names)
    assert not used & set(F.MOBILE_MONEY_AGGREGATES) and not used & set(F.REPAYMENT_AGGREGATES)
    assert {"bureau_negative_listings", "bureau_accounts"} <= used
    assert set(F.MOBILE_MONEY_AGGREGATES) <= set(trained.features.dropped)
    assert metrics["test"]["ensemble"]["auc"] > 0.6

    folder = write_bundle(trained, metrics, promote=True, root=tmp_path)
    write_report(trained, folder, real_data=False)  # a report without an LSTM to show
    assert "What ships" in (folder / "report.md").read_text()
    manifest = load_bundle(tmp_path / "current").manifest
    assert manifest["models"]["lstm"] is None and manifest["sequences"] == {}
    assert manifest["tabular_features"] == list(trained.features.names)
    assert not (folder / "lstm.onnx").exists()
    bundle = load_bundle(tmp_path / "current")
    rows = np.arange(300)
    inputs = F.model_inputs(frame.iloc[rows])  # the whole vocabulary, as scoring builds it
    scores = bundle.score(inputs)
    np.testing.assert_allclose(scores.probability_of_default, trained.final_pd(rows), atol=1e-5)
    contributions = bundle.contributions(inputs.tabular)
    unused = [F.TABULAR_FEATURES.index(n) for n in trained.features.dropped]
    assert np.all(contributions[:, unused] == 0)
    assert np.any(contributions[:, bundle.columns] != 0)
