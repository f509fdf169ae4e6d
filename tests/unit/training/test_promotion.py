"""Gated promotion and rollback through `python -m training` on a throwaway MLflow store.

The registry, its runs' held-out artifacts, the gate and the outbox are the real ones; two things
stand in for what needs servers: bundles are scored by a seeded stand-in (`Scorer`) that plays a
good, a weaker or an unfair model on the held-out rows (real ONNX bundles are scored in the
training pipeline's integration test), and the broker is an in-memory one that can be switched
off (the real broker is used in tests/integration/test_registry_events.py).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from mlflow import MlflowClient
from typer.testing import CliRunner

from services.common import features as F
from services.common.envelope import decode
from services.common.model_registry import REGISTERED_MODEL
from services.common.protos.alama.events.v1.models_pb2 import ModelRegistryChanged, RegistryAction
from tests.unit.training.conftest import Stub, shadow_pairs
from training import bundles, promotion
from training.__main__ import app
from training.__main__ import console as cli_console
from training.held_out import ARTIFACT_PATH, FILE_NAME, HeldOutRows, write_held_out
from training.promotion import BundleScores
from training.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry
from training.registry_events import Outbox, RegistrySettings, registry_event

ROWS = 4000
APPROVE_BELOW = 0.12


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Broker:
    """An in-memory broker: records what was acknowledged; `up` False refuses connections and
    `drop_after_connect` accepts the connection but never acknowledges."""

    up: bool = True
    drop_after_connect: bool = False
    records: list[tuple[str, bytes]] = field(default_factory=list)

    def producer(self, _infra: Any, **_options: Any) -> FakeProducer:
        return FakeProducer(self)

    def changes(self) -> list[ModelRegistryChanged]:
        return [decode(value, ModelRegistryChanged).payload for _, value in self.records]


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def start(self) -> None:
        if not self.broker.up:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes, **_kw: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broker.drop_after_connect:
            future.set_exception(KafkaTimeoutError())
        else:
            self.broker.records.append((topic, value))
            future.set_result(None)
        return future


@dataclass(frozen=True)
class Held:
    """Seeded held-out rows: a latent risk x in the first tabular column, the true PD from it,
    outcomes drawn from that PD, and groups independent of x (a model on x alone is fair)."""

    rows: HeldOutRows
    true_pd: np.ndarray


def _held(seed: int = 11) -> Held:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=ROWS)
    true_pd = _sigmoid(-2.2 + 1.1 * x)
    tabular = np.zeros((ROWS, len(F.TABULAR_FEATURES)), dtype=np.float32)
    tabular[:, 0] = x
    inputs = F.ModelInputs(
        tabular=tabular,
        static=tabular.copy(),
        repayments=np.zeros((ROWS, F.REPAYMENT_MONTHS, len(F.REPAYMENT_CHANNELS)), np.float32),
        repayment_mask=np.zeros((ROWS, F.REPAYMENT_MONTHS), np.float32),
        mobile_money=np.zeros(
            (ROWS, F.MOBILE_MONEY_WEEKS, len(F.MOBILE_MONEY_CHANNELS)), np.float32
        ),
        mobile_money_mask=np.zeros((ROWS, F.MOBILE_MONEY_WEEKS), np.float32),
    )
    rows = HeldOutRows(
        application_id=np.array([f"app-{i}" for i in range(ROWS)]),
        split=np.where(np.arange(ROWS) < ROWS // 2, "test", "out_of_time"),
        y_default=(rng.random(ROWS) < true_pd).astype(np.int64),
        groups={
            "gender": rng.choice(["female", "male"], ROWS),
            "age_band": rng.choice(["18-35", "36+"], ROWS),
        },
        inputs=inputs,
    )
    return Held(rows, true_pd)


#: how each bundle plays its part: a function of the rows' latent risk and groups
def _champion(x: np.ndarray, _rows: HeldOutRows) -> np.ndarray:
    seen = x + 0.9 * np.random.default_rng(1).normal(size=x.size)  # sees x through noise
    return _sigmoid(-2.2 + 1.1 * seen / 1.8)


def _good(x: np.ndarray, _rows: HeldOutRows) -> np.ndarray:
    return _sigmoid(-2.2 + 1.1 * x)  # the truth: better ranked, calibrated, fair


def _unfair(x: np.ndarray, rows: HeldOutRows) -> np.ndarray:
    """Ranks as well, but its PDs for women are shifted up (as if gender were an input)."""
    shift = np.where(rows.groups["gender"] == "female", 0.9, 0.0)
    return _sigmoid(-2.2 + 1.1 * x + shift)


PLAYS = {"bundle-a": _champion, "bundle-b": _good, "bundle-c": _unfair, "bundle-d": _good}


def fake_scorer(folder: Path, rows: HeldOutRows) -> BundleScores:
    pd = PLAYS[folder.name](rows.inputs.tabular[:, 0].astype(np.float64), rows)
    return BundleScores(pd, pd < APPROVE_BELOW)


@dataclass
class Setup:
    client: MlflowClient
    registry: Registry
    broker: Broker
    settings: RegistrySettings
    bundles: Path

    def register(self, bundle: str, *, held_out: bool = True) -> str:
        """A version as `track` leaves it: a run with its held-out rows, tagged with its bundle."""
        (self.bundles / bundle).mkdir(parents=True, exist_ok=True)
        (self.bundles / bundle / "manifest.json").write_text("{}")
        with mlflow.start_run() as run:
            if held_out:
                path = write_held_out(_held().rows, self.bundles.parent / "scratch" / FILE_NAME)
                mlflow.log_artifact(str(path), artifact_path=ARTIFACT_PATH)
        version = self.client.create_model_version(
            REGISTERED_MODEL, source=str(self.bundles / bundle), run_id=run.info.run_id
        ).version
        self.registry.tag_bundle(str(version), bundle)
        return str(version)

    def outbox(self) -> Outbox:
        return Outbox(self.settings.outbox)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its tables made once: creating them takes seconds a test."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Iterator[Setup]:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ALAMA_REGISTRY_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setenv("ALAMA_REGISTRY_KAFKA_TIMEOUT_SECONDS", "2")
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    broker = Broker()
    monkeypatch.setattr("training.registry_events.create_producer", broker.producer)
    monkeypatch.setattr(promotion, "score_held_out", fake_scorer)
    monkeypatch.setattr(bundles, "BUNDLES", tmp_path / "bundles")
    monkeypatch.setattr(cli_console, "width", 250)  # lines as printed, not wrapped at 80
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(REGISTERED_MODEL)
    yield Setup(
        client,
        Registry(REGISTERED_MODEL, client),
        broker,
        RegistrySettings(),
        tmp_path / "bundles",
    )
    mlflow.set_tracking_uri(previous)


runner = CliRunner()


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def _first_champion_and_challenger(s: Setup) -> tuple[str, str]:
    first, second = s.register("bundle-a"), s.register("bundle-b")
    promotion.register_trained(s.registry, first, "trainer", "manual", s.settings)
    promotion.register_trained(s.registry, second, "trainer", "drift", s.settings)
    return first, second


def test_the_first_version_is_champion_and_later_ones_only_challengers(s: Setup) -> None:
    """`make train` no longer promotes what it trains: only the very first version decides
    without the gate; each registration is published for the audit chain."""
    first, second = _first_champion_and_challenger(s)
    assert s.registry.version_of(CHAMPION) == first
    assert s.registry.version_of(CHALLENGER) == second
    promoted, registered = s.broker.changes()
    assert promoted.action == RegistryAction.REGISTRY_ACTION_PROMOTED
    assert (promoted.reason, promoted.model_version, promoted.requested_by) == (
        "first champion",
        first,
        "trainer",
    )
    assert registered.action == RegistryAction.REGISTRY_ACTION_CHALLENGER_REGISTERED
    assert (registered.model_version, registered.bundle_version, registered.trigger) == (
        second,
        "bundle-b",
        "drift",
    )
    assert registered.replaced_model_version == first  # the champion it runs beside
    assert s.outbox().pending() == []


def test_promote_moves_the_champion_when_the_gate_holds(s: Setup) -> None:
    first, second = _first_champion_and_challenger(s)
    result = _cli("promote", "--by", "risk-committee")
    assert result.exit_code == 0, result.output
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(PREVIOUS)) == (second, first)
    assert s.registry.version_of(CHALLENGER) is None  # it decides now, not in shadow
    assert (s.bundles / "current").resolve().name == "bundle-b"
    change = s.broker.changes()[-1]
    assert change.action == RegistryAction.REGISTRY_ACTION_PROMOTED
    assert (change.requested_by, change.model_version, change.replaced_model_version) == (
        "risk-committee",
        second,
        first,
    )
    assert (change.bundle_version, change.replaced_bundle_version) == ("bundle-b", "bundle-a")
    names = {c.name for c in change.checks}
    assert {"auc_vs_champion[held_out]", "ece[held_out]", "disparate_impact[gender]"} <= names
    assert all(c.passed and c.rows == ROWS for c in change.checks)


def test_an_unfair_challenger_is_refused_naming_the_fairness_check(s: Setup) -> None:
    """A challenger whose PDs are shifted for women ranks as well as the truth (AUC within
    groups unchanged) but approves fewer good women: the gate refuses it, says which check,
    nothing moves, and the refusal is in the audit record with who asked."""
    first = s.register("bundle-a")
    promotion.register_trained(s.registry, first, "trainer", "manual", s.settings)
    unfair = s.register("bundle-c")
    result = _cli("promote", "--version", unfair, "--by", "analyst@sacco")
    assert result.exit_code == 3
    refused = next(line for line in result.output.splitlines() if line.startswith("refused:"))
    assert "equal_opportunity[gender]" in refused or "disparate_impact[gender]" in refused
    assert s.registry.version_of(CHAMPION) == first and s.registry.version_of(PREVIOUS) is None
    refusal = s.broker.changes()[-1]
    assert refusal.action == RegistryAction.REGISTRY_ACTION_REFUSED
    assert (refusal.model_version, refusal.replaced_model_version) == (unfair, first)
    assert refusal.requested_by == "analyst@sacco"
    failed = {c.name for c in refusal.checks if not c.passed}
    assert failed & {"equal_opportunity[gender]", "disparate_impact[gender]"}
    # ranking is not what is wrong with it (its PDs for women are also too high: ECE)
    assert "auc_vs_champion[held_out]" not in failed and "disparate_impact[age_band]" not in failed
    assert all(name in refusal.reason for name in failed)


def test_rollback_swaps_back_in_one_command(s: Setup) -> None:
    first, second = _first_champion_and_challenger(s)
    assert _cli("promote", "--by", "risk-committee").exit_code == 0
    result = _cli("rollback", "--by", "ops-on-call")
    assert result.exit_code == 0, result.output
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(PREVIOUS)) == (first, second)
    assert (s.bundles / "current").resolve().name == "bundle-a"
    change = s.broker.changes()[-1]
    assert change.action == RegistryAction.REGISTRY_ACTION_ROLLED_BACK
    assert (change.model_version, change.replaced_model_version, change.requested_by) == (
        first,
        second,
        "ops-on-call",
    )
    listing = _cli("registry")
    assert listing.exit_code == 0
    assert "bundle-a" in listing.output and "bundle-b" in listing.output


def test_nothing_moves_when_the_broker_cannot_be_reached(s: Setup) -> None:
    first, _ = _first_champion_and_challenger(s)
    s.broker.up = False
    result = _cli("promote", "--by", "risk-committee")
    assert result.exit_code == 1
    assert "cannot be reached" in result.output and "nothing moved" in result.output
    assert s.registry.version_of(CHAMPION) == first
    assert _cli("rollback", "--by", "ops").exit_code == 1
    assert s.outbox().pending() == []  # no change was made, so none is waiting


def test_a_change_made_as_the_broker_drops_waits_in_the_outbox(s: Setup) -> None:
    """Connected, alias moved, then no acknowledgement: the command fails saying so, the
    change is kept, and the next registry command publishes it (once)."""
    _, second = _first_champion_and_challenger(s)
    s.broker.drop_after_connect = True
    result = _cli("promote", "--by", "risk-committee")
    assert result.exit_code == 1 and "waits in" in result.output
    assert s.registry.version_of(CHAMPION) == second
    (waiting,) = s.outbox().pending()
    s.broker.drop_after_connect = False
    before = len(s.broker.records)
    assert _cli("registry").exit_code == 0
    assert s.outbox().pending() == [] and len(s.broker.records) == before + 1
    published = s.broker.changes()[-1]
    assert published.change_id == waiting.event_id
    assert published.action == RegistryAction.REGISTRY_ACTION_PROMOTED


def test_a_promotion_cut_short_after_the_champion_moved_is_completed_and_recorded_once(
    s: Setup,
) -> None:
    """The process dies after writing its intent and moving `champion`, before the previous
    alias moved and before any record: the next registry command finishes the aliases and
    publishes the change (the intent's id, so the chain holds it once)."""
    first, second = _first_champion_and_challenger(s)
    verdict = promotion.gate_verdict(s.registry, _locator(s), second, first, scorer=fake_scorer)
    change = s.registry.plan_promotion(second, "risk-committee", verdict.result, first)
    s.outbox().intend(registry_event(change, verdict.rows))
    s.client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, second)  # then: killed
    before = len(s.broker.records)

    result = _cli("registry")
    assert result.exit_code == 0, result.output
    assert "completed 1 registry change" in result.output
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(PREVIOUS)) == (second, first)
    assert s.registry.version_of(CHALLENGER) is None
    (published,) = s.broker.changes()[before:]
    assert published.change_id == change.change_id
    assert published.action == RegistryAction.REGISTRY_ACTION_PROMOTED
    assert (published.model_version, published.replaced_model_version) == (second, first)
    assert s.outbox().intents() == [] and s.outbox().pending() == []
    assert _cli("registry").exit_code == 0 and len(s.broker.records) == before + 1


def test_a_rollback_cut_short_before_any_alias_moved_leaves_no_record(s: Setup) -> None:
    """The process dies after writing its intent, before moving anything: the next command
    drops the intent; nothing is published, nothing moves, and a new rollback works."""
    first, second = _first_champion_and_challenger(s)
    assert _cli("promote", "--by", "risk-committee").exit_code == 0
    change = s.registry.plan_rollback("ops-on-call")
    s.outbox().intend(registry_event(change))  # then: killed
    before = len(s.broker.records)

    assert _cli("registry").exit_code == 0
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(PREVIOUS)) == (second, first)
    assert len(s.broker.records) == before and s.outbox().intents() == []
    assert s.settings.outbox.read_text() == ""  # nothing pending or unsettled: emptied

    assert _cli("rollback", "--by", "ops-on-call").exit_code == 0
    (rolled,) = s.broker.changes()[before:]
    assert rolled.action == RegistryAction.REGISTRY_ACTION_ROLLED_BACK
    assert rolled.change_id != change.change_id
    assert s.registry.version_of(CHAMPION) == first


def test_a_failed_move_settles_its_intent_at_once(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow fails while the aliases move: the command fails, and what it leaves is settled
    from the registry (here: champion moved, so the change is completed and recorded)."""
    first, second = _first_champion_and_challenger(s)
    real = s.client.set_registered_model_alias

    def champion_then_outage(name: str, alias: str, version: str) -> None:
        real(name, alias, version)
        if alias == CHAMPION:
            monkeypatch.setattr(s.client, "set_registered_model_alias", real)
            raise RuntimeError("mlflow went away")

    monkeypatch.setattr(s.client, "set_registered_model_alias", champion_then_outage)
    with pytest.raises(RuntimeError, match="mlflow went away"):
        promotion.promote(
            s.registry,
            second,
            "risk-committee",
            promotion.gate_verdict(s.registry, _locator(s), second, first, scorer=fake_scorer),
            s.settings,
        )
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(PREVIOUS)) == (second, first)
    assert s.outbox().intents() == []
    (waiting,) = s.outbox().pending()
    assert _cli("registry").exit_code == 0
    assert s.broker.changes()[-1].change_id == waiting.event_id


def _locator(s: Setup) -> Any:
    from services.common.model_registry import ModelLocator

    return ModelLocator(s.client, bundle_root=s.bundles)


def test_offline_training_keeps_its_changes_and_publishes_them_in_order_later(s: Setup) -> None:
    """Training without a broker: the first champion and the next challenger are kept in the
    outbox (not dropped with a warning) and published oldest first once the broker is back."""
    s.broker.up = False
    first, _ = _first_champion_and_challenger(s)
    assert s.registry.version_of(CHAMPION) == first  # training itself did not fail
    waiting = [entry.event_id for entry in s.outbox().pending()]
    assert len(waiting) == 2 and s.broker.records == []
    s.broker.up = True
    assert _cli("registry").exit_code == 0
    assert [c.change_id for c in s.broker.changes()] == waiting
    assert [c.action for c in s.broker.changes()] == [
        RegistryAction.REGISTRY_ACTION_PROMOTED,
        RegistryAction.REGISTRY_ACTION_CHALLENGER_REGISTERED,
    ]
    assert s.outbox().pending() == [] and s.settings.outbox.read_text() == ""


def test_a_version_without_held_out_rows_cannot_be_promoted(s: Setup) -> None:
    first = s.register("bundle-a")
    promotion.register_trained(s.registry, first, "trainer", "manual", s.settings)
    old = s.register("bundle-d", held_out=False)
    result = _cli("promote", "--version", old, "--by", "ops")
    assert result.exit_code == 1 and "held-out rows" in result.output
    assert s.registry.version_of(CHAMPION) == first


def test_matured_outcomes_are_weighed_when_an_outcomes_service_is_named(
    s: Setup, outcomes: tuple[str, Stub]
) -> None:
    """The live set joins the held-out one in the gate (its own AUC check, rows recorded), and
    the service is asked about this challenger's bundle."""
    url, stub = outcomes
    stub.body = {"rows": shadow_pairs(400)}
    _, second = _first_champion_and_challenger(s)
    result = _cli("promote", "--by", "risk-committee", "--outcomes-url", url)
    assert "auc_vs_champion[matured_outcomes]" in result.output
    assert stub.asked == ["bundle-b"]
    change = s.broker.changes()[-1]
    matured = next(c for c in change.checks if c.name == "auc_vs_champion[matured_outcomes]")
    assert matured.rows == 400 and matured.measured
    assert change.model_version == second or change.action == RegistryAction.REGISTRY_ACTION_REFUSED


def test_too_few_matured_loans_is_not_yet_and_moves_nothing(
    s: Setup, outcomes: tuple[str, Stub]
) -> None:
    """Under the policy's minimum the gate does not judge: exit 4 with the counts, no alias
    moves and nothing is recorded; a policy that accepts fewer loans gets a verdict."""
    url, stub = outcomes
    stub.body = {"rows": shadow_pairs(120)}
    first, second = _first_champion_and_challenger(s)
    before = len(s.broker.records)
    result = _cli("promote", "--by", "risk-committee", "--outcomes-url", url)
    assert result.exit_code == 4, result.output
    assert "not yet: 120 matured loans" in result.output
    assert "auc_vs_champion" not in result.output  # nothing judged
    assert (s.registry.version_of(CHAMPION), s.registry.version_of(CHALLENGER)) == (first, second)
    assert len(s.broker.records) == before

    lowered = _cli(
        "promote", "--by", "risk-committee", "--outcomes-url", url, "--min-matured-loans", "100"
    )
    assert lowered.exit_code in (0, 3), lowered.output
    assert "auc_vs_champion[matured_outcomes]" in lowered.output
    assert len(s.broker.records) == before + 1  # the verdict, promoted or refused, is recorded


def test_an_unreachable_outcomes_service_stops_the_promotion(s: Setup) -> None:
    first, _ = _first_champion_and_challenger(s)
    result = _cli("promote", "--by", "risk-committee", "--outcomes-url", "http://127.0.0.1:1")
    assert result.exit_code == 1 and "cannot be reached" in result.output
    assert s.registry.version_of(CHAMPION) == first


@pytest.fixture
def s(setup: Setup) -> Setup:
    return setup
