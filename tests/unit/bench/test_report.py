"""The benchmark's report: the knee and the targets are computed from the measurements."""

from __future__ import annotations

from typing import Any

from bench.__main__ import knee, markdown


def _rate(rate: float, p99: float, errors: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "rate_per_s": rate,
        "duration_s": 30.0,
        "p50_ms": p99 / 3,
        "p95_ms": p99 / 2,
        "p99_ms": p99,
        "achieved_per_s": rate,
        "errors": errors or {},
    }


def test_the_knee_is_the_lowest_rate_whose_p99_passes_100_ms() -> None:
    assert knee([_rate(50, 8.0), _rate(200, 40.0), _rate(500, 140.0), _rate(1000, 900)]) == 500
    assert knee([_rate(50, 8.0), _rate(1000, 99.0)]) is None
    assert knee([_rate(50, float("nan"))]) == 50  # nothing answered counts as past the knee


def test_the_report_states_every_target_with_its_verdict() -> None:
    result = {
        "measured_at": "2026-11-29T00:00:00+00:00",
        "machine": {"cores": 2, "cpu": "test", "memory_gib": 23.5},
        "model_version": "quick-test",
        "api": [_rate(200, 9.0), _rate(500, 30.0, {"deadline": 3})],
        "knee_per_s": None,
        "batch": {
            "size": 1000,
            "repeats": 10,
            "p50_ms": 40.0,
            "p99_ms": 60.0,
            "applications_per_s": 20000.0,
            "errors": 0,
        },
        "floor": {
            "single_row_p50_ms": 0.1,
            "single_row_p99_ms": 0.2,
            "single_rows_per_s": 9000,
            "batch_1000_mean_ms": 20.0,
            "batch_rows_per_s": 50000,
        },
        "pipeline": {
            "applications": 100,
            "decided": 100,
            "e2e_p50_ms": 10,
            "e2e_p99_ms": 20,
            "applications_per_s": 500.0,
        },
        "targets": {
            "p99_ms_at_200": 10.0,
            "p99_at_200_met": True,
            "p99_at_500_met": False,
            "knee_met": True,
            "batch_met": False,
            "pipeline_per_s": 2000.0,
            "pipeline_met": False,
        },
    }
    text = markdown(result)
    assert "| `POST /v1/scores:batch` of 1,000, 10 in turn | 40.0 ms | | 60.0 ms |" in text
    assert "beyond every measured rate" in text
    assert "200 requests/s — met" in text and "no errors — not met" in text
    assert "in at most 50 ms — not met" in text
