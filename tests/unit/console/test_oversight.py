"""Oversight numbers: bootstrap intervals of approval rates and disparate impact, and the PSI
read from the drift service's metrics page."""

from __future__ import annotations

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
