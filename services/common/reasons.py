"""Plain-language reason codes: each model feature's value as a sentence a member can read.

Shared by scoring (the top reasons in every decision) and explanation (the full explanation), so
a member reads the same words for the same feature wherever the reason comes from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from services.common.features import TABULAR_FEATURES
from services.common.protos.alama.events.v1.decisions_pb2 import ReasonCode
from services.common.vocabulary import PRODUCTS

Describe = Callable[[float], str | None]


def _count(singular: str, plural: str) -> Describe:
    def describe(v: float) -> str:
        n = round(v)
        return (singular if n == 1 else plural).format(n=n)

    return describe


def _kes(template: str) -> Describe:
    return lambda v: template.format(kes=f"KES {v:,.0f}")


def _times(template: str) -> Describe:
    return lambda v: template.format(x=f"{v:.1f}")


def _percent(template: str) -> Describe:
    return lambda v: template.format(pct=f"{100 * v:.0f}%")


def _flag(text: str) -> Describe:
    """One-hot features explain only when set; an absent category is not a reason."""
    return lambda v: text if v >= 0.5 else None


REASON_TEXT: dict[str, Describe] = {
    "rp_late_count_6m": _count(
        "{n} late repayment in the last 6 months", "{n} late repayments in the last 6 months"
    ),
    "rp_late30_count_12m": _count(
        "{n} repayment over 30 days late in the last 12 months",
        "{n} repayments over 30 days late in the last 12 months",
    ),
    "rp_max_days_late_12m": _count(
        "a repayment {n} day late in the last 12 months",
        "a repayment {n} days late in the last 12 months",
    ),
    "rp_mean_days_late_24m": _times("repayments were {x} days late on average over 2 years"),
    "rp_mean_days_late_3m": _times("repayments were {x} days late on average in the last 3 months"),
    "rp_missed_count_12m": _count(
        "{n} missed repayment in the last 12 months", "{n} missed repayments in the last 12 months"
    ),
    "rp_paid_ratio_6m": _percent("only {pct} of what was due was repaid in the last 6 months"),
    "rp_paid_ratio_24m": _percent("only {pct} of what was due was repaid in the last 2 years"),
    "rp_months_observed": _count(
        "only {n} month of repayment history", "only {n} months of repayment history"
    ),
    "loan_to_savings": _times("loan is {x} times your savings"),
    "loan_to_deposits": _times("loan is {x} times your deposits"),
    "loan_to_income": _times("loan is {x} times your yearly income"),
    "instalment_to_income": _percent("the monthly repayment would take {pct} of your income"),
    "debt_service_ratio": _percent("all loan repayments would take {pct} of your monthly income"),
    "existing_loans": _count("{n} loan already running", "{n} loans already running"),
    "existing_loan_balance_kes": _kes("{kes} still owed on existing loans"),
    "bureau_listed": _flag("listed with a credit reference bureau"),
    "n_guarantors": lambda v: (
        "no guarantors" if v < 0.5 else _count("only {n} guarantor", "only {n} guarantors")(v)
    ),
    "tenure_months": _count("a member for only {n} month", "a member for only {n} months"),
    "deposits_kes": _kes("deposits of {kes}"),
    "share_capital_kes": _kes("share capital of {kes}"),
    "deposits_change_6m_kes": lambda v: (
        f"savings fell by KES {-v:,.0f} in the last 6 months"
        if v < 0
        else f"savings grew by only KES {v:,.0f} in the last 6 months"
    ),
    "deposits_change_6m_to_income": lambda v: (
        f"savings fell by {-v:.1f} months of income in the last 6 months"
        if v < 0
        else f"savings grew by only {v:.1f} months of income in the last 6 months"
    ),
    "monthly_income_kes": _kes("monthly income of {kes}"),
    "mm_betting_share_30d": _percent("{pct} of mobile-money spending went to betting last month"),
    "mm_betting_sum_30d": _kes("{kes} spent on betting in the last 30 days"),
    "mm_betting_sum_90d": _kes("{kes} spent on betting in the last 90 days"),
    "mm_overdraft_draw_count_30d": _count(
        "{n} mobile-money overdraft in the last 30 days",
        "{n} mobile-money overdrafts in the last 30 days",
    ),
    "mm_overdraft_draw_count_90d": _count(
        "{n} mobile-money overdraft in the last 90 days",
        "{n} mobile-money overdrafts in the last 90 days",
    ),
    "mm_balance_min_30d": _kes("mobile-money balance fell to {kes} in the last 30 days"),
    "mm_balance_last": _kes("mobile-money balance of {kes}"),
    "mm_net_flow_30d": _kes("mobile-money net flow of {kes} in the last 30 days"),
    "mm_inflow_sum_90d": _kes("mobile-money income of {kes} in the last 90 days"),
    "inflow_90d_to_income": _times("mobile-money income was {x} times monthly income in 90 days"),
    **{
        f"mm_txn_count_{w}d": _count(
            f"{{n}} mobile-money transaction in the last {w} days",
            f"{{n}} mobile-money transactions in the last {w} days",
        )
        for w in (7, 30, 90)
    },
    "amount_kes": _kes("loan amount of {kes}"),
    "term_months": _count("a term of {n} month", "a term of {n} months"),
    "employment_casual": _flag("casual employment"),
    "employment_farmer": _flag("farming income"),
    "employment_self_employed": _flag("self-employed income"),
    "employment_salaried": _flag("salaried employment"),
    **{f"product_{p}": _flag(f"{p.replace('_', ' ')} loan product") for p in PRODUCTS.names},
}


_PRODUCTS_SW = {
    "development": "mkopo wa maendeleo",
    "emergency": "mkopo wa dharura",
    "school_fees": "mkopo wa karo za shule",
    "business": "mkopo wa biashara",
    "asset": "mkopo wa mali",
}

#: The same sentences in Kiswahili, for members' notices (a test keeps both lists whole).
REASON_TEXT_SW: dict[str, Describe] = {
    "rp_late_count_6m": _count(
        "malipo {n} yaliyochelewa katika miezi 6 iliyopita",
        "malipo {n} yaliyochelewa katika miezi 6 iliyopita",
    ),
    "rp_late30_count_12m": _count(
        "malipo {n} yaliyochelewa zaidi ya siku 30 katika miezi 12 iliyopita",
        "malipo {n} yaliyochelewa zaidi ya siku 30 katika miezi 12 iliyopita",
    ),
    "rp_max_days_late_12m": _count(
        "malipo yaliyochelewa kwa siku {n} katika miezi 12 iliyopita",
        "malipo yaliyochelewa kwa siku {n} katika miezi 12 iliyopita",
    ),
    "rp_mean_days_late_24m": _times("malipo yalichelewa kwa wastani wa siku {x} katika miaka 2"),
    "rp_mean_days_late_3m": _times(
        "malipo yalichelewa kwa wastani wa siku {x} katika miezi 3 iliyopita"
    ),
    "rp_missed_count_12m": _count(
        "malipo {n} ambayo hayakulipwa katika miezi 12 iliyopita",
        "malipo {n} ambayo hayakulipwa katika miezi 12 iliyopita",
    ),
    "rp_paid_ratio_6m": _percent(
        "ni {pct} tu ya kiasi kilichodaiwa kililipwa katika miezi 6 iliyopita"
    ),
    "rp_paid_ratio_24m": _percent(
        "ni {pct} tu ya kiasi kilichodaiwa kililipwa katika miaka 2 iliyopita"
    ),
    "rp_months_observed": _count(
        "historia ya malipo ya mwezi {n} tu", "historia ya malipo ya miezi {n} tu"
    ),
    "loan_to_savings": _times("mkopo ni mara {x} ya akiba yako"),
    "loan_to_deposits": _times("mkopo ni mara {x} ya amana zako"),
    "loan_to_income": _times("mkopo ni mara {x} ya mapato yako ya mwaka"),
    "instalment_to_income": _percent("malipo ya kila mwezi yangechukua {pct} ya mapato yako"),
    "debt_service_ratio": _percent(
        "malipo ya mikopo yote yangechukua {pct} ya mapato yako ya mwezi"
    ),
    "existing_loans": _count(
        "mkopo {n} ambao bado unaendelea", "mikopo {n} ambayo bado inaendelea"
    ),
    "existing_loan_balance_kes": _kes("{kes} bado zinadaiwa kwa mikopo iliyopo"),
    "bureau_listed": _flag("umeorodheshwa na ofisi ya kumbukumbu za mikopo (CRB)"),
    "n_guarantors": lambda v: (
        "hakuna wadhamini" if v < 0.5 else _count("mdhamini {n} tu", "wadhamini {n} tu")(v)
    ),
    "tenure_months": _count("mwanachama kwa mwezi {n} tu", "mwanachama kwa miezi {n} tu"),
    "deposits_kes": _kes("amana za {kes}"),
    "share_capital_kes": _kes("hisa za {kes}"),
    "deposits_change_6m_kes": lambda v: (
        f"akiba ilipungua kwa KES {-v:,.0f} katika miezi 6 iliyopita"
        if v < 0
        else f"akiba iliongezeka kwa KES {v:,.0f} tu katika miezi 6 iliyopita"
    ),
    "deposits_change_6m_to_income": lambda v: (
        f"akiba ilipungua kwa mapato ya miezi {-v:.1f} katika miezi 6 iliyopita"
        if v < 0
        else f"akiba iliongezeka kwa mapato ya miezi {v:.1f} tu katika miezi 6 iliyopita"
    ),
    "monthly_income_kes": _kes("mapato ya mwezi ya {kes}"),
    "mm_betting_share_30d": _percent(
        "{pct} ya matumizi ya pesa za simu yalienda kwenye kamari mwezi uliopita"
    ),
    "mm_betting_sum_30d": _kes("{kes} zilitumika kwenye kamari katika siku 30 zilizopita"),
    "mm_betting_sum_90d": _kes("{kes} zilitumika kwenye kamari katika siku 90 zilizopita"),
    "mm_overdraft_draw_count_30d": _count(
        "mkopo {n} wa overdraft ya pesa za simu katika siku 30 zilizopita",
        "mikopo {n} ya overdraft ya pesa za simu katika siku 30 zilizopita",
    ),
    "mm_overdraft_draw_count_90d": _count(
        "mkopo {n} wa overdraft ya pesa za simu katika siku 90 zilizopita",
        "mikopo {n} ya overdraft ya pesa za simu katika siku 90 zilizopita",
    ),
    "mm_balance_min_30d": _kes("salio la pesa za simu lilishuka hadi {kes} katika siku 30"),
    "mm_balance_last": _kes("salio la pesa za simu la {kes}"),
    "mm_net_flow_30d": _kes("mtiririko halisi wa pesa za simu wa {kes} katika siku 30"),
    "mm_inflow_sum_90d": _kes("mapato ya pesa za simu ya {kes} katika siku 90 zilizopita"),
    "inflow_90d_to_income": _times(
        "mapato ya pesa za simu yalikuwa mara {x} ya mapato ya mwezi katika siku 90"
    ),
    **{
        f"mm_txn_count_{w}d": _count(
            f"muamala {{n}} wa pesa za simu katika siku {w} zilizopita",
            f"miamala {{n}} ya pesa za simu katika siku {w} zilizopita",
        )
        for w in (7, 30, 90)
    },
    "amount_kes": _kes("kiasi cha mkopo cha {kes}"),
    "term_months": _count("muda wa mwezi {n}", "muda wa miezi {n}"),
    "employment_casual": _flag("ajira ya vibarua"),
    "employment_farmer": _flag("mapato ya kilimo"),
    "employment_self_employed": _flag("mapato ya kujiajiri"),
    "employment_salaried": _flag("ajira ya mshahara"),
    **{
        f"product_{p}": _flag(_PRODUCTS_SW.get(p, f"mkopo wa {p.replace('_', ' ')}"))
        for p in PRODUCTS.names
    },
}

LANGUAGES = ("en", "sw")


def _fallback(name: str) -> Describe:
    label = name.removeprefix("mm_").replace("_", " ")
    return lambda v: f"{label}: {v:,.2f}"


def describe(feature: str, value: float, language: str = "en") -> str | None:
    """The member-readable sentence for one feature value (English, or Kiswahili with "sw"),
    None when it explains nothing."""
    texts = REASON_TEXT_SW if language == "sw" else REASON_TEXT
    return texts.get(feature, _fallback(feature))(float(value))


def reason_codes(
    contributions: np.ndarray, values: np.ndarray, *, limit: int = 4
) -> list[ReasonCode]:
    """The strongest risk-raising features of one application, strongest first."""
    out: list[ReasonCode] = []
    for j in np.argsort(-contributions, kind="stable"):
        if len(out) == limit or contributions[j] <= 0:
            break
        name = TABULAR_FEATURES[j]
        text = describe(name, float(values[j]))
        if text is not None:
            out.append(
                ReasonCode(code=name, description=text, contribution=float(contributions[j]))
            )
    return out
