"""The floor: the promoted bundle's ONNX ensemble in process, per row and per batch of 1,000.

Nothing a service adds (network, features, reasons) is in these numbers: they bound from below
what the synchronous API and the pipeline can reach on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.common import features as F
from services.common.bundle import ModelBundle, load_bundle
from training.world import World


def world_inputs(world: World) -> F.ModelInputs:
    """Every application's model inputs at its application time, computed straight from the
    world with the shared feature code (the same values Feast serves)."""
    apps = world.applications
    as_of = pd.Series(
        pd.to_datetime(apps["applied_at"], utc=True).to_numpy(),
        index=pd.Index(apps["member_id"].astype(str)),
    )
    frame = pd.concat(
        [
            F.mobile_money_features(world.mobile_money, as_of),
            F.repayment_features(world.repayments, as_of),
            F.profile_features(world.profile_snapshots, as_of),
            F.bureau_features(pd.DataFrame(), as_of),  # the world has no bureau table
        ],
        axis=1,
    ).reset_index(drop=True)
    derived = F.application_features(
        apps["amount_kes"].to_numpy(),
        apps["term_months"].to_numpy(),
        apps["product"].to_numpy(),
        frame,
        frame["mm_inflow_sum_90d"].to_numpy(),
    )
    frame = frame.drop(columns=[c for c in derived.columns if c in frame.columns])
    return F.model_inputs(pd.concat([frame, derived], axis=1))


def _rows(inputs: F.ModelInputs, index: np.ndarray) -> F.ModelInputs:
    return F.ModelInputs(
        tabular=inputs.tabular[index],
        static=inputs.static[index],
        repayments=inputs.repayments[index],
        repayment_mask=inputs.repayment_mask[index],
        mobile_money=inputs.mobile_money[index],
        mobile_money_mask=inputs.mobile_money_mask[index],
    )


@dataclass(frozen=True)
class FloorResult:
    model_version: str
    threads: int
    single_row_p50_ms: float
    single_row_p99_ms: float
    single_rows_per_s: float
    batch_1000_mean_ms: float
    batch_rows_per_s: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def run_floor(
    bundle_dir: Path | str, world: World, *, single: int = 2000, batches: int = 30, threads: int = 1
) -> FloorResult:
    bundle: ModelBundle = load_bundle(bundle_dir, threads=threads)
    inputs = world_inputs(world)
    n = len(inputs.tabular)
    rng = np.random.default_rng(0)
    for i in range(50):  # warm the sessions
        bundle.score(_rows(inputs, np.array([i % n])))
    single_ms = []
    for i in rng.integers(0, n, single):
        row = _rows(inputs, np.array([i]))
        began = time.perf_counter()
        bundle.score(row)
        single_ms.append((time.perf_counter() - began) * 1e3)
    batch_ms = []
    for _ in range(batches):
        batch = _rows(inputs, rng.integers(0, n, 1000))
        began = time.perf_counter()
        bundle.score(batch)
        batch_ms.append((time.perf_counter() - began) * 1e3)
    single_arr, batch_arr = np.array(single_ms), np.array(batch_ms)
    return FloorResult(
        model_version=bundle.version,
        threads=threads,
        single_row_p50_ms=round(float(np.percentile(single_arr, 50)), 3),
        single_row_p99_ms=round(float(np.percentile(single_arr, 99)), 3),
        single_rows_per_s=round(1e3 / float(single_arr.mean()), 1),
        batch_1000_mean_ms=round(float(batch_arr.mean()), 2),
        batch_rows_per_s=round(1000 * 1e3 / float(batch_arr.mean()), 1),
    )
