"""`python -m training`: generate the world, load it into Feast, train, evaluate, export, report.

`make train PROFILE=quick` runs `all`; each step can also be run on its own, in order, because
each one leaves its result on disk (world parquet, Feast tables, run checkpoint, bundle).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.common.settings import InfraSettings
from training import pipeline
from training.profiles import get_profile
from training.world import World

console = Console()
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
ProfileOption = Annotated[str, typer.Option("--profile", "-p", help="tiny, quick or full")]


def _echo(line: str) -> None:
    console.print(f"[cyan]•[/] {line}")


def run_dir(profile: str) -> Path:
    return pipeline.ARTIFACTS / "runs" / profile


def _checkpoint(profile: str) -> Path:
    return run_dir(profile) / "trained.pkl"


def _load_trained(profile: str) -> pipeline.TrainedModels:
    path = _checkpoint(profile)
    if not path.exists():
        raise typer.BadParameter(f"no trained run for {profile!r}; run `train` first")
    with path.open("rb") as f:
        state = pickle.load(f)  # our own checkpoint, written by `train` below
    state["world"] = World.load(pipeline.world_dir(get_profile(profile)))
    return pipeline.TrainedModels(**state)


@app.command()
def generate(profile: ProfileOption = "quick", force: bool = False) -> None:
    """Generate the synthetic SACCO world (reused when it exists for the same seed and size)."""
    pipeline.generate(get_profile(profile), force=force, echo=_echo)


@app.command()
def load(profile: ProfileOption = "quick") -> None:
    """Write feature snapshots to the Feast offline store (PostgreSQL) and run `feast apply`."""
    p = get_profile(profile)
    world = World.load(pipeline.world_dir(p))
    pipeline.load_into_feast(InfraSettings(), world, echo=_echo)


@app.command()
def train(profile: ProfileOption = "quick") -> None:
    """Fit the baseline, LightGBM, the LSTM, the ensemble, calibration and decision bands."""
    p = get_profile(profile)
    world = World.load(pipeline.world_dir(p))
    trained = pipeline.train(InfraSettings(), p, world, echo=_echo)
    state = {k: v for k, v in trained.__dict__.items() if k != "world"}
    run_dir(profile).mkdir(parents=True, exist_ok=True)
    with _checkpoint(profile).open("wb") as f:
        pickle.dump(state, f)


@app.command()
def evaluate(profile: ProfileOption = "quick") -> None:
    """Metrics on the test and out-of-time splits, and fairness, into the run's metrics.json."""
    import json

    metrics = pipeline.evaluate(_load_trained(profile))
    (run_dir(profile) / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    for split in ("test", "out_of_time"):
        for model, values in metrics[split].items():
            _echo(
                f"{split:12s} {model:22s} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items())
            )


@app.command()
def export(profile: ProfileOption = "quick", promote: bool = True) -> None:
    """Write the versioned bundle (ONNX models, manifest, drift reference) and promote it."""
    import json

    from training.export import write_bundle

    metrics = json.loads((run_dir(profile) / "metrics.json").read_text())
    folder = write_bundle(_load_trained(profile), metrics, promote=promote)
    _echo(f"bundle written to {folder}" + (" and promoted to current" if promote else ""))


@app.command()
def report(profile: ProfileOption = "quick") -> None:
    """report.md with plots, the model card and the real-data benchmark, in the bundle."""
    from training.report import write_report

    folder = write_report(_load_trained(profile), bundle=None)
    _echo(f"report and model card written to {folder}")


@app.command()
def track(profile: ProfileOption = "quick") -> None:
    """Log the run to MLflow (local store) and register the current bundle as a model version."""
    import json

    from training.export import BUNDLES
    from training.tracking import REGISTERED_MODEL, track_run

    metrics = json.loads((run_dir(profile) / "metrics.json").read_text())
    version = track_run(_load_trained(profile), metrics, BUNDLES / "current")
    _echo(f"MLflow: registered {REGISTERED_MODEL} version {version}")


@app.command(name="all")
def run_all(profile: ProfileOption = "quick") -> None:
    """Every step in order: generate, load, train, evaluate, export, report, track."""
    generate(profile)
    load(profile)
    train(profile)
    evaluate(profile)
    export(profile)
    report(profile)
    track(profile)


if __name__ == "__main__":
    app()
