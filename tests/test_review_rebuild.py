"""Review of ``stich db verify`` / ``--repair`` (issue 17): drift of every kind in every
maintained table (a value off, a row missing, a row that should not be there) is found,
and the repair brings the table back to exactly what the live services maintained."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from stich.analytics.history import view_history
from stich.analytics.models import AppDailyBreakdown, AppDailyStats, AppDailyViewer
from stich.analytics.recount import verification_checks
from stich.apps.models import App
from stich.db import Database
from stich.gallery.models import FeedCount
from tests.factories import make_user
from tests.gallery_support import make_app
from tests.views_support import seed_activity

DAY = date(2026, 10, 5)
OTHER_DAY = date(2026, 10, 7)
AT = datetime(2026, 10, 5, 12, tzinfo=UTC)
FOREVER = 36_500  # every test day is within the retention: all rollups recounted exactly


def _activity(db: Database) -> tuple[str, str, str]:
    app_id, fork = seed_activity(db, AT)
    quiet = make_app(db, make_user(db).user_id, title="Quiet", framework="vue")
    return app_id, quiet, fork


def _state(db: Database) -> dict[str, set[tuple[Any, ...]]]:
    """Every maintained table; rollup rows of all zeros count as absent."""
    with db.read() as uow:
        s = uow.session
        daily = {tuple(r) for r in s.execute(select(AppDailyStats.__table__))}
        return {
            "apps": set(
                s.execute(
                    select(
                        App.id, App.star_count, App.favorite_count, App.view_count, App.fork_count
                    )
                ).tuples()
            ),
            "daily": {r for r in daily if any(r[2:])},
            "breakdowns": {
                tuple(r) for r in s.execute(select(AppDailyBreakdown.__table__)) if r[-1]
            },
            "viewers": {tuple(r) for r in s.execute(select(AppDailyViewer.__table__))},
            "feed": {
                tuple(r) for r in s.execute(select(FeedCount.scope, FeedCount.app_count)) if r[1]
            },
        }


def _found(db: Database) -> list[str]:
    with db.read() as uow:
        checks = verification_checks(view_history(uow.session, FOREVER))
    found: list[str] = []
    for check in checks:
        with db.write() if check.needs_write else db.read() as uow:
            found += [drift.describe() for drift in check.find(uow.session)]
    return found


def _repair(db: Database) -> None:
    with db.read() as uow:
        checks = verification_checks(view_history(uow.session, FOREVER))
    for check in checks:
        with db.write() as uow:
            check.repair(uow.session)


def _damages(app_id: str, quiet: str) -> list[tuple[str, Any]]:
    stats, breakdowns, viewers = (
        AppDailyStats.__table__,
        AppDailyBreakdown.__table__,
        AppDailyViewer.__table__,
    )
    return [
        ("a daily rollup row deleted", delete(stats).where(stats.c.app_id == app_id)),
        (
            "a daily rollup row for a day without events",
            insert(stats).values(app_id=quiet, day=OTHER_DAY, views=4, unique_viewers=4, stars=1),
        ),
        ("breakdown rows deleted", delete(breakdowns).where(breakdowns.c.app_id == app_id)),
        (
            "a breakdown row for a referrer nobody came from",
            insert(breakdowns).values(
                app_id=app_id,
                day=DAY,
                dimension="referrer",
                value="https://ghost.example",
                views=2,
            ),
        ),
        (
            "a breakdown row on an app without views",
            insert(breakdowns).values(
                app_id=quiet, day=DAY, dimension="device", value="desktop", views=9
            ),
        ),
        ("daily viewer rows deleted", delete(viewers).where(viewers.c.app_id == app_id)),
        (
            "a daily viewer nobody was",
            insert(viewers).values(day=DAY, app_id=quiet, viewer_key="f" * 32),
        ),
        ("the feed's framework totals deleted", delete(FeedCount.__table__)),
        (
            "a feed total for a framework no app has",
            insert(FeedCount.__table__).values(scope="framework:cobol", app_count=3),
        ),
    ]


def test_every_kind_of_drift_in_every_maintained_table_is_found_and_repaired_exactly(
    db: Database,
) -> None:
    app_id, quiet, _fork = _activity(db)
    assert _found(db) == []
    true_state = _state(db)
    for what, damage in _damages(app_id, quiet):
        with db.write() as uow:
            uow.session.execute(damage)
        assert _found(db), f"not found: {what}"
        _repair(db)
        assert _found(db) == [], what
        assert _state(db) == true_state, what


def test_a_rollup_row_before_the_oldest_view_is_drift_when_no_view_was_ever_purged(
    db: Database,
) -> None:
    """With no purge ever run (nothing older than the retention was removed), the days
    before the oldest raw view hold no history: a rollup row there is drift, not history
    to keep, and the repair must not raise view_count to it."""
    _app_id, quiet, _fork = _activity(db)
    true_state = _state(db)
    with db.write() as uow:
        uow.session.execute(
            insert(AppDailyStats.__table__).values(
                app_id=quiet, day=date(2026, 9, 1), views=4, unique_viewers=4, stars=0
            )
        )
    assert _found(db), "a rollup row no view or purge explains was not found"
    _repair(db)
    assert _state(db) == true_state
