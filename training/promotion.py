"""Gated promotion, one-command rollback and what a newly trained version becomes, each change
recorded on `model.registry` (and from there in the audit chain) with who asked.

The gate's verdict (`training.gate`) is computed on two sets:
- the held-out set: the rows the challenger's run logged (`training.held_out`), scored again here
  by the challenger's bundle and by the champion's, so both are judged on the same rows;
- the matured outcomes (optional): loans that matured after both models scored them, from the
  outcomes service (`training.shadow_pairs`).

Ordering, so that no alias moves without its record and no record claims a move that did not
happen: a promotion or rollback first connects to the broker and publishes what earlier commands
left pending (a broker that cannot be reached refuses the command: nothing moved, nothing to
record); then it writes the change it is about to make to the outbox as an intent, moves the
alias, turns the intent into an entry and publishes it. If the broker goes away meanwhile, the
change stays in the outbox and the command says so and fails; the next registry command
publishes it. If the process dies between the intent and its settlement, the next command
settles it from what the registry shows (`settle_intents`): the alias that decides moved, so
the change is completed and recorded; or it did not, so the intent is dropped. Publishing
before moving was the other choice, but a move that then fails (MLflow unreachable) would leave
the chain holding a promotion that never happened, which no later event can take back as
cleanly as an outbox entry can be sent later. A refusal moves nothing, so it is recorded
(outbox, then broker) whether or not the broker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.exceptions import MlflowException

from services.common.bundle import ModelBundle, load_served_bundle
from services.common.envelope import decode, encode
from services.common.model_registry import ModelLocator, ModelNotFound
from services.common.protos.alama.events.v1.envelope_pb2 import EventEnvelope
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged
from training.gate import HELD_OUT, MATURED_OUTCOMES, EvaluationSet, GatePolicy, GateResult, gate
from training.held_out import (
    ARTIFACT_PATH,
    FILE_NAME,
    HeldOutMismatch,
    HeldOutRows,
    read_held_out,
)
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    PromotionRefused,
    Registry,
    RegistryChange,
)
from training.registry_events import (
    ACTION_NAMES,
    BrokerUnreachable,
    Outbox,
    Recorded,
    RegistryPublisher,
    RegistrySettings,
    flush_outbox,
    record_or_keep,
    registry_event,
)
from training.shadow_pairs import (
    MIN_MATURED_DEFAULTS,
    MIN_MATURED_LOANS,
    enough_matured,
    fetch_shadow_pairs,
    matured_outcomes_set,
)


class PromotionError(RuntimeError):
    """The verdict cannot be computed or the change cannot be made; the message says why."""


class ChangeNotRecorded(RuntimeError):
    """The alias moved but the broker did not acknowledge its record: it waits in the outbox."""

    def __init__(self, change: RegistryChange, problem: str) -> None:
        super().__init__(problem)
        self.change = change


@dataclass(frozen=True)
class BundleScores:
    """One bundle's answer on the held-out rows: PD and whether it would approve."""

    probability_of_default: np.ndarray
    approved: np.ndarray


Scorer = Callable[[Path, HeldOutRows], BundleScores]


def score_held_out(folder: Path, rows: HeldOutRows) -> BundleScores:
    """Score the rows with the bundle in `folder` as serving would (the shared loader)."""
    bundle = load_served_bundle(folder)
    if not isinstance(bundle, ModelBundle):
        raise PromotionError(
            f"{folder.name} is a tabular bundle (the lender's own columns): the gate compares"
            " bundles on Alama's feature vocabulary only"
        )
    scores = bundle.score(rows.inputs)
    return BundleScores(scores.probability_of_default, scores.band == "approve")


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one challenger against the champion, and the rows it weighed."""

    challenger: str
    champion: str
    result: GateResult
    rows: dict[str, int]


def resolve_challenger(registry: Registry, version: str | None) -> str:
    chosen = version or registry.version_of(CHALLENGER)
    if chosen is None:
        raise PromotionError(
            f"no version given and no {registry.model_name}@{CHALLENGER} to promote"
        )
    try:
        registry.client.get_model_version(registry.model_name, chosen)
    except MlflowException as exc:
        raise PromotionError(f"{registry.model_name} has no version {chosen}") from exc
    return chosen


def held_out_of(registry: Registry, version: str) -> HeldOutRows:
    """The held-out rows the version's run logged (MLflow artifact)."""
    run_id = registry.run_of(version)
    if run_id is None:
        raise PromotionError(f"version {version} has no training run to take held-out rows from")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = registry.client.download_artifacts(
                run_id, f"{ARTIFACT_PATH}/{FILE_NAME}", dst_path=scratch
            )
        except (MlflowException, OSError) as exc:
            raise PromotionError(
                f"version {version}'s run {run_id} logged no held-out rows (registered before"
                " the gate kept them?); train it again to promote it"
            ) from exc
        try:
            return read_held_out(Path(path))
        except HeldOutMismatch as exc:
            raise PromotionError(f"version {version}: {exc}") from exc


def bundle_folder(locator: ModelLocator, registry: Registry, version: str) -> Path:
    bundle = registry.bundle_of(version)
    if not bundle:
        raise PromotionError(f"version {version} names no bundle (tag bundle_version)")
    try:
        return locator.folder(bundle)
    except ModelNotFound as exc:
        raise PromotionError(str(exc)) from exc


def gate_verdict(
    registry: Registry,
    locator: ModelLocator,
    challenger: str,
    champion: str,
    *,
    outcomes_url: str | None = None,
    scorer: Scorer | None = None,
    policy: GatePolicy | None = None,
    min_matured_loans: int = MIN_MATURED_LOANS,
    min_matured_defaults: int = MIN_MATURED_DEFAULTS,
) -> Verdict:
    """Score the challenger's held-out rows with both bundles, add the matured outcomes when an
    outcomes service is named (`NotEnoughOutcomes` while they are too few to judge on), and run
    the gate."""
    score = scorer or score_held_out
    matured = None
    if outcomes_url:  # first: "not yet" needs no scoring
        pairs = fetch_shadow_pairs(outcomes_url, registry.bundle_of(challenger) or "")
        matured = matured_outcomes_set(
            enough_matured(pairs, min_loans=min_matured_loans, min_defaults=min_matured_defaults)
        )
    rows = held_out_of(registry, challenger)
    if not rows.groups:
        raise PromotionError(
            f"version {challenger}'s held-out rows carry no protected attribute: fairness"
            " cannot be checked, so the gate cannot hold"
        )
    new = score(bundle_folder(locator, registry, challenger), rows)
    old = score(bundle_folder(locator, registry, champion), rows)
    sets = {
        HELD_OUT: EvaluationSet(
            y_default=rows.y_default,
            champion_pd=old.probability_of_default,
            challenger_pd=new.probability_of_default,
            challenger_approved=new.approved,
            groups=rows.groups,
        )
    }
    if matured is not None:
        sets[MATURED_OUTCOMES] = matured
    result = gate(sets, policy)
    return Verdict(challenger, champion, result, {name: s.rows for name, s in sets.items()})


def record_refusal(
    registry: Registry, verdict: Verdict, requested_by: str, settings: RegistrySettings
) -> tuple[RegistryChange, Recorded]:
    """A refused promotion moves nothing; its record goes to the outbox and, if it can, on."""
    change = registry.refusal(verdict.challenger, requested_by, verdict.result)
    recorded = asyncio.run(record_or_keep(registry_event(change, verdict.rows), settings))
    return change, recorded


def settle_intents(registry: Registry, outbox: Outbox) -> list[str]:
    """Settle the changes a command that died left intended: made (the alias that decides
    points at the version), they are completed (the other aliases moved too) and become pending
    records; not made, they are dropped. Returns the ids of those made."""
    made: list[str] = []
    for entry in outbox.intents():
        message = decode(encode(entry.envelope), ModelRegistryChanged).payload
        action = ACTION_NAMES[message.action]
        version = message.model_version or None
        replaced = message.replaced_model_version or None
        was_made = registry.made(action, version)
        if was_made:
            registry.finish(action, version, replaced, message.trigger)
            made.append(entry.event_id)
        outbox.settle(entry.envelope, made=was_made)
    return made


def _make(
    registry: Registry, change: RegistryChange, outbox: Outbox, rows: dict[str, int] | None = None
) -> EventEnvelope:
    """Intend, move, settle: see the module's docstring. Returns the change's record."""
    envelope = registry_event(change, rows)
    outbox.intend(envelope)
    try:
        registry.apply(change)
    except BaseException:
        with contextlib.suppress(Exception):  # the registry may be what failed: next command
            settle_intents(registry, outbox)
        raise
    outbox.settle(envelope, made=True)
    return envelope


async def _move_and_record(
    registry: Registry,
    plan: Callable[[], RegistryChange],
    rows: dict[str, int],
    settings: RegistrySettings,
) -> RegistryChange:
    async with RegistryPublisher(settings) as publisher:  # BrokerUnreachable: nothing moved
        settle_intents(registry, publisher.outbox)
        await publisher.flush()  # what earlier commands left pending goes first
        change = plan()
        _make(registry, change, publisher.outbox, rows)
        try:
            await publisher.flush()
        except BrokerUnreachable as exc:
            raise ChangeNotRecorded(change, str(exc)) from exc
    return change


def promote(
    registry: Registry,
    version: str,
    requested_by: str,
    verdict: Verdict | None,
    settings: RegistrySettings,
) -> RegistryChange:
    """Move `champion` to `version` (the gate must have held, or there is no champion yet) and
    record it. BrokerUnreachable: nothing moved. ChangeNotRecorded: moved, record pending."""
    if verdict is not None and not verdict.result.passed:
        raise PromotionRefused(verdict.result.refusal() or "refused")
    return asyncio.run(
        _move_and_record(
            registry,
            lambda: registry.plan_promotion(
                version,
                requested_by,
                None if verdict is None else verdict.result,
                judged_against=None if verdict is None else verdict.champion,
            ),
            {} if verdict is None else verdict.rows,
            settings,
        )
    )


def rollback(registry: Registry, requested_by: str, settings: RegistrySettings) -> RegistryChange:
    """Back to the previous champion, recorded (the same guarantees as `promote`)."""
    if registry.version_of(PREVIOUS) is None:
        raise PromotionRefused("no previous champion to roll back to")
    return asyncio.run(
        _move_and_record(registry, lambda: registry.plan_rollback(requested_by), {}, settings)
    )


def register_trained(
    registry: Registry,
    version: str,
    requested_by: str,
    trigger: str,
    settings: RegistrySettings,
) -> tuple[RegistryChange, Recorded]:
    """What a freshly registered version becomes: the first champion when there is none (nothing
    to compare it with), else the challenger, in shadow, while the champion keeps deciding.
    Training may run offline: the change is kept in the outbox until a broker takes it."""
    outbox = Outbox(settings.outbox)
    settle_intents(registry, outbox)
    if registry.version_of(CHAMPION) is None:
        change = registry.plan_promotion(version, requested_by, None)
    else:
        change = registry.plan_challenger(version, requested_by, trigger)
    _make(registry, change, outbox)
    return change, asyncio.run(flush_outbox(settings))
