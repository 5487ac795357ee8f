"""`stich maintenance run`: after a run nothing expired remains, nothing live was touched,
a second run finds nothing, and the maintained counts still agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from stich.analytics.history import view_history
from stich.analytics.models import AppDailyStats, AppDailyViewer, AppView
from stich.analytics.recount import CHECKS, verification_checks
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import ActorType, AuditLog
from stich.auth.models import ApiKey, LoginThrottle, OAuthState, UserSession
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery import rankings
from stich.gallery.models import Star
from stich.maintenance.jobs import JOB_NAMES, run_maintenance, select_jobs
from stich.users.models import AuthProvider, User
from tests.cli_support import run_stich
from tests.conftest import TEST_KEY_RING, TEST_SERVER_KEY, make_settings

NOW = utcnow().replace(microsecond=0)
DAY = timedelta(days=1)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        app_retention_days=30,
        audit_retention_days=365,
        view_retention_days=90,
    )


@dataclass
class Rows:
    """What the fixture stored: ids that must go and ids that must stay, per table."""

    expired: dict[str, set[Any]] = field(default_factory=dict)
    live: dict[str, set[Any]] = field(default_factory=dict)

    def add(self, table: str, key: Any, *, expired: bool) -> None:
        (self.expired if expired else self.live).setdefault(table, set()).add(key)


MODELS: dict[str, Any] = {
    "sessions": UserSession,
    "oauth_states": OAuthState,
    "api_keys": ApiKey,
    "login_throttles": LoginThrottle,
    "apps": App,
    "audit_logs": AuditLog,
    "app_views": AppView,
    "app_daily_viewers": AppDailyViewer,
}


def h() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


def store_rows(db: Database) -> Rows:
    rows = Rows()
    with db.write() as uow:
        s = uow.session
        user = User(email=f"{uuid.uuid4().hex[:8]}@example.test", display_name="Owner")
        s.add(user)
        s.flush()

        def session_row(expires_at: datetime, revoked: bool) -> UserSession:
            return UserSession(
                user_id=user.id,
                family_id=str(uuid.uuid4()),
                access_token_hash=h(),
                refresh_token_hash=h(),
                access_expires_at=min(expires_at, NOW + timedelta(minutes=15)),
                expires_at=expires_at,
                revoked_at=NOW - DAY if revoked else None,
            )

        for expires_at, revoked, expired in (
            (NOW - DAY, False, True),
            (NOW - DAY, True, True),
            (NOW + 10 * DAY, False, False),
            (NOW + 10 * DAY, True, False),  # revoked but kept: replay detection needs it
        ):
            row = session_row(expires_at, revoked)
            s.add(row)
            s.flush()
            rows.add("sessions", row.id, expired=expired)

        for expires_at, expired in ((NOW - DAY, True), (NOW + DAY, False)):
            state = OAuthState(
                provider=AuthProvider.GITHUB,
                state_hash=h(),
                pkce_verifier_hash=h(),
                expires_at=expires_at,
            )
            s.add(state)
            s.flush()
            rows.add("oauth_states", state.id, expired=expired)

        for revoked_at, expires_at, expired in (
            (NOW - 40 * DAY, None, True),
            (None, NOW - 40 * DAY, True),
            (NOW - DAY, None, False),  # recently revoked: its owner can still see it
            (None, None, False),
            (None, NOW + DAY, False),
        ):
            key = ApiKey(
                user_id=user.id,
                name="k",
                key_hash=h(),
                preview="stich_sk_abcd",
                scopes=[],
                revoked_at=revoked_at,
                expires_at=expires_at,
            )
            s.add(key)
            s.flush()
            rows.add("api_keys", key.id, expired=expired)

        for updated_at, locked_until, expired in (
            (NOW - 2 * DAY, None, True),
            (NOW, None, False),
            (NOW - 2 * DAY, NOW + DAY, False),  # still locked
        ):
            throttle = LoginThrottle(
                email_hash=h(), failed_attempts=3, updated_at=updated_at, locked_until=locked_until
            )
            s.add(throttle)
            rows.add("login_throttles", throttle.email_hash, expired=expired)

        # Apps: one deleted past retention (with a star, a view and its rollup), one deleted
        # recently, one live with an old view (past view retention) and a recent one.
        gone = App(
            title="Gone",
            user_id=user.id,
            deleted_at=NOW - 40 * DAY,
            star_count=1,
            view_count=1,
            fork_count=1,
        )
        recent = App(title="Recently deleted", user_id=user.id, deleted_at=NOW - 5 * DAY)
        live = App(
            title="Live",
            user_id=user.id,
            status=AppStatus.READY,
            visibility=Visibility.PUBLIC,
            view_count=2,
        )
        s.add_all([gone, recent, live])
        s.flush()
        fork = App(title="Fork of gone", user_id=user.id, parent_app_id=gone.id)
        s.add(fork)
        s.flush()
        rows.add("apps", gone.id, expired=True)
        for app in (recent, live, fork):
            rows.add("apps", app.id, expired=False)
        s.add(Star(user_id=user.id, app_id=gone.id, created_at=NOW - 50 * DAY))
        for app, viewed_at, expired in (
            (gone, NOW - 45 * DAY, True),
            (live, NOW - 100 * DAY, True),
            (live, NOW - 10 * DAY, False),
        ):
            viewer = uuid.uuid4().hex
            window = int(viewed_at.timestamp()) // 1800 * 1800
            view = AppView(
                app_id=app.id, viewer_key=viewer, window_start=window, viewed_at=viewed_at
            )
            s.add(view)
            s.flush()
            rows.add("app_views", view.id, expired=expired)
            s.add(AppDailyViewer(day=viewed_at.date(), app_id=app.id, viewer_key=viewer))
            rows.add("app_daily_viewers", (viewed_at.date(), viewer), expired=expired)
            s.add(AppDailyStats(app_id=app.id, day=viewed_at.date(), views=1, unique_viewers=1))

        for created_at, expired in ((NOW - 400 * DAY, True), (NOW - 10 * DAY, False)):
            entry = AuditLog(
                actor_type=ActorType.SYSTEM, action="test.event", created_at=created_at
            )
            s.add(entry)
            s.flush()
            rows.add("audit_logs", entry.id, expired=expired)
    return rows


def present(db: Database, table: str, keys: set[Any]) -> set[Any]:
    if table == "app_daily_viewers":  # keyed by (day, viewer) here
        with db.read() as uow:
            stored = uow.session.execute(select(AppDailyViewer.day, AppDailyViewer.viewer_key))
            return {tuple(row) for row in stored} & keys
    model = MODELS[table]
    key = model.__mapper__.primary_key[0]
    with db.read() as uow:
        return set(uow.session.scalars(select(key).where(key.in_(keys))))


def app_row(db: Database, app_id: str) -> tuple[str | None, int]:
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None
        return app.parent_app_id, app.view_count


def daily_views(db: Database, app_id: str) -> dict[date, int]:
    with db.read() as uow:
        return dict(
            uow.session.execute(
                select(AppDailyStats.day, AppDailyStats.views).where(AppDailyStats.app_id == app_id)
            ).all()
        )


def test_a_run_removes_everything_expired_and_nothing_live(db: Database, settings: Settings):
    rows = store_rows(db)

    run = run_maintenance(db, settings, now=NOW, batch_size=1)

    for table in MODELS:
        assert present(db, table, rows.expired.get(table, set())) == set(), table
        assert present(db, table, rows.live[table]) == rows.live[table], table
    done = {result.name: result.describe() for result in run.results}
    assert done == {
        "sessions": "2 removed",
        "oauth_states": "1 removed",
        "api_keys": "2 removed",
        "login_throttles": "1 removed",
        "email_tokens": "0 removed",  # covered by tests/test_email_maintenance.py
        "email_cooldowns": "0 removed",
        "deleted_apps": "1 removed",
        "audit_logs": "1 removed",
        "app_views": "1 removed",
        "app_daily_viewers": "1 removed",
        # Not a purge: every windowed ranking had no snapshot yet, so each was built.
        "feed_rankings": f"{len(rankings.SCORED_RANKINGS)} rebuilt",
    }
    assert run.removed == 10 and run.rebuilt == len(rankings.SCORED_RANKINGS)
    assert {result.name: result.done for result in run.results} == {
        "sessions": 2,
        "oauth_states": 1,
        "api_keys": 2,
        "login_throttles": 1,
        "email_tokens": 0,
        "email_cooldowns": 0,
        "deleted_apps": 1,
        "audit_logs": 1,
        "app_views": 1,
        "app_daily_viewers": 1,
        # Not a purge: every windowed ranking had no snapshot yet, so each was built.
        "feed_rankings": len(rankings.SCORED_RANKINGS),
    }
    assert all(result.due == result.done for result in run.results)
    # Batches of one row: every job that removed n rows ran n transactions.
    assert all(result.batches == result.done for result in run.results)
    with db.read() as uow:
        entries = uow.session.scalars(
            select(AuditLog.action).where(AuditLog.created_at >= NOW - DAY)
        ).all()
        [entry] = uow.session.scalars(
            select(AuditLog.new_values).where(AuditLog.action == "maintenance.run")
        ).all()
    assert entries.count("app.purge") == 1 and entries.count("maintenance.run") == 1
    # The audit entry says which jobs removed rows and which rebuilt snapshots.
    assert entry is not None and set(entry) == {"removed", "rebuilt"}
    assert entry["rebuilt"] == {"feed_rankings": len(rankings.SCORED_RANKINGS)}
    assert "feed_rankings" not in entry["removed"] and entry["removed"]["sessions"] == 2


def test_counts_stay_right_after_a_run(db: Database, settings: Settings):
    rows = store_rows(db)
    [live_id] = [a for a in rows.live["apps"] if app_row(db, a)[1] == 2]
    history = daily_views(db, live_id)

    run_maintenance(db, settings, now=NOW)

    # The live app's old raw view is gone, but its counter and daily rollups keep it.
    assert app_row(db, live_id)[1] == 2
    assert daily_views(db, live_id) == history
    # The purged parent's fork lives on, detached.
    fork_parents = {app_row(db, a)[0] for a in rows.live["apps"]}
    assert fork_parents == {None}
    # `stich db verify` knows raw views past retention are gone: the checks are clean.
    # (store_rows writes raw views and daily rollups by hand, but no referrer/device
    # breakdown rows, so that one check is left out.)
    with db.read() as uow:
        history = view_history(uow.session, settings.view_retention_days, now=NOW)
    checks = [
        check
        for check in verification_checks(history)
        if check.name != "referrer and device rollups"
    ]
    for check in checks:
        with db.write() if check.needs_write else db.read() as uow:
            assert check.find(uow.session) == [], check.name
    # Without that knowledge the purge would look like drift: the check can fail.
    with db.read() as uow:
        naive = next(c for c in CHECKS if c.name == "daily rollups")
        assert naive.find(uow.session) != []


def test_a_second_run_finds_nothing(db: Database, settings: Settings):
    store_rows(db)
    run_maintenance(db, settings, now=NOW)

    again = run_maintenance(db, settings, now=NOW)

    assert [r.due for r in again.results] == [0] * len(JOB_NAMES)
    assert again.removed == 0
    with db.read() as uow:
        runs = uow.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "maintenance.run")
        )
    assert runs == 1  # a run that removed nothing leaves no entry


def test_dry_run_counts_and_changes_nothing(db: Database, settings: Settings):
    rows = store_rows(db)

    run = run_maintenance(db, settings, now=NOW, dry_run=True)

    assert {r.name: r.due for r in run.results}["sessions"] == 2
    assert run.removed == 0
    for table in MODELS:
        expired = rows.expired.get(table, set())
        assert present(db, table, expired) == expired, table


def test_only_selected_jobs_run(db: Database, settings: Settings):
    rows = store_rows(db)

    run = run_maintenance(db, settings, jobs=select_jobs(["oauth_states"]), now=NOW)

    assert [r.name for r in run.results] == ["oauth_states"]
    assert present(db, "oauth_states", rows.expired["oauth_states"]) == set()
    assert present(db, "sessions", rows.expired["sessions"]) == rows.expired["sessions"]


def test_unknown_job_is_refused():
    from stich.errors import Invalid

    with pytest.raises(Invalid, match="no maintenance job named nightly"):
        select_jobs(["nightly"])


def test_the_command_runs_the_jobs(db: Database, database_url: str, tmp_path: Path):
    rows = store_rows(db)
    env = dict(
        STICH_DATABASE_URL=database_url,
        STICH_SERVER_KEY=TEST_SERVER_KEY,
        STICH_SECRETS_KEYS=TEST_KEY_RING,
        STICH_ENV="test",
        STICH_MAINTENANCE_BATCH_SIZE="1",
        COLUMNS="200",
    )
    result = run_stich("maintenance", "run", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert "oauth_states" in result.stdout and "1 removed" in result.stdout
    [rankings_row] = [line for line in result.stdout.splitlines() if "feed_rankings" in line]
    assert f"{len(rankings.SCORED_RANKINGS)} rebuilt" in rankings_row
    assert "removed" not in rankings_row
    for table in ("sessions", "oauth_states", "api_keys", "audit_logs"):
        assert present(db, table, rows.expired[table]) == set(), table
        assert present(db, table, rows.live[table]) == rows.live[table], table
