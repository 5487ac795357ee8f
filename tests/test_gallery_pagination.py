"""Property tests: walking every page of every sort returns each listed app exactly once,
in order — with many equal sort values, and while apps are added and starred mid-walk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from stich.analytics.models import AppDailyStats
from stich.apps.models import App, AppStatus, Visibility
from stich.auth.principal import Principal
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery.feed import (
    STAR_WEIGHT,
    TRENDING_SCALE,
    FeedPeriod,
    FeedQuery,
    FeedRequest,
    FeedSort,
    period_start,
)
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from tests.factories import make_user

TODAY = date(2026, 5, 20)
BASE = datetime(2026, 5, 1, tzinfo=UTC)

# Few distinct values, so ties are everywhere.
_counts = st.integers(min_value=0, max_value=2)
_daily = st.lists(st.tuples(st.integers(min_value=0, max_value=40), _counts, _counts), max_size=3)


@dataclass(frozen=True)
class Spec:
    created: int  # hours after BASE
    updated: int
    stars: int
    views: int
    listed: bool
    framework: str | None
    daily: list[tuple[int, int, int]]  # (days before TODAY, stars, views)


_specs = st.builds(
    Spec,
    created=st.integers(min_value=0, max_value=3),
    updated=st.integers(min_value=0, max_value=3),
    stars=_counts,
    views=_counts,
    listed=st.booleans() | st.just(True),
    framework=st.sampled_from(["react", "vue", None]),
    daily=_daily,
)

_PROPERTY_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _reset(db: Database) -> None:
    with db.write() as uow:
        uow.session.execute(delete(App))  # cascades to rollups, stars, views


def _insert(db: Database, user_id: str, specs: list[Spec], today: date = TODAY) -> dict[str, Spec]:
    with db.write() as uow:
        apps = [
            App(
                title="app",
                user_id=user_id,
                framework=spec.framework,
                visibility=Visibility.PUBLIC if spec.listed else Visibility.PRIVATE,
                status=AppStatus.READY,
                created_at=BASE + timedelta(hours=spec.created),
                updated_at=BASE + timedelta(hours=spec.updated),
                star_count=spec.stars,
                view_count=spec.views,
            )
            for spec in specs
        ]
        uow.session.add_all(apps)
        uow.session.flush()
        for app, spec in zip(apps, specs, strict=True):
            days: dict[int, tuple[int, int]] = {}
            for back, stars, views in spec.daily:
                days[back] = (stars, views)
            for back, (stars, views) in days.items():
                uow.session.add(
                    AppDailyStats(
                        app_id=app.id,
                        day=today - timedelta(days=back),
                        stars=stars,
                        views=views,
                        unique_viewers=views,
                    )
                )
        return {app.id: spec for app, spec in zip(apps, specs, strict=True)}


def _score(spec: Spec, sort: FeedSort, period: FeedPeriod) -> int:
    start = period_start(sort, period, TODAY)
    total = 0
    for back, stars, views in {d[0]: d for d in spec.daily}.values():
        if TODAY - timedelta(days=back) < start:
            continue
        if sort is FeedSort.POPULAR:
            total += stars
        elif sort is FeedSort.VIEWED:
            total += views
        else:
            total += (STAR_WEIGHT * stars + views) * (TRENDING_SCALE // (back + 2) ** 2)
    return total


def _expected(apps: dict[str, Spec], request: FeedRequest) -> list[str]:
    listed = {
        i: s
        for i, s in apps.items()
        if s.listed and (request.framework is None or s.framework == request.framework)
    }
    sort, period = request.sort, request.period

    def key(app_id: str) -> tuple[object, ...]:
        spec = listed[app_id]
        if request.scored:
            return (_score(spec, sort, period), spec.created, app_id)
        value = {
            FeedSort.RECENT: spec.created,
            FeedSort.UPDATED: spec.updated,
            FeedSort.POPULAR: spec.stars,
            FeedSort.VIEWED: spec.views,
        }[sort]
        return (value, app_id)

    return sorted(listed, key=key, reverse=True)


def _walk(
    db: Database, request: FeedRequest, between_pages: object = None, today: date = TODAY
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        with db.read() as uow:
            page = FeedQuery(
                uow.session, FeedRequest(**{**request.__dict__, "cursor": cursor}), None
            ).page(today)
        assert page.has_more is (page.next_cursor is not None)
        assert len(page.items) <= request.limit
        seen += [row.id for row in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
        if callable(between_pages):
            between_pages()


_REQUESTS = [
    (sort, period)
    for sort in FeedSort
    for period in (
        FeedPeriod
        if sort in (FeedSort.POPULAR, FeedSort.VIEWED, FeedSort.TRENDING)
        else [FeedPeriod.ALL]
    )
]


@_PROPERTY_SETTINGS
@given(
    specs=st.lists(_specs, max_size=14),
    limit=st.integers(min_value=1, max_value=5),
    framework=st.sampled_from([None, "react"]),
)
def test_every_page_of_every_sort_returns_each_app_once_in_order(
    db: Database, specs: list[Spec], limit: int, framework: str | None
) -> None:
    _reset(db)
    owner = make_user(db)
    apps = _insert(db, owner.user_id, specs)
    for sort, period in _REQUESTS:
        request = FeedRequest(sort=sort, period=period, framework=framework, limit=limit)
        walked = _walk(db, request)
        assert walked == _expected(apps, request), (sort, period)


@_PROPERTY_SETTINGS
@given(
    specs=st.lists(_specs, min_size=1, max_size=10),
    limit=st.integers(min_value=1, max_value=4),
    starred=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=6),
    data=st.data(),
)
def test_adding_and_starring_apps_mid_walk_never_repeats_one(
    db: Database, specs: list[Spec], limit: int, starred: list[int], data: st.DataObject
) -> None:
    _reset(db)
    owner = make_user(db)
    sort, period = data.draw(st.sampled_from(_REQUESTS))
    today = utcnow().date()  # stars given mid-walk land on the real today
    original = list(_insert(db, owner.user_id, specs, today))
    listed = {i for i, s in zip(original, specs, strict=True) if s.listed}
    touched: set[str] = set()
    stars = iter(starred)

    def meanwhile() -> None:
        # Someone publishes an app and someone else stars one, between two pages.
        with db.write() as uow:
            uow.session.add(
                App(
                    title="new",
                    user_id=owner.user_id,
                    visibility=Visibility.PUBLIC,
                    status=AppStatus.READY,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        target = original[next(stars, 0) % len(original)]
        if target in listed:
            fan = make_user(db)
            with db.write() as uow:
                GalleryService(uow.session).react(
                    Reaction.STAR, Principal.user(fan.user_id), target, on=True
                )
            touched.add(target)

    request = FeedRequest(sort=sort, period=period, limit=limit)
    walked = _walk(db, request, meanwhile, today)
    assert len(walked) == len(set(walked)), (sort, period)
    # Apps nobody touched keep their place: none is skipped.
    assert listed - touched <= set(walked), (sort, period)
