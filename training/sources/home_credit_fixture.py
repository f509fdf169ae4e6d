"""A small, generated stand-in for Kaggle's "Home Credit Default Risk" files, for tests and demos.

The real files cannot be downloaded on these machines, so the tests write this fixture instead:
the same seven (plus `application_test.csv`) file names, the published files' exact column
names in their order (122 in `application_train.csv`), the same value formats (integers written
as integers, amounts and most day counts as floats, empty fields for missing values) and the
quirks an adapter has to survive: the 365243 "not applicable" day sentinel, `XNA`/`XAP`
categories, day offsets that are negative (before the application), a few positive ones
(bureau updates after it), empty fields, a duplicated row, bureau months before an account
opened, and ids that `application_train.csv` does not know (the test set's applicants, loans
missing from `previous_application.csv`, bureau accounts missing from `bureau.csv`).

`TARGET` is driven by a latent risk that also drives the EXT_SOURCE scores, bureau arrears and
instalment lateness, so a model trained on the fixture beats chance, as it does on the real data.

`python -m training.sources.home_credit_fixture DIR [--applicants N] [--seed S]` writes one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SENTINEL_DAYS = 365243

#: `application_test.csv`'s columns; `application_train.csv` has TARGET after SK_ID_CURR.
APPLICATION_COLUMNS: tuple[str, ...] = (
    "SK_ID_CURR",
    "NAME_CONTRACT_TYPE",
    "CODE_GENDER",
    "FLAG_OWN_CAR",
    "FLAG_OWN_REALTY",
    "CNT_CHILDREN",
    "AMT_INCOME_TOTAL",
    "AMT_CREDIT",
    "AMT_ANNUITY",
    "AMT_GOODS_PRICE",
    "NAME_TYPE_SUITE",
    "NAME_INCOME_TYPE",
    "NAME_EDUCATION_TYPE",
    "NAME_FAMILY_STATUS",
    "NAME_HOUSING_TYPE",
    "REGION_POPULATION_RELATIVE",
    "DAYS_BIRTH",
    "DAYS_EMPLOYED",
    "DAYS_REGISTRATION",
    "DAYS_ID_PUBLISH",
    "OWN_CAR_AGE",
    "FLAG_MOBIL",
    "FLAG_EMP_PHONE",
    "FLAG_WORK_PHONE",
    "FLAG_CONT_MOBILE",
    "FLAG_PHONE",
    "FLAG_EMAIL",
    "OCCUPATION_TYPE",
    "CNT_FAM_MEMBERS",
    "REGION_RATING_CLIENT",
    "REGION_RATING_CLIENT_W_CITY",
    "WEEKDAY_APPR_PROCESS_START",
    "HOUR_APPR_PROCESS_START",
    "REG_REGION_NOT_LIVE_REGION",
    "REG_REGION_NOT_WORK_REGION",
    "LIVE_REGION_NOT_WORK_REGION",
    "REG_CITY_NOT_LIVE_CITY",
    "REG_CITY_NOT_WORK_CITY",
    "LIVE_CITY_NOT_WORK_CITY",
    "ORGANIZATION_TYPE",
    "EXT_SOURCE_1",
    "EXT_SOURCE_2",
    "EXT_SOURCE_3",
    *(
        f"{name}_{stat}"
        for stat in ("AVG", "MODE", "MEDI")
        for name in (
            "APARTMENTS",
            "BASEMENTAREA",
            "YEARS_BEGINEXPLUATATION",
            "YEARS_BUILD",
            "COMMONAREA",
            "ELEVATORS",
            "ENTRANCES",
            "FLOORSMAX",
            "FLOORSMIN",
            "LANDAREA",
            "LIVINGAPARTMENTS",
            "LIVINGAREA",
            "NONLIVINGAPARTMENTS",
            "NONLIVINGAREA",
        )
    ),
    "FONDKAPREMONT_MODE",
    "HOUSETYPE_MODE",
    "TOTALAREA_MODE",
    "WALLSMATERIAL_MODE",
    "EMERGENCYSTATE_MODE",
    "OBS_30_CNT_SOCIAL_CIRCLE",
    "DEF_30_CNT_SOCIAL_CIRCLE",
    "OBS_60_CNT_SOCIAL_CIRCLE",
    "DEF_60_CNT_SOCIAL_CIRCLE",
    "DAYS_LAST_PHONE_CHANGE",
    *(f"FLAG_DOCUMENT_{i}" for i in range(2, 22)),
    "AMT_REQ_CREDIT_BUREAU_HOUR",
    "AMT_REQ_CREDIT_BUREAU_DAY",
    "AMT_REQ_CREDIT_BUREAU_WEEK",
    "AMT_REQ_CREDIT_BUREAU_MON",
    "AMT_REQ_CREDIT_BUREAU_QRT",
    "AMT_REQ_CREDIT_BUREAU_YEAR",
)
APPLICATION_TRAIN_COLUMNS: tuple[str, ...] = (
    APPLICATION_COLUMNS[0],
    "TARGET",
    *APPLICATION_COLUMNS[1:],
)
BUREAU_COLUMNS: tuple[str, ...] = (
    "SK_ID_CURR",
    "SK_ID_BUREAU",
    "CREDIT_ACTIVE",
    "CREDIT_CURRENCY",
    "DAYS_CREDIT",
    "CREDIT_DAY_OVERDUE",
    "DAYS_CREDIT_ENDDATE",
    "DAYS_ENDDATE_FACT",
    "AMT_CREDIT_MAX_OVERDUE",
    "CNT_CREDIT_PROLONG",
    "AMT_CREDIT_SUM",
    "AMT_CREDIT_SUM_DEBT",
    "AMT_CREDIT_SUM_LIMIT",
    "AMT_CREDIT_SUM_OVERDUE",
    "CREDIT_TYPE",
    "DAYS_CREDIT_UPDATE",
    "AMT_ANNUITY",
)
BUREAU_BALANCE_COLUMNS: tuple[str, ...] = ("SK_ID_BUREAU", "MONTHS_BALANCE", "STATUS")
PREVIOUS_APPLICATION_COLUMNS: tuple[str, ...] = (
    "SK_ID_PREV",
    "SK_ID_CURR",
    "NAME_CONTRACT_TYPE",
    "AMT_ANNUITY",
    "AMT_APPLICATION",
    "AMT_CREDIT",
    "AMT_DOWN_PAYMENT",
    "AMT_GOODS_PRICE",
    "WEEKDAY_APPR_PROCESS_START",
    "HOUR_APPR_PROCESS_START",
    "FLAG_LAST_APPL_PER_CONTRACT",
    "NFLAG_LAST_APPL_IN_DAY",
    "RATE_DOWN_PAYMENT",
    "RATE_INTEREST_PRIMARY",
    "RATE_INTEREST_PRIVILEGED",
    "NAME_CASH_LOAN_PURPOSE",
    "NAME_CONTRACT_STATUS",
    "DAYS_DECISION",
    "NAME_PAYMENT_TYPE",
    "CODE_REJECT_REASON",
    "NAME_TYPE_SUITE",
    "NAME_CLIENT_TYPE",
    "NAME_GOODS_CATEGORY",
    "NAME_PORTFOLIO",
    "NAME_PRODUCT_TYPE",
    "CHANNEL_TYPE",
    "SELLERPLACE_AREA",
    "NAME_SELLER_INDUSTRY",
    "CNT_PAYMENT",
    "NAME_YIELD_GROUP",
    "PRODUCT_COMBINATION",
    "DAYS_FIRST_DRAWING",
    "DAYS_FIRST_DUE",
    "DAYS_LAST_DUE_1ST_VERSION",
    "DAYS_LAST_DUE",
    "DAYS_TERMINATION",
    "NFLAG_INSURED_ON_APPROVAL",
)
INSTALLMENTS_PAYMENTS_COLUMNS: tuple[str, ...] = (
    "SK_ID_PREV",
    "SK_ID_CURR",
    "NUM_INSTALMENT_VERSION",
    "NUM_INSTALMENT_NUMBER",
    "DAYS_INSTALMENT",
    "DAYS_ENTRY_PAYMENT",
    "AMT_INSTALMENT",
    "AMT_PAYMENT",
)
POS_CASH_BALANCE_COLUMNS: tuple[str, ...] = (
    "SK_ID_PREV",
    "SK_ID_CURR",
    "MONTHS_BALANCE",
    "CNT_INSTALMENT",
    "CNT_INSTALMENT_FUTURE",
    "NAME_CONTRACT_STATUS",
    "SK_DPD",
    "SK_DPD_DEF",
)
CREDIT_CARD_BALANCE_COLUMNS: tuple[str, ...] = (
    "SK_ID_PREV",
    "SK_ID_CURR",
    "MONTHS_BALANCE",
    "AMT_BALANCE",
    "AMT_CREDIT_LIMIT_ACTUAL",
    "AMT_DRAWINGS_ATM_CURRENT",
    "AMT_DRAWINGS_CURRENT",
    "AMT_DRAWINGS_OTHER_CURRENT",
    "AMT_DRAWINGS_POS_CURRENT",
    "AMT_INST_MIN_REGULARITY",
    "AMT_PAYMENT_CURRENT",
    "AMT_PAYMENT_TOTAL_CURRENT",
    "AMT_RECEIVABLE_PRINCIPAL",
    "AMT_RECIVABLE",
    "AMT_TOTAL_RECEIVABLE",
    "CNT_DRAWINGS_ATM_CURRENT",
    "CNT_DRAWINGS_CURRENT",
    "CNT_DRAWINGS_OTHER_CURRENT",
    "CNT_DRAWINGS_POS_CURRENT",
    "CNT_INSTALMENT_MATURE_CUM",
    "NAME_CONTRACT_STATUS",
    "SK_DPD",
    "SK_DPD_DEF",
)
FILES: dict[str, tuple[str, ...]] = {
    "application_train.csv": APPLICATION_TRAIN_COLUMNS,
    "application_test.csv": APPLICATION_COLUMNS,
    "bureau.csv": BUREAU_COLUMNS,
    "bureau_balance.csv": BUREAU_BALANCE_COLUMNS,
    "previous_application.csv": PREVIOUS_APPLICATION_COLUMNS,
    "installments_payments.csv": INSTALLMENTS_PAYMENTS_COLUMNS,
    "POS_CASH_balance.csv": POS_CASH_BALANCE_COLUMNS,
    "credit_card_balance.csv": CREDIT_CARD_BALANCE_COLUMNS,
}


@dataclass(frozen=True)
class Fixture:
    """What was written, and the quirks planted in it (so tests can look for them)."""

    folder: Path
    rows: dict[str, int]
    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    xna_gender_ids: tuple[int, ...]
    no_annuity_ids: tuple[int, ...]
    duplicated_train_id: int
    orphan_bureau_accounts: tuple[int, ...]  # in bureau_balance.csv, not in bureau.csv
    orphan_loans: tuple[int, ...]  # in installments_payments.csv, not in previous_application
    early_bureau_month_account: int  # has a bureau_balance month before it opened
    positive_update_account: int  # DAYS_CREDIT_UPDATE after the application


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    probs = np.asarray(p, dtype=np.float64)
    return rng.choice(np.asarray(values, dtype=object), size=n, p=probs / probs.sum())


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Empty a share of the values (NaN for numbers, None for text), as the real files do."""
    out = values.astype(object if values.dtype == object else np.float64)
    mask = rng.random(len(out)) < share
    out[mask] = None if out.dtype == object else np.nan
    return out


def _only(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Text where `mask` holds, empty elsewhere."""
    out = np.asarray(values, dtype=object).copy()
    out[~mask] = None
    return out


def _annuity(credit: np.ndarray, months: np.ndarray, monthly_rate: np.ndarray) -> np.ndarray:
    months = np.maximum(months, 1)
    return np.round(credit * monthly_rate / (1.0 - (1.0 + monthly_rate) ** -months), 1)


# ----------------------------------------------------------------------------- applicants


def _applicants(rng: np.random.Generator, ids: np.ndarray, risk: np.ndarray) -> pd.DataFrame:
    """Every column of application_test.csv, in its order, with realistic values and gaps."""
    n = len(ids)
    c: dict[str, object] = {"SK_ID_CURR": ids}
    revolving = rng.random(n) < 0.095
    c["NAME_CONTRACT_TYPE"] = np.where(revolving, "Revolving loans", "Cash loans")
    c["CODE_GENDER"] = _pick(rng, ["F", "M"], [0.66, 0.34], n)
    car = rng.random(n) < 0.34
    c["FLAG_OWN_CAR"] = np.where(car, "Y", "N")
    c["FLAG_OWN_REALTY"] = np.where(rng.random(n) < 0.69, "Y", "N")
    children = rng.choice([0, 1, 2, 3, 4], size=n, p=[0.70, 0.2, 0.087, 0.012, 0.001])
    c["CNT_CHILDREN"] = children
    income = np.maximum(np.round(np.exp(rng.normal(np.log(147_150), 0.5, n)) / 2250) * 2250, 27000)
    c["AMT_INCOME_TOTAL"] = income.astype(np.float64)
    limits = np.array([135000.0, 180000.0, 225000.0, 270000.0, 450000.0])
    cash_credit = np.maximum(np.round(np.exp(rng.normal(np.log(520_000), 0.6, n)), -2), 45_000.0)
    credit = np.where(revolving, rng.choice(limits, n), cash_credit)
    months = rng.choice([12, 18, 24, 30, 36, 48, 60], size=n)
    rate = rng.uniform(0.011, 0.025, n)
    annuity = np.where(revolving, credit * 0.05, _annuity(credit, months, rate))
    c["AMT_CREDIT"] = credit
    c["AMT_ANNUITY"] = annuity
    c["AMT_GOODS_PRICE"] = np.where(
        revolving, np.where(rng.random(n) < 0.1, np.nan, credit), np.round(credit * 0.9, -2)
    )
    c["NAME_TYPE_SUITE"] = _blank(
        rng,
        _pick(
            rng,
            [
                "Unaccompanied",
                "Family",
                "Spouse, partner",
                "Children",
                "Other_B",
                "Other_A",
                "Group of people",
            ],
            [0.81, 0.13, 0.037, 0.011, 0.006, 0.003, 0.001],
            n,
        ),
        0.004,
    )
    income_type = _pick(
        rng,
        [
            "Working",
            "Commercial associate",
            "Pensioner",
            "State servant",
            "Unemployed",
            "Student",
            "Businessman",
            "Maternity leave",
        ],
        [0.516, 0.233, 0.18, 0.0706, 0.0003, 0.0002, 0.0002, 0.0002],
        n,
    )
    c["NAME_INCOME_TYPE"] = income_type
    c["NAME_EDUCATION_TYPE"] = _pick(
        rng,
        [
            "Secondary / secondary special",
            "Higher education",
            "Incomplete higher",
            "Lower secondary",
            "Academic degree",
        ],
        [0.71, 0.243, 0.033, 0.012, 0.002],
        n,
    )
    family = _pick(
        rng,
        ["Married", "Single / not married", "Civil marriage", "Separated", "Widow"],
        [0.64, 0.148, 0.097, 0.064, 0.052],
        n,
    )
    c["NAME_FAMILY_STATUS"] = family
    c["NAME_HOUSING_TYPE"] = _pick(
        rng,
        [
            "House / apartment",
            "With parents",
            "Municipal apartment",
            "Rented apartment",
            "Office apartment",
            "Co-op apartment",
        ],
        [0.887, 0.048, 0.036, 0.016, 0.009, 0.004],
        n,
    )
    c["REGION_POPULATION_RELATIVE"] = rng.choice(
        [0.018801, 0.003541, 0.010032, 0.008019, 0.028663, 0.035792, 0.04622, 0.072508, 0.020713],
        n,
    )
    pensioner = (income_type == "Pensioner") | (income_type == "Unemployed")
    age_years = np.where(pensioner, rng.uniform(55, 69, n), rng.uniform(20.5, 64, n))
    c["DAYS_BIRTH"] = -np.round(age_years * 365.25).astype(np.int64)
    employed_days = -np.minimum(
        rng.exponential(2000, n).astype(np.int64) + 1, np.round(age_years * 365.25 - 18 * 365)
    ).astype(np.int64)
    c["DAYS_EMPLOYED"] = np.where(pensioner, SENTINEL_DAYS, employed_days)  # the sentinel
    c["DAYS_REGISTRATION"] = -np.round(rng.uniform(0, 15000, n)).astype(np.float64)
    c["DAYS_ID_PUBLISH"] = -rng.integers(0, 6000, n)
    c["OWN_CAR_AGE"] = np.where(car, rng.integers(0, 30, n).astype(np.float64), np.nan)
    c["FLAG_MOBIL"] = np.ones(n, dtype=np.int64)
    c["FLAG_EMP_PHONE"] = (~pensioner).astype(np.int64)
    c["FLAG_WORK_PHONE"] = (rng.random(n) < 0.2).astype(np.int64)
    c["FLAG_CONT_MOBILE"] = (rng.random(n) < 0.998).astype(np.int64)
    c["FLAG_PHONE"] = (rng.random(n) < 0.28).astype(np.int64)
    c["FLAG_EMAIL"] = (rng.random(n) < 0.057).astype(np.int64)
    occupation = _pick(
        rng,
        [
            "Laborers",
            "Sales staff",
            "Core staff",
            "Managers",
            "Drivers",
            "High skill tech staff",
            "Accountants",
            "Medicine staff",
            "Security staff",
            "Cooking staff",
            "Cleaning staff",
            "Private service staff",
            "Low-skill Laborers",
            "Waiters/barmen staff",
            "Secretaries",
            "Realty agents",
            "HR staff",
            "IT staff",
        ],
        [26, 15, 13, 10, 9, 5, 4.6, 4, 3.2, 2.8, 2.2, 1.2, 1, 0.6, 0.6, 0.3, 0.3, 0.2],
        n,
    )
    occupation[pensioner | (rng.random(n) < 0.14)] = None
    c["OCCUPATION_TYPE"] = occupation
    married = np.isin(family, ["Married", "Civil marriage"])
    c["CNT_FAM_MEMBERS"] = (children + 1 + married).astype(np.float64)
    rating = rng.choice([1, 2, 3], size=n, p=[0.1, 0.74, 0.16])
    c["REGION_RATING_CLIENT"] = rating
    c["REGION_RATING_CLIENT_W_CITY"] = np.clip(rating + rng.choice([-1, 0, 0, 0, 1], n), 1, 3)
    c["WEEKDAY_APPR_PROCESS_START"] = _pick(
        rng,
        ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
        [0.165, 0.175, 0.169, 0.164, 0.164, 0.11, 0.053],
        n,
    )
    c["HOUR_APPR_PROCESS_START"] = np.clip(np.round(rng.normal(12, 3.3, n)), 0, 23).astype(int)
    for name, share in (
        ("REG_REGION_NOT_LIVE_REGION", 0.015),
        ("REG_REGION_NOT_WORK_REGION", 0.05),
        ("LIVE_REGION_NOT_WORK_REGION", 0.04),
        ("REG_CITY_NOT_LIVE_CITY", 0.078),
        ("REG_CITY_NOT_WORK_CITY", 0.23),
        ("LIVE_CITY_NOT_WORK_CITY", 0.18),
    ):
        c[name] = (rng.random(n) < share).astype(np.int64)
    organization = _pick(
        rng,
        [
            "Business Entity Type 3",
            "Self-employed",
            "Other",
            "Medicine",
            "Business Entity Type 2",
            "Government",
            "School",
            "Trade: type 7",
            "Kindergarten",
            "Construction",
            "Business Entity Type 1",
            "Transport: type 4",
            "Industry: type 9",
            "Security",
            "Housing",
            "Military",
            "Bank",
            "Agriculture",
            "Police",
            "Postal",
        ],
        [
            27,
            15.3,
            6.6,
            44,
            4.2,
            4.1,
            3.5,
            3.1,
            2.7,
            2.6,
            2.4,
            2.1,
            1.4,
            1.3,
            1.2,
            1.0,
            1.0,
            1.0,
            0.9,
            0.8,
        ],
        n,
    )
    organization[pensioner] = "XNA"  # the real file's category for "no employer"
    c["ORGANIZATION_TYPE"] = organization
    for i, missing in ((1, 0.56), (2, 0.002), (3, 0.2)):
        score = _sigmoid(0.4 - 1.0 * risk + rng.normal(0, 0.7, n))
        c[f"EXT_SOURCE_{i}"] = _blank(rng, np.clip(score, 0.0005, 0.96), missing)
    building = rng.random(n) < 0.5
    bases = {
        "APARTMENTS": (0.12, 0.1),
        "BASEMENTAREA": (0.09, 0.08),
        "YEARS_BEGINEXPLUATATION": (0.977, 0.05),
        "YEARS_BUILD": (0.75, 0.11),
        "COMMONAREA": (0.045, 0.07),
        "ELEVATORS": (0.08, 0.13),
        "ENTRANCES": (0.15, 0.1),
        "FLOORSMAX": (0.23, 0.14),
        "FLOORSMIN": (0.23, 0.16),
        "LANDAREA": (0.067, 0.08),
        "LIVINGAPARTMENTS": (0.1, 0.09),
        "LIVINGAREA": (0.107, 0.11),
        "NONLIVINGAPARTMENTS": (0.009, 0.05),
        "NONLIVINGAREA": (0.028, 0.07),
    }
    avg: dict[str, np.ndarray] = {}
    for name, (mean, sd) in bases.items():
        value = np.round(np.clip(rng.normal(mean, sd, n), 0.0, 1.0), 4)
        value[~building | (rng.random(n) < 0.25)] = np.nan
        avg[name] = value
    for stat in ("AVG", "MODE", "MEDI"):
        for name in bases:
            jitter = 0.0 if stat == "AVG" else rng.normal(0, 0.01, n)
            c[f"{name}_{stat}"] = np.round(np.clip(avg[name] + jitter, 0.0, 1.0), 4)
    c["FONDKAPREMONT_MODE"] = _only(
        building,
        _pick(
            rng,
            ["reg oper account", "org spec account", "reg oper spec account", "not specified"],
            [0.78, 0.06, 0.13, 0.03],
            n,
        ),
    )
    c["HOUSETYPE_MODE"] = _only(
        building,
        _pick(rng, ["block of flats", "specific housing", "terraced house"], [0.98, 0.01, 0.01], n),
    )
    c["TOTALAREA_MODE"] = np.round(
        np.where(building, np.clip(rng.normal(0.1, 0.1, n), 0, 1), np.nan), 4
    )
    c["WALLSMATERIAL_MODE"] = _only(
        building,
        _pick(
            rng,
            ["Panel", "Stone, brick", "Block", "Wooden", "Mixed", "Monolithic", "Others"],
            [0.43, 0.42, 0.06, 0.035, 0.015, 0.012, 0.011],
            n,
        ),
    )
    c["EMERGENCYSTATE_MODE"] = _only(building, np.where(rng.random(n) < 0.015, "Yes", "No"))
    obs30 = rng.poisson(1.4, n).astype(np.float64)
    def30 = np.minimum(rng.poisson(0.14 + 0.05 * np.clip(risk, 0, None), n), obs30)
    social_missing = rng.random(n) < 0.0033
    for name, counts in (
        ("OBS_30_CNT_SOCIAL_CIRCLE", obs30),
        ("DEF_30_CNT_SOCIAL_CIRCLE", def30),
        ("OBS_60_CNT_SOCIAL_CIRCLE", obs30 - (rng.random(n) < 0.05)),
        ("DEF_60_CNT_SOCIAL_CIRCLE", np.maximum(def30 - (rng.random(n) < 0.2), 0)),
    ):
        social = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
        social[social_missing] = np.nan
        c[name] = social
    c["DAYS_LAST_PHONE_CHANGE"] = np.where(
        rng.random(n) < 0.12, 0.0, -np.round(rng.exponential(950, n))
    ).astype(np.float64)
    doc_share = {3: 0.71, 6: 0.088, 8: 0.081, 5: 0.015, 9: 0.0039, 11: 0.0039, 18: 0.0081}
    for i in range(2, 22):
        c[f"FLAG_DOCUMENT_{i}"] = (rng.random(n) < doc_share.get(i, 0.0005)).astype(np.int64)
    req_missing = rng.random(n) < 0.135
    for name, mean in (
        ("HOUR", 0.0064),
        ("DAY", 0.007),
        ("WEEK", 0.034),
        ("MON", 0.27),
        ("QRT", 0.27),
        ("YEAR", 1.9),
    ):
        value = rng.poisson(mean, n).astype(np.float64)
        value[req_missing] = np.nan
        c[f"AMT_REQ_CREDIT_BUREAU_{name}"] = value
    frame = pd.DataFrame(c)
    return frame[list(APPLICATION_COLUMNS)]


# ----------------------------------------------------------------------------- bureau


def _bureau(
    rng: np.random.Generator, ids: np.ndarray, risk: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    n_app = len(ids)
    counts = np.where(rng.random(n_app) < 0.14, 0, rng.poisson(3.5, n_app))
    owner = np.repeat(np.arange(n_app), counts)
    n = len(owner)
    r = risk[owner]
    account = 5_000_000 + rng.choice(np.arange(n * 3), n, replace=False)
    opened = -rng.integers(1, 2923, n)
    bad = rng.random(n) < _sigmoid(-5.0 + 1.5 * r)
    sold = ~bad & (rng.random(n) < _sigmoid(-5.5 + 1.2 * r))
    active = ~bad & ~sold & (rng.random(n) < np.clip(0.2 + 0.3 * (opened > -900), 0, 1))
    status = np.where(bad, "Bad debt", np.where(sold, "Sold", np.where(active, "Active", "Closed")))
    overdue_flag = (active | bad) & (rng.random(n) < _sigmoid(-3.0 + 1.4 * r))
    day_overdue = np.where(overdue_flag, rng.exponential(80, n).astype(np.int64) + 1, 0)
    duration = rng.integers(90, 1800, n)
    end = (opened + duration).astype(np.float64)
    end[rng.random(n) < 0.06] = np.nan
    closed = ~active
    fact = np.where(closed, np.round(opened + rng.uniform(0.1, 1.0, n) * -opened), np.nan)
    fact = np.minimum(fact, -1)
    update = np.where(
        active, -rng.integers(0, 60, n), np.round(fact + rng.uniform(0, 1, n) * (-fact))
    ).astype(np.int64)
    update = np.maximum(update, opened)
    amount = np.round(np.exp(rng.normal(np.log(125_000), 1.0, n)), 2)
    debt_share = rng.uniform(0, 1, n)
    debt = np.where(active | bad, np.round(amount * debt_share, 2), 0.0)
    debt[rng.random(n) < 0.15] = np.nan
    overdue_amount = np.where(overdue_flag, np.round(np.nan_to_num(debt) * 0.1, 2), 0.0)
    credit_type = _pick(
        rng,
        [
            "Consumer credit",
            "Credit card",
            "Car loan",
            "Mortgage",
            "Microloan",
            "Loan for business development",
            "Another type of loan",
            "Unknown type of loan",
        ],
        [0.73, 0.235, 0.016, 0.011, 0.0073, 0.0012, 0.0006, 0.0003],
        n,
    )
    card = credit_type == "Credit card"
    limit = np.where(card, np.round(amount - np.nan_to_num(debt), 2), 0.0)
    limit[rng.random(n) < 0.34] = np.nan
    max_overdue = np.where(overdue_flag, np.round(overdue_amount * 1.5, 3), 0.0)
    max_overdue[rng.random(n) < 0.65] = np.nan
    annuity = np.round(amount / 24, 1)
    annuity[rng.random(n) < 0.71] = np.nan
    bureau = pd.DataFrame(
        {
            "SK_ID_CURR": ids[owner],
            "SK_ID_BUREAU": account,
            "CREDIT_ACTIVE": status,
            "CREDIT_CURRENCY": np.where(rng.random(n) < 0.999, "currency 1", "currency 2"),
            "DAYS_CREDIT": opened,
            "CREDIT_DAY_OVERDUE": day_overdue,
            "DAYS_CREDIT_ENDDATE": end,
            "DAYS_ENDDATE_FACT": fact,
            "AMT_CREDIT_MAX_OVERDUE": max_overdue,
            "CNT_CREDIT_PROLONG": rng.choice([0, 1, 2], n, p=[0.995, 0.004, 0.001]),
            "AMT_CREDIT_SUM": amount,
            "AMT_CREDIT_SUM_DEBT": debt,
            "AMT_CREDIT_SUM_LIMIT": limit,
            "AMT_CREDIT_SUM_OVERDUE": overdue_amount,
            "CREDIT_TYPE": credit_type,
            "DAYS_CREDIT_UPDATE": update,
            "AMT_ANNUITY": annuity,
        }
    )
    # Quirks: an overpaid account (negative debt), an update after the application.
    quirks: dict[str, int] = {}
    if n >= 2:
        bureau.loc[0, "AMT_CREDIT_SUM_DEBT"] = -1250.5
        bureau.loc[1, "DAYS_CREDIT_UPDATE"] = 14
        quirks["positive_update_account"] = int(bureau.loc[1, "SK_ID_BUREAU"])

    # Monthly statuses for about half of the accounts, back to at most 36 months.
    with_months = rng.random(n) < 0.55
    first_month = np.maximum(np.ceil(opened / 30.4375), -36).astype(np.int64)
    closed_month = np.where(closed, np.ceil(np.nan_to_num(fact, nan=0) / 30.4375), 1).astype(
        np.int64
    )
    span = np.where(with_months, -first_month + 1, 0)
    row_account = np.repeat(np.arange(n), span)
    offset = np.arange(len(row_account)) - np.repeat(np.cumsum(span) - span, span)
    month = first_month[row_account] + offset
    troubled = (rng.random(n) < _sigmoid(-2.2 + 1.3 * r)) | bad | sold
    trouble_start = first_month + rng.integers(0, np.maximum(-first_month, 1) + 1, n)
    code = np.clip(month - trouble_start[row_account] + 1, 0, 5)
    code = np.where(troubled[row_account], code, 0)
    code = np.where((code > 0) & (rng.random(len(code)) < 0.2), code - 1, code)
    text = code.astype(str).astype(object)
    text[rng.random(len(text)) < 0.06] = "X"
    text[month >= closed_month[row_account]] = "C"
    balance = pd.DataFrame(
        {
            "SK_ID_BUREAU": account[row_account],
            "MONTHS_BALANCE": month,
            "STATUS": text,
        }
    )
    if len(balance):
        # Quirk: a month before the account opened.
        first = balance.iloc[[0]].copy()
        acc = int(first["SK_ID_BUREAU"].iloc[0])
        opened_day = int(bureau.loc[bureau["SK_ID_BUREAU"] == acc, "DAYS_CREDIT"].iloc[0])
        first["MONTHS_BALANCE"] = int(np.floor(opened_day / 30.4375)) - 3
        first["STATUS"] = "X"
        quirks["early_bureau_month_account"] = acc
        # Quirks: accounts bureau.csv does not know, and a duplicated month.
        orphans = pd.DataFrame(
            {
                "SK_ID_BUREAU": np.repeat([6_900_001, 6_900_002], 3),
                "MONTHS_BALANCE": np.tile([0, -1, -2], 2),
                "STATUS": ["0", "0", "1", "C", "C", "0"],
            }
        )
        balance = pd.concat([balance, first, orphans, balance.iloc[[1]]], ignore_index=True)
    balance = balance.sort_values(
        ["SK_ID_BUREAU", "MONTHS_BALANCE"], ascending=[True, False], kind="stable"
    ).reset_index(drop=True)
    return bureau, balance, quirks


# ----------------------------------------------------------------------------- previous loans


def _previous(rng: np.random.Generator, ids: np.ndarray, risk: np.ndarray) -> pd.DataFrame:
    n_app = len(ids)
    counts = np.where(rng.random(n_app) < 0.05, 0, rng.poisson(3.0, n_app) + 1)
    owner = np.repeat(np.arange(n_app), counts)
    n = len(owner)
    r = risk[owner]
    prev_id = 1_000_000 + rng.choice(np.arange(n * 2), n, replace=False)
    kind = _pick(rng, ["Cash loans", "Consumer loans", "Revolving loans"], [0.45, 0.44, 0.11], n)
    refused = rng.random(n) < _sigmoid(-1.8 + 0.8 * r)
    status = np.where(
        refused,
        "Refused",
        _pick(rng, ["Approved", "Canceled", "Unused offer"], [0.75, 0.22, 0.03], n),
    )
    xna = (status == "Canceled") & (rng.random(n) < 0.1)
    kind = np.where(xna, "XNA", kind)
    approved = status == "Approved"
    consumer, cash, revolving = (
        kind == "Consumer loans",
        kind == "Cash loans",
        kind == "Revolving loans",
    )
    decision = -rng.integers(1, 2923, n)
    limits = np.array([45000.0, 90000.0, 135000.0, 180000.0, 225000.0, 270000.0])
    application = np.where(
        consumer,
        np.round(np.exp(rng.normal(np.log(90_000), 0.8, n)), 1),
        np.where(
            cash,
            np.round(np.exp(rng.normal(np.log(225_000), 0.8, n)), -3),
            np.where(revolving, rng.choice(limits, n), 0.0),
        ),
    )
    application = np.where((status == "Canceled") & cash & (rng.random(n) < 0.5), 0.0, application)
    credit = np.where(consumer, np.round(application * rng.uniform(0.9, 1.15, n), 1), application)
    term = np.where(
        consumer,
        rng.choice([6, 10, 12, 18, 24], n),
        np.where(cash, rng.choice([12, 18, 24, 30, 36, 48, 60], n), 0),
    ).astype(np.float64)
    term_known = ~((status == "Canceled") & ~consumer)
    monthly_rate = rng.uniform(0.008, 0.03, n)
    annuity = np.where(
        revolving, np.round(credit * 0.05, 3), _annuity(credit, term.astype(np.int64), monthly_rate)
    )
    annuity = np.where(term_known & (credit > 0), annuity, np.nan)
    down = np.where(
        consumer, np.round(np.where(rng.random(n) < 0.5, 0.0, application * 0.1), 1), np.nan
    )
    goods = np.where(consumer | cash, application, np.nan)
    goods = np.where(application > 0, goods, np.nan)
    first_due = np.where(approved & ~revolving, decision + rng.integers(20, 40, n), SENTINEL_DAYS)
    last_due_first = np.where(
        approved & ~revolving, first_due + 30 * (np.maximum(term, 1) - 1), SENTINEL_DAYS
    )
    finished = approved & ~revolving & (last_due_first < 0)
    termination = np.where(finished, last_due_first + rng.integers(0, 10, n), SENTINEL_DAYS)
    first_drawing = np.where(approved & revolving, decision + rng.integers(1, 30, n), SENTINEL_DAYS)
    first_drawing = np.minimum(first_drawing, SENTINEL_DAYS)
    reject = np.where(
        refused,
        _pick(
            rng,
            ["HC", "LIMIT", "SCO", "CLIENT", "SCOFR", "XNA", "VERIF", "SYSTEM"],
            [0.1, 0.033, 0.022, 0.016, 0.0077, 0.003, 0.002, 0.0004],
            n,
        ),
        "XAP",
    )
    purposes = [
        "XNA",
        "Repairs",
        "Other",
        "Urgent needs",
        "Buying a used car",
        "Building a house or an annex",
        "Everyday expenses",
        "Medicine",
        "Payments on other loans",
        "Education",
    ]
    purpose = np.where(
        cash,
        _pick(rng, purposes, [0.8, 0.05, 0.03, 0.02, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01], n),
        "XAP",
    )
    purpose = np.where(xna, "XNA", purpose)
    goods_category = np.where(
        consumer,
        _pick(
            rng,
            [
                "Mobile",
                "Consumer Electronics",
                "Computers",
                "Audio/Video",
                "Furniture",
                "Photo / Cinema Equipment",
                "Construction Materials",
                "Clothing and Accessories",
            ],
            [0.3, 0.25, 0.13, 0.12, 0.07, 0.03, 0.03, 0.03],
            n,
        ),
        "XNA",
    )
    portfolio = np.where(
        consumer, "POS", np.where(cash, "Cash", np.where(revolving, "Cards", "XNA"))
    )
    combination = np.where(
        consumer,
        _pick(
            rng,
            [
                "POS household with interest",
                "POS mobile with interest",
                "POS industry with interest",
                "POS household without interest",
                "POS mobile without interest",
                "POS industry without interest",
                "POS others without interest",
            ],
            [0.36, 0.3, 0.13, 0.11, 0.06, 0.03, 0.01],
            n,
        ),
        np.where(
            cash,
            _pick(
                rng,
                [
                    "Cash",
                    "Cash X-Sell: middle",
                    "Cash X-Sell: low",
                    "Cash X-Sell: high",
                    "Cash Street: high",
                    "Cash Street: middle",
                    "Cash Street: low",
                ],
                [0.38, 0.19, 0.17, 0.11, 0.08, 0.05, 0.03],
                n,
            ),
            np.where(
                revolving, np.where(rng.random(n) < 0.7, "Card Street", "Card X-Sell"), "Cash"
            ),
        ),
    ).astype(object)
    combination[rng.random(n) < 0.0002] = None
    frame = pd.DataFrame(
        {
            "SK_ID_PREV": prev_id,
            "SK_ID_CURR": ids[owner],
            "NAME_CONTRACT_TYPE": kind,
            "AMT_ANNUITY": annuity,
            "AMT_APPLICATION": application,
            "AMT_CREDIT": credit,
            "AMT_DOWN_PAYMENT": down,
            "AMT_GOODS_PRICE": goods,
            "WEEKDAY_APPR_PROCESS_START": _pick(
                rng,
                ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
                [0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.1],
                n,
            ),
            "HOUR_APPR_PROCESS_START": np.clip(np.round(rng.normal(12.5, 3.3, n)), 0, 23).astype(
                int
            ),
            "FLAG_LAST_APPL_PER_CONTRACT": np.where(rng.random(n) < 0.995, "Y", "N"),
            "NFLAG_LAST_APPL_IN_DAY": (rng.random(n) < 0.996).astype(np.int64),
            "RATE_DOWN_PAYMENT": np.where(
                consumer & (application > 0), np.round(down / np.maximum(application, 1), 9), np.nan
            ),
            "RATE_INTEREST_PRIMARY": np.where(
                rng.random(n) < 0.004, np.round(rng.uniform(0.03, 1, n), 6), np.nan
            ),
            "RATE_INTEREST_PRIVILEGED": np.where(
                rng.random(n) < 0.004, np.round(rng.uniform(0.37, 1, n), 6), np.nan
            ),
            "NAME_CASH_LOAN_PURPOSE": purpose,
            "NAME_CONTRACT_STATUS": status,
            "DAYS_DECISION": decision,
            "NAME_PAYMENT_TYPE": _pick(
                rng,
                [
                    "Cash through the bank",
                    "XNA",
                    "Non-cash from your account",
                    "Cashless from the account of the employer",
                ],
                [0.62, 0.375, 0.005, 0.001],
                n,
            ),
            "CODE_REJECT_REASON": reject,
            "NAME_TYPE_SUITE": _blank(
                rng,
                _pick(
                    rng,
                    ["Unaccompanied", "Family", "Spouse, partner", "Children", "Other_B"],
                    [0.6, 0.25, 0.08, 0.04, 0.03],
                    n,
                ),
                0.49,
            ),
            "NAME_CLIENT_TYPE": _pick(
                rng, ["Repeater", "New", "Refreshed", "XNA"], [0.737, 0.18, 0.081, 0.002], n
            ),
            "NAME_GOODS_CATEGORY": goods_category,
            "NAME_PORTFOLIO": portfolio,
            "NAME_PRODUCT_TYPE": np.where(
                cash, np.where(rng.random(n) < 0.75, "x-sell", "walk-in"), "XNA"
            ),
            "CHANNEL_TYPE": np.where(
                consumer,
                _pick(rng, ["Country-wide", "Stone", "Regional / Local"], [0.5, 0.3, 0.2], n),
                _pick(
                    rng,
                    [
                        "Credit and cash offices",
                        "AP+ (Cash loan)",
                        "Contact center",
                        "Channel of corporate sales",
                    ],
                    [0.7, 0.15, 0.12, 0.03],
                    n,
                ),
            ),
            "SELLERPLACE_AREA": np.where(consumer, rng.integers(0, 4000, n), -1),
            "NAME_SELLER_INDUSTRY": np.where(
                consumer,
                _pick(
                    rng,
                    [
                        "Consumer electronics",
                        "Connectivity",
                        "Furniture",
                        "Construction",
                        "Clothing",
                        "Industry",
                    ],
                    [0.5, 0.3, 0.07, 0.07, 0.03, 0.03],
                    n,
                ),
                "XNA",
            ),
            "CNT_PAYMENT": np.where(term_known, term, np.nan),
            "NAME_YIELD_GROUP": np.where(
                revolving | xna,
                "XNA",
                _pick(
                    rng, ["middle", "high", "low_normal", "low_action"], [0.4, 0.3, 0.24, 0.06], n
                ),
            ),
            "PRODUCT_COMBINATION": combination,
            "DAYS_FIRST_DRAWING": np.where(approved, first_drawing, np.nan),
            "DAYS_FIRST_DUE": np.where(approved, first_due, np.nan),
            "DAYS_LAST_DUE_1ST_VERSION": np.where(approved, last_due_first, np.nan),
            "DAYS_LAST_DUE": np.where(
                approved, np.where(finished, last_due_first, SENTINEL_DAYS), np.nan
            ),
            "DAYS_TERMINATION": np.where(approved, termination, np.nan),
            "NFLAG_INSURED_ON_APPROVAL": np.where(
                approved & ~revolving, (rng.random(n) < 0.33).astype(float), np.nan
            ),
        }
    )
    return frame[list(PREVIOUS_APPLICATION_COLUMNS)]


def _histories(
    rng: np.random.Generator,
    previous: pd.DataFrame,
    risk_of: dict[int, float],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Instalments, POS/cash months and card months of the approved previous loans."""
    approved = previous[previous["NAME_CONTRACT_STATUS"] == "Approved"].reset_index(drop=True)
    risk = approved["SK_ID_CURR"].map(risk_of).to_numpy(dtype=np.float64)
    revolving = (approved["NAME_CONTRACT_TYPE"] == "Revolving loans").to_numpy()
    instalment_loans = approved[~revolving].reset_index(drop=True)
    r_inst = risk[~revolving]

    # Instalments: one row per payment; some loans have none (POS_CASH months stand in).
    term = instalment_loans["CNT_PAYMENT"].fillna(0).to_numpy(dtype=np.int64)
    first_due = instalment_loans["DAYS_FIRST_DUE"].to_numpy(dtype=np.float64)
    due_count = np.clip(np.floor((-1 - first_due) / 30) + 1, 0, term).astype(np.int64)
    has_rows = rng.random(len(instalment_loans)) >= 0.25
    due_count = np.where(has_rows, due_count, 0)
    loan = np.repeat(np.arange(len(instalment_loans)), due_count)
    number = np.arange(len(loan)) - np.repeat(np.cumsum(due_count) - due_count, due_count) + 1
    due = first_due[loan] + 30 * (number - 1)
    r = r_inst[loan]
    late = rng.random(len(loan)) < _sigmoid(-2.6 + 1.3 * r)
    lateness = np.where(
        late, rng.exponential(25, len(loan)).astype(np.int64) + 1, -rng.integers(0, 15, len(loan))
    )
    entry = np.minimum(due + lateness, -1).astype(np.float64)
    amount = instalment_loans["AMT_ANNUITY"].to_numpy(dtype=np.float64)[loan]
    paid = np.where(late & (rng.random(len(loan)) < 0.3), np.round(amount * 0.5, 3), amount)
    version = np.where(rng.random(len(loan)) < 0.03, 2.0, 1.0)
    inst = pd.DataFrame(
        {
            "SK_ID_PREV": instalment_loans["SK_ID_PREV"].to_numpy()[loan],
            "SK_ID_CURR": instalment_loans["SK_ID_CURR"].to_numpy()[loan],
            "NUM_INSTALMENT_VERSION": version,
            "NUM_INSTALMENT_NUMBER": number,
            "DAYS_INSTALMENT": due,
            "DAYS_ENTRY_PAYMENT": entry,
            "AMT_INSTALMENT": amount,
            "AMT_PAYMENT": paid,
        }
    )
    # Some instalments paid in two parts (two rows), a few not paid at all (empty fields).
    split = inst[(rng.random(len(inst)) < 0.05)].copy()
    split["AMT_PAYMENT"] = np.round(split["AMT_PAYMENT"] / 2, 3)
    inst.loc[split.index, "AMT_PAYMENT"] = split["AMT_PAYMENT"]
    split["DAYS_ENTRY_PAYMENT"] = np.minimum(split["DAYS_ENTRY_PAYMENT"] + 7, -1)
    unpaid = rng.random(len(inst)) < 0.003
    inst.loc[unpaid, ["DAYS_ENTRY_PAYMENT", "AMT_PAYMENT"]] = np.nan
    inst = pd.concat([inst, split], ignore_index=True)

    # POS/cash months for every instalment loan.
    decision = instalment_loans["DAYS_DECISION"].to_numpy(dtype=np.float64)
    start = np.maximum(np.ceil(decision / 30.4375), -48).astype(np.int64)
    months = -start
    pl = np.repeat(np.arange(len(instalment_loans)), months)
    elapsed = np.arange(len(pl)) - np.repeat(np.cumsum(months) - months, months)
    month = start[pl] + elapsed
    future = np.maximum(term[pl] - elapsed, 0).astype(np.float64)
    keep = elapsed <= term[pl]  # the loan's months until one "Completed" month
    pl, month, future, elapsed = pl[keep], month[keep], future[keep], elapsed[keep]
    status = np.where(future > 0, "Active", "Completed").astype(object)
    status[elapsed == 0] = np.where(rng.random(int((elapsed == 0).sum())) < 0.2, "Signed", "Active")
    rp = r_inst[pl]
    dpd = np.where(
        (status == "Active") & (rng.random(len(pl)) < _sigmoid(-2.8 + 1.3 * rp)),
        rng.exponential(30, len(pl)).astype(np.int64) + 1,
        0,
    )
    pos = pd.DataFrame(
        {
            "SK_ID_PREV": instalment_loans["SK_ID_PREV"].to_numpy()[pl],
            "SK_ID_CURR": instalment_loans["SK_ID_CURR"].to_numpy()[pl],
            "MONTHS_BALANCE": month,
            "CNT_INSTALMENT": term[pl].astype(np.float64),
            "CNT_INSTALMENT_FUTURE": future,
            "NAME_CONTRACT_STATUS": status,
            "SK_DPD": dpd,
            "SK_DPD_DEF": np.where(dpd > 30, dpd, 0),
        }
    )

    # Card months for the revolving loans.
    cards = approved[revolving].reset_index(drop=True)
    r_card = risk[revolving]
    c_start = np.maximum(np.ceil(cards["DAYS_DECISION"].to_numpy(dtype=np.float64) / 30.4375), -24)
    c_months = (-c_start).astype(np.int64)
    cl = np.repeat(np.arange(len(cards)), c_months)
    c_elapsed = np.arange(len(cl)) - np.repeat(np.cumsum(c_months) - c_months, c_months)
    c_month = c_start[cl].astype(np.int64) + c_elapsed
    limit = cards["AMT_CREDIT"].to_numpy(dtype=np.float64)[cl]
    rc = r_card[cl]
    used = np.clip(rng.beta(1.2, 2.5, len(cl)) + 0.1 * rc, 0, 1)
    used[rng.random(len(cl)) < 0.35] = 0.0
    balance = np.round(limit * used, 3)
    min_inst = np.round(balance * 0.05, 3)
    pays = rng.random(len(cl)) >= _sigmoid(-2.5 + 1.2 * rc)
    payment = np.where(pays, np.round(min_inst * rng.uniform(1, 3, len(cl)), 3), 0.0)
    drawings = np.round(balance * rng.uniform(0, 0.3, len(cl)), 3)
    atm = np.round(drawings * rng.uniform(0, 1, len(cl)), 3)
    pos_draw = np.round(drawings - atm, 3)
    no_drawing_info = rng.random(len(cl)) < 0.2
    c_dpd = np.where(~pays & (min_inst > 0), rng.integers(1, 60, len(cl)), 0)
    credit_card = pd.DataFrame(
        {
            "SK_ID_PREV": cards["SK_ID_PREV"].to_numpy()[cl],
            "SK_ID_CURR": cards["SK_ID_CURR"].to_numpy()[cl],
            "MONTHS_BALANCE": c_month,
            "AMT_BALANCE": balance,
            "AMT_CREDIT_LIMIT_ACTUAL": limit.astype(np.int64),
            "AMT_DRAWINGS_ATM_CURRENT": np.where(no_drawing_info, np.nan, atm),
            "AMT_DRAWINGS_CURRENT": drawings,
            "AMT_DRAWINGS_OTHER_CURRENT": np.where(no_drawing_info, np.nan, 0.0),
            "AMT_DRAWINGS_POS_CURRENT": np.where(no_drawing_info, np.nan, pos_draw),
            "AMT_INST_MIN_REGULARITY": np.where(rng.random(len(cl)) < 0.08, np.nan, min_inst),
            "AMT_PAYMENT_CURRENT": np.where(payment > 0, payment, np.nan),
            "AMT_PAYMENT_TOTAL_CURRENT": payment,
            "AMT_RECEIVABLE_PRINCIPAL": np.round(balance * 0.95, 3),
            "AMT_RECIVABLE": balance,
            "AMT_TOTAL_RECEIVABLE": balance,
            "CNT_DRAWINGS_ATM_CURRENT": np.where(no_drawing_info, np.nan, (atm > 0).astype(float)),
            "CNT_DRAWINGS_CURRENT": (drawings > 0).astype(np.int64) * rng.integers(1, 5, len(cl)),
            "CNT_DRAWINGS_OTHER_CURRENT": np.where(no_drawing_info, np.nan, 0.0),
            "CNT_DRAWINGS_POS_CURRENT": np.where(
                no_drawing_info, np.nan, (pos_draw > 0).astype(float)
            ),
            "CNT_INSTALMENT_MATURE_CUM": np.where(no_drawing_info, np.nan, c_elapsed.astype(float)),
            "NAME_CONTRACT_STATUS": np.where(rng.random(len(cl)) < 0.97, "Active", "Completed"),
            "SK_DPD": c_dpd,
            "SK_DPD_DEF": np.where(c_dpd > 30, c_dpd, 0),
        }
    )
    return inst, pos, credit_card


# ----------------------------------------------------------------------------- the whole fixture


def write_fixture(folder: Path, n_applicants: int = 300, seed: int = 7) -> Fixture:
    """Write the Home Credit files for `n_applicants` applicants in application_train.csv (plus
    about a sixth as many in application_test.csv, whose histories the other files also carry)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_test = max(2, n_applicants // 6)
    n = n_applicants + n_test
    ids = 100_002 + np.sort(rng.choice(np.arange(n * 2), n, replace=False))
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.choice(n, n_test, replace=False)] = True
    risk = rng.normal(size=n)

    applicants = _applicants(rng, ids, risk)
    target = (rng.random(n) < _sigmoid(-2.9 + 1.2 * risk)).astype(np.int64)
    train = applicants[~is_test].copy()
    train.insert(1, "TARGET", target[~is_test])
    train = train.reset_index(drop=True)
    # Quirks: XNA gender, a cash loan without an annuity, a duplicated row.
    train.loc[[3, 11 % len(train)], "CODE_GENDER"] = "XNA"
    train.loc[5 % len(train), "AMT_ANNUITY"] = np.nan
    xna_ids = tuple(int(train.loc[i, "SK_ID_CURR"]) for i in (3, 11 % len(train)))
    no_annuity_ids = (int(train.loc[5 % len(train), "SK_ID_CURR"]),)
    duplicated = 8 % len(train)
    train = pd.concat(
        [train.iloc[: duplicated + 1], train.iloc[[duplicated]], train.iloc[duplicated + 1 :]],
        ignore_index=True,
    )
    test = applicants[is_test].reset_index(drop=True)

    bureau, balance, quirks = _bureau(rng, ids, risk)
    previous = _previous(rng, ids, risk)
    inst, pos, cards = _histories(
        rng, previous, dict(zip(ids.tolist(), risk.tolist(), strict=True))
    )
    # Quirk: instalments of a loan previous_application.csv does not have.
    orphan_loans = (2_999_991, 2_999_992)
    stray = pd.DataFrame(
        {
            "SK_ID_PREV": np.repeat(orphan_loans, 2),
            "SK_ID_CURR": int(train["SK_ID_CURR"].iloc[0]),
            "NUM_INSTALMENT_VERSION": 1.0,
            "NUM_INSTALMENT_NUMBER": [1, 2, 1, 2],
            "DAYS_INSTALMENT": [-400.0, -370.0, -200.0, -170.0],
            "DAYS_ENTRY_PAYMENT": [-401.0, -365.0, -200.0, -171.0],
            "AMT_INSTALMENT": 5000.0,
            "AMT_PAYMENT": 5000.0,
        }
    )
    inst = pd.concat([inst, stray], ignore_index=True)
    # The real files are not sorted by id; shuffle like them.
    inst = inst.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    pos = pos.sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    cards = cards.sample(frac=1.0, random_state=seed + 2).reset_index(drop=True)
    previous = previous.sample(frac=1.0, random_state=seed + 3).reset_index(drop=True)

    frames = {
        "application_train.csv": train,
        "application_test.csv": test,
        "bureau.csv": bureau,
        "bureau_balance.csv": balance,
        "previous_application.csv": previous,
        "installments_payments.csv": inst,
        "POS_CASH_balance.csv": pos,
        "credit_card_balance.csv": cards,
    }
    for name, frame in frames.items():
        frame[list(FILES[name])].to_csv(folder / name, index=False)
    train_ids = tuple(int(i) for i in ids[~is_test])
    return Fixture(
        folder=folder,
        rows={name: len(frame) for name, frame in frames.items()},
        train_ids=train_ids,
        test_ids=tuple(int(i) for i in ids[is_test]),
        xna_gender_ids=xna_ids,
        no_annuity_ids=no_annuity_ids,
        duplicated_train_id=int(train.loc[duplicated, "SK_ID_CURR"]),
        orphan_bureau_accounts=(6_900_001, 6_900_002),
        orphan_loans=orphan_loans,
        early_bureau_month_account=int(quirks.get("early_bureau_month_account", -1)),
        positive_update_account=int(quirks.get("positive_update_account", -1)),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--applicants", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    fixture = write_fixture(args.folder, args.applicants, args.seed)
    for name, rows in fixture.rows.items():
        print(f"{name}: {rows:,} rows")


if __name__ == "__main__":
    main()
