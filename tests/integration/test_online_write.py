"""The online store written member chunk by member chunk holds what Feast's `materialize` of
whole feature views writes: the same Redis entries, byte for byte, the same values from
`get_online_features`, and the same window recorded in the registry."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import pytest
import redis

from services.common.feast_config import FEATURE_SERVICE, open_feature_store
from services.common.members import member_key
from services.common.settings import InfraSettings
from tests.integration.feast_projects import feast_project
from training import feature_tables
from training.contract import LoanBook
from training.sources.synthetic import loan_book_from_world
from training.world import generate_world

PROJECT = "online_write"


@pytest.fixture(scope="module")
def book() -> LoanBook:
    """A tiny world with what the synthetic one lacks: members who applied twice (their latest
    rows are 75 days later than their first application's), members whose profile snapshots
    miss deposits and income, members without mobile money, and no bureau table at all."""
    base = loan_book_from_world(generate_world(400, seed=29))
    tables = dict(base.tables)
    members = base.members["member_id"].astype(str)
    apps = tables["applications"]
    again = apps[apps["member_id"].isin(members.iloc[::3])].copy()
    again["application_id"] = again["application_id"].astype(str) + "-again"
    again["applied_at"] = again["applied_at"] + pd.Timedelta(days=75)
    tables["applications"] = pd.concat([apps, again], ignore_index=True)
    snaps = tables["profile_snapshots"].copy()
    blank = snaps["member_id"].isin(members.iloc[1::4])
    snaps.loc[blank, ["deposits_kes", "monthly_income_kes"]] = pd.NA
    tables["profile_snapshots"] = snaps
    mobile = tables["mobile_money"]
    tables["mobile_money"] = mobile[~mobile["member_id"].isin(members.iloc[2::5])]
    tables.pop("bureau", None)
    return LoanBook(tables=tables, source=base.source, cutoff=base.cutoff)


def online_entries(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every Redis hash of the project (its keys end with the project's name)."""
    return {
        key: cast("dict[bytes, bytes]", client.hgetall(key))
        for key in client.scan_iter(match=b"*" + project.encode())
    }


def clear_online(client: redis.Redis, project: str) -> None:
    for key in list(client.scan_iter(match=b"*" + project.encode())):
        client.delete(key)


def online_features(infra: InfraSettings, book: LoanBook) -> pd.DataFrame:
    store = open_feature_store(infra)
    apps = book.applications.drop_duplicates("member_id")
    rows = [
        {
            "member_id": member_key(book.tenant, str(a.member_id)),  # Feast's entity key
            "amount_kes": float(a.amount_kes),
            "term_months": float(a.term_months),
            "product": str(a.product),
        }
        for a in apps.itertuples()
    ]
    return store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE), entity_rows=rows
    ).to_df()


def intervals(infra: InfraSettings) -> dict[str, list[tuple[object, object]]]:
    store = open_feature_store(infra)
    return {
        view.name: list(view.materialization_intervals)
        for view in store.registry.list_feature_views(store.project, allow_cache=False)
    }


def test_chunked_online_write_is_what_materialize_writes(
    infra: InfraSettings, book: LoanBook
) -> None:
    client = redis.Redis.from_url(infra.redis_url)
    with feast_project(PROJECT):
        project = open_feature_store(infra).project
        load = feature_tables.load_offline_tables(infra, book, workers=1)
        feature_tables.apply_repo(infra)
        window = feature_tables.online_window(load)
        assert window is not None
        views = [view.name for view in open_feature_store(infra).list_feature_views()]

        clear_online(client, project)
        before = intervals(infra)
        open_feature_store(infra).materialize(window.start, window.end, feature_views=views)
        materialized = online_entries(client, project)
        expected = online_features(infra, book)
        recorded = intervals(infra)

        clear_online(client, project)
        written = feature_tables.write_online(infra, book, load, members_per_chunk=70, workers=2)
        chunked = online_entries(client, project)
        got = online_features(infra, book)
        recorded_again = intervals(infra)

    members = book.members["member_id"].nunique()
    assert written.members == {view: members for view in views}
    assert len(materialized) == members
    assert chunked == materialized  # every entity's hash, value bytes and timestamps alike
    pd.testing.assert_frame_equal(got, expected)
    # the cases the book was built for reach the online store as materialize leaves them
    assert expected["deposits_kes"].isna().any() and expected["deposits_kes"].notna().any()
    twice = book.applications["member_id"].duplicated(keep=False)
    assert twice.any() and not twice.all()
    assert np.isfinite(got["debt_service_ratio"].to_numpy(dtype=float)).any()
    # both record the window in the registry as materialize does: incremental runs start there
    for view in views:
        assert recorded[view] == [*before[view], (window.start, window.end)]
        assert recorded_again[view] == [*recorded[view], (window.start, window.end)]
