"""Where third-party chatter goes during training: the run's log file, not the console.

MLflow's pickle and signature warnings, its artifact progress bar, SQLAlchemy deprecations,
Feast's materialize listing and Optuna's progress bar say nothing a person training a model
needs; they go to `artifacts/logs/training.log`, so the console shows Alama's own progress and
results. Anything that goes wrong still raises, and the log keeps the details.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from training.paths import ARTIFACTS

LOG_FILE = ARTIFACTS / "logs" / "training.log"
CHATTY_LOGGERS = ("mlflow", "feast", "alembic", "optuna", "urllib3", "py.warnings", "numba", "shap")

_handler: logging.Handler | None = None


def route_library_output(path: Path = LOG_FILE) -> Path:
    """Send warnings and library logs to `path` (idempotent); returns the log file."""
    global _handler
    if _handler is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _handler = logging.FileHandler(path)
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.captureWarnings(True)
        root = logging.getLogger()
        root.handlers = [_handler]
        root.setLevel(logging.INFO)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("TQDM_DISABLE", "1")
    # libraries that attach their own console handlers on import get ours instead
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [_handler]
        logger.propagate = False
    return path


@contextlib.contextmanager
def into_log() -> Iterator[None]:
    """Run a noisy library call with its prints and progress bars going to the log file."""
    path = route_library_output()
    with path.open("a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        finally:
            sys.stdout.flush()
