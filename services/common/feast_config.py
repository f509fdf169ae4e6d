"""Open the Feast repo with hosts and ports taken from the shared infrastructure settings.

`feature_repo/feature_store.yaml` holds ``${ALAMA_FEAST_*}`` placeholders; this fills any that the
environment does not set from `InfraSettings`, so training, scoring and the feature_store service
all reach the same registry, offline store and online store.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from services.common.settings import InfraSettings

if TYPE_CHECKING:
    from feast import FeatureStore

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO = REPO_ROOT / "feature_repo"
FEATURE_SERVICE = "credit_scoring_v1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def feast_environment(infra: InfraSettings) -> dict[str, str]:
    """The ALAMA_FEAST_* variables for these settings (the environment's own values win)."""
    pg = urlparse(infra.postgres_dsn)
    redis = urlparse(infra.redis_url)
    defaults = {
        "ALAMA_FEAST_PG_HOST": pg.hostname or "127.0.0.1",
        "ALAMA_FEAST_PG_PORT": str(pg.port or 5432),
        "ALAMA_FEAST_PG_DB": pg.path.lstrip("/") or "alama",
        "ALAMA_FEAST_PG_USER": pg.username or "alama",
        "ALAMA_FEAST_PG_PASSWORD": pg.password or "",
        # a role whose planner settings suit Feast's point-in-time SQL (infra/local.py)
        "ALAMA_FEAST_OFFLINE_USER": "alama_feast",
        "ALAMA_FEAST_PG_SSLMODE": "disable" if pg.hostname in LOCAL_HOSTS else "require",
        "ALAMA_FEAST_PROJECT": "alama",
        "ALAMA_FEAST_OFFLINE_SCHEMA": "feast",
        "ALAMA_FEAST_REDIS": f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379}",
    }
    return {key: os.environ.get(key, value) for key, value in defaults.items()}


def open_feature_store(infra: InfraSettings, repo: Path = FEATURE_REPO) -> FeatureStore:
    from feast import FeatureStore

    os.environ.update(feast_environment(infra))
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return FeatureStore(repo_path=str(repo))
