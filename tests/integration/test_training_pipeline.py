"""The tiny training profile end to end on the real PostgreSQL and Redis (Feast), into a bundle.

Runs in its own Feast project and offline schema so it never touches the demo's feature data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.common import features as F
from services.common.bundle import load_bundle
from services.common.members import DEV_TENANT, member_key, split_member_key
from services.common.settings import InfraSettings
from tests.integration.feast_projects import feast_project
from training import feature_tables, pipeline
from training.export import write_bundle
from training.gbm import predict_gbm, predict_gbm_onnx
from training.lstm import predict_lstm, predict_onnx
from training.profiles import get_profile
from training.report import write_report
from training.sources.synthetic import loan_book_from_world
from training.world import World, generate_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def feast_env() -> Iterator[None]:
    with feast_project("test"):
        yield


@pytest.fixture(scope="module")
def world() -> World:
    profile = get_profile("tiny")
    return generate_world(profile.n_members, profile.seed)


@pytest.fixture(scope="module")
def training_frame(infra: InfraSettings, feast_env: None, world: World) -> pd.DataFrame:
    pipeline.load_into_feast(infra, loan_book_from_world(world), echo=lambda _line: None)
    return feature_tables.training_set(infra, loan_book_from_world(world))


def direct_features(world: World, offset: pd.Timedelta) -> pd.DataFrame:
    apps = world.applications
    as_of = pd.Series(
        (pd.to_datetime(apps["applied_at"], utc=True) + offset).to_numpy(),
        index=pd.Index(apps["member_id"].astype(str)),
    )
    return pd.concat(
        [
            F.mobile_money_features(world.mobile_money, as_of),
            F.repayment_features(world.repayments, as_of),
            F.profile_features(world.profile_snapshots, as_of),
        ],
        axis=1,
    )


def test_feast_training_set_is_point_in_time_correct(
    world: World, training_frame: pd.DataFrame
) -> None:
    assert len(training_frame) == len(world.applications)
    assert list(training_frame["application_id"]) == list(world.applications["application_id"])
    # Feast's entities are the book's tenant's members (services.common.members)
    tenants, members = zip(*map(split_member_key, training_frame["member_id"]), strict=True)
    assert set(tenants) == {DEV_TENANT}
    at = direct_features(world, pd.Timedelta(0)).loc[list(members)]
    after = direct_features(world, pd.Timedelta(days=14)).loc[list(members)]
    for column in ("mm_inflow_sum_7d", "mm_txn_count_30d", "rp_months_observed", "deposits_kes"):
        got = training_frame[column].to_numpy(dtype=float)
        np.testing.assert_allclose(got, at[column].to_numpy(dtype=float), rtol=1e-9)
    # the later snapshot differs for most members, so taking it would have failed above
    changed = training_frame["mm_inflow_sum_7d"].to_numpy() != after["mm_inflow_sum_7d"].to_numpy()
    assert changed.mean() > 0.5
    sequences = np.vstack(training_frame["mm_inflow_seq"].to_numpy())
    np.testing.assert_allclose(sequences, np.vstack(at["mm_inflow_seq"].to_numpy()))


def test_online_store_serves_each_members_latest_features(
    infra: InfraSettings, world: World, training_frame: pd.DataFrame
) -> None:
    from services.common.feast_config import FEATURE_SERVICE, open_feature_store

    store = open_feature_store(infra)
    apps = world.applications.head(20)
    rows = [
        {
            "member_id": member_key(DEV_TENANT, str(a.member_id)),
            "amount_kes": float(a.amount_kes),
            "term_months": float(a.term_months),
            "product": str(a.product),
        }
        for a in apps.itertuples()
    ]
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE), entity_rows=rows
    ).to_df()
    latest = direct_features(world, pd.Timedelta(days=14)).loc[apps["member_id"].astype(str)]
    np.testing.assert_allclose(
        online["mm_inflow_sum_30d"].to_numpy(dtype=float),
        latest["mm_inflow_sum_30d"].to_numpy(dtype=float),
    )
    np.testing.assert_allclose(
        np.vstack(online["rp_days_late_seq"].to_numpy()),
        np.vstack(latest["rp_days_late_seq"].to_numpy()),
    )
    assert np.isfinite(online["debt_service_ratio"].to_numpy(dtype=float)).all()


def test_tiny_training_writes_a_bundle_that_scores_like_training(
    infra: InfraSettings, world: World, training_frame: pd.DataFrame, tmp_path: Path
) -> None:
    profile = get_profile("tiny")
    trained = pipeline.train(infra, profile, loan_book_from_world(world), echo=lambda _line: None)
    metrics = pipeline.evaluate(trained)
    for split in ("test", "out_of_time"):
        assert set(metrics[split]) >= {
            "oracle",
            "logistic_scorecard",
            "lightgbm",
            "lstm",
            "ensemble",
        }
        for values in metrics[split].values():
            assert set(values) >= {"auc", "ks", "brier", "ece"}
    assert set(metrics["fairness"]) == {"gender", "age_band"}
    assert metrics["test"]["ensemble"]["auc"] > 0.6

    folder = write_bundle(trained, metrics, promote=True, root=tmp_path)
    assert (tmp_path / "current").resolve() == folder
    # the report a person reads is written from the same run
    write_report(trained, folder, real_data=False)
    report = (folder / "report.md").read_text()
    assert "the model that ships" in report and "Model choice" in report
    assert (folder / "model_card.md").exists() and (folder / "plots" / "roc.png").exists()
    bundle = load_bundle(tmp_path / "current")

    # ONNX against native, 1,000 rows, both models
    rows = np.arange(1000)
    x = trained.tabular[rows]
    gbm_gap = np.abs(predict_gbm(trained.gbm, x) - predict_gbm_onnx(folder / "gbm.onnx", x))
    seq = trained.sequences(rows)
    lstm_gap = np.abs(predict_lstm(trained.lstm, seq) - predict_onnx(folder / "lstm.onnx", seq))
    assert gbm_gap.max() < 1e-5 and lstm_gap.max() < 1e-5

    # the serving path (shared loader) gives training's decisions
    scores = bundle.score(F.model_inputs(training_frame.iloc[rows]))
    np.testing.assert_allclose(scores.probability_of_default, trained.final_pd(rows), atol=1e-5)
    assert scores.score.min() >= 300 and scores.score.max() <= 900
    order = np.argsort(scores.probability_of_default)
    assert (np.diff(scores.score[order]) <= 0).all(), "score must fall as PD rises"
    assert set(np.unique(scores.band)) <= {"approve", "review", "decline"}

    # the run is tracked in MLflow and the bundle registered as a model version that predicts
    import mlflow

    from training.tracking import REGISTERED_MODEL, track_run

    version = track_run(trained, metrics, tmp_path / "current", store=tmp_path / "mlflow")
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}/{version}")
    predicted = np.asarray(model.predict(training_frame.iloc[:50]))
    np.testing.assert_allclose(predicted, trained.final_pd(np.arange(50)), atol=1e-5)
    # the model version names its bundle, so the registry's aliases lead to the bundle served
    from training.registry import CHAMPION, Registry

    registry = Registry(REGISTERED_MODEL)
    assert registry.bundle_of(version) == (tmp_path / "current").resolve().name
    assert registry.promote(version, "tests", None).model_version == version
    assert registry.version_of(CHAMPION) == version

    # the run keeps the rows it was evaluated on: the promotion gate scores them again with the
    # registered bundle and gets training's PDs, and compares two versions on the same rows
    from services.common.model_registry import ModelLocator
    from training import promotion

    held = promotion.held_out_of(registry, version)
    index = np.sort(np.concatenate([trained.splits.test, trained.splits.out_of_time]))
    assert list(held.application_id) == list(trained.book.labelled["application_id"].iloc[index])
    assert set(held.groups) == {"gender", "age_band"}
    locator = ModelLocator(registry.client, bundle_root=tmp_path)
    scores = promotion.score_held_out(promotion.bundle_folder(locator, registry, version), held)
    np.testing.assert_allclose(scores.probability_of_default, trained.final_pd(index), atol=1e-5)
    again = track_run(trained, metrics, tmp_path / "current", store=tmp_path / "mlflow")
    verdict = promotion.gate_verdict(registry, locator, again, version)
    auc = verdict.result.checks[0]
    assert auc.name == "auc_vs_champion[held_out]" and auc.value == pytest.approx(0.0, abs=1e-12)
    assert verdict.rows == {"held_out": len(index)}
