"""The shadow comparison's numbers mean what training, drift and the gate mean by them: PSI as
drift computes it against a bundle's reference, fairness as training's fairness report, AUC as
scikit-learn; the gate's rows are exactly the matured pairs of one champion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.common.decision import DecisionBands
from services.common.model_metrics import expected_calibration_error
from services.common.psi import ReferenceBins, population_stability
from services.outcomes.shadow import (
    ShadowPair,
    agreement,
    band_switches,
    compare,
    compare_all,
    gate_pairs,
    shadow_psi,
)
from services.outcomes.shadow_report import plain, report_html, report_json
from training.bundles import reference_distribution
from training.evaluate import fairness_report

BANDS = DecisionBands(approve_below_pd=0.12, decline_at_or_above_pd=0.3)
GENDERS = ("female", "male")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


def _pairs(
    n: int,
    seed: int = 11,
    tenant: str = "t1",
    champion: str = "champ",
    challenger: str = "chall",
    shift: float = 0.0,
    matured_share: float = 0.6,
) -> list[ShadowPair]:
    """A seeded book: a true PD, two noisy models of it (the challenger shifted by `shift` on
    the log-odds), outcomes drawn from the truth for a share of applications."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.2, 0.9, n)
    truth = 1 / (1 + np.exp(-logit))
    a = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, n))))
    b = 1 / (1 + np.exp(-(logit + shift + rng.normal(0, 0.4, n))))
    defaulted = rng.random(n) < truth
    matured = rng.random(n) < matured_share
    genders = rng.choice(GENDERS, n)
    ages = rng.choice(AGE_BANDS, n)
    a_band, b_band = BANDS.band(a), BANDS.band(b)
    return [
        ShadowPair(
            tenant_id=tenant,
            application_id=f"app-{i}",
            champion=champion,
            challenger=challenger,
            champion_pd=float(a[i]),
            challenger_pd=float(b[i]),
            champion_band=str(a_band[i]),
            challenger_band=str(b_band[i]),
            gender=str(genders[i]),
            age_band=str(ages[i]),
            defaulted=bool(defaulted[i]) if matured[i] else None,
        )
        for i in range(n)
    ]


def test_agreement_and_switches_count_every_pair_once() -> None:
    pairs = _pairs(3_000, shift=0.4)
    a = [p.champion_band for p in pairs]
    b = [p.challenger_band for p in pairs]
    matrix = band_switches(a, b)
    assert list(matrix) == ["approve", "review", "decline"]
    assert all(list(row) == list(matrix) for row in matrix.values())
    assert sum(sum(row.values()) for row in matrix.values()) == len(pairs)
    diagonal = sum(matrix[x][x] for x in matrix)
    assert agreement(a, b) == pytest.approx(diagonal / len(pairs))
    # a challenger that sees more risk moves applications towards decline, not back
    upward = matrix["approve"]["review"] + matrix["review"]["decline"]
    assert upward > matrix["review"]["approve"] + matrix["decline"]["review"]


def test_psi_is_drifts_psi_against_the_champions_decile_reference() -> None:
    pairs = _pairs(5_000, shift=0.5)
    a = np.array([p.champion_pd for p in pairs])
    b = np.array([p.challenger_pd for p in pairs])
    reference = reference_distribution(a)  # as a bundle stores its score reference
    expected = population_stability(
        b, ReferenceBins.from_lists(reference["edges"], reference["proportions"])
    )
    assert shadow_psi(a, b) == pytest.approx(expected, rel=1e-12)
    assert shadow_psi(a, b) > 0.1
    assert shadow_psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(shadow_psi([], []))


def test_fairness_is_trainings_fairness_report_on_the_same_rows() -> None:
    pairs = _pairs(4_000, matured_share=1.0)  # every loan matured: one set of rows for both
    c = compare(pairs)
    y = np.array([bool(p.defaulted) for p in pairs], dtype=int)
    for which in ("champion", "challenger"):
        approved = np.array([getattr(p, f"{which}_band") == "approve" for p in pairs], dtype=int)
        expected = fairness_report(
            y,
            approved,
            {
                "gender": np.array([p.gender for p in pairs]),
                "age_band": np.array([p.age_band for p in pairs]),
            },
        )
        for f in c.fairness:
            mine = getattr(f, which)
            theirs = expected[f.attribute]
            assert mine.disparate_impact == pytest.approx(theirs["disparate_impact_ratio"])
            assert mine.equal_opportunity == pytest.approx(theirs["equal_opportunity_difference"])
            for group, rates in theirs["groups"].items():
                assert mine.approval_rate[group] == pytest.approx(rates["approval_rate"])
                assert mine.good_approval_rate[group] == pytest.approx(rates["tpr"])
                assert f.applications[group] == rates["n"]


def test_equal_opportunity_uses_matured_loans_and_unknown_groups_are_left_out() -> None:
    pairs = _pairs(2_000, matured_share=0.5)
    blank = [
        ShadowPair(**{**p.__dict__, "gender": ""}) if i % 10 == 0 else p
        for i, p in enumerate(pairs)
    ]
    gender = compare(blank).fairness[0]
    assert gender.attribute == "gender" and set(gender.applications) == set(GENDERS)
    assert sum(gender.applications.values()) == len(pairs) - len(pairs[::10])
    known = [p for i, p in enumerate(pairs) if i % 10 and p.defaulted is False]
    female = [p for p in known if p.gender == "female"]
    assert gender.challenger.good_approval_rate["female"] == pytest.approx(
        np.mean([p.challenger_band == "approve" for p in female])
    )


def test_auc_and_ece_on_matured_loans_with_intervals() -> None:
    pairs = _pairs(3_000, shift=0.3)
    c = compare(pairs)
    matured = [p for p in pairs if p.defaulted is not None]
    y = np.array([p.defaulted for p in matured], dtype=float)
    b = np.array([p.challenger_pd for p in matured])
    assert (c.matured, c.defaults) == (len(matured), int(y.sum()))
    auc = c.challenger_on_matured.auc
    assert auc.value == pytest.approx(roc_auc_score(y, b))
    assert auc.value is not None and auc.low is not None and auc.high is not None
    assert auc.low < auc.value < auc.high
    assert c.challenger_on_matured.ece.value == pytest.approx(expected_calibration_error(y, b))
    # shifted up by 0.3 on the log-odds, the challenger over-predicts: worse calibrated
    assert c.challenger_on_matured.ece.value > c.champion_on_matured.ece.value  # type: ignore[operator]


def test_nothing_matured_yet_measures_nothing_but_still_compares() -> None:
    c = compare(_pairs(500, matured_share=0.0))
    assert c.matured == 0 and c.champion_on_matured.auc.value is None
    assert all(f.champion.equal_opportunity is None for f in c.fairness)
    assert c.paired == 500 and 0 < c.agreement <= 1


def test_comparisons_are_per_tenant_champion_and_challenger_and_never_a_model_with_itself() -> None:
    pairs = [
        *_pairs(300, tenant="t1"),
        *_pairs(200, seed=3, tenant="t2"),
        *_pairs(100, seed=4, tenant="t1", champion="chall"),
    ]
    found = compare_all(pairs)
    assert [(c.tenant_id, c.champion, c.challenger, c.paired) for c in found] == [
        ("t1", "champ", "chall", 300),
        ("t2", "champ", "chall", 200),
    ]
    with pytest.raises(ValueError):
        compare([*_pairs(10, tenant="t1"), *_pairs(10, tenant="t2")])


def test_gate_rows_are_the_matured_pairs_beside_the_main_champion() -> None:
    pairs = [*_pairs(400), *_pairs(50, seed=5, champion="older")]
    result = gate_pairs(pairs, "chall")
    assert (result.challenger, result.champion) == ("chall", "champ")
    mine = [p for p in pairs[:400] if p.defaulted is not None]
    assert len(result.rows) == len(mine)
    assert [r.challenger_pd for r in result.rows] == [p.challenger_pd for p in mine]
    row = plain(result.rows[0])
    assert set(row) == {
        "defaulted",
        "champion_pd",
        "challenger_pd",
        "champion_band",
        "challenger_band",
        "gender",
        "age_band",
    }
    assert plain(gate_pairs(pairs, "nobody")) == {
        "challenger": "nobody",
        "champion": "",
        "rows": [],
    }


def test_the_report_is_json_without_nan_and_html_without_outside_resources() -> None:
    from datetime import UTC, datetime

    found = compare_all(_pairs(300, matured_share=0.0))
    now = datetime(2026, 7, 1, tzinfo=UTC)
    body = json.dumps(report_json(found, now), allow_nan=False)
    assert json.loads(body)["comparisons"][0]["switches"]["approve"]["approve"] >= 0
    page = report_html(found, now)
    assert "t1: chall (challenger) beside champ (champion)" in page
    assert "Fairness by gender" in page and "Band switches" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "No challenger" in report_html([], now)
