"""What would change a declined application's outcome, where the model can say: the smallest
change on each lever the member controls (a smaller loan, a longer term, more guarantors) that
takes the decision out of the decline band, found by re-scoring the decision's own inputs with
its own bundle.

Only the levers a member can act on move; everything the model knows about their history stays
as it was scored, the sequence model's view included (its probability is held fixed: its inputs
are the member's past, which no change now alters). The application's ratios are recomputed from
the changed amount and term with the same function training and scoring use
(`features.application_arrays`), so a changed loan is scored as the pipeline would score it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from services.common import features as F
from services.common.bundle import ModelBundle
from services.common.notices import OutcomeChange
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.vocabulary import PRODUCTS

AMOUNT_FRACTIONS = (0.9, 0.75, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
TERM_FACTORS = (1.5, 2.0)
MAX_TERM_MONTHS = 72
EXTRA_GUARANTORS = (1, 2, 3)
PROFILE = (
    "monthly_income_kes",
    "deposits_kes",
    "share_capital_kes",
    "existing_loan_balance_kes",
    "deposits_change_6m_kes",
)


@dataclass(frozen=True)
class Candidate:
    feature: str
    amount: float
    term: float
    guarantors: float
    en: str
    sw: str


def _candidates(amount: float, term: float, guarantors: float) -> Iterator[Candidate]:
    """Each lever's options, the smallest change first."""
    for fraction in AMOUNT_FRACTIONS:
        smaller = round(amount * fraction, -3) or round(amount * fraction)
        if 0 < smaller < amount:
            yield Candidate(
                "amount_kes",
                smaller,
                term,
                guarantors,
                f"borrowing KES {smaller:,.0f} instead of KES {amount:,.0f}",
                f"kukopa KES {smaller:,.0f} badala ya KES {amount:,.0f}",
            )
    for factor in TERM_FACTORS:
        longer = float(min(round(term * factor), MAX_TERM_MONTHS))
        if longer > term:
            yield Candidate(
                "term_months",
                amount,
                longer,
                guarantors,
                f"repaying over {longer:.0f} months instead of {term:.0f}",
                f"kulipa kwa miezi {longer:.0f} badala ya {term:.0f}",
            )
    for extra in EXTRA_GUARANTORS:
        total = guarantors + extra
        yield Candidate(
            "n_guarantors",
            amount,
            term,
            total,
            f"bringing {extra} more guarantor{'s' if extra > 1 else ''} ({total:.0f} in all)",
            f"kuleta wadhamini {extra} zaidi ({total:.0f} kwa jumla)",
        )


def _product(features: dict[str, float]) -> str:
    flags = {p: features.get(f"product_{p}", 0.0) for p in PRODUCTS.names}
    best = max(flags, key=lambda p: flags[p])
    return best if flags[best] >= 0.5 else PRODUCTS.names[0]


def _pd(bundle: ModelBundle, rows: np.ndarray, p_lstm: float) -> np.ndarray:
    tabular = np.ascontiguousarray(rows[:, bundle.columns])
    if bundle.tabular_model.get_inputs()[0].type != "tensor(double)":
        tabular = tabular.astype(np.float32)
    p_tabular = np.asarray(bundle.tabular_model.run(None, {"tabular": tabular})[1])[:, 1]
    lstm = np.full(len(rows), p_lstm if bundle.lstm is not None else 0.5)
    return bundle.calibrator.apply(bundle.weights.combine(p_tabular.astype(np.float64), lstm))


def outcome_changes(bundle: ModelBundle, decision: CreditDecision) -> list[OutcomeChange]:
    """For each lever, the smallest change that leaves the decline band; [] where the model
    cannot say (inputs not recorded, or no change on these levers is enough)."""
    recorded = dict(decision.features)
    if any(name not in recorded for name in F.TABULAR_FEATURES):
        return []
    base = np.array([recorded[name] for name in F.TABULAR_FEATURES], dtype=np.float64)
    amount, term = recorded["amount_kes"], recorded["term_months"]
    guarantors = recorded["n_guarantors"]
    if bundle.bands.band(_pd(bundle, base[None, :], decision.lstm_probability))[0] != "decline":
        return []  # nothing to lift: the inputs as scored are not a decline under this bundle
    candidates = list(_candidates(amount, term, guarantors))
    if not candidates:
        return []
    rows = np.repeat(base[None, :], len(candidates), axis=0)
    index = {name: j for j, name in enumerate(F.TABULAR_FEATURES)}
    profile = {name: np.full(len(candidates), recorded[name]) for name in PROFILE}
    ratios = F.application_arrays(
        [c.amount for c in candidates],
        [c.term for c in candidates],
        [_product(recorded)] * len(candidates),
        profile,
        np.full(len(candidates), recorded["mm_inflow_sum_90d"]),
    )
    for name, values in ratios.items():
        rows[:, index[name]] = values
    rows[:, index["n_guarantors"]] = [c.guarantors for c in candidates]
    bands = bundle.bands.band(_pd(bundle, rows, decision.lstm_probability))
    found: dict[str, OutcomeChange] = {}
    for candidate, band in zip(candidates, bands, strict=True):
        if band != "decline" and candidate.feature not in found:
            outcome = "approved" if band == "approve" else "sent to a risk officer for review"
            outcome_sw = "kukubaliwa" if band == "approve" else "kupelekwa kwa afisa wa hatari"
            found[candidate.feature] = OutcomeChange(
                candidate.feature,
                f"{candidate.en[0].upper()}{candidate.en[1:]} would likely have the application"
                f" {outcome}.",
                f"{candidate.sw[0].upper()}{candidate.sw[1:]} kungeweza kufanya ombi {outcome_sw}.",
            )
    return list(found.values())
