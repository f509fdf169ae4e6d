"""The one scoring path behind both gRPC and Kafka: applications -> features -> model -> decisions.

Feature reads and model work run in a small thread pool so the event loop never blocks. The
loaded model is swapped whole (`swap`) when the registry's `champion` alias moves
(`services.scoring.aliases`) or, in link mode, the `current` bundle link does; a request keeps the
model it started with, so a swap never drops or mixes an in-flight batch. A tabular bundle
(trained on a lender's own table) reads each application's `attributes` instead of the feature
store. Each batch's fresh decisions, with the feature rows they were made from, are handed to the
shadow (`shadow.py`) when a challenger runs, without waiting for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from services.common.bundle import ModelBundle, ServedBundle, load_served_bundle
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import CreditDecision
from services.common.tabular_bundle import TabularBundle
from services.common.vocabulary import BANDS
from services.scoring.applications import Rejection, RejectionCode, invalid_reasons, validate
from services.scoring.decisions import build_decisions, build_tabular_decisions, content_digest
from services.scoring.ledger import Entry, Ledger, ledger_key
from services.scoring.metrics import (
    BATCH_SIZE,
    BUNDLE_LOAD_FAILURES,
    BUNDLE_SWAPS,
    DECISIONS,
    LEDGER_SETTLE_FAILURES,
    REJECTIONS,
    SCORING_SECONDS,
)
from services.scoring.online_features import FeatureSource, OnlineBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureRow:
    """Where an application's online features sit in the batch read for it: the shadow reuses
    them, so both models decide on the same features (and Feast is read once)."""

    batch: OnlineBatch
    row: int


@dataclass(frozen=True)
class Outcome:
    """Exactly one of decision or rejection, for one application."""

    application: LoanApplicationSubmitted
    decision: CreditDecision | None = None
    rejection: Rejection | None = None
    features: FeatureRow | None = None  # what a fresh decision was made from
    recorded: bool = False  # a standing decision the broker already has: not published again

    @property
    def to_publish(self) -> CreditDecision | None:
        """The decision to put on credit.decisions before anyone is told it, if any."""
        return None if self.recorded else self.decision


@dataclass(frozen=True)
class Decided:
    """A decision this process has just made (and won in the ledger), for the shadow."""

    application: LoanApplicationSubmitted
    decision: CreditDecision
    features: FeatureRow | None  # None for a tabular bundle (it reads the attributes)


class ShadowSink(Protocol):
    """Takes each batch's fresh decisions for the challenger; must return at once."""

    @property
    def active(self) -> bool: ...

    def submit(self, decided: list[Decided]) -> None: ...


class Scorer:
    def __init__(
        self,
        features: FeatureSource,
        model: ServedBundle,
        *,
        bundle_dir: Path | str,
        ledger: Ledger,
        threads: int = 2,
        max_reasons: int = 4,
    ) -> None:
        self.features = features
        self.model = model
        self.bundle_dir = Path(bundle_dir)
        self.ledger = ledger
        self.threads = threads
        self.max_reasons = max_reasons
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scoring")
        self.shadow: ShadowSink | None = None
        self.settle_every_s = 0.5
        self._unsettled: list[str] = []
        self._settler: asyncio.Task[None] | None = None

    @property
    def model_version(self) -> str:
        return self.model.version

    async def score(
        self, applications: Sequence[LoanApplicationSubmitted], *, path: str
    ) -> list[Outcome]:
        """One outcome per application, in order; never raises for a bad application.

        An application id already decided gets its standing decision back (same content) or a
        conflict (other content); only the rest are scored, and their decisions are claimed in
        the ledger before anyone is told them.
        """
        started = time.perf_counter()
        model = self.model  # pinned for the whole batch, whatever a swap does meanwhile
        batch = list(applications)
        known = await self.ledger.lookup([ledger_key(a) for a in batch if a.application_id.strip()])
        standing = iter(known)
        outcomes: list[Outcome | None] = [
            _settled(a, next(standing)) if a.application_id.strip() else None for a in batch
        ]
        fresh = [i for i, o in enumerate(outcomes) if o is None]
        if fresh:
            scored = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._score_sync, [batch[i] for i in fresh], model
            )
            decided = [(i, o.decision) for i, o in zip(fresh, scored, strict=True) if o.decision]
            entries = await self.ledger.claim([(batch[i], d) for i, d in decided])
            for i, outcome in zip(fresh, scored, strict=True):
                outcomes[i] = outcome
            shadow = self.shadow if self.shadow is not None and self.shadow.active else None
            read = {i: o.features for i, o in zip(fresh, scored, strict=True)} if shadow else {}
            won: list[Decided] = []
            for (i, decision), entry in zip(decided, entries, strict=True):
                if shadow and entry.decision.decision_id == decision.decision_id:  # ours stands
                    won.append(Decided(batch[i], decision, read[i]))
                outcomes[i] = _settled(batch[i], entry)
            if shadow and won:
                shadow.submit(won)  # queued, never awaited: the champion's reply goes on
        done = [o for o in outcomes if o is not None]
        SCORING_SECONDS.labels(path).observe(time.perf_counter() - started)
        BATCH_SIZE.labels(path).observe(len(batch))
        for outcome in done:
            if outcome.decision is not None:
                DECISIONS.labels(path, _band_name(outcome.decision)).inc()
            elif outcome.rejection is not None:
                REJECTIONS.labels(path, outcome.rejection.code.value).inc()
        return done

    def _score_sync(
        self, applications: list[LoanApplicationSubmitted], model: ServedBundle
    ) -> list[Outcome]:
        if isinstance(model, TabularBundle):
            return self._score_tabular(applications, model)
        return self._score_features(applications, model)

    def _score_tabular(
        self, applications: list[LoanApplicationSubmitted], model: TabularBundle
    ) -> list[Outcome]:
        """The applicant's own columns, encoded as in training; nothing from the feature store."""
        outcomes: list[Outcome | None] = [None] * len(applications)
        valid: list[int] = []
        for i, application in enumerate(applications):
            problems = invalid_reasons(application) + model.encoding.problems(
                application.attributes
            )
            if problems:
                outcomes[i] = Outcome(
                    application,
                    rejection=Rejection(
                        application_id=application.application_id,
                        code=RejectionCode.INVALID_APPLICATION,
                        message="; ".join(problems),
                    ),
                )
            else:
                valid.append(i)
        if valid:
            chosen = [applications[i] for i in valid]
            encoded = model.encode([dict(a.attributes) for a in chosen])
            contributions, _baseline = model.contributions(encoded)
            decisions = build_tabular_decisions(
                chosen,
                model,
                model.score_encoded(encoded),
                encoded,
                contributions,
                decided_at=datetime.now(UTC),
                max_reasons=self.max_reasons,
            )
            for i, decision in zip(valid, decisions, strict=True):
                outcomes[i] = Outcome(applications[i], decision=decision)
        return [o for o in outcomes if o is not None]

    def _score_features(
        self, applications: list[LoanApplicationSubmitted], model: ModelBundle
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(applications)
        valid: list[int] = []
        for i, application in enumerate(applications):
            rejection = validate(application)
            if rejection is None:
                valid.append(i)
            else:
                outcomes[i] = Outcome(application, rejection=rejection)
        if valid:
            online = self.features.fetch([applications[i] for i in valid])
            scoreable = []
            for k, i in enumerate(valid):
                if online.known[k]:
                    scoreable.append(k)
                else:
                    member = applications[i].member_id
                    outcomes[i] = Outcome(
                        applications[i],
                        rejection=Rejection(
                            application_id=applications[i].application_id,
                            code=RejectionCode.UNKNOWN_MEMBER,
                            message=f"member {member} has no features in the online store",
                        ),
                    )
            if scoreable:
                chosen = [applications[valid[k]] for k in scoreable]
                decisions = self._decide(chosen, online, scoreable, model)
                for k, decision in zip(scoreable, decisions, strict=True):
                    outcomes[valid[k]] = Outcome(
                        applications[valid[k]], decision=decision, features=FeatureRow(online, k)
                    )
        return [o for o in outcomes if o is not None]

    def _decide(
        self,
        chosen: list[LoanApplicationSubmitted],
        online: OnlineBatch,
        rows: Sequence[int],
        model: ModelBundle,
    ) -> list[CreditDecision]:
        """Decisions of `model` for `chosen`, whose features are these rows of `online`."""
        inputs = online.model_inputs(rows)
        scores = model.score(inputs)
        # TreeSHAP once per decision, batched: the reasons and the explanation's share
        contributions = model.contributions(inputs.tabular)
        return build_decisions(
            chosen,
            scores,
            inputs.tabular.astype(np.float64),
            contributions,
            model_version=model.version,
            decided_at=datetime.now(UTC),
            max_reasons=self.max_reasons,
            model_columns=model.columns,
            sequences=online.sequences_of(rows),
        )

    def rescore(
        self, decided: Sequence[Decided], model: ServedBundle
    ) -> list[CreditDecision | None]:
        """What `model` (the challenger) decides for applications just decided, on the same
        features; None where it cannot decide one (its own table's checks refuse it, or the
        member is unknown). Synchronous: the shadow runs it on its own thread."""
        applications = [d.application for d in decided]
        if isinstance(model, TabularBundle):
            return [o.decision for o in self._score_tabular(applications, model)]
        unread = [i for i, d in enumerate(decided) if d.features is None]  # a tabular champion
        fetched = self.features.fetch([applications[i] for i in unread]) if unread else None
        rows: list[FeatureRow | None] = [d.features for d in decided]
        for k, i in enumerate(unread):
            assert fetched is not None
            rows[i] = FeatureRow(fetched, k) if fetched.known[k] else None
        present = [i for i, r in enumerate(rows) if r is not None]
        results: list[CreditDecision | None] = [None] * len(decided)
        if not present:
            return results
        picked = [r for r in rows if r is not None]
        names = picked[0].batch.sequences.keys()
        stacked = OnlineBatch(
            np.vstack([r.batch.tabular[r.row] for r in picked]),
            {name: np.vstack([r.batch.sequences[name][r.row] for r in picked]) for name in names},
            np.ones(len(picked), dtype=bool),
        )
        chosen = [applications[i] for i in present]
        decisions = self._decide(chosen, stacked, range(len(picked)), model)
        for i, decision in zip(present, decisions, strict=True):
            results[i] = decision
        return results

    async def reload_if_promoted(self) -> bool:
        """Load the bundle `current` now points at, if it moved; True when swapped."""
        target = self.bundle_dir.resolve()
        if target == self.model.path:
            return False
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(
            self.pool, functools.partial(load_served_bundle, target, threads=self.threads)
        )
        self.swap(model)
        return True

    def swap(self, model: ServedBundle) -> None:
        """Serve `model` from the next batch on; batches in flight finish with theirs."""
        previous, self.model = self.model.version, model
        BUNDLE_SWAPS.inc()
        log.info("model bundle swapped", extra={"previous": previous, "current": model.version})

    async def watch_bundle(self, stop: asyncio.Event, every: float) -> None:
        """Poll the `current` link until stop; a broken new bundle keeps the old one serving."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                await self.reload_if_promoted()
            except Exception:
                BUNDLE_LOAD_FAILURES.labels("champion").inc()
                log.exception("could not load the newly promoted bundle; keeping the old one")

    def published(self, outcomes: Sequence[Outcome]) -> None:
        """The broker has acknowledged these outcomes' decisions: the ledger may let their whole
        copies go after the retry window. Gathered and told in the background every
        `settle_every_s`, one round trip for all: a reply never waits on it, and a failure (or a
        crash first) only keeps some copies longer."""
        self._unsettled.extend(
            ledger_key(o.application) for o in outcomes if o.to_publish is not None
        )
        if self._unsettled and (self._settler is None or self._settler.done()):
            self._settler = asyncio.get_running_loop().create_task(self._settle())

    async def _settle(self) -> None:
        while self._unsettled:
            await asyncio.sleep(self.settle_every_s)
            keys, self._unsettled = self._unsettled, []
            try:
                await self.ledger.settle(keys)
            except Exception as exc:
                LEDGER_SETTLE_FAILURES.inc()
                log.warning(
                    "the ledger could not let published whole decisions go",
                    extra={"error": str(exc)},
                )

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _settled(application: LoanApplicationSubmitted, entry: Entry | None) -> Outcome | None:
    """The standing decision for the same content, a conflict for other content."""
    if entry is None:
        return None
    if entry.digest == content_digest(application):
        return Outcome(application, decision=entry.decision, recorded=entry.recorded)
    return Outcome(
        application,
        rejection=Rejection(
            application_id=application.application_id,
            code=RejectionCode.CONFLICT,
            message=(
                f"application {application.application_id} was already decided"
                f" ({entry.decision.decision_id}, {entry.decision.model_version}) with other"
                " content; send a new application id, or the same content to get that decision"
            ),
        ),
    )


def _band_name(decision: CreditDecision) -> str:
    return BANDS.name_or(decision.band, "unspecified")
