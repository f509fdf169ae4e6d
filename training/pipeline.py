"""The training run: loan book -> Feast -> splits -> models -> ensemble -> calibration -> bundle.

Each step is a function the CLI calls on its own or in sequence (`make train`). It reads a
`LoanBook` (the data contract's tables), so a lender's imported export and the synthetic world go
through the same steps; only the synthetic source carries an oracle PD to compare against. The
run is deterministic for a profile's seed, and everything it concludes is written into the bundle.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.model_selection import StratifiedKFold, train_test_split

from services.common import features as F
from services.common.decision import DecisionBands, EnsembleWeights, Scorecard
from services.common.settings import InfraSettings
from training import feature_tables
from training.baseline import (
    fit_logistic_regression,
    fit_logistic_scorecard,
    predict_logistic_regression,
    predict_logistic_scorecard,
)
from training.calibration import choose_calibrator
from training.contract import LoanBook
from training.credit_metrics import credit_report, information_values
from training.ensemble import cross_fitted_ensemble, fit_ensemble
from training.evaluate import classification_metrics, fairness_report, protected_groups
from training.gbm import FittedGBM, FoldGBMParams, GBMParams, fit_gbm, fit_gbm_cv, predict_gbm
from training.lstm import FittedLSTM, LSTMParams, SequenceInputs, fit_lstm, predict_lstm
from training.partitions import (
    SavedPart,
    describe_parts,
    load_partitioned,
    part_name,
    save_part,
)
from training.paths import synthetic_book_dir, world_dir
from training.profiles import Profile
from training.scorecard import BusinessCost, choose_bands
from training.selection import Selection, select_model
from training.sources.synthetic import loan_book_from_world, world_cutoff
from training.world import World, generate_world, generate_world_parts, part_sizes

Echo = Callable[[str], None]
#: The figures the decision bands are priced with: a SACCO edits this file, not the code.
BUSINESS_COST_FILE = Path(__file__).resolve().parents[1] / "config" / "business_cost.toml"
CHOICE_FOLDS = 5


def generate(profile: Profile, *, force: bool = False, echo: Echo = print) -> World:
    """Generate (or reuse) the profile's synthetic world under artifacts/world/<profile>/."""
    folder = world_dir(profile)
    meta = folder / "world.json"
    if meta.exists() and not force:
        info = json.loads(meta.read_text())
        if info.get("seed") == profile.seed and info.get("n_members") == profile.n_members:
            echo(f"reusing the {profile.name} world in {folder}")
            return World.load(folder)
    started = time.perf_counter()
    world = generate_world(profile.n_members, profile.seed, progress=True)
    world.save(folder)
    echo(f"generated {profile.n_members:,} members in {time.perf_counter() - started:.1f}s")
    return world


def synthetic_book(profile: Profile, *, force: bool = False, echo: Echo = print) -> LoanBook:
    """The profile's world as a loan book (the contract's tables), saved beside imported ones;
    a world of more than one part becomes a book in parts, never whole in memory."""
    if len(part_sizes(profile.n_members)) > 1:
        return _synthetic_book_in_parts(profile, force=force, echo=echo)
    world = generate(profile, force=force, echo=echo)
    book = loan_book_from_world(world, name=f"synthetic-{profile.name}")
    book.save(synthetic_book_dir(profile))
    return book


def _world_in_parts(profile: Profile, *, force: bool, echo: Echo) -> dict[str, Any]:
    """Generate (or reuse) a world part by part under artifacts/world/<profile>/part-NNNNN/;
    returns its world.json (seed, size, parts, rows, fingerprint over the parts', cut-off)."""
    folder = world_dir(profile)
    meta = folder / "world.json"
    count = len(part_sizes(profile.n_members))
    if meta.exists() and not force:
        info: dict[str, Any] = json.loads(meta.read_text())
        if (info.get("seed"), info.get("n_members"), len(info.get("parts", []))) == (
            profile.seed,
            profile.n_members,
            count,
        ):
            echo(f"reusing the {profile.name} world in {folder} ({count} parts)")
            return info
    started = time.perf_counter()
    digest = hashlib.sha256()
    rows: dict[str, int] = {}
    cutoff: pd.Timestamp | None = None
    names = []
    for index, world in enumerate(generate_world_parts(profile.n_members, profile.seed)):
        name = part_name(index)
        world.save(folder / name)
        digest.update(world.fingerprint().encode())
        for table, frame in world.tables().items():
            rows[table] = rows.get(table, 0) + len(frame)
        part_cutoff = world_cutoff(world)
        cutoff = part_cutoff if cutoff is None else max(cutoff, part_cutoff)
        names.append(name)
        echo(
            f"world part {index + 1}/{count}: {len(world.members):,} members, "
            f"{len(world.mobile_money):,} mobile-money rows "
            f"({time.perf_counter() - started:.0f}s so far)"
        )
        del world
    assert cutoff is not None
    info = {
        "seed": profile.seed,
        "n_members": profile.n_members,
        "parts": names,
        "rows": rows,
        "fingerprint": digest.hexdigest(),
        "cutoff": cutoff.isoformat(),
    }
    meta.write_text(json.dumps(info, indent=2) + "\n")
    echo(f"generated {profile.n_members:,} members in {time.perf_counter() - started:.1f}s")
    return info


def _synthetic_book_in_parts(profile: Profile, *, force: bool, echo: Echo) -> LoanBook:
    info = _world_in_parts(profile, force=force, echo=echo)
    folder = synthetic_book_dir(profile)
    described = folder / "loanbook.json"
    if described.exists() and not force:
        saved = json.loads(described.read_text())
        if saved.get("world_fingerprint") == info["fingerprint"] and "parts" in saved:
            echo(f"reusing the loan book in {folder}")
            return load_partitioned(folder)
    started = time.perf_counter()
    name, cutoff = f"synthetic-{profile.name}", pd.Timestamp(info["cutoff"])
    jobs = [(world_dir(profile) / part, folder / part, name, cutoff) for part in info["parts"]]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(BOOK_WORKERS, mp_context=context) as pool:
        saved = list(pool.map(_book_part, *zip(*jobs, strict=True)))
    book = describe_parts(
        folder,
        saved,
        source=name,
        cutoff=cutoff,
        meta={"world_seed": profile.seed, "world_fingerprint": info["fingerprint"]},
    )
    echo(f"wrote the loan book in {len(book.parts)} parts in {time.perf_counter() - started:.1f}s")
    return book


#: Processes turning world parts into loan-book parts at once (each holds one part).
BOOK_WORKERS = 2


def _book_part(world: Path, folder: Path, name: str, cutoff: pd.Timestamp) -> SavedPart:
    """One world part as one loan-book part (in a worker process)."""
    return save_part(loan_book_from_world(World.load(world), name=name, cutoff=cutoff), folder)


def load_into_feast(
    infra: InfraSettings,
    book: LoanBook,
    *,
    echo: Echo = print,
    members_per_chunk: int = feature_tables.MEMBERS_PER_CHUNK,
    workers: int = feature_tables.LOAD_WORKERS,
    materialize: bool = True,
) -> None:
    """Feature snapshots, member chunk by member chunk, into the offline store; `feast apply`;
    each member's latest values into the online store, chunk by chunk as well (unless
    `materialize` is off: training reads only the offline store)."""
    started = time.perf_counter()
    with _members_bar("feature snapshots", len(book.members)) as advance:
        load = feature_tables.load_offline_tables(
            infra, book, members_per_chunk=members_per_chunk, workers=workers, progress=advance
        )
    echo(
        f"computed and wrote feature snapshots in chunks of {members_per_chunk:,} members "
        f"({workers} at a time) in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in load.rows.items())
    )
    feature_tables.apply_repo(infra)
    echo(f"offline store loaded and `feast apply` done in {time.perf_counter() - started:.1f}s")
    if not materialize:
        echo("the online store is left as it was (--no-materialize)")
        return
    started = time.perf_counter()
    with _members_bar("online store", len(book.members)) as advance:
        written = feature_tables.write_online(
            infra,
            book,
            load,
            members_per_chunk=members_per_chunk,
            workers=workers,
            progress=advance,
        )
    echo(
        f"each member's latest features written to the Redis online store in chunks of "
        f"{members_per_chunk:,} members ({len(written.members)} feature views) in "
        f"{time.perf_counter() - started:.1f}s"
    )


@contextmanager
def _members_bar(label: str, members: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar over members; yields what advances it by a chunk's count."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} members"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=members)
        yield lambda done: bar.advance(task, done)


@dataclass
class Splits:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    out_of_time: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


#: An out-of-time split needs this many application months before it, and at most this share.
MIN_MONTHS_BEFORE_OUT_OF_TIME = 4
MAX_OUT_OF_TIME_SHARE = 0.4


def split(applications: pd.DataFrame, profile: Profile) -> Splits:
    """Out-of-time test = the latest months of applications; the rest stratified 60/20/20.

    A source whose applications span too few months (Home Credit dates every application on
    one reference day) gets no out-of-time split rather than one that swallows everything.
    """
    applied = pd.to_datetime(applications["applied_at"], utc=True)
    latest_month = applied.max().tz_convert(None).to_period("M")
    cutoff = (latest_month - (profile.out_of_time_months - 1)).to_timestamp().tz_localize("UTC")
    oot = np.flatnonzero(applied >= cutoff)
    rest = np.flatnonzero(applied < cutoff)
    months_before = applied[applied < cutoff].dt.tz_convert(None).dt.to_period("M").nunique()
    if months_before < MIN_MONTHS_BEFORE_OUT_OF_TIME or len(oot) > MAX_OUT_OF_TIME_SHARE * len(
        applied
    ):
        oot, rest = np.array([], dtype=np.int64), np.arange(len(applied))
    y = applications["default_12m"].to_numpy()
    train, hold = train_test_split(rest, test_size=0.4, stratify=y[rest], random_state=profile.seed)
    valid, test = train_test_split(hold, test_size=0.5, stratify=y[hold], random_state=profile.seed)
    return Splits(np.sort(train), np.sort(valid), np.sort(test), oot)


def sequence_inputs(
    inputs: F.ModelInputs, index: np.ndarray, columns: np.ndarray | None = None
) -> SequenceInputs:
    """The LSTM's inputs for these rows; `columns` picks the static features a bundle uses."""
    static = inputs.static[index]
    return SequenceInputs(
        static=static if columns is None else np.ascontiguousarray(static[:, columns]),
        repayments=inputs.repayments[index],
        repayment_mask=inputs.repayment_mask[index],
        mobile_money=inputs.mobile_money[index],
        mobile_money_mask=inputs.mobile_money_mask[index],
    )


@dataclass
class TrainedModels:
    profile: Profile
    book: LoanBook
    frame: pd.DataFrame
    inputs: F.ModelInputs
    splits: Splits
    gbm: FittedGBM
    lstm: FittedLSTM | None  # None when the source has no repayment or mobile-money sequences
    baseline: Any
    weights: EnsembleWeights
    calibrator: Any
    scorecard: Scorecard
    bands: DecisionBands
    band_summary: dict[str, float]
    cost: BusinessCost
    features: FeatureChoice
    choice: Selection
    check: Selection  # the ensemble against the plain model on validation folds
    plain: Any  # the plain logistic regression (a scikit-learn pipeline)
    shipped: str  # "ensemble", or "logistic_regression" when the simple model beats it
    refusal: str | None  # why the ensemble does not ship, when it does not
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def final_pd(self, index: np.ndarray) -> np.ndarray:
        """Calibrated PDs of the model the bundle ships."""
        return self.predictions["shipped"][index]

    @property
    def tabular(self) -> np.ndarray:
        """The model's tabular inputs: the chosen features only."""
        return np.ascontiguousarray(self.inputs.tabular[:, self.features.columns])

    def sequences(self, index: np.ndarray) -> SequenceInputs:
        return sequence_inputs(self.inputs, index, self.features.columns)


def stratified_cap(rows: np.ndarray, y: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """A sorted stratified sample of `cap` of `rows` (all of them where `cap` is None or no
    smaller), so that a step too slow for a million rows on 2 cores sees the same default rate."""
    if cap is None or cap >= len(rows):
        return rows
    kept, _ = train_test_split(rows, train_size=cap, stratify=y[rows], random_state=seed)
    return np.sort(kept)


def cross_validated_choice(
    tabular: np.ndarray, y: np.ndarray, rows: np.ndarray, names: tuple[str, ...], profile: Profile
) -> Selection:
    """Out-of-fold PDs of the plain logistic regression and LightGBM on the development rows
    (train and validation; never test or out-of-time), and which one the folds support; on a
    stratified sample of `profile.choice_rows` of them where the profile sets one."""
    rows = stratified_cap(rows, y, profile.choice_rows, profile.seed)
    folds = np.zeros(len(rows), dtype=np.int64)
    oof = {"logistic_regression": np.zeros(len(rows)), "lightgbm": np.zeros(len(rows))}
    splitter = StratifiedKFold(CHOICE_FOLDS, shuffle=True, random_state=profile.seed)
    x, labels = tabular[rows], y[rows]
    for k, (fit, held) in enumerate(splitter.split(x, labels)):
        folds[held] = k
        plain = fit_logistic_regression(x[fit], labels[fit], seed=profile.seed)
        oof["logistic_regression"][held] = predict_logistic_regression(plain, x[held])
        gbm = fit_gbm_cv(x[fit], labels[fit], names, FoldGBMParams(seed=profile.seed))
        oof["lightgbm"][held] = predict_gbm(gbm, x[held])
    return select_model(oof, labels, folds, simple="logistic_regression")


def ensemble_check(
    y_valid: np.ndarray,
    plain_valid: np.ndarray,
    gbm_valid: np.ndarray,
    lstm_valid: np.ndarray | None,
    seed: int,
) -> Selection:
    """The ensemble against the plain logistic regression on stratified folds of the validation
    rows, paired per fold. The LSTM is trained once (not per fold), so the folds are of the
    validation set, on which neither model was fitted; the ensemble's weight is cross-fitted
    (`cross_fitted_ensemble`) so it is not judged on the rows it was fitted to. AUC ignores the
    monotone calibration, so no calibrator is needed here."""
    ensemble = (
        gbm_valid
        if lstm_valid is None
        else cross_fitted_ensemble(gbm_valid, lstm_valid, y_valid, _validation_folds(y_valid, seed))
    )
    return select_model(
        {"logistic_regression": plain_valid, "ensemble": ensemble},
        y_valid,
        _validation_folds(y_valid, seed),
        simple="logistic_regression",
    )


def _validation_folds(y: np.ndarray, seed: int) -> np.ndarray:
    folds = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedKFold(CHOICE_FOLDS, shuffle=True, random_state=seed)
    for k, (_fit, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        folds[held] = k
    return folds


def ensemble_refusal(choice: Selection, check: Selection) -> str | None:
    """Why the ensemble must not ship, or None. It does not ship when the plain logistic
    regression beats it on the validation folds beyond the noise, nor when the plain model
    beats LightGBM on the development folds beyond the noise and the ensemble does not win
    back a clear margin on the validation folds (the simple model wins what is left a tie)."""
    ensemble = check.comparisons["ensemble"]
    if ensemble.mean_gain < -ensemble.standard_error:
        return (
            f"the plain logistic regression beats the ensemble by {-ensemble.mean_gain:.4f} AUC "
            f"on {check.folds} validation folds (standard error {ensemble.standard_error:.4f})"
        )
    lightgbm = choice.comparisons.get("lightgbm")
    if lightgbm is None or lightgbm.mean_gain >= -lightgbm.standard_error:
        return None
    if ensemble.beats_simple:
        return None
    return (
        f"the plain logistic regression beats LightGBM by {-lightgbm.mean_gain:.4f} AUC on "
        f"{choice.folds} folds (standard error {lightgbm.standard_error:.4f}) and the "
        f"ensemble does not beat it beyond the noise on {check.folds} validation folds "
        f"({ensemble.mean_gain:+.4f}, standard error {ensemble.standard_error:.4f})"
    )


@dataclass(frozen=True)
class FeatureChoice:
    """Which vocabulary features a run uses, and why each other one was left out."""

    names: tuple[str, ...]
    columns: np.ndarray  # positions in F.TABULAR_FEATURES
    dropped: dict[str, str]
    sequences: tuple[str, ...]  # "repayments" / "mobile_money": the sequences the source has


def choose_features(inputs: F.ModelInputs, rows: np.ndarray) -> FeatureChoice:
    """Drop what carries no information on the training rows: a feature with one value only
    (typically a table the source lacks, so it is missing everywhere), and note the sequences
    that exist at all (no LSTM without them)."""
    x = inputs.tabular[rows]
    keep, dropped = [], {}
    for j, name in enumerate(F.TABULAR_FEATURES):
        column = x[:, j]
        if len(column) and np.all(column == column[0]):
            dropped[name] = f"one value only on the training rows ({float(column[0]):g})"
        else:
            keep.append(j)
    if not keep:
        raise ValueError("no feature varies on the training rows: nothing to learn from")
    sequences = tuple(
        name
        for name, mask in (
            ("repayments", inputs.repayment_mask),
            ("mobile_money", inputs.mobile_money_mask),
        )
        if mask[rows].any()
    )
    columns = np.array(keep, dtype=np.int64)
    return FeatureChoice(tuple(F.TABULAR_FEATURES[j] for j in keep), columns, dropped, sequences)


def training_data_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame[list(F.TABULAR_FEATURES)], index=False).values)
    return digest.hexdigest()


def outcomes(book: LoanBook) -> np.ndarray:
    """1 = defaulted, 0 = repaid, for the labelled applications in the book's order."""
    return book.labelled["default_12m"].to_numpy(dtype=np.int64)


def oracle_pd(book: LoanBook) -> np.ndarray | None:
    """The true PD of each labelled application, where the source knows it (synthetic only)."""
    if book.oracle is None:
        return None
    by_id = book.oracle.set_index("application_id")["true_pd"]
    return by_id.loc[book.labelled["application_id"]].to_numpy(dtype=np.float64)


def train(
    infra: InfraSettings,
    profile: Profile,
    book: LoanBook,
    *,
    echo: Echo = print,
    applications_per_query: int = feature_tables.APPLICATIONS_PER_QUERY,
    splits: Splits | None = None,
) -> TrainedModels:
    """`splits` (default: `split` of the book's labelled applications) lets a retraining keep
    every row the champion held out held out, so the two are compared on rows neither learnt."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    frame, inputs = feature_tables.training_inputs(infra, book, applications_per_query)
    timings["feast_training_set"] = time.perf_counter() - clock
    took = timings["feast_training_set"]
    echo(
        f"training set from Feast (point-in-time, {applications_per_query:,} applications per "
        f"query): {len(frame):,} rows in {took:.1f}s"
    )
    apps = book.labelled
    y = outcomes(book)
    if splits is None:
        splits = split(apps, profile)
    elif sum(splits.sizes().values()) != len(apps):
        raise ValueError(f"the splits hold {splits.sizes()} of {len(apps)} labelled rows")
    echo(f"splits: {splits.sizes()}")
    tr, va = splits.train, splits.valid
    chosen = choose_features(inputs, tr)
    names, tabular = chosen.names, np.ascontiguousarray(inputs.tabular[:, chosen.columns])
    if chosen.dropped:
        echo(
            f"{len(names)} features used; left out (no information in this source): "
            + ", ".join(sorted(chosen.dropped))
        )

    clock = time.perf_counter()
    baseline = fit_logistic_scorecard(tabular[tr], y[tr], names)
    timings["logistic_scorecard"] = time.perf_counter() - clock
    echo(f"logistic scorecard baseline fitted in {timings['logistic_scorecard']:.1f}s")

    clock = time.perf_counter()
    gbm = fit_gbm(
        tabular[tr],
        y[tr],
        tabular[va],
        y[va],
        names,
        GBMParams(
            n_trials=profile.gbm_trials,
            timeout_seconds=profile.gbm_timeout_seconds,
            seed=profile.seed,
        ),
    )
    timings["lightgbm"] = time.perf_counter() - clock
    echo(
        f"LightGBM: {len(gbm.trials)} Optuna trials, best iteration {gbm.best_iteration}, "
        f"validation AUC {gbm.valid_auc:.4f} ({timings['lightgbm']:.1f}s)"
    )

    everything = np.arange(len(apps))
    predictions = {
        "logistic_scorecard": predict_logistic_scorecard(baseline, tabular, names),
        "lightgbm": predict_gbm(gbm, tabular),
    }
    lstm = None
    if chosen.sequences:
        clock = time.perf_counter()
        cap = profile.lstm_rows
        lstm_tr = stratified_cap(tr, y, cap, profile.seed)
        lstm_va = stratified_cap(va, y, None if cap is None else cap // 2, profile.seed)
        if len(lstm_tr) < len(tr):
            echo(
                f"LSTM on stratified samples of {len(lstm_tr):,} training and "
                f"{len(lstm_va):,} validation rows"
            )
        lstm = fit_lstm(
            sequence_inputs(inputs, lstm_tr, chosen.columns),
            y[lstm_tr],
            sequence_inputs(inputs, lstm_va, chosen.columns),
            y[lstm_va],
            LSTMParams(hidden=profile.lstm_hidden, epochs=profile.lstm_epochs, seed=profile.seed),
            progress=True,
        )
        timings["lstm"] = time.perf_counter() - clock
        echo(f"LSTM: best epoch {lstm.best_epoch}, {timings['lstm']:.1f}s")
        predictions["lstm"] = predict_lstm(
            lstm, sequence_inputs(inputs, everything, chosen.columns)
        )
    else:
        echo("no repayment or mobile-money sequences in this source: the LSTM is left out")
    truth = oracle_pd(book)
    if truth is not None:
        predictions["oracle"] = truth
    clock = time.perf_counter()
    plain = fit_logistic_regression(tabular[tr], y[tr], seed=profile.seed)
    predictions["logistic_regression"] = predict_logistic_regression(plain, tabular)
    choice = cross_validated_choice(tabular, y, np.sort(np.concatenate([tr, va])), names, profile)
    timings["model_choice"] = time.perf_counter() - clock
    sample = (
        f" of a {profile.choice_rows:,}-row stratified sample"
        if profile.choice_rows is not None and profile.choice_rows < len(tr) + len(va)
        else ""
    )
    echo(
        f"model choice on {choice.folds} folds{sample}: {choice.winner} "
        + (
            f"beats the plain logistic regression by {choice.margin:+.4f} AUC "
            f"(standard error {choice.standard_error:.4f})"
            if choice.winner != choice.simple
            else "(LightGBM does not beat the plain logistic regression beyond the noise)"
        )
    )
    if lstm is None:
        weights = EnsembleWeights(gbm=1.0, lstm=0.0)
        raw = predictions["lightgbm"]
    else:
        weights = fit_ensemble(predictions["lightgbm"][va], predictions["lstm"][va], y[va])
        raw = weights.combine(predictions["lightgbm"], predictions["lstm"])
    predictions["ensemble_uncalibrated"] = raw
    calibrator, calibration_scores = choose_calibrator(raw[va], y[va], seed=profile.seed)
    predictions["ensemble"] = calibrator.apply(raw)
    check = ensemble_check(
        y[va],
        predictions["logistic_regression"][va],
        predictions["lightgbm"][va],
        None if lstm is None else predictions["lstm"][va],
        profile.seed,
    )
    refusal = ensemble_refusal(choice, check)
    shipped = "ensemble"
    if refusal is not None:
        # never ship a model the simple one beats: the calibrated logistic regression ships
        shipped = "logistic_regression"
        echo(f"[bold]the plain logistic regression ships[/]: {refusal}")
        raw = predictions["logistic_regression"]
        calibrator, calibration_scores = choose_calibrator(raw[va], y[va], seed=profile.seed)
    predictions["shipped"] = calibrator.apply(raw)
    cost = BusinessCost.from_file(BUSINESS_COST_FILE)
    bands, band_summary = choose_bands(
        predictions["shipped"][va], y[va], apps["amount_kes"].to_numpy(dtype=np.float64)[va], cost
    )
    echo(
        f"shipping {shipped}; ensemble weights GBM {weights.gbm:.2f} / LSTM {weights.lstm:.2f}; "
        "calibration "
        f"{calibrator.method} (cross-validated Brier: "
        + ", ".join(
            f"{k.removesuffix('_brier')} {v:.4f}"
            for k, v in calibration_scores.items()
            if k.endswith("_brier")
        )
        + f"); approve below PD {bands.approve_below_pd:.3f}, decline from "
        f"{bands.decline_at_or_above_pd:.3f}"
    )
    return TrainedModels(
        profile=profile,
        book=book,
        frame=frame,
        inputs=inputs,
        splits=splits,
        gbm=gbm,
        lstm=lstm,
        baseline=baseline,
        weights=weights,
        calibrator=calibrator,
        scorecard=Scorecard(),
        bands=bands,
        band_summary=band_summary | {"calibration_" + k: v for k, v in calibration_scores.items()},
        cost=cost,
        features=chosen,
        choice=choice,
        plain=plain,
        shipped=shipped,
        check=check,
        refusal=refusal,
        predictions=predictions,
        timings=timings,
    )


MODELS = (
    "oracle",
    "shipped",
    "logistic_regression",
    "logistic_scorecard",
    "lightgbm",
    "lstm",
    "ensemble_uncalibrated",
    "ensemble",
)


def evaluate(trained: TrainedModels) -> dict[str, Any]:
    """metrics.json: test and out-of-time metrics per model, and fairness by gender and age."""
    apps = trained.book.labelled
    y = outcomes(trained.book)
    result: dict[str, Any] = {
        "profile": trained.profile.name,
        "source": trained.book.source,
        "splits": trained.splits.sizes(),
    }
    for split_name in ("test", "out_of_time"):
        index = getattr(trained.splits, split_name)
        if len(index) == 0 or np.unique(y[index]).size < 2:
            result[split_name] = {}
            continue
        result[split_name] = {
            model: classification_metrics(y[index], trained.predictions[model][index])
            for model in MODELS
            if model in trained.predictions
        }
    test = trained.splits.test
    approved = trained.bands.band(trained.predictions["shipped"][test]) == "approve"
    result["fairness"] = fairness_report(y[test], approved, protected_groups(trained.book, test))
    result["bands"] = trained.bands.to_dict() | {"validation": trained.band_summary}
    amounts = apps["amount_kes"].to_numpy(dtype=np.float64)
    result["credit"] = {
        split_name: credit_report(
            y[index],
            trained.predictions["shipped"][index],
            trained.bands,
            amounts[index],
            trained.cost,
        )
        for split_name, index in (("test", test), ("out_of_time", trained.splits.out_of_time))
        if len(index) and np.unique(y[index]).size == 2
    }
    result["information_values"] = information_values(trained.baseline)
    result["model_choice"] = trained.choice.to_dict() | {
        "shipped": trained.shipped,
        "ensemble_refused": trained.refusal,
        "ensemble_on_validation_folds": trained.check.to_dict(),
    }
    result["features"] = {
        "used": list(trained.features.names),
        "dropped": trained.features.dropped,
        "sequences": list(trained.features.sequences),
    }
    result["timings_seconds"] = trained.timings
    return result
