"""Run sizes: `tiny` for tests, `small` for the closing-the-loop run, `quick` for the demo (10
minutes on 2 cores), `full` for real, `xl` for the size of Kenya's largest SACCOs (a million
members, with less model search so that it finishes on 2 cores; the data steps run in bounded
chunks whatever the size)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    n_members: int
    seed: int
    gbm_trials: int
    gbm_timeout_seconds: float
    lstm_epochs: int
    lstm_hidden: int
    out_of_time_months: int = 2  # the latest application months form the out-of-time test
    #: The model choice's cross-validation runs on a stratified sample of this many development
    #: rows (None: all of them); its 5 x 3 LightGBM fits are the slowest step at a million.
    choice_rows: int | None = None
    #: The LSTM trains (and stops early) on stratified samples of at most this many training and
    #: half as many validation rows (None: all of them); an epoch over 700,000 sequences takes
    #: about 20 minutes on 2 cores. It still predicts for every application.
    lstm_rows: int | None = None


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        "tiny", 3_000, 11, gbm_trials=3, gbm_timeout_seconds=20, lstm_epochs=4, lstm_hidden=16
    ),
    # the closing-the-loop run (`make loop`): the tiny model's settings on a world big enough
    # that the promotion gate's held-out set (~3,000 rows) measures calibration and fairness
    # more finely than sampling noise (ECE's noise alone is near 0.02 on tiny's ~1,000 rows)
    "small": Profile(
        "small", 10_000, 11, gbm_trials=3, gbm_timeout_seconds=30, lstm_epochs=4, lstm_hidden=16
    ),
    # the loop on a world three times larger (`make loop LOOP_PROFILE=medium`): the held-out set
    # (~10,000 rows) puts the gate's age-band equal-opportunity estimate, the largest gap between
    # five groups' rates, near the world's own gap instead of its small-sample inflation (the
    # truth itself scores 0.064 on small's 3,400 held-out rows, `training.oracle_fairness`)
    "medium": Profile(
        "medium", 30_000, 11, gbm_trials=3, gbm_timeout_seconds=60, lstm_epochs=4, lstm_hidden=16
    ),
    "quick": Profile(
        "quick", 30_000, 7, gbm_trials=15, gbm_timeout_seconds=90, lstm_epochs=20, lstm_hidden=32
    ),
    "full": Profile(
        "full", 200_000, 7, gbm_trials=40, gbm_timeout_seconds=900, lstm_epochs=30, lstm_hidden=48
    ),
    "xl": Profile(
        "xl",
        1_000_000,
        7,
        gbm_trials=3,  # a LightGBM fit on 500,000 rows takes minutes on 2 cores
        gbm_timeout_seconds=600,
        lstm_epochs=8,
        lstm_hidden=48,
        choice_rows=100_000,
        lstm_rows=200_000,
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
