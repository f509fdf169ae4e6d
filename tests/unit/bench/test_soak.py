"""The soak report: p99 drift and memory growth from the minutes measured."""

from __future__ import annotations

from typing import Any

from bench.soak import markdown, summary


def _minute(n: int, p99: float, rss: float, errors: int = 0) -> dict[str, Any]:
    return {
        "minute": n,
        "p50_ms": p99 / 3,
        "p99_ms": p99,
        "achieved_per_s": 200.0,
        "errors": {"deadline": errors} if errors else {},
        "rss_mib": {"gateway": rss, "scoring": 300.0},
    }


def test_drift_compares_the_last_steady_minutes_with_the_first_after_warm_up() -> None:
    # minute 1 (warm-up, slow) is left out; 2..6 at 10 ms, 7..11 at 12 ms: +20 %
    minutes = [_minute(1, 90.0, 100.0)]
    minutes += [_minute(n, 10.0, 100.0 + n) for n in range(2, 7)]
    minutes += [_minute(n, 12.0, 100.0 + n, errors=1) for n in range(7, 12)]
    s = summary(minutes)
    assert s["window_minutes"] == 5
    assert (s["p99_early_ms"], s["p99_late_ms"]) == (10.0, 12.0)
    assert s["p99_drift"] == 0.2 and not s["p99_drift_met"]
    assert s["rss_growth_mib"] == {"gateway": 9.0, "scoring": 0.0}
    assert s["errors"] == 5
    text = markdown(
        {
            "measured_at": "2026-11-29T00:00:00+00:00",
            "machine": {"cores": 2, "cpu": "test"},
            "model_version": "quick-test",
            "minutes": 11,
            "rate": 200.0,
            "minutes_detail": minutes,
            "summary": s,
        }
    )
    assert "drift +20.0% (target at most 10%: not met)" in text
    assert "gateway +9" in text


def test_a_steady_run_meets_the_drift_target_and_a_silent_one_reports_none() -> None:
    steady = [_minute(n, 10.0, 100.0) for n in range(1, 5)]
    assert summary(steady)["p99_drift_met"]
    silent = [_minute(n, float("nan"), 100.0) for n in range(1, 5)]
    assert summary(silent)["p99_drift"] is None and not summary(silent)["p99_drift_met"]
