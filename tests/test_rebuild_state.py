"""``rebuild_maintained_state``: counters, rollups, breakdowns and daily viewers rebuilt
from the event rows equal what the live services maintained, and views older than the
retention are counted, never dropped: rolled up before their purge, kept after it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from stich.analytics.history import ViewHistory, mark_purged, view_history
from stich.analytics.models import AppDailyBreakdown, AppDailyStats, AppDailyViewer, AppView
from stich.analytics.rebuild import REBUILD_PARTS, RebuiltPart, rebuild_maintained_state
from stich.analytics.recount import verification_checks
from stich.analytics.service import AnalyticsService
from stich.analytics.viewer import Viewer
from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.auth.principal import Principal
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.gallery.models import FeedCount
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.maintenance.jobs import run_maintenance, select_jobs
from tests.conftest import TEST_SERVER_KEY, make_settings
from tests.factories import make_user
from tests.gallery_support import make_app

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
OLD = NOW - timedelta(days=120)  # past the default 90-day view retention
RECENT = NOW - timedelta(days=10)
FOREVER = 36_500  # a retention that reaches back past every test day


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, view_retention_days=90)


def _views(db: Database, app_id: str, at: datetime, viewers: int, referrer: str) -> None:
    with db.write() as uow:
        analytics = AnalyticsService(uow.session, KeyedHasher(TEST_SERVER_KEY.encode()))
        for n in range(viewers):
            viewer = Viewer(client_ip=f"192.0.2.{n}", user_agent="Mozilla/5.0 (X11; Linux)")
            assert analytics.record_view(None, app_id, viewer, referrer=referrer, at=at).recorded


def _activity(db: Database) -> tuple[str, str]:
    """Two apps with views on an old and a recent day (one viewer back in a later window,
    so views > unique viewers), stars, a favorite and a fork."""
    alice, bob = make_user(db), make_user(db)
    first = make_app(db, alice.user_id, title="First", framework="react")
    second = make_app(db, bob.user_id, title="Second", framework="vue")
    fork = make_app(db, bob.user_id, title="Fork", framework=None)
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == fork).values(parent_app_id=first))
        uow.session.execute(update(App).where(App.id == first).values(fork_count=1))
    _views(db, first, OLD, 3, "https://old.example/")
    _views(db, first, RECENT, 2, "https://a.example/x")
    _views(db, first, RECENT + timedelta(hours=2), 1, "https://b.example/")
    _views(db, second, RECENT, 4, "")
    for at, app_id in ((OLD, first), (RECENT, second)):
        with db.write() as uow:
            GalleryService(uow.session, clock=lambda at=at: at).react(
                Reaction.STAR, Principal.user(bob.user_id), app_id, on=True
            )
    with db.write() as uow:
        GalleryService(uow.session).react(
            Reaction.FAVORITE, Principal.user(alice.user_id), second, on=True
        )
    return first, second


def _state(db: Database) -> dict[str, Any]:
    with db.read() as uow:
        s = uow.session

        def rows(*columns: Any) -> set[tuple[Any, ...]]:
            return {tuple(row) for row in s.execute(select(*columns))}

        return {
            "apps": rows(
                App.id, App.star_count, App.favorite_count, App.view_count, App.fork_count
            ),
            "daily": rows(AppDailyStats.__table__),
            "breakdowns": rows(AppDailyBreakdown.__table__),
            "viewers": rows(AppDailyViewer.__table__),
            "feed": rows(FeedCount.scope, FeedCount.app_count),
        }


def _wipe(db: Database) -> None:
    """Lose every maintained count (as after an import that wrote only the events)."""
    with db.write() as uow:
        s = uow.session
        for model in (AppDailyStats, AppDailyBreakdown, AppDailyViewer, FeedCount):
            s.execute(delete(model))
        s.execute(update(App).values(star_count=0, favorite_count=0, view_count=0, fork_count=0))


def test_a_rebuild_from_nothing_equals_what_the_services_maintained(db: Database) -> None:
    first, _ = _activity(db)
    maintained = _state(db)
    daily = {(row[1], row[2], row[3]) for row in maintained["daily"] if row[0] == first}
    assert daily == {(OLD.date(), 3, 3), (RECENT.date(), 3, 2)}  # the views are really there

    _wipe(db)
    seen: list[RebuiltPart] = []
    report = rebuild_maintained_state(db, view_retention_days=FOREVER, progress=seen.append)

    assert _state(db) == maintained
    assert [part.name for part in report.parts] == list(REBUILD_PARTS) == [p.name for p in seen]
    rewritten = {part.name: part.rows for part in report.parts}
    assert rewritten["daily rollups"] == len(maintained["daily"])
    assert rewritten["daily viewers"] == len(maintained["viewers"])
    assert rewritten["referrer and device rollups"] == len(maintained["breakdowns"])
    # A consistent database: a second rebuild finds nothing to rewrite.
    assert rebuild_maintained_state(db, view_retention_days=FOREVER).rows == 0


def test_a_rebuild_in_the_callers_transaction(db: Database) -> None:
    _activity(db)
    maintained = _state(db)
    _wipe(db)
    with db.write() as uow:
        with pytest.raises(TypeError, match="view_retention_days"):
            rebuild_maintained_state(uow.session)
        report = rebuild_maintained_state(uow.session, view_retention_days=FOREVER, now=NOW)
        assert report.rows > 0
    assert _state(db) == maintained


def test_a_rebuild_counts_views_older_than_the_retention(db: Database) -> None:
    """Rollups lost while raw views older than the retention are still there (an import of
    old history): every one of them is counted, not only the retained days'."""
    first, _ = _activity(db)
    maintained = _state(db)
    _wipe(db)

    report = rebuild_maintained_state(db, view_retention_days=90, now=NOW)

    # No view was ever purged: every day is recounted exactly, however old.
    assert report.history.exact_from == date.min
    assert _state(db) == maintained
    with db.read() as uow:
        assert uow.session.get_one(App, first).view_count == 3 + 3


def test_old_views_are_rolled_up_before_their_purge_and_a_repair_keeps_them(
    db: Database, settings: Settings
) -> None:
    first, _ = _activity(db)
    maintained = _state(db)
    _wipe(db)  # nothing counted: the purge must count the old views before they go

    run = run_maintenance(
        db, settings, jobs=select_jobs(["app_views", "app_daily_viewers"]), now=NOW
    )

    done = {result.name: result.describe() for result in run.results}
    assert done == {
        "app_views": "3 removed (3 views rolled up first)",
        "app_daily_viewers": "0 removed",
    }
    assert run.changes()["rolled_up"] == {"app_views": 3}
    with db.read() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(AppView)) == 7  # the recent ones
        [entry] = s.scalars(select(AuditLog.new_values).where(AuditLog.action == "maintenance.run"))
        assert entry is not None and entry["rolled_up"] == {"app_views": 3}
        old_day = s.execute(
            select(AppDailyStats.views, AppDailyStats.unique_viewers).where(
                AppDailyStats.app_id == first, AppDailyStats.day == OLD.date()
            )
        ).one()
    assert tuple(old_day) == (3, 3)

    # A repair after the purge: the old day's rollups are history it keeps, the rest is
    # rebuilt from the rows that remain; the result is what the services had maintained.
    report = rebuild_maintained_state(db, view_retention_days=90, now=NOW)
    assert report.rows > 0
    after = _state(db)
    assert after["daily"] == maintained["daily"]
    assert after["breakdowns"] == maintained["breakdowns"]
    assert after["apps"] == maintained["apps"]
    # Even with a longer retention than the one the purge ran under: no raw view is older
    # than the recent day, so the old day is still history, never lowered to nothing.
    assert rebuild_maintained_state(db, view_retention_days=FOREVER, now=NOW).rows == 0
    assert _state(db)["daily"] == maintained["daily"]
    with db.read() as uow:
        history = view_history(uow.session, 90, now=NOW)
    for check in verification_checks(history):
        with db.write() if check.needs_write else db.read() as uow:
            assert check.find(uow.session) == [], check.name


def test_a_purge_of_counted_views_rolls_up_nothing(db: Database, settings: Settings) -> None:
    _activity(db)
    maintained = _state(db)
    run = run_maintenance(db, settings, jobs=select_jobs(["app_views"]), now=NOW)
    assert [result.describe() for result in run.results] == ["3 removed"]
    assert "rolled_up" not in run.changes()
    assert _state(db)["daily"] == maintained["daily"]


def test_history_is_raised_to_the_rows_that_remain_but_never_lowered(db: Database) -> None:
    first, _ = _activity(db)
    old_day = (AppDailyStats.app_id == first) & (AppDailyStats.day == OLD.date())
    with db.write() as uow:  # the purge has reached past the old day (history from then)
        mark_purged(uow.session, OLD.date() + timedelta(days=1))

    def rebuilt_old_day(stored_views: int) -> int:
        with db.write() as uow:
            uow.session.execute(update(AppDailyStats).where(old_day).values(views=stored_views))
        rebuild_maintained_state(db, view_retention_days=90, now=NOW)
        with db.read() as uow:
            return int(uow.session.scalar(select(AppDailyStats.views).where(old_day)) or 0)

    assert rebuilt_old_day(1) == 3  # 3 raw views exist: counted
    assert rebuilt_old_day(50) == 50  # more than the rows: purged history, kept
    with db.read() as uow:
        assert uow.session.get_one(App, first).view_count == 50 + 3


def test_an_interrupted_purge_loses_no_history(db: Database, settings: Settings) -> None:
    """A purge that stopped half-way (some of a day's raw views gone, its rollups whole):
    the next run counts nothing twice and lowers nothing; the rollups stay the history."""
    first, _ = _activity(db)
    maintained = _state(db)
    with db.write() as uow:  # two of the old day's three raw views went before a crash
        old = select(AppView.id).where(AppView.app_id == first).order_by(AppView.id).limit(2)
        uow.session.execute(delete(AppView).where(AppView.id.in_(old.scalar_subquery())))

    run = run_maintenance(db, settings, jobs=select_jobs(["app_views"]), now=NOW)

    assert [result.describe() for result in run.results] == ["1 removed"]
    assert rebuild_maintained_state(db, view_retention_days=90, now=NOW).rows == 0
    assert _state(db)["daily"] == maintained["daily"]
    assert _state(db)["apps"] == maintained["apps"]


def test_repair_parts_cover_every_day_once() -> None:
    """The rollups are repaired a few days per transaction: the parts are contiguous, the
    first and last open-ended, so no day is left out or repaired twice."""
    whole = ViewHistory(exact_from=RECENT.date())
    parts = whole.chunks(OLD.date(), NOW.date(), 14)
    assert len(parts) == 9  # 121 days: cuts every 14 days from the first
    assert parts[0].since == whole.since and parts[-1].before == whole.before
    assert all(a.before == b.since for a, b in pairwise(parts))
    assert {part.exact_from for part in parts} == {whole.exact_from}
    assert whole.chunks(NOW.date(), NOW.date(), 14) == [whole]
    # Within a part that is itself bounded, the cuts stay inside it.
    bounded = ViewHistory(exact_from=NOW.date(), since=OLD.date(), before=RECENT.date())
    inner = bounded.chunks(OLD.date() - timedelta(days=30), NOW.date(), 14)
    assert inner[0].since == OLD.date() and inner[-1].before == RECENT.date()
    assert all(OLD.date() < part.since for part in inner[1:])
