"""Oversight numbers: bootstrap intervals of approval rates and disparate impact, and the PSI
read from the drift service's metrics page."""

from __future__ import annotations

import pytest

from services.console.oversight import group_rates, parse_psi


def test_group_rates_have_intervals_around_them_and_flag_a_clear_gap() -> None:
    rows = [
        {"grp": "female", "n": 2000, "approved": 800},  # 40 %
        {"grp": "male", "n": 2000, "approved": 1200},  # 60 %: the reference
        {"grp": "other", "n": 0, "approved": 0},  # nobody: left out
    ]
    rates = {r.group: r for r in group_rates(rows)}
    assert set(rates) == {"female", "male"}
    female, male = rates["female"], rates["male"]
    assert female.rate == 0.4 and female.rate_low < 0.4 < female.rate_high
    assert 0.37 < female.rate_low and female.rate_high < 0.43  # ~±2.1 points at n=2000
    assert male.di == 1.0 and not male.flagged
    assert abs((female.di or 0) - 2 / 3) < 1e-9
    assert female.di_high is not None and female.di_high < 0.8 and female.flagged


def test_a_small_group_is_not_flagged_on_noise() -> None:
    rows = [{"grp": "18-24", "n": 12, "approved": 5}, {"grp": "35-44", "n": 3000, "approved": 1800}]
    young = next(r for r in group_rates(rows) if r.group == "18-24")
    assert young.di is not None and young.di < 0.8  # 0.42 / 0.60 = 0.69
    assert young.di_low is not None and young.di_low < 0.8 < (young.di_high or 0)
    assert not young.flagged  # the interval straddles the band: no finding on 12 decisions


def test_psi_is_read_from_the_drift_services_metrics_page() -> None:
    page = """# HELP alama_drift_psi Population stability index
# TYPE alama_drift_psi gauge
alama_drift_psi{subject="score",model_version="v1"} 0.04
alama_drift_psi{subject="amount_kes",model_version="v1"} 0.31
# TYPE alama_drift_window_fill gauge
alama_drift_window_fill{model_version="v1"} 1.0
"""
    psi = parse_psi(page)
    assert [(p.subject, p.value) for p in psi] == [("amount_kes", 0.31), ("score", 0.04)]


def test_equal_opportunity_is_the_largest_tpr_gap_with_an_interval() -> None:
    from services.console.oversight import equal_opportunity

    rows = [
        {"grp": "female", "good": 800, "approved": 560},  # 0.70
        {"grp": "male", "good": 900, "approved": 720},  # 0.80
        {"grp": "other", "good": 0, "approved": 0},  # no good borrowers: left out
    ]
    opp = equal_opportunity(rows)
    assert [g.group for g in opp.groups] == ["female", "male"]
    assert opp.eod == pytest.approx(0.10)
    assert opp.eod_low is not None and opp.eod_high is not None
    assert opp.eod_low < 0.10 < opp.eod_high and opp.breaches
    even = equal_opportunity(
        [{"grp": "a", "good": 500, "approved": 400}, {"grp": "b", "good": 500, "approved": 401}]
    )
    assert not even.breaches
    assert equal_opportunity([{"grp": "a", "good": 10, "approved": 5}]).eod is None
    assert equal_opportunity([]).groups == []


def test_live_performance_is_read_for_the_tenant_from_the_outcomes_metrics() -> None:
    from services.console.oversight import parse_live

    page = "\n".join(
        [
            "# TYPE alama_live_matured_loans gauge",
            'alama_live_matured_loans{tenant="t1",model_version="v1",month="2026-01"} 420',
            'alama_live_matured_loans{tenant="t2",model_version="v1",month="2026-01"} 9',
            "# TYPE alama_live_auc gauge",
            'alama_live_auc{tenant="t1",model_version="v1",month="2026-01",bound="estimate"} 0.71',
            'alama_live_auc{tenant="t1",model_version="v1",month="2026-01",bound="low"} 0.66',
            'alama_live_auc{tenant="t1",model_version="v1",month="2026-01",bound="high"} 0.76',
            "# TYPE alama_live_band_default_rate gauge",
            'alama_live_band_default_rate{tenant="t1",model_version="v1",month="2026-01",'
            'band="approve"} 0.05',
            "# TYPE alama_model_reference_auc gauge",
            'alama_model_reference_auc{model_version="v1"} 0.80',
        ]
    )
    (month,) = parse_live(page + "\n", "t1")
    assert (month.model_version, month.month, month.matured) == ("v1", "2026-01", 420)
    assert (month.auc, month.auc_low, month.auc_high) == (0.71, 0.66, 0.76)
    assert month.reference_auc == 0.80 and month.ece is None
