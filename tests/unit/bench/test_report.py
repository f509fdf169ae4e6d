"""The benchmark's report: the knee and the targets are computed from the measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.__main__ import cpu_table, knee, markdown, mlserver_ratios
from bench.mlserver import MODEL_NAME, infer_bodies, model_repository


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


#: a batch of 1,000 and the ONNX floor, as every report carries them
_BATCH_AND_FLOOR: dict[str, Any] = {
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
}


def test_the_knee_is_the_lowest_rate_whose_p99_passes_100_ms() -> None:
    assert knee([_rate(50, 8.0), _rate(200, 40.0), _rate(500, 140.0), _rate(1000, 900)]) == 500
    assert knee([_rate(50, 8.0), _rate(1000, 99.0)]) is None
    assert knee([_rate(50, float("nan"))]) == 50  # nothing answered counts as past the knee


def test_the_report_states_every_target_with_its_verdict() -> None:
    result = {
        "measured_at": "2026-11-29T00:00:00+00:00",
        "machine": {"cores": 2, "cpu": "test", "memory_gib": 23.5, "python_speed_s": [0.3, 0.47]},
        "model_version": "quick-test",
        "api": [_rate(200, 9.0), _rate(500, 30.0, {"deadline": 3})],
        "knee_per_s": None,
        **_BATCH_AND_FLOOR,
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
    assert "ten million Python additions in 0.3 s before the run and 0.47 s after" in text


def test_a_pipeline_run_that_lost_replicas_says_so() -> None:
    base = {
        "measured_at": "2026-12-02T00:00:00+00:00",
        "machine": {"cores": 2, "cpu": "test", "memory_gib": 23.5},
        "model_version": "quick-test",
        "api": [_rate(200, 9.0)],
        "knee_per_s": None,
        **_BATCH_AND_FLOOR,
        "targets": {"p99_ms_at_200": 10.0, "pipeline_per_s": 2000.0},
    }
    piped = {"applications": 100, "decided": 100, "e2e_p50_ms": 10, "e2e_p99_ms": 20}
    pipelines = [
        piped | {"applications_per_s": 400.0, "scoring_replicas": 1, "scoring_replicas_alive": 1},
        piped | {"applications_per_s": 350.0, "scoring_replicas": 3, "scoring_replicas_alive": 1},
    ]
    text = markdown(base | {"pipeline": pipelines[0], "pipelines": pipelines})
    assert "1 scoring replica |" in text
    assert "3 scoring replicas (only 1 still running at its end) |" in text


def test_the_report_shows_cpu_per_request_by_process_where_it_was_measured() -> None:
    api = [_rate(50, 8.0), _rate(200, 40.0)]
    api[0]["cpu_ms_per_request"] = {"gateway": 4.5, "scoring": 3.0, "total": 7.5}
    lines = cpu_table(api)
    assert "| rate | gateway | scoring | total |" in lines
    assert "| 50/s | 4.5 | 3 | 7.5 |" in lines
    assert not any(line.startswith("| 200/s") for line in lines)  # not measured there
    assert cpu_table([_rate(50, 8.0)]) == []


def test_alamas_p99_is_compared_with_mlservers_at_each_rate_both_measured() -> None:
    api = [_rate(50, 20.0), _rate(200, 30.0), _rate(500, float("nan"))]
    side = {"rates": [_rate(50, 10.0), _rate(200, 25.0), _rate(500, 12.0)]}
    assert mlserver_ratios(api, side) == {"50": 2.0, "200": 1.2, "500": None}
    assert mlserver_ratios(api, {"unavailable": "no environment"}) == {}


def test_mlservers_model_repository_serves_the_bundles_own_lightgbm(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"version": "quick-1"}))
    folder = model_repository(bundle, tmp_path / "models")
    model = json.loads((folder / MODEL_NAME / "model-settings.json").read_text())
    assert model["implementation"] == "mlserver_lightgbm.LightGBMModel"
    assert model["parameters"] == {"uri": str(bundle / "gbm.txt"), "version": "quick-1"}
    [body] = infer_bodies(np.array([[1.5, np.nan, 3.0]]))
    assert body["inputs"][0]["shape"] == [1, 3] and body["inputs"][0]["data"] == [1.5, None, 3.0]
