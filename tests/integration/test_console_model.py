"""The console's model page, read over scoring's contract from a real scoring server serving the
tests' tiny bundle: the version, the training metrics as the bundle recorded them, fairness, the
band cut-offs and the model card rendered as text (no markup from the card runs); and a clear
message when scoring is away."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from services.common.bundle import load_served_bundle
from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.console.model_card import ModelReader
from services.console.people import Role
from services.scoring.ledger import MemoryLedger
from services.scoring.online_features import OnlineBatch
from services.scoring.scorer import Scorer
from services.scoring.server import start_server

from .conftest import OpenConsole

pytestmark = pytest.mark.integration

TENANT = "sacco-model"
PASSWORD = "a long enough password 2"


class NoFeatures:
    """The model page scores nobody."""

    def fetch(self, applications: Sequence[LoanApplicationSubmitted]) -> OnlineBatch:
        raise AssertionError("the model page must not score")


CARD = """# Model card: tiny test bundle

## Intended use
SACCO lending <script>alert("the card is text")</script> only.
"""


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """The tiny bundle with a model card (as `make train` writes one) holding markup."""
    copy = tmp_path / tiny_bundle.resolve().name
    shutil.copytree(tiny_bundle.resolve(), copy)
    (copy / "model_card.md").write_text(CARD)
    return copy


@pytest.fixture
async def scoring_target(bundle: Path) -> AsyncIterator[str]:
    scorer = Scorer(
        NoFeatures(),
        load_served_bundle(bundle, threads=1),
        bundle_dir=bundle,
        ledger=MemoryLedger(),
        threads=1,
    )
    server = await start_server(scorer, host="127.0.0.1", port=0)
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)
        scorer.close()


async def _model_page(open_console: OpenConsole, target: str) -> str:
    async with open_console() as site:
        await site.console.people.add(
            tenant=TENANT,
            username="aud",
            display_name="Auditor",
            role=Role.AUDITOR,
            password=PASSWORD,
        )
        site.console.model = ModelReader(target, 2.0)
        try:
            async with site.browser() as browser:
                answer = await browser.post(
                    "/login", data={"tenant": TENANT, "username": "aud", "password": PASSWORD}
                )
                assert answer.status_code == 303, answer.text
                page = await browser.get("/model")
                assert page.status_code == 200
                return page.text
        finally:
            await site.console.model.close()


async def test_the_model_page_shows_what_scoring_serves_with_its_metrics_and_card(
    open_console: OpenConsole, scoring_target: str, bundle: Path
) -> None:
    text = await _model_page(open_console, scoring_target)
    metrics = json.loads((bundle / "metrics.json").read_text())
    version = json.loads((bundle / "manifest.json").read_text())["version"]
    assert f'<dd id="model-version">{version}</dd>' in text  # the version scoring serves
    shipped_auc = f"{metrics['test']['shipped']['auc']:.4f}"
    assert shipped_auc in text
    assert f"{metrics['out_of_time']['shipped']['auc']:.4f}" in text
    gender = metrics["fairness"]["gender"]["disparate_impact_ratio"]
    assert f"{gender:.3f}" in text
    assert "<h1>Model card: tiny test bundle</h1>" in text  # Markdown rendered
    assert "<h2>Intended use</h2>" in text
    assert "<script>alert" not in text  # the card's markup is shown as text, never run
    assert html.escape('<script>alert("the card is text")</script>') in text


async def test_the_model_page_says_when_scoring_is_away(open_console: OpenConsole) -> None:
    text = await _model_page(open_console, "127.0.0.1:1")
    assert "scoring service is unavailable" in text
