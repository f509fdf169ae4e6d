"""The held-out rows a bundle was evaluated on, kept with its MLflow run so the promotion gate can
score any registered version against the champion on exactly those rows, long after training.

One parquet file per run: the test and out-of-time applications (a stratified sample of at most
`MAX_ROWS`), their outcome, the protected attributes kept for auditing only (gender, age band),
and every model input of the whole feature vocabulary (`services.common.features`), not only
the features this bundle chose, so a champion that chose others can score them too. The inputs
are stored as the models take them (`ModelInputs`, float32), so scoring them again gives the
PDs training gave to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from services.common import features as F
from training.evaluate import protected_groups

if TYPE_CHECKING:
    from training.pipeline import TrainedModels

#: the run's artifact folder and file the rows are logged as
ARTIFACT_PATH = "held_out"
FILE_NAME = "held_out.parquet"
#: enough for the gate's intervals; the bootstrap's draws grow with rows x resamples
MAX_ROWS = 50_000
LABEL = "default_12m"


@dataclass(frozen=True)
class HeldOutRows:
    """Row-aligned: the applications, their outcome, protected groups and model inputs."""

    application_id: np.ndarray
    split: np.ndarray  # "test" or "out_of_time"
    y_default: np.ndarray
    groups: dict[str, np.ndarray]
    inputs: F.ModelInputs

    @property
    def rows(self) -> int:
        return int(self.y_default.shape[0])


def held_out_rows(trained: TrainedModels, max_rows: int = MAX_ROWS) -> HeldOutRows:
    """The test and out-of-time rows of a trained run (a stratified sample past `max_rows`)."""
    from training.pipeline import outcomes, stratified_cap

    y = outcomes(trained.book)
    test, oot = trained.splits.test, trained.splits.out_of_time
    index = np.concatenate([test, oot]).astype(np.int64)
    split = np.array(["test"] * len(test) + ["out_of_time"] * len(oot), dtype=object)
    order = np.argsort(index, kind="stable")
    index, split = index[order], split[order]
    kept = stratified_cap(np.arange(len(index)), y[index], max_rows, trained.profile.seed)
    index, split = index[kept], split[kept]
    apps = trained.book.labelled
    groups = protected_groups(trained.book, index)
    inputs = F.ModelInputs(
        **{f.name: getattr(trained.inputs, f.name)[index] for f in fields(F.ModelInputs)}
    )
    return HeldOutRows(
        application_id=apps["application_id"].iloc[index].astype(str).to_numpy(),
        split=split.astype(str),
        y_default=y[index],
        groups=groups,
        inputs=inputs,
    )


def _array_column(values: np.ndarray) -> pa.Array:
    """[N, ...] float32 as a fixed-size list per row (the trailing shape flattened)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def write_held_out(rows: HeldOutRows, path: Path) -> Path:
    """One parquet file: ids, split, outcome, groups, then every ModelInputs array."""
    columns: dict[str, pa.Array] = {
        "application_id": pa.array(rows.application_id.astype(str)),
        "split": pa.array(rows.split.astype(str)),
        LABEL: pa.array(rows.y_default.astype(np.int8)),
    }
    for attribute, labels in rows.groups.items():
        columns[f"group.{attribute}"] = pa.array(labels.astype(str))
    for field in fields(F.ModelInputs):
        columns[f"inputs.{field.name}"] = _array_column(getattr(rows.inputs, field.name))
    metadata = {b"alama.tabular_features": ",".join(F.TABULAR_FEATURES).encode()}
    table = pa.table(columns).replace_schema_metadata(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


#: each ModelInputs array's shape after the row
SHAPES: dict[str, tuple[int, ...]] = {
    "tabular": (len(F.TABULAR_FEATURES),),
    "static": (len(F.TABULAR_FEATURES),),
    "repayments": (F.REPAYMENT_MONTHS, len(F.REPAYMENT_CHANNELS)),
    "repayment_mask": (F.REPAYMENT_MONTHS,),
    "mobile_money": (F.MOBILE_MONEY_WEEKS, len(F.MOBILE_MONEY_CHANNELS)),
    "mobile_money_mask": (F.MOBILE_MONEY_WEEKS,),
}


class HeldOutMismatch(ValueError):
    """The rows were written for another feature vocabulary than this code's."""


def read_held_out(path: Path) -> HeldOutRows:
    table = pq.read_table(path)
    written = (table.schema.metadata or {}).get(b"alama.tabular_features", b"").decode()
    if written != ",".join(F.TABULAR_FEATURES):
        raise HeldOutMismatch(
            f"{path} holds rows of another feature vocabulary than this code's; the gate cannot "
            "score them with today's bundles"
        )
    n = table.num_rows
    arrays = {
        name: table.column(f"inputs.{name}")
        .combine_chunks()
        .flatten()
        .to_numpy()
        .astype(np.float32)
        .reshape(n, *shape)
        for name, shape in SHAPES.items()
    }
    groups = {
        name.removeprefix("group."): table.column(name).to_numpy(zero_copy_only=False).astype(str)
        for name in table.column_names
        if name.startswith("group.")
    }
    frame: pd.DataFrame = table.select(["application_id", "split", LABEL]).to_pandas()
    return HeldOutRows(
        application_id=frame["application_id"].astype(str).to_numpy(),
        split=frame["split"].astype(str).to_numpy(),
        y_default=frame[LABEL].to_numpy(dtype=np.int64),
        groups=groups,
        inputs=F.ModelInputs(**arrays),
    )
