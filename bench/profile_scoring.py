"""Where the milliseconds of scoring go, in process: each stage of the hot path timed on its own.

    python -m bench.profile_scoring [--reps 60] [--batches 1,10,100,1000] [--flame]

A tiny world is loaded into its own Feast project (`alama_profile`, offline schema
`feast_profile`) on whatever servers the environment points at, a tiny model is trained into
`artifacts/profile/` once and reused, and then for each batch size the stages of a synchronous
request are timed on their own: the feature read through Feast's SDK (the path before issue 11)
and through the one-round-trip Redis read (now), split into its Redis round trip and its
decoding; the models' inputs; the ONNX ensemble; TreeSHAP; building the decisions; the whole
scorer; and the explanation with the contributions scoring carried against recomputing them.
With --flame, py-spy records the scorer's loop on each feature path into flame graphs.
Writes bench/results/profile-scoring.json and .md (and profile-scoring-*.svg).
The machine's load is recorded beside the numbers: on a shared, loaded machine the absolute
times are inflated by contention; the ratios between stages are what to read.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from bench.__main__ import machine
from services.common.bundle import ModelBundle, load_bundle
from services.common.feast_config import open_feature_store
from services.common.members import DEV_TENANT, member_key
from services.common.protos.alama.events.v1.applications_pb2 import (
    LoanApplicationSubmitted,
    LoanProduct,
)
from services.common.settings import InfraSettings
from services.explanation.explainer import DecisionExplainer, TreeModel
from services.scoring.decisions import build_decisions
from services.scoring.ledger import MemoryLedger
from services.scoring.online_features import OnlineFeatures, RedisOnlineFeatures
from services.scoring.scorer import Scorer

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PROFILE_ROOT = REPO / "artifacts" / "profile"
PROJECT = {"ALAMA_FEAST_PROJECT": "alama_profile", "ALAMA_FEAST_OFFLINE_SCHEMA": "feast_profile"}


def prepare(infra: InfraSettings, *, load: bool) -> tuple[Path, list[str], list[float]]:
    """The promoted tiny bundle, and the members (with their amounts) of the tiny world, loaded
    into the profile's own Feast project when `load` (or when nothing was loaded yet)."""
    from training import pipeline
    from training.export import write_bundle
    from training.profiles import get_profile
    from training.sources.synthetic import loan_book_from_world
    from training.world import generate_world

    profile = get_profile("tiny")
    world = generate_world(profile.n_members, profile.seed)
    marker = PROFILE_ROOT / f"loaded-{infra.redis_url.rsplit(':', 1)[-1].strip('/')}"
    if load or not marker.exists():
        console.print("loading the tiny world into Feast project alama_profile")
        pipeline.load_into_feast(infra, loan_book_from_world(world), echo=console.print)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    bundles = PROFILE_ROOT / "bundles"
    if not (bundles / "current" / "manifest.json").exists():
        console.print("training the tiny model once (artifacts/profile/bundles)")
        trained = pipeline.train(infra, profile, loan_book_from_world(world), echo=console.print)
        shutil.rmtree(bundles, ignore_errors=True)
        write_bundle(trained, pipeline.evaluate(trained), promote=True, root=bundles)
    apps = world.applications
    return bundles / "current", apps["member_id"].astype(str).tolist(), apps["amount_kes"].tolist()


def applications(members: Sequence[str], amounts: Sequence[float], n: int, run: str) -> list[Any]:
    """n applications of distinct known members (fresh ids: the ledger never short-cuts)."""
    return [
        LoanApplicationSubmitted(
            application_id=f"profile-{run}-{i}",
            tenant_id=DEV_TENANT,  # the synthetic book's tenant
            member_id=members[i % len(members)],
            product=LoanProduct.LOAN_PRODUCT_BUSINESS,
            amount_kes=float(amounts[i % len(amounts)]),
            term_months=12,
        )
        for i in range(n)
    ]


@dataclass
class Stage:
    name: str
    batch: int
    samples_ms: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.samples_ms)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return {
            "stage": self.name,
            "batch": self.batch,
            "reps": len(ordered),
            "p50_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(p90, 3),
            "p50_us_per_application": round(1000 * statistics.median(ordered) / self.batch, 1),
        }


def timed(stages: list[Stage], name: str, batch: int, reps: int, call: Callable[[], Any]) -> None:
    call()  # warm: connections, caches, lazy imports
    stage = Stage(name, batch)
    for _ in range(reps):
        started = time.perf_counter()
        call()
        stage.samples_ms.append(1000 * (time.perf_counter() - started))
    stages.append(stage)


def profile_batch(
    stages: list[Stage],
    n: int,
    reps: int,
    sdk: OnlineFeatures,
    fast: RedisOnlineFeatures,
    bundle: ModelBundle,
    bundle_dir: Path,
    members: Sequence[str],
    amounts: Sequence[float],
) -> None:
    apps = applications(members, amounts, n, uuid.uuid4().hex[:8])
    ids = [member_key(a.tenant_id, a.member_id) for a in apps]  # Feast's entity keys
    timed(
        stages,
        "features: Feast SDK get_online_features().to_df() (before)",
        n,
        reps,
        lambda: sdk.fetch(apps),
    )
    timed(
        stages,
        "features: one-round-trip Redis read, total (now)",
        n,
        reps,
        lambda: fast.fetch(apps),
    )
    timed(
        stages,
        "  of which: the pipelined HMGETs (round trip)",
        n,
        reps,
        lambda: fast.read(list(dict.fromkeys(ids))),
    )
    distinct = list(dict.fromkeys(ids))
    replies, where = fast.read(distinct), np.array([distinct.index(m) for m in ids])
    timed(
        stages,
        "  of which: decoding Feast's values into arrays",
        n,
        reps,
        lambda: fast.decode(replies, where),
    )
    batch = fast.fetch(apps)
    rows = np.arange(n)
    timed(stages, "model inputs from arrays", n, reps, lambda: batch.model_inputs(rows))
    inputs = batch.model_inputs(rows)
    timed(
        stages,
        "ONNX ensemble (GBM + LSTM, calibration, points)",
        n,
        reps,
        lambda: bundle.score(inputs),
    )
    timed(
        stages,
        "TreeSHAP (LightGBM pred_contrib), once per decision",
        n,
        reps,
        lambda: bundle.contributions(inputs.tabular),
    )
    scores, contributions = bundle.score(inputs), bundle.contributions(inputs.tabular)
    tabular = inputs.tabular.astype(np.float64)

    def decide() -> list[Any]:
        return build_decisions(
            apps,
            scores,
            tabular,
            contributions,
            model_version=bundle.version,
            decided_at=datetime.now(UTC),
            model_columns=bundle.columns,
        )

    timed(stages, "decisions (protos, reasons, features map)", n, reps, decide)
    for name, source in (
        ("whole scorer, one-round-trip read (now)", fast),
        ("whole scorer, Feast SDK read (before)", sdk),
    ):
        scorer = Scorer(source, bundle, bundle_dir=bundle_dir, ledger=MemoryLedger(), threads=1)
        loop = asyncio.new_event_loop()

        def score(scorer: Scorer = scorer, loop: asyncio.AbstractEventLoop = loop) -> None:
            apps = applications(members, amounts, n, uuid.uuid4().hex[:8])
            loop.run_until_complete(scorer.score(apps, path="grpc"))

        try:
            timed(stages, name, n, reps, score)
        finally:
            loop.close()
            scorer.close()
    decisions = decide()
    older = []
    for d in decisions:
        copy = type(d)()
        copy.CopyFrom(d)
        copy.ClearField("contributions")
        older.append(copy)
    assert bundle.booster is not None
    explainer = DecisionExplainer(_OneModel(TreeModel.from_booster(bundle.version, bundle.booster)))
    timed(
        stages,
        "explanation, contributions carried (now)",
        n,
        reps,
        lambda: explainer.explain(decisions, explained_at=datetime.now(UTC)),
    )
    timed(
        stages,
        "explanation, TreeSHAP recomputed (before)",
        n,
        reps,
        lambda: explainer.explain(older, explained_at=datetime.now(UTC)),
    )


class _OneModel:
    def __init__(self, model: TreeModel) -> None:
        self.model = model

    def get(self, version: str) -> TreeModel:
        return self.model

    def cached(self, version: str) -> bool:
        return True


def spin(path: str, seconds: float, batch: int, bundle_dir: Path, members: list[str]) -> None:
    """The scorer's hot path in a loop, for py-spy to sample: says "ready" once warm (imports,
    connections, the registry), then loops for `seconds`."""
    store = open_feature_store(InfraSettings())
    source = RedisOnlineFeatures(store) if path == "fast" else OnlineFeatures(store)
    bundle = load_bundle(bundle_dir)
    scorer = Scorer(source, bundle, bundle_dir=bundle_dir, ledger=MemoryLedger(), threads=1)
    amounts = [25_000.0]
    loop = asyncio.new_event_loop()
    for _ in range(5):
        loop.run_until_complete(
            scorer.score(applications(members, amounts, batch, uuid.uuid4().hex), path="grpc")
        )
    print("ready", flush=True)  # noqa: T201 - the parent waits for this line
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        apps = applications(members, amounts, batch, uuid.uuid4().hex[:8])
        loop.run_until_complete(scorer.score(apps, path="grpc"))
    loop.close()
    scorer.close()


def flame(path: str, seconds: float, batch: int, bundle_dir: Path) -> Path:
    """py-spy's flame graph of `spin` on one feature path: a child process, sampled only once
    it is warm, so start-up (Feast imports torch) stays out of the graph."""
    out = RESULTS / f"profile-scoring-{path}-batch{batch}.svg"
    spinning = [
        sys.executable, "-m", "bench.profile_scoring", "--spin", path,
        "--seconds", str(seconds + 30), "--spin-batch", str(batch), "--bundle", str(bundle_dir),
    ]  # fmt: skip
    child = subprocess.Popen(
        spinning, cwd=REPO, env=os.environ | PROJECT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "ready":
                break
        py_spy = Path(sys.executable).with_name("py-spy")
        record = [
            str(py_spy), "record", "--pid", str(child.pid), "--rate", "200",
            "--duration", str(int(seconds)), "--nonblocking", "--output", str(out),
        ]  # fmt: skip
        subprocess.run(record, check=True)
    finally:
        child.terminate()
        child.wait(timeout=60)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Where scoring's milliseconds go (in process)",
        "",
        f"Measured {result['measured_at']} with `{result['command']}`.",
        "",
        f"Machine: {result['machine']['cores']} cores ({result['machine']['cpu']}), load average"
        f" {result['machine']['load_before']} before and {result['machine']['load_after']} after."
        " **The machine is shared and was loaded by other work while this ran: absolute times"
        " are inflated by contention and vary run to run; compare stages within one run.**",
        "",
        "Each stage timed on its own (median and 90th percentile of the repetitions, one thread;"
        " per application = median / batch). Tiny world, tiny model (Feast project"
        " `alama_profile`).",
        "",
        "| batch | stage | p50 ms | p90 ms | p50 µs per application |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in result["stages"]:
        lines.append(
            f"| {row['batch']} | {row['stage']} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f}"
            f" | {row['p50_us_per_application']:,.1f} |"
        )
    lines += ["", "Reading the table (medians of this run):", ""]
    p50 = {(r["batch"], r["stage"]): r["p50_ms"] for r in result["stages"]}
    for batch in sorted({r["batch"] for r in result["stages"]}):
        sdk = p50[(batch, "features: Feast SDK get_online_features().to_df() (before)")]
        fast = p50[(batch, "features: one-round-trip Redis read, total (now)")]
        before = p50.get((batch, "whole scorer, Feast SDK read (before)"))
        now = p50.get((batch, "whole scorer, one-round-trip read (now)"))
        carried = p50[(batch, "explanation, contributions carried (now)")]
        recomputed = p50[(batch, "explanation, TreeSHAP recomputed (before)")]
        whole = f"; the whole scorer {before:.2f} → {now:.2f} ms" if before and now else ""
        lines.append(
            f"- batch {batch}: features {sdk:.2f} → {fast:.2f} ms ({sdk / fast:.1f} times faster)"
            f"{whole}; explanation {recomputed:.2f} → {carried:.2f} ms without recomputing"
            " TreeSHAP"
        )
    if result.get("flame_graphs"):
        lines += ["", "Flame graphs (py-spy, the scorer's loop on each feature path):", ""]
        lines += [f"- [{Path(p).name}]({Path(p).name})" for p in result["flame_graphs"]]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    reps: Annotated[int, typer.Option(help="repetitions per stage")] = 60,
    batches: Annotated[str, typer.Option(help="batch sizes, comma-separated")] = "1,10,100,1000",
    load: Annotated[bool, typer.Option(help="(re)load the tiny world into Feast")] = False,
    flame_graphs: Annotated[bool, typer.Option("--flame", help="py-spy flame graphs")] = False,
    flame_seconds: Annotated[float, typer.Option(help="seconds sampled per graph")] = 20.0,
    spin_path: Annotated[str, typer.Option("--spin", hidden=True)] = "",
    seconds: Annotated[float, typer.Option(hidden=True)] = 20.0,
    spin_batch: Annotated[int, typer.Option(hidden=True)] = 1,
    bundle: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    os.environ.update(PROJECT)
    infra = InfraSettings()
    if spin_path:
        members = applications_members()
        spin(spin_path, seconds, spin_batch, Path(bundle), members)
        return
    load_before = os.getloadavg()
    bundle_dir, members, amounts = prepare(infra, load=load)
    store = open_feature_store(infra)
    sdk, fast = OnlineFeatures(store), RedisOnlineFeatures(store)
    model = load_bundle(bundle_dir, threads=1)
    stages: list[Stage] = []
    for n in (int(b) for b in batches.split(",")):
        console.print(f"batch {n}: {reps} repetitions per stage")
        profile_batch(stages, n, reps, sdk, fast, model, bundle_dir, members, amounts)
    graphs = []
    if flame_graphs:
        for path in ("sdk", "fast"):
            for n in (1, 100):
                console.print(f"py-spy: the scorer on the {path} path, batch {n}")
                graphs.append(str(flame(path, flame_seconds, n, bundle_dir)))
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.profile_scoring " + " ".join(sys.argv[1:]),
        "machine": machine()
        | {
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "model_version": model.version,
        "stages": [s.row() for s in stages],
        "flame_graphs": graphs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile-scoring.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "profile-scoring.md").write_text(markdown(result))
    console.print(markdown(result))


def applications_members() -> list[str]:
    from training.profiles import get_profile
    from training.world import generate_world

    profile = get_profile("tiny")
    world = generate_world(profile.n_members, profile.seed)
    return world.applications["member_id"].astype(str).tolist()


if __name__ == "__main__":
    app()
