"""The one definition of every model feature, for training (offline) and scoring (online).

Training computes these over the whole synthetic world at each application time; the
feature_store service computes them for one member from its recent events; both call the same
functions, so the model never sees a feature computed two ways. Every function takes an explicit
``as_of`` per member and uses only data strictly before it (no look-ahead).

Protected attributes (gender, age, age band, county) are never model inputs; they are kept
beside the data for fairness audits only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from services.common import vocabulary

REPAYMENT_MONTHS = 24
MOBILE_MONEY_WEEKS = 13
WINDOWS_DAYS = (7, 30, 90)
MOBILE_MONEY_HISTORY_DAYS = MOBILE_MONEY_WEEKS * 7

PROTECTED_ATTRIBUTES = ("gender", "age", "age_band", "county")
EMPLOYMENT_TYPES = ("salaried", "self_employed", "farmer", "casual")
PRODUCTS = vocabulary.PRODUCTS.names  # the proto's order: the one-hot columns follow it
TRANSACTION_KINDS = vocabulary.TRANSACTION_KINDS.names
OUTGOING_KINDS = ("outflow", "airtime", "bill_payment", "betting")

PROFILE_FEATURES = (
    "tenure_months",
    "deposits_kes",
    "share_capital_kes",
    "n_guarantors",
    "existing_loans",
    "existing_loan_balance_kes",
    "bureau_listed",
    "monthly_income_kes",
    "deposits_change_6m_kes",
    *(f"employment_{e}" for e in EMPLOYMENT_TYPES),
)
SNAPSHOT_COLUMNS = PROFILE_FEATURES[:8]
FLAT_ANNUAL_INTEREST = 0.12  # SACCO loans are priced flat on the principal
DEPOSIT_CHANGE_DAYS = 182
MOBILE_MONEY_AGGREGATES = (
    *(
        f"mm_{name}_{w}d"
        for w in WINDOWS_DAYS
        for name in (
            "inflow_sum",
            "outflow_sum",
            "airtime_sum",
            "bill_payment_sum",
            "betting_sum",
            "overdraft_draw_count",
            "txn_count",
        )
    ),
    "mm_balance_last",
    "mm_balance_min_30d",
    "mm_betting_share_30d",
    "mm_net_flow_30d",
)
REPAYMENT_AGGREGATES = (
    "rp_months_observed",
    "rp_late_count_6m",
    "rp_late30_count_12m",
    "rp_max_days_late_12m",
    "rp_mean_days_late_24m",
    "rp_paid_ratio_6m",
    "rp_paid_ratio_24m",
    "rp_missed_count_12m",
    "rp_mean_days_late_3m",
)
#: Credit reference bureau (CRB) view of the member's accounts at other lenders, from each
#: account's latest report before the as-of time.
BUREAU_FEATURES = (
    "bureau_accounts",
    "bureau_open_accounts",
    "bureau_balance_kes",
    "bureau_arrears_kes",
    "bureau_max_days_past_due",
    "bureau_negative_listings",
    "bureau_written_off",
    "bureau_opened_12m",
)
APPLICATION_FEATURES = (
    "amount_kes",
    "term_months",
    "loan_to_income",
    "instalment_to_income",
    "loan_to_deposits",
    "loan_to_savings",
    "debt_service_ratio",
    "inflow_90d_to_income",
    "deposits_change_6m_to_income",
    *(f"product_{p}" for p in PRODUCTS),
)
ON_DEMAND_FEATURES = APPLICATION_FEATURES[2:]  # all but the request's own amount and term
TABULAR_FEATURES: tuple[str, ...] = (
    *PROFILE_FEATURES,
    *MOBILE_MONEY_AGGREGATES,
    *REPAYMENT_AGGREGATES,
    *BUREAU_FEATURES,
    *APPLICATION_FEATURES,
)
MONEY_FEATURES = frozenset(
    f for f in TABULAR_FEATURES if f.endswith(("_kes", "_sum_7d", "_sum_30d", "_sum_90d"))
) | {"mm_balance_last", "mm_balance_min_30d", "mm_net_flow_30d"}

# Sequence arrays (oldest first; left-padded, mask 0 where nothing is observed yet).
REPAYMENT_SEQUENCES = ("rp_amount_due_seq", "rp_amount_paid_seq", "rp_days_late_seq", "rp_mask_seq")
REPAYMENT_CHANNELS = ("paid_ratio", "log_days_late", "log_amount_due", "missed")
MOBILE_MONEY_SEQUENCES = (
    "mm_inflow_seq",
    "mm_outflow_seq",
    "mm_betting_seq",
    "mm_overdraft_draw_seq",
    "mm_txn_count_seq",
    "mm_balance_seq",
    "mm_mask_seq",
)
MOBILE_MONEY_CHANNELS = ("inflow", "outflow", "betting", "overdraft_draws", "txn_count", "balance")


def _as_of_series(as_of: pd.Series) -> pd.Series:
    """Member id -> as-of instant (UTC); one instant per member per call."""
    if not as_of.index.is_unique:
        raise ValueError("one as-of time per member per call")
    return pd.to_datetime(as_of, utc=True)


NS_PER_DAY = 86_400 * 10**9


def _ns(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC instants as int64 nanoseconds since the epoch (fast, tz-safe arithmetic).

    Values already held as datetimes (naive ones read as UTC, as `to_datetime(utc=True)` reads
    them) skip `pd.to_datetime`, whose caching check turns the first rows into Timestamps one
    by one: the feature store spent 8 % of a burst's samples there."""
    if values.dtype.kind != "M":  # datetime64, naive or with a zone, is stored as UTC instants
        values = pd.to_datetime(values, utc=True)
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8)


def _month_number(ns: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of UTC instants given in nanoseconds."""
    return ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _rows_for(table: pd.DataFrame, as_of: pd.Series) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The table's rows for these members, each row's member position and its as-of (ns)."""
    keys = table["member_id"]
    if isinstance(keys.dtype, pd.CategoricalDtype):  # millions of rows: map categories once
        per_category = as_of.index.get_indexer(keys.cat.categories.astype(str))
        raw = keys.cat.codes.to_numpy()
        codes = np.where(raw >= 0, per_category[raw], -1)
    else:
        codes = as_of.index.get_indexer(np.asarray(keys.astype(str)))
    keep = codes >= 0
    rows = table[keep]
    idx = codes[keep]
    return rows, idx, _ns(as_of)[idx]


def profile_features(snapshots: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """The latest profile snapshot at or before each member's as-of time, as model features."""
    as_of = _as_of_series(as_of)
    rows, idx, cutoff = _rows_for(snapshots, as_of)
    at = _ns(rows["snapshot_at"])
    keep = at <= cutoff
    rows, idx, at = rows[keep], idx[keep], at[keep]
    latest = _pick(rows, idx, at, as_of.index, newest=True)
    # deposits then: the newest snapshot at least six months back, else the oldest one known
    back = at <= cutoff[keep] - DEPOSIT_CHANGE_DAYS * NS_PER_DAY
    then = _pick(rows[back], idx[back], at[back], as_of.index, newest=True)
    oldest = _pick(rows, idx, at, as_of.index, newest=False)
    deposits_then = then["deposits_kes"].fillna(oldest["deposits_kes"])
    change = latest["deposits_kes"].astype("float64") - deposits_then.astype("float64")
    return profile_from_snapshot(latest, change)


def _pick(
    rows: pd.DataFrame, idx: np.ndarray, at: np.ndarray, members: pd.Index, *, newest: bool
) -> pd.DataFrame:
    """One snapshot per member (the newest or the oldest of `rows`), NaN rows where none."""
    order = np.lexsort((-at if newest else at, idx))
    first = np.ones(len(order), dtype=bool)
    first[1:] = idx[order][1:] != idx[order][:-1]
    picked = rows.iloc[order[first]].copy()
    picked.index = members[idx[order[first]]]
    return picked.reindex(members)


def profile_from_snapshot(profile: pd.DataFrame, deposits_change: pd.Series) -> pd.DataFrame:
    """Profile columns (one row per member) to numeric features; unknown members give NaN rows."""
    out = pd.DataFrame(index=profile.index)
    for name in SNAPSHOT_COLUMNS:
        out[name] = pd.to_numeric(profile[name], errors="coerce").astype("float64")
    out["deposits_change_6m_kes"] = deposits_change.astype("float64").to_numpy()
    employment = profile["employment_type"].astype("string")
    for e in EMPLOYMENT_TYPES:
        out[f"employment_{e}"] = (employment == e).astype("float64")
    return out


def mobile_money_features(txns: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """Window aggregates over 7, 30 and 90 days and the 13-week sequence, per member."""
    as_of = _as_of_series(as_of)
    members = as_of.index
    rows, idx, cutoff = _rows_for(txns, as_of)
    age_days = (cutoff - _ns(rows["occurred_at"])) / NS_PER_DAY
    keep = (age_days > 0) & (age_days <= MOBILE_MONEY_HISTORY_DAYS)
    rows, idx, age_days = rows[keep], idx[keep], age_days[keep]
    # one boolean mask per kind from the column's codes: comparing strings row by row for each
    # of a dozen masks was most of this function's own time
    kind = rows["kind"]  # a categorical's codes already are a factorization; text is compared
    codes, kinds = pd.factorize(
        kind if isinstance(kind.dtype, pd.CategoricalDtype) else kind.astype(str)
    )
    masks = {str(k): codes == i for i, k in enumerate(kinds)}
    none = np.zeros(len(codes), dtype=bool)

    def of(*names: str) -> np.ndarray:
        found = [masks[k] for k in names if k in masks]
        return np.logical_or.reduce(found) if found else none

    amount = rows["amount_kes"].to_numpy(dtype=np.float64)
    balance = rows["balance_kes"].to_numpy(dtype=np.float64)
    n = len(members)
    out: dict[str, np.ndarray] = {}

    def total(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        acc = np.zeros(n)
        np.add.at(acc, idx[mask], values[mask])
        return acc

    ones = np.ones_like(amount)
    for w in WINDOWS_DAYS:
        inside = age_days <= w
        for k in ("inflow", "outflow", "airtime", "bill_payment", "betting"):
            out[f"mm_{k}_sum_{w}d"] = total(inside & of(k), amount)
        out[f"mm_overdraft_draw_count_{w}d"] = total(inside & of("overdraft_draw"), ones)
        out[f"mm_txn_count_{w}d"] = total(inside, ones)

    out["mm_balance_last"] = _last_by_group(idx, age_days, balance, n, default=0.0)
    in30 = age_days <= 30
    min30 = np.full(n, np.inf)
    np.minimum.at(min30, idx[in30], balance[in30])
    out["mm_balance_min_30d"] = np.where(np.isfinite(min30), min30, out["mm_balance_last"])
    spent30 = sum(out[f"mm_{k}_sum_30d"] for k in OUTGOING_KINDS)
    out["mm_betting_share_30d"] = np.divide(
        out["mm_betting_sum_30d"], spent30, out=np.zeros(n), where=spent30 > 0
    )
    out["mm_net_flow_30d"] = out["mm_inflow_sum_30d"] - spent30

    # Weekly sequence, oldest week first (position 0 = 13 weeks ago).
    week = np.minimum((age_days // 7).astype(np.int64), MOBILE_MONEY_WEEKS - 1)
    pos = MOBILE_MONEY_WEEKS - 1 - week
    shape = (n, MOBILE_MONEY_WEEKS)
    seq: dict[str, np.ndarray] = {}
    for name, mask, values in (
        ("mm_inflow_seq", of("inflow"), amount),
        ("mm_outflow_seq", of(*OUTGOING_KINDS), amount),
        ("mm_betting_seq", of("betting"), amount),
        ("mm_overdraft_draw_seq", of("overdraft_draw"), ones),
        ("mm_txn_count_seq", np.ones(len(codes), dtype=bool), ones),
    ):
        acc = np.zeros(shape)
        np.add.at(acc, (idx[mask], pos[mask]), values[mask])
        seq[name] = acc
    cell = idx * MOBILE_MONEY_WEEKS + pos
    week_balance = _last_by_group(cell, age_days, balance, n * MOBILE_MONEY_WEEKS, np.nan)
    week_balance = pd.DataFrame(week_balance.reshape(shape)).ffill(axis=1).to_numpy()
    observed = np.cumsum(seq["mm_txn_count_seq"] > 0, axis=1) > 0
    seq["mm_balance_seq"] = np.where(observed, np.nan_to_num(week_balance), 0.0)
    seq["mm_mask_seq"] = observed.astype(np.float64)

    frame = pd.DataFrame(out, index=members)
    for name, values in seq.items():
        frame[name] = list(values)
    return frame


def _last_by_group(
    group: np.ndarray, age_days: np.ndarray, values: np.ndarray, size: int, default: float
) -> np.ndarray:
    """The newest value per group (smallest age), `default` where a group has none."""
    result = np.full(size, default, dtype=np.float64)
    if len(group) == 0:
        return result
    order = np.lexsort((age_days, group))  # per group, newest first
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    result[g[first]] = values[order][first]
    return result


def repayment_features(repayments: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """The 24-month repayment sequence known at as-of time, and aggregates derived from it."""
    as_of = _as_of_series(as_of)
    members = as_of.index
    rows, idx, cutoff = _rows_for(repayments, as_of)
    due_ns = _ns(rows["due_date"])
    months_back = _month_number(cutoff) - _month_number(due_ns)
    keep = (
        (_ns(rows["recorded_at"]) < cutoff)
        & (due_ns < cutoff)
        & (months_back >= 1)
        & (months_back <= REPAYMENT_MONTHS)
    )
    rows, idx = rows[keep], idx[keep]
    pos = REPAYMENT_MONTHS - months_back[keep]
    shape = (len(members), REPAYMENT_MONTHS)
    due = np.zeros(shape)
    paid = np.zeros(shape)
    late = np.zeros(shape)
    mask = np.zeros(shape)
    due[idx, pos] = rows["amount_due_kes"].to_numpy(dtype=np.float64)
    paid[idx, pos] = rows["amount_paid_kes"].to_numpy(dtype=np.float64)
    late[idx, pos] = rows["days_late"].to_numpy(dtype=np.float64)
    mask[idx, pos] = 1.0
    frame = repayment_aggregates(due, paid, late, mask)
    frame.index = members
    for name, values in zip(REPAYMENT_SEQUENCES, (due, paid, late, mask), strict=True):
        frame[name] = list(values)
    return frame


def repayment_aggregates(
    due: np.ndarray, paid: np.ndarray, late: np.ndarray, mask: np.ndarray
) -> pd.DataFrame:
    """Aggregates from the sequence arrays [N, 24], so both always agree."""
    observed = mask > 0
    months = observed.sum(axis=1).astype(np.float64)

    def ratio(k: int) -> np.ndarray:
        d = (due * observed)[:, -k:].sum(axis=1)
        p = (paid * observed)[:, -k:].sum(axis=1)
        return np.divide(p, d, out=np.ones(len(d)), where=d > 0)

    missed = observed & (paid < 0.5 * due)
    return pd.DataFrame(
        {
            "rp_months_observed": months,
            "rp_late_count_6m": ((late > 0) & observed)[:, -6:].sum(axis=1).astype(np.float64),
            "rp_late30_count_12m": ((late >= 30) & observed)[:, -12:].sum(axis=1).astype(float),
            "rp_max_days_late_12m": (late * observed)[:, -12:].max(axis=1),
            "rp_mean_days_late_24m": np.divide(
                (late * observed).sum(axis=1), months, out=np.zeros(len(months)), where=months > 0
            ),
            "rp_paid_ratio_6m": ratio(6),
            "rp_paid_ratio_24m": ratio(REPAYMENT_MONTHS),
            "rp_missed_count_12m": missed[:, -12:].sum(axis=1).astype(np.float64),
            "rp_mean_days_late_3m": np.divide(
                (late * observed)[:, -3:].sum(axis=1),
                observed[:, -3:].sum(axis=1),
                out=np.zeros(len(months)),
                where=observed[:, -3:].sum(axis=1) > 0,
            ),
        }
    )


def bureau_features(bureau: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """Counts and sums over each bureau account's latest report before as-of, per member.

    A member with no bureau record gets zeros (a thin file is information); a source with no
    bureau table at all gives zeros everywhere, which training drops as uninformative.
    """
    as_of = _as_of_series(as_of)
    members = as_of.index
    n = len(members)
    out = {name: np.zeros(n) for name in BUREAU_FEATURES}
    if len(bureau):
        rows, idx, cutoff = _rows_for(bureau, as_of)
        reported = _ns(rows["reported_at"])
        keep = reported < cutoff
        rows, idx, reported, cutoff = rows[keep], idx[keep], reported[keep], cutoff[keep]
        if len(rows):
            account = pd.factorize(
                rows["bureau"].astype(str) + "\x1f" + rows["account_id"].astype(str)
            )[0]
            # newest report per (member, account)
            order = np.lexsort((-reported, account, idx))
            first = np.ones(len(order), dtype=bool)
            pair = idx[order] * (account.max() + 1) + account[order]
            first[1:] = pair[1:] != pair[:-1]
            latest = order[first]
            rows, idx, cutoff = rows.iloc[latest], idx[latest], cutoff[latest]
            status = rows["status"].astype(object).fillna("unknown").astype(str).to_numpy()

            def money(column: str) -> np.ndarray:
                return np.nan_to_num(rows[column].to_numpy(dtype=np.float64))

            def total(values: np.ndarray) -> np.ndarray:
                acc = np.zeros(n)
                np.add.at(acc, idx, values)
                return acc

            is_open = status == "open"
            opened = _ns(rows["opened_at"].fillna(pd.Timestamp(0, tz="UTC")))
            recent = (rows["opened_at"].notna().to_numpy()) & (cutoff - opened <= 365 * NS_PER_DAY)
            out["bureau_accounts"] = total(np.ones(len(rows)))
            out["bureau_open_accounts"] = total(is_open.astype(np.float64))
            out["bureau_balance_kes"] = total(money("balance_kes") * is_open)
            out["bureau_arrears_kes"] = total(money("arrears_kes"))
            worst = np.zeros(n)
            np.maximum.at(worst, idx, money("days_past_due"))
            out["bureau_max_days_past_due"] = worst
            out["bureau_negative_listings"] = total(money("negative_listing"))
            out["bureau_written_off"] = total((status == "written_off").astype(np.float64))
            out["bureau_opened_12m"] = total(recent.astype(np.float64))
    return pd.DataFrame(out, index=members)


def application_features(
    amount_kes: ArrayLike,
    term_months: ArrayLike,
    product: ArrayLike,
    profile: pd.DataFrame | Mapping[str, ArrayLike],
    mm_inflow_sum_90d: ArrayLike,
) -> pd.DataFrame:
    """Application-time ratios (Feast on-demand features) and the product indicator.

    `profile` holds the member-profile features (income, deposits, share capital, existing
    balance, deposit change), row-aligned with the application arrays.
    """
    return pd.DataFrame(
        application_arrays(amount_kes, term_months, product, profile, mm_inflow_sum_90d)
    )


def application_arrays(
    amount_kes: ArrayLike,
    term_months: ArrayLike,
    product: ArrayLike,
    profile: pd.DataFrame | Mapping[str, ArrayLike],
    mm_inflow_sum_90d: ArrayLike,
) -> dict[str, np.ndarray]:
    """`application_features` as float64 arrays by name (in APPLICATION_FEATURES order), for
    scoring's hot path, which builds no DataFrame."""

    def col(values: ArrayLike, floor: float | None = None) -> np.ndarray:
        arr = np.nan_to_num(np.asarray(values, dtype=np.float64))
        return arr if floor is None else np.maximum(arr, floor)

    amount = col(amount_kes)
    term = col(term_months, 1.0)
    income = col(profile["monthly_income_kes"], 1.0)
    deposits = col(profile["deposits_kes"], 1.0)
    savings = col(profile["deposits_kes"]) + col(profile["share_capital_kes"])
    instalment = amount * (1.0 + FLAT_ANNUAL_INTEREST * term / 12.0) / term
    out = {
        "amount_kes": amount,
        "term_months": term,
        "loan_to_income": amount / (12.0 * income),
        "instalment_to_income": amount / term / income,
        "loan_to_deposits": amount / deposits,
        "loan_to_savings": amount / np.maximum(savings, 1.0),
        "debt_service_ratio": (instalment + col(profile["existing_loan_balance_kes"]) / 12.0)
        / income,
        "inflow_90d_to_income": col(mm_inflow_sum_90d) / income,
        "deposits_change_6m_to_income": col(profile["deposits_change_6m_kes"]) / income,
    }
    products = np.asarray(product).astype(str)
    for p in PRODUCTS:
        out[f"product_{p}"] = (products == p).astype(np.float64)
    return out


@dataclass(frozen=True)
class ModelInputs:
    """Arrays in the order the model bundle records; names match the ONNX graphs' inputs."""

    tabular: np.ndarray  # float32 [N, len(TABULAR_FEATURES)]
    static: np.ndarray  # float32 [N, len(TABULAR_FEATURES)], money columns log-scaled
    repayments: np.ndarray  # float32 [N, 24, len(REPAYMENT_CHANNELS)]
    repayment_mask: np.ndarray  # float32 [N, 24]
    mobile_money: np.ndarray  # float32 [N, 13, len(MOBILE_MONEY_CHANNELS)]
    mobile_money_mask: np.ndarray  # float32 [N, 13]


_MONEY_COLUMNS = np.array([j for j, f in enumerate(TABULAR_FEATURES) if f in MONEY_FEATURES])


def _stack(column: pd.Series, width: int) -> np.ndarray:
    values = [np.zeros(width) if v is None else np.asarray(v, dtype=np.float64) for v in column]
    return np.vstack(values) if values else np.zeros((0, width))


def model_inputs(features: pd.DataFrame) -> ModelInputs:
    """Build both models' inputs from one row per application of named features."""
    missing = [
        f
        for f in (*TABULAR_FEATURES, *REPAYMENT_SEQUENCES, *MOBILE_MONEY_SEQUENCES)
        if f not in features.columns
    ]
    if missing:
        raise KeyError(f"features missing: {missing}")
    tabular = features[list(TABULAR_FEATURES)].to_numpy(dtype=np.float64)
    sequences = {c: _stack(features[c], REPAYMENT_MONTHS) for c in REPAYMENT_SEQUENCES} | {
        c: _stack(features[c], MOBILE_MONEY_WEEKS) for c in MOBILE_MONEY_SEQUENCES
    }
    return model_inputs_from_arrays(tabular, sequences)


def model_inputs_from_arrays(
    tabular: np.ndarray, sequences: Mapping[str, np.ndarray]
) -> ModelInputs:
    """Both models' inputs from the tabular features [N, len(TABULAR_FEATURES)] (float64, NaN
    where missing) and each sequence [N, steps] (zeros where nothing was observed)."""
    missing = [f for f in (*REPAYMENT_SEQUENCES, *MOBILE_MONEY_SEQUENCES) if f not in sequences]
    if missing or tabular.ndim != 2 or tabular.shape[1] != len(TABULAR_FEATURES):
        raise KeyError(f"features missing: {missing or 'tabular columns'}")
    static = tabular.copy()
    money = static[:, _MONEY_COLUMNS]
    static[:, _MONEY_COLUMNS] = np.sign(money) * np.log1p(np.abs(money))
    due, paid, late, rmask = (sequences[c] for c in REPAYMENT_SEQUENCES)
    paid_ratio = np.divide(paid, due, out=np.ones_like(due), where=due > 0).clip(0.0, 2.0)
    repayments = np.stack(
        [
            paid_ratio * rmask,
            np.log1p(late) * rmask,
            np.log1p(due) * rmask,
            ((paid < 0.5 * due) & (rmask > 0)).astype(np.float64),
        ],
        axis=-1,
    )
    mm = [sequences[c] for c in MOBILE_MONEY_SEQUENCES]
    mmask = mm[-1]
    mobile_money = (
        np.stack(
            [np.log1p(mm[0]), np.log1p(mm[1]), np.log1p(mm[2]), mm[3], mm[4], np.log1p(mm[5])],
            axis=-1,
        )
        * mmask[..., None]
    )
    return ModelInputs(
        tabular=np.nan_to_num(tabular).astype(np.float32),
        static=np.nan_to_num(static).astype(np.float32),
        repayments=repayments.astype(np.float32),
        repayment_mask=rmask.astype(np.float32),
        mobile_money=mobile_money.astype(np.float32),
        mobile_money_mask=mmask.astype(np.float32),
    )
