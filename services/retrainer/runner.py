"""Runs the retraining job when the policy says it is due, as a child process.

Training is heavy (PyTorch, LightGBM, minutes of CPU) and must not stall the consumer, so the
job (`python -m training.retrain` by default) runs in its own process with the live rows the
retrainer kept, written to a parquet file of the run's folder, and reports its result as JSON.
Exit code 3 is the job's refusal (nothing new to learn from, a book that cannot take the rows):
the alerts stay open for a later run. A run the retrainer did not see finish (it was stopped) is
marked failed at the next start. The parquet file holds members' ids: it is deleted once the job
is done (and one a stopped run left, at the next start), so members' data stays in the store
alone, where erasure reaches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.retrainer.metrics import LABELLED, LAST_CHALLENGER, RUN_SECONDS, RUNS
from services.retrainer.policy import Due, Policy, Waiting, decide
from services.retrainer.settings import RetrainerSettings
from services.retrainer.store import RetrainerStore

log = logging.getLogger(__name__)
#: training.retrain's exit code for a refusal (nothing new to learn from); usage errors are 2
REFUSED_EXIT = 3


def _result(path: Path) -> dict[str, Any] | None:
    """The job's JSON result, None when it wrote none."""
    return json.loads(path.read_text()) if path.exists() else None


def _tail(path: Path, chars: int = 2000) -> str:
    # PostgreSQL's jsonb refuses NUL, and a failed insert would turn "refused" into "failed"
    text = path.read_text(errors="replace")[-chars:] if path.exists() else ""
    return text.replace("\x00", "")


def _drop_live_rows(work_dir: Path) -> None:
    """The live rows (members' ids) that runs a stopped retrainer left behind."""
    for left in work_dir.glob("*/live.parquet"):
        left.unlink(missing_ok=True)


def policy_of(settings: RetrainerSettings) -> Policy:
    return Policy(
        schedule=timedelta(hours=settings.schedule_every_hours)
        if settings.schedule_every_hours > 0
        else None,
        cooldown=timedelta(minutes=settings.cooldown_minutes),
        min_new_outcomes=settings.min_new_outcomes,
    )


class Runner:
    def __init__(
        self,
        store: RetrainerStore,
        settings: RetrainerSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = policy_of(settings)
        self.clock = clock
        self.running = False
        self.last_run_at: datetime | None = None
        self.last_success_at: datetime | None = None
        self.watching_since: datetime | None = None

    async def restore(self) -> None:
        """Pick up where a previous process left: its last runs, and any it left running."""
        abandoned = await self.store.abandon_running(self.clock())
        if abandoned:
            log.warning(
                "runs left running by a stopped retrainer marked failed", extra={"n": abandoned}
            )
        await asyncio.to_thread(_drop_live_rows, Path(self.settings.work_dir))
        self.watching_since = await self.store.watching_since(self.clock())
        runs = await self.store.runs(limit=50)
        self.last_run_at = max((r.started_at for r in runs), default=None)
        self.last_success_at = max(
            (r.started_at for r in runs if r.status == "registered"), default=None
        )

    async def tick(self) -> Due | Waiting:
        """Decide, and run the job when due (returns once the run has finished)."""
        verdict = decide(
            self.clock(),
            self.policy,
            running=self.running,
            last_run_at=self.last_run_at,
            open_triggers=await self.store.open_triggers(),
            new_outcomes=await self.store.labelled_since(self.last_success_at),
            watching_since=self.watching_since,
        )
        if isinstance(verdict, Due):
            await self.run(verdict)
        return verdict

    async def run(self, due: Due) -> str:
        """One run of the job; returns its status (registered, refused or failed)."""
        started = self.clock()
        run_id = f"{started:%Y%m%d%H%M%S}-{due.trigger}-{uuid.uuid4().hex[:6]}"
        folder = Path(self.settings.work_dir) / run_id
        folder.mkdir(parents=True, exist_ok=True)
        rows = await self.store.labelled()
        LABELLED.set(len(rows))
        live, result, output = folder / "live.parquet", folder / "result.json", folder / "job.log"
        rows.to_parquet(live, index=False)
        await self.store.start_run(run_id, due.trigger, due.reason, started)
        self.running, self.last_run_at = True, started
        log.info("retraining", extra={"run": run_id, "trigger": due.trigger, "rows": len(rows)})
        command = [
            *self.settings.training_command,
            "--live-rows",
            str(live),
            "--trigger",
            due.trigger,
            "--profile",
            self.settings.profile,
            "--result",
            str(result),
            *(["--book", self.settings.book] if self.settings.book else []),
            *(["--bundle-root", self.settings.bundle_root] if self.settings.bundle_root else []),
        ]
        clock = time.perf_counter()
        try:
            code = await self._job(command, output)
            status = await self._record(run_id, due, code, result, output, len(rows), started)
        except asyncio.CancelledError:
            raise  # stopping: the next start marks the run failed (restore)
        except Exception as exc:  # a timeout, an unreadable result: never left as running
            log.exception("retraining failed", extra={"run": run_id})
            status = "failed"
            await self.store.finish_run(
                run_id, status, self.clock(), live_rows=len(rows), detail={"error": repr(exc)}
            )
        finally:
            self.running = False
            live.unlink(missing_ok=True)  # members' rows: the job has read them
            RUN_SECONDS.set(time.perf_counter() - clock)
        RUNS.labels(due.trigger, status).inc()
        return status

    async def _record(
        self,
        run_id: str,
        due: Due,
        code: int,
        result: Path,
        output: Path,
        rows: int,
        started: datetime,
    ) -> str:
        finished = self.clock()
        out = _result(result) if code == 0 else None
        if out is not None:
            await self.store.finish_run(
                run_id,
                "registered",
                finished,
                live_rows=int(out.get("live_rows", 0)),
                model_version=str(out.get("model_version")),
                bundle_version=str(out.get("bundle_version")),
                detail=out,
                answered=due.answers,
            )
            self.last_success_at = started
            LAST_CHALLENGER.set(finished.timestamp())
            return "registered"
        status = "refused" if code == REFUSED_EXIT else "failed"
        tail = _tail(output)
        await self.store.finish_run(
            run_id, status, finished, live_rows=rows, detail={"exit": code, "log": tail}
        )
        log.warning(
            "retraining did not register a challenger",
            extra={"run": run_id, "status": status, "exit": code, "log": tail[-500:]},
        )
        return status

    async def _job(self, command: list[str], output: Path) -> int:
        with output.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=sink, stderr=asyncio.subprocess.STDOUT
            )
            try:
                async with asyncio.timeout(self.settings.run_timeout_minutes * 60):
                    return await process.wait()
            except (TimeoutError, asyncio.CancelledError):
                process.kill()
                await process.wait()
                raise
