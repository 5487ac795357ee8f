"""Snapshots of the windowed rankings: a snapshot walk equals the live walk, walks finish
on the snapshot they started on, and stale snapshots are rebuilt by maintenance."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from stich.analytics.models import AppDailyStats
from stich.db import Database
from stich.gallery import rankings
from stich.gallery.feed import FeedPeriod, FeedQuery, FeedRequest, FeedSort, ranking_name
from stich.gallery.models import FeedRanking, FeedRankingSnapshot
from tests.factories import make_user
from tests.test_gallery_pagination import (
    _PROPERTY_SETTINGS,
    TODAY,
    Spec,
    _expected,
    _insert,
    _reset,
    _specs,
)

NOW = datetime.combine(TODAY, time(12), tzinfo=UTC)
SCORED = [FeedRequest(sort=sort, period=period) for sort, period in rankings.SCORED_RANKINGS]


def _refresh_all(db: Database, now: datetime = NOW) -> None:
    with db.write() as uow:
        for sort, period in rankings.SCORED_RANKINGS:
            rankings.refresh(uow.session, ranking_name(sort, period), now)


def _page(db: Database, request: FeedRequest, cursor: str | None, now: datetime = NOW) -> tuple:
    with db.read() as uow:
        page = FeedQuery(
            uow.session, FeedRequest(**{**request.__dict__, "cursor": cursor}), None
        ).page(now.date(), now)
    return [row.id for row in page.items], page.next_cursor


def _walk(db: Database, request: FeedRequest, now: datetime = NOW) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        ids, cursor = _page(db, request, cursor, now)
        seen += ids
        if cursor is None:
            return seen


@_PROPERTY_SETTINGS
@given(
    specs=st.lists(_specs, max_size=14),
    limit=st.integers(min_value=1, max_value=5),
    framework=st.sampled_from([None, "react"]),
)
def test_a_snapshot_walk_returns_each_app_once_in_the_live_order(
    db: Database, specs: list[Spec], limit: int, framework: str | None
) -> None:
    _reset(db)
    apps = _insert(db, make_user(db).user_id, specs)
    _refresh_all(db)
    for base in SCORED:
        request = FeedRequest(sort=base.sort, period=base.period, framework=framework, limit=limit)
        assert _walk(db, request) == _expected(apps, request), (base.sort, base.period)


def _popular_week(db: Database) -> tuple[FeedRequest, list[str]]:
    owner = make_user(db)
    specs = [
        Spec(
            created=i % 3,
            updated=0,
            stars=0,
            views=0,
            listed=True,
            framework=None,
            daily=[(1, i + 1, 0)],
        )
        for i in range(6)
    ]
    apps = _insert(db, owner.user_id, specs)
    request = FeedRequest(sort=FeedSort.POPULAR, period=FeedPeriod.WEEK, limit=2)
    return request, _expected(apps, request)


def test_a_walk_finishes_on_the_snapshot_it_started_on(db: Database) -> None:
    request, expected = _popular_week(db)
    _refresh_all(db)
    first, cursor = _page(db, request, None)
    assert first == expected[:2]

    # The ranking changes completely and is rebuilt: the walk in progress keeps its
    # snapshot (kept as the previous generation), so it sees no app twice.
    with db.write() as uow:
        uow.session.execute(update(AppDailyStats).values(stars=100 - AppDailyStats.stars))
    _refresh_all(db, NOW + timedelta(minutes=1))
    rest: list[str] = []
    while cursor is not None:
        ids, cursor = _page(db, request, cursor, NOW + timedelta(minutes=1))
        rest += ids
    assert first + rest == expected

    # A new walk uses the new snapshot: the order is reversed.
    assert _walk(db, request, NOW + timedelta(minutes=1)) == list(reversed(expected))


def test_a_walk_whose_snapshot_is_gone_continues_live(db: Database) -> None:
    request, expected = _popular_week(db)
    _refresh_all(db)
    first, cursor = _page(db, request, None)
    _refresh_all(db, NOW + timedelta(minutes=1))
    _refresh_all(db, NOW + timedelta(minutes=2))  # the walk's generation is deleted now
    rest: list[str] = []
    while cursor is not None:
        ids, cursor = _page(db, request, cursor, NOW + timedelta(minutes=2))
        rest += ids
    assert first + rest == expected  # nothing changed, so live agrees with the snapshot


def test_old_or_missing_snapshots_are_not_used(db: Database) -> None:
    request, expected = _popular_week(db)
    _refresh_all(db)
    with db.write() as uow:  # activity after the snapshot reverses the ranking
        uow.session.execute(update(AppDailyStats).values(stars=100 - AppDailyStats.stars))
    assert _walk(db, request) == expected  # fresh snapshot: as of its computation
    later = NOW + timedelta(hours=1)  # older than the default 15 minutes: computed live
    assert _walk(db, request, later) == list(reversed(expected))


def test_refresh_keeps_two_generations_and_stale_detection(db: Database) -> None:
    _popular_week(db)
    name = ranking_name(FeedSort.POPULAR, FeedPeriod.WEEK)
    with db.read() as uow:
        stale = rankings.stale_rankings(uow.session, NOW, timedelta(minutes=5))
    assert len(stale) == len(rankings.SCORED_RANKINGS)
    for minute in range(3):
        _refresh_all(db, NOW + timedelta(minutes=minute))
    with db.read() as uow:
        generations = uow.session.scalars(
            select(func.distinct(FeedRanking.generation)).where(FeedRanking.ranking == name)
        ).all()
        snapshot = uow.session.get_one(FeedRankingSnapshot, name)
        stale = rankings.stale_rankings(
            uow.session, NOW + timedelta(minutes=3), timedelta(minutes=5)
        )
    assert sorted(generations) == [2, 3]
    assert (snapshot.generation, snapshot.previous_generation, snapshot.app_count) == (3, 2, 6)
    assert stale == []
