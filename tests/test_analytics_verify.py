"""`stich db verify [--repair]`, run as an operator would: a separate process on a real
database that someone (or something) has knocked out of true."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from sqlalchemy import select, text, update

from stich.analytics.history import mark_purged, view_history
from stich.analytics.models import AppDailyBreakdown, AppDailyStats
from stich.analytics.recount import CHECKS, DailyStatsCheck
from stich.apps.models import App
from stich.auth.principal import Principal
from stich.db import Database
from stich.gallery.models import FeedCount
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from tests.cli_support import run_stich
from tests.factories import make_user
from tests.views_support import seed_activity

DAY = date(2026, 10, 5)
AT = datetime(2026, 10, 5, 12, tzinfo=UTC)


def _activity(db: Database) -> tuple[str, str]:
    return seed_activity(db, AT)


def _knock_out_of_true(db: Database, app_id: str, backend: str) -> None:
    with db.write() as uow:
        s = uow.session
        s.execute(
            update(App)
            .where(App.id == app_id)
            .values(star_count=7, favorite_count=0, view_count=1, fork_count=0)
        )
        s.execute(update(AppDailyStats).values(views=99, unique_viewers=0, stars=0))
        s.execute(update(AppDailyBreakdown).values(views=5))
        s.execute(update(FeedCount).where(FeedCount.scope == "all").values(app_count=40))
        if backend == "sqlite":  # an edit the full-text index never heard of
            s.execute(text("DROP TRIGGER apps_fts_update"))
            s.execute(update(App).where(App.id == app_id).values(title="Renamed"))


def _drift(db: Database) -> list[str]:
    found: list[str] = []
    for check in CHECKS:
        with db.write() if check.needs_write else db.read() as uow:
            found += [drift.describe() for drift in check.find(uow.session)]
    return found


def _verify(database_url: str, tmp_path: Path, *args: str) -> CompletedProcess[str]:
    # A retention longer than the test data's age, whatever today's date: every day exact.
    env = {"STICH_VIEW_RETENTION_DAYS": "36500"}
    return run_stich("--database-url", database_url, "db", "verify", *args, cwd=tmp_path, env=env)


def test_verify_reports_nothing_on_a_true_database(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    _activity(db)
    result = _verify(database_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stars: no drift" in result.stdout
    assert "daily rollups: no drift" in result.stdout
    assert "drifts" not in result.stdout
    assert result.stdout.startswith("view history: no raw view was ever purged")


def test_verify_counts_drift_per_check_and_lists_it_only_when_verbose(
    db: Database, database_url: str, tmp_path: Path, backend: str
) -> None:
    app_id, _fork = _activity(db)
    _knock_out_of_true(db, app_id, backend)

    found = _verify(database_url, tmp_path)
    assert found.returncode == 1
    out = found.stdout
    assert "stars: 1 drifts in 1 rows (star_count 1); run with --repair to fix" in out
    assert "daily rollups: 3 drifts in 1 rows (stars 1, unique_viewers 1, views 1)" in out
    # Two rows (the referrer and the device) say 5 where the views say 3.
    assert "referrer and device rollups: 2 drifts in 2 rows (views 2)" in out
    assert "feed totals: 1 drifts in 1 rows (app_count 1)" in out
    assert app_id not in out  # no per-row lines without --verbose

    verbose = _verify(database_url, tmp_path, "--verbose")
    assert verbose.returncode == 1
    out = verbose.stdout
    assert f"stars: {app_id}: star_count is 7, recount 1" in out
    assert f"favorites: {app_id}: favorite_count is 0, recount 1" in out
    # The view counter is checked against the rollups (they outlive raw events), which
    # are themselves off here; --repair fixes the rollups first, then the counter.
    assert f"views: {app_id}: view_count is 1, recount 99" in out
    assert f"forks: {app_id}: fork_count is 0, recount 1" in out
    assert f"daily rollups: {app_id} {DAY}: views is 99, recount 3" in out
    assert f"daily rollups: {app_id} {DAY}: unique_viewers is 0, recount 3" in out
    assert f"daily rollups: {app_id} {DAY}: stars is 0, recount 1" in out
    assert f"referrer and device rollups: {app_id} {DAY} referrer https://a.example" in out
    assert "feed totals: all: app_count is 40, recount 2" in out
    assert "stars: 1 drifts in 1 rows (star_count 1); run with --repair to fix" in out
    if backend == "sqlite":
        assert "search index: apps_fts: does not match" in out


def test_repair_fixes_every_drift_to_the_recount_from_scratch(
    db: Database, database_url: str, tmp_path: Path, backend: str
) -> None:
    app_id, _fork = _activity(db)
    true_state = _maintained_state(db)
    _knock_out_of_true(db, app_id, backend)

    repaired = _verify(database_url, tmp_path, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    out = repaired.stdout
    # The repair finds the drift itself (one pass over each table): rows and time.
    assert "stars: repaired 1 rows in " in out
    assert "daily rollups: repaired 1 rows in " in out
    assert "referrer and device rollups: repaired 2 rows in " in out
    assert "views: repaired 1 rows in " in out
    assert "daily viewers: no drift" in out
    assert out.count(": repaired ") == 8 - (backend != "sqlite")  # no FTS on PostgreSQL
    assert app_id not in out
    assert "repairing daily rollups" in repaired.stderr
    assert _drift(db) == []
    with db.read() as uow:
        app = uow.session.get_one(App, app_id)
        counters = (app.star_count, app.favorite_count, app.view_count, app.fork_count)
    assert counters == (1, 1, 3, 1)
    # Exactly what the live services had maintained before the damage.
    assert _maintained_state(db) == true_state
    again = _verify(database_url, tmp_path)
    assert again.returncode == 0, again.stdout

    # With --verbose the repair says first what it found, row by row and in sum.
    _knock_out_of_true(db, app_id, backend="postgresql")  # (the FTS trigger is gone)
    verbose = _verify(database_url, tmp_path, "--repair", "--verbose")
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    out = verbose.stdout
    assert f"daily rollups: {app_id} {DAY}: views is 99, recount 3" in out
    assert "daily rollups: 3 drifts in 1 rows (stars 1, unique_viewers 1, views 1); " in out
    assert "; repaired 1 rows in " in out
    assert _maintained_state(db) == true_state


def _maintained_state(db: Database) -> dict[str, set[tuple[Any, ...]]]:
    with db.read() as uow:
        s = uow.session
        return {
            "apps": {
                tuple(row)
                for row in s.execute(
                    select(
                        App.id, App.star_count, App.favorite_count, App.view_count, App.fork_count
                    )
                )
            },
            "daily": {tuple(row) for row in s.execute(select(AppDailyStats.__table__))},
            "breakdowns": {tuple(row) for row in s.execute(select(AppDailyBreakdown.__table__))},
            "feed": {tuple(row) for row in s.execute(select(FeedCount.scope, FeedCount.app_count))},
        }


def test_repair_recounts_inside_its_own_transaction(db: Database) -> None:
    """A drift found earlier is repaired to the count at repair time, not the stale one."""
    app_id, _ = _activity(db)
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == app_id).values(star_count=50))
    stars = next(check for check in CHECKS if check.name == "stars")
    with db.read() as uow:
        drifts = stars.find(uow.session)
    assert [(d.stored, d.actual) for d in drifts] == [(50, 1)]
    carol = make_user(db)
    with db.write() as uow:  # a star arrives between the check and the repair
        GalleryService(uow.session).react(
            Reaction.STAR, Principal.user(carol.user_id), app_id, on=True
        )
    with db.write() as uow:
        assert stars.repair(uow.session) == 1
    with db.read() as uow:
        assert uow.session.get_one(App, app_id).star_count == 2
    with db.write() as uow:  # nothing left to rewrite
        assert stars.repair(uow.session) == 0


def test_the_view_history_boundary_is_what_the_purge_removed(db: Database) -> None:
    """Rollups are recounted exactly on every day whose raw views were never purged,
    however old; once the purge has taken a day (its views rolled up first), its rollup is
    history the raw rows may not prove: raised to the rows still there, never lowered."""
    app_id, _ = _activity(db)  # three views on DAY

    def view_drift(views: int) -> list[str]:
        with db.write() as uow:
            uow.session.execute(update(AppDailyStats).values(views=views))
        with db.read() as uow:
            daily = DailyStatsCheck(view_history(uow.session, 1))
            return [d.describe() for d in daily.find(uow.session) if d.field == "views"]

    # Never purged: both directions are drift, whatever the clock says.
    assert view_drift(99) == [f"daily rollups: {app_id} {DAY}: views is 99, recount 3"]
    assert view_drift(1) == [f"daily rollups: {app_id} {DAY}: views is 1, recount 3"]
    # The purge has reached past DAY: more than the rows still there is history.
    with db.write() as uow:
        mark_purged(uow.session, DAY + timedelta(days=1))
    assert view_drift(99) == []
    assert view_drift(1) == [f"daily rollups: {app_id} {DAY}: views is 1, recount 3"]
