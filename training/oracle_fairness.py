"""What the truth itself scores on the promotion gate's fairness checks, in a synthetic world.

    python -m training.oracle_fairness [--profile small] [--shares 0.7,0.76,0.8]

The synthetic world knows every application's true PD (`training.world`, never a model input,
and a function of no protected attribute). Approving the lowest true PDs is the most accurate
lender possible; if even it fails a fairness bound, no model trained on the world's features
can pass that bound except by chance or by trading accuracy for it. This prints, for the
profile's held-out rows (test and out-of-time, the rows the gate judges) and for every labelled
row, the equal-opportunity difference and disparate impact of that lender at each approval
share, with the gate's bootstrap interval and the bootstrap's estimate of the point estimate's
upward bias (the gap between the extremes of five noisy group rates is inflated by noise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from training.evaluate import protected_groups
from training.gate import GatePolicy, bootstrap_draws, fairness_samples
from training.pipeline import oracle_pd, outcomes, split
from training.profiles import get_profile
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

app = typer.Typer(add_completion=False, help=__doc__)


def oracle_fairness(profile_name: str, shares: list[float]) -> dict[str, Any]:
    profile = get_profile(profile_name)
    world = generate_world(profile.n_members, profile.seed)
    book = loan_book_from_world(world)
    y = outcomes(book)
    truth = oracle_pd(book)
    assert truth is not None  # synthetic worlds know it
    splits = split(book.labelled, profile)
    rows = {
        "held_out": np.sort(np.concatenate([splits.test, splits.out_of_time])),
        "all_labelled": np.arange(y.size),
    }
    policy = GatePolicy()
    result: dict[str, Any] = {"profile": profile.name, "rows": {}}
    for name, index in rows.items():
        groups = protected_groups(book, index)
        draws = bootstrap_draws(index.size, policy)
        whole = np.arange(index.size)[None, :]
        per_share: dict[str, Any] = {}
        for share in shares:
            approved = truth[index] <= np.quantile(truth[index], share)
            entry: dict[str, Any] = {}
            for attribute, labels in groups.items():
                ratio0, gap0 = fairness_samples(y[index], approved, labels, whole)
                _ratios, gap = fairness_samples(y[index], approved, labels, draws)
                low, high = np.nanquantile(gap, [0.025, 0.975])
                entry[attribute] = {
                    "equal_opportunity_difference": round(float(gap0[0]), 4),
                    "bootstrap_interval": [round(float(low), 4), round(float(high), 4)],
                    "bias_corrected": round(2 * float(gap0[0]) - float(np.nanmean(gap)), 4),
                    "disparate_impact_ratio": round(float(ratio0[0]), 4),
                }
            per_share[f"{share:.2f}"] = entry
        result["rows"][name] = {"n": int(index.size), "by_approval_share": per_share}
    return result


@app.command()
def main(
    profile: Annotated[str, typer.Option(help="a synthetic profile")] = "small",
    shares: Annotated[str, typer.Option(help="approval shares, comma-separated")] = "0.7,0.76,0.8",
    out: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
) -> None:
    result = oracle_fairness(profile, [float(s) for s in shares.split(",")])
    text = json.dumps(result, indent=1)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


if __name__ == "__main__":
    app()
