"""The console's oversight page on matured loans: equal opportunity of the model's approve band
among good borrowers by gender, with its interval and the target, from the outcomes the console
stored (the application's gender from core banking, never from the model); live performance
says so when the outcomes service is away; a member's erasure takes their loans' outcomes too."""

from __future__ import annotations

import re

import pytest

from services.common.protos.alama.events.v1.applications_pb2 import LoanApplicationSubmitted
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.protos.alama.events.v1.loans_pb2 import LoanOutcome
from services.console.people import Role

from .conftest import OpenConsole

pytestmark = pytest.mark.integration

TENANT = "sacco-eod"
PASSWORD = "a long enough password 3"


def _book() -> tuple[list[LoanApplicationSubmitted], list[LoanOutcome]]:
    """200 matured loans, 10 % defaulted in each group: the model approved two thirds of the
    women's good borrowers and all the men's, a gap of 0.333, far above the 0.05 target."""
    applications, outcomes = [], []
    for i in range(200):
        gender = "female" if i % 2 else "male"
        app = f"app-{i}"
        application = LoanApplicationSubmitted(
            application_id=app,
            member_id=f"m-{i}",
            tenant_id=TENANT,
            amount_kes=10_000,
            term_months=6,
            attributes={"gender": gender, "age_band": "25-34"},
        )
        application.applied_at.GetCurrentTime()
        applications.append(application)
        decade = (i // 2) % 10
        defaulted = decade == 9
        approved = decade < (6 if gender == "female" else 9)
        band = DecisionBand.DECISION_BAND_APPROVE if approved else DecisionBand.DECISION_BAND_REVIEW
        outcome = LoanOutcome(
            loan_id=f"L-{app}",
            application_id=app,
            decision_id=f"d-{app}",
            model_version="v-eod",
            tenant_id=TENANT,
            defaulted=defaulted,
            probability_of_default=0.3 if defaulted else 0.1,
            band=band,
            final_band=DecisionBand.DECISION_BAND_APPROVE,
        )
        outcome.outcome_at.GetCurrentTime()
        outcomes.append(outcome)
    return applications, outcomes


async def test_equal_opportunity_on_matured_loans_is_on_the_oversight_page(
    open_console: OpenConsole,
) -> None:
    async with open_console(outcomes_metrics_url="http://127.0.0.1:1/metrics") as site:
        store = site.console.store
        applications, outcomes = _book()
        await store.add_applications(applications)
        await store.add_loan_outcomes(outcomes)
        await store.add_loan_outcomes(outcomes)  # a redelivery stores nothing twice
        await site.console.people.add(
            tenant=TENANT,
            username="rita",
            display_name="Rita",
            role=Role.RISK_OFFICER,
            password=PASSWORD,
        )
        async with site.browser() as browser:
            answer = await browser.post(
                "/login", data={"tenant": TENANT, "username": "rita", "password": PASSWORD}
            )
            assert answer.status_code == 303
            page = (await browser.get("/oversight")).text
        table = re.search(r'<table[^>]*id="opportunity-gender".*?</table>', page, re.S)
        assert table is not None
        assert re.search(r"<td>female</td><td>90</td><td>60</td><td>66\.7 %", table.group(0))
        assert re.search(r"<td>male</td><td>90</td><td>90</td><td>100\.0 %", table.group(0))
        eod = re.search(r'id="eod-gender" class="breach">Equal-opportunity difference 0\.333', page)
        assert eod, "the gap and its breach of the target are shown"
        assert "outcomes service is unavailable" in page
        # erasing a member takes their loans' outcomes with their applications
        assert await store.erase_member(TENANT, "m-1") >= 2
        rows = await store.opportunity_by_group(TENANT, "gender")
        assert {r["grp"]: r["good"] for r in rows} == {"female": 89, "male": 90}
