"""Serving follows the registry's aliases: a fake registry, fake bundles, the real scorer's swap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.common.bundle import BundleError, ServedBundle
from services.common.model_registry import (
    CHALLENGER,
    CHAMPION,
    ModelLocator,
    ModelNotFound,
    RegisteredBundle,
)
from services.scoring.aliases import AliasFollower, NoChampion, load_champion
from services.scoring.ledger import MemoryLedger
from services.scoring.scorer import Scorer
from services.scoring.shadow import Shadow


class FakeBundle:
    def __init__(self, version: str, threads: int) -> None:
        self.version = version
        self.threads = threads


class FakeRegistry:
    """Aliases to bundle versions; a bundle 'exists' when its version is in `bundles`."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = dict(aliases)
        self.bundles = {"v1", "v2", "v3", "c1", "broken"}
        self.reads = 0

    def by_alias(self, alias: str) -> RegisteredBundle:
        self.reads += 1
        if alias not in self.aliases:
            raise ModelNotFound(f"no @{alias}")
        version = self.aliases[alias]
        return RegisteredBundle(model_version="7", bundle_version=version, run_id="r")

    def folder(self, bundle_version: str) -> Path:
        if bundle_version not in self.bundles:
            raise ModelNotFound(bundle_version)
        return Path("/bundles") / bundle_version

    def describe(self) -> str:
        return "fake registry"


class Loads:
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, folder: Path, threads: int) -> ServedBundle:
        self.loaded.append(folder.name)
        if folder.name == "broken":
            raise BundleError("gbm.onnx does not match the manifest's sha256")
        return FakeBundle(folder.name, threads)  # type: ignore[return-value]


class NoPublisher:
    async def publish_shadow(self, decision: object) -> asyncio.Future[object]:
        raise AssertionError("nothing is shadowed in these tests")


def scorer_on(model: ServedBundle) -> Scorer:
    return Scorer(None, model, bundle_dir=".", ledger=MemoryLedger(), threads=2)  # type: ignore[arg-type]


def follower_on(registry: FakeRegistry, loads: Loads) -> tuple[AliasFollower, Scorer, Shadow]:
    scorer = scorer_on(load_champion(registry, loads, threads=2))
    shadow = Shadow(scorer, NoPublisher())  # type: ignore[arg-type]
    return AliasFollower(scorer, shadow, registry, loads, threads=2), scorer, shadow


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition with a timeout (no fixed sleep decides the test)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (a plain attribute: no event to await)
            await asyncio.sleep(0.01)


def failures(role: str) -> float:
    value = REGISTRY.get_sample_value("alama_scoring_bundle_load_failures_total", {"role": role})
    return value or 0.0


def served(role: str, version: str) -> float | None:
    return REGISTRY.get_sample_value(
        "alama_scoring_served_bundle", {"role": role, "version": version}
    )


def test_no_champion_fails_start_up_saying_what_to_do() -> None:
    with pytest.raises(NoChampion, match="run `make train`"):
        load_champion(FakeRegistry(challenger="c1"), Loads(), threads=2)


async def test_the_scorer_follows_the_champion_and_the_shadow_the_challenger() -> None:
    registry, loads = FakeRegistry(champion="v1"), Loads()
    follower, scorer, shadow = follower_on(registry, loads)
    assert scorer.model_version == "v1" and shadow.model is None and not shadow.active

    registry.aliases[CHALLENGER] = "c1"
    await follower.refresh()
    assert scorer.model_version == "v1"
    assert shadow.model is not None and shadow.model.version == "c1" and shadow.active
    assert shadow.model.threads == 1  # type: ignore[attr-defined]  # the champion comes first
    assert served(CHALLENGER, "c1") == 1

    await follower.refresh()  # nothing moved: nothing loaded again
    assert loads.loaded == ["v1", "c1"]

    # promotion: the challenger becomes the champion, so the shadow stops
    registry.aliases[CHAMPION] = "c1"
    await follower.refresh()
    assert scorer.model_version == "c1" and scorer.model.threads == 2  # type: ignore[attr-defined]
    assert shadow.model is None and not shadow.active
    assert served(CHAMPION, "c1") == 1 and served(CHAMPION, "v1") is None
    assert served(CHALLENGER, "c1") is None

    # a new challenger, then its alias removed
    registry.aliases[CHALLENGER] = "v3"
    await follower.refresh()
    assert shadow.model is not None and shadow.model.version == "v3"
    del registry.aliases[CHALLENGER]
    await follower.refresh()
    assert shadow.model is None

    # rollback: back to the one before
    registry.aliases[CHAMPION] = "v1"
    await follower.refresh()
    assert scorer.model_version == "v1"


async def test_a_broken_bundle_keeps_the_old_one_serving_until_the_registry_changes() -> None:
    registry, loads = FakeRegistry(champion="v1"), Loads()
    follower, scorer, _shadow = follower_on(registry, loads)
    before = failures(CHAMPION)
    registry.aliases[CHAMPION] = "broken"
    await follower.refresh()
    assert scorer.model_version == "v1"
    assert failures(CHAMPION) == before + 1
    await follower.refresh()  # a poll does not load the broken bundle again
    assert loads.loaded.count("broken") == 1

    registry.aliases[CHAMPION] = "gone"  # registered, but its bundle exists nowhere
    await follower.refresh()
    assert scorer.model_version == "v1" and failures(CHAMPION) == before + 2

    # a registry change clears the memory: the alias moved on to a good bundle
    registry.aliases[CHAMPION] = "v2"
    stop = asyncio.Event()
    following = asyncio.create_task(follower.follow(stop, every=60))
    follower.poke()
    await until(lambda: scorer.model_version == "v2")
    assert not follower.failed
    stop.set()
    await asyncio.wait_for(following, timeout=5)


async def test_a_change_is_followed_at_once_and_polling_is_the_fallback() -> None:
    registry, loads = FakeRegistry(champion="v1"), Loads()
    follower, scorer, _shadow = follower_on(registry, loads)
    stop = asyncio.Event()
    following = asyncio.create_task(follower.follow(stop, every=0.2))
    try:
        registry.aliases[CHAMPION] = "v2"  # no event: the poll finds it
        await until(lambda: scorer.model_version == "v2")
    finally:
        stop.set()
        await asyncio.wait_for(following, timeout=5)

    slow = asyncio.Event()
    following = asyncio.create_task(follower.follow(slow, every=3600))
    try:
        registry.aliases[CHAMPION] = "v3"
        await asyncio.sleep(0.05)
        assert scorer.model_version == "v2"  # an hour's poll: nothing yet
        follower.poke()
        await until(lambda: scorer.model_version == "v3")
    finally:
        slow.set()
        await asyncio.wait_for(following, timeout=5)


async def test_an_unreadable_registry_keeps_the_models_and_is_counted() -> None:
    registry, loads = FakeRegistry(champion="v1", challenger="c1"), Loads()
    follower, scorer, shadow = follower_on(registry, loads)
    await follower.refresh()

    def down(alias: str) -> RegisteredBundle:
        raise ConnectionError("registry away")

    registry.by_alias = down  # type: ignore[method-assign]
    errors = REGISTRY.get_sample_value("alama_scoring_registry_errors_total") or 0.0
    stop = asyncio.Event()
    following = asyncio.create_task(follower.follow(stop, every=0.05))
    await until(
        lambda: (
            not ((REGISTRY.get_sample_value("alama_scoring_registry_errors_total") or 0) <= errors)
        )
    )
    stop.set()
    await asyncio.wait_for(following, timeout=5)
    assert scorer.model_version == "v1"
    assert shadow.model is not None and shadow.model.version == "c1"


def test_the_locator_never_creates_a_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "mlflow" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    locator = ModelLocator(bundle_root=tmp_path / "bundles")
    with pytest.raises(ModelNotFound, match="make train"):
        locator.by_alias(CHAMPION)
    with pytest.raises(ModelNotFound, match="not a bundle version"):
        locator.folder("../etc")
    with pytest.raises(ModelNotFound, match="no model registry"):
        locator.folder("v1")
    assert not store.exists() and not store.parent.exists()
