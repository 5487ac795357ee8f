"""Per-app analytics (UTC day buckets, no day missing) and the owner's dashboard (streak),
against a fixed clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from stich.analytics.service import AnalyticsPeriod, AnalyticsService, activity_streak
from stich.analytics.viewer import Viewer
from stich.apps.models import Visibility
from stich.audit.models import ActorType, AuditLog
from stich.auth.principal import Principal
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.gallery.models import Favorite
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.users.models import Role
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user
from tests.gallery_support import make_app
from tests.views_support import flush_views

HASHER = KeyedHasher(TEST_SERVER_KEY.encode())
TODAY = date(2026, 9, 15)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0"


def _at(days_ago: int, hour: int = 12, minute: int = 0) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _view(
    db: Database, app_id: str, ip: str, at: datetime, ua: str = DESKTOP, ref: str | None = None
) -> None:
    with db.write() as uow:
        AnalyticsService(uow.session, HASHER).record_view(
            None, app_id, Viewer(client_ip=ip, user_agent=ua), referrer=ref, at=at
        )


def _star(db: Database, user_id: str, app_id: str, at: datetime, *, on: bool = True) -> None:
    with db.write() as uow:
        GalleryService(uow.session, clock=lambda: at).react(
            Reaction.STAR, Principal.user(user_id), app_id, on=on
        )


def test_day_buckets_cover_every_day_of_the_period_in_utc(db: Database) -> None:
    alice = make_user(db)
    fans = [make_user(db) for _ in range(3)]
    app_id = make_app(db, alice.user_id)
    _view(db, app_id, "192.0.2.1", _at(0, 0, 0))  # the first instant of today
    _view(db, app_id, "192.0.2.1", _at(1, 23, 59), ua=IPHONE)  # the last minute of yesterday
    _view(db, app_id, "192.0.2.1", _at(1, 9), ua=IPHONE, ref="https://a.example/x")
    _view(db, app_id, "192.0.2.2", _at(1, 9, 45), ref="https://a.example/y")
    _view(db, app_id, "192.0.2.3", _at(6), ref="https://b.example/")
    _view(db, app_id, "192.0.2.4", _at(7))  # outside a week, inside a month
    _star(db, fans[0].user_id, app_id, _at(0))
    _star(db, fans[1].user_id, app_id, _at(3))
    _star(db, fans[2].user_id, app_id, _at(3))
    _star(db, fans[2].user_id, app_id, _at(1), on=False)  # taken back: off day 3, not day 1

    with db.read() as uow:
        week = AnalyticsService(uow.session, HASHER).app_analytics(
            Principal.user(alice.user_id), app_id, AnalyticsPeriod.WEEK, today=TODAY
        )
    assert (week.start, week.end) == (TODAY - timedelta(days=6), TODAY)
    assert [d.day for d in week.days] == [TODAY - timedelta(days=n) for n in range(6, -1, -1)]
    by_day = {d.day: (d.views, d.unique_viewers, d.stars) for d in week.days}
    assert by_day[TODAY] == (1, 1, 1)
    assert by_day[TODAY - timedelta(days=1)] == (3, 2, 0)
    assert by_day[TODAY - timedelta(days=3)] == (0, 0, 1)
    assert by_day[TODAY - timedelta(days=6)] == (1, 1, 0)
    assert by_day[TODAY - timedelta(days=2)] == (0, 0, 0)
    assert (week.totals.views, week.totals.unique_viewers, week.totals.stars) == (5, 4, 2)
    assert (week.all_time_views, week.all_time_stars) == (6, 2)
    # Most views first; ties by origin, "direct" (None) first.
    assert week.top_referrers == [(None, 2), ("https://a.example", 2), ("https://b.example", 1)]
    assert week.devices == [("desktop", 3), ("mobile", 2)]

    with db.read() as uow:
        service = AnalyticsService(uow.session, HASHER)
        owner = Principal.user(alice.user_id)
        month = service.app_analytics(owner, app_id, AnalyticsPeriod.MONTH, today=TODAY)
        quarter = service.app_analytics(owner, app_id, AnalyticsPeriod.QUARTER, today=TODAY)
    assert len(month.days) == 30 and month.totals.views == 6
    assert len(quarter.days) == 90 and quarter.days[0].day == TODAY - timedelta(days=89)


def test_analytics_endpoint_is_for_owners_and_admins(client: TestClient, db: Database) -> None:
    alice, bob = make_user(db), make_user(db)
    admin = make_user(db, role=Role.ADMIN)
    public = make_app(db, alice.user_id)
    private = make_app(db, alice.user_id, visibility=Visibility.PRIVATE)
    client.post(f"/api/apps/{public}/views", headers={"Referer": "https://x.example/p"})
    flush_views(client)
    for who in (alice, admin):
        for app_id in (public, private):
            response = client.get(f"/api/apps/{app_id}/analytics", headers=who.headers)
            assert response.status_code == 200
    body = client.get(f"/api/apps/{public}/analytics?period=month", headers=alice.headers).json()
    assert body["timezone"] == "UTC" and len(body["days"]) == 30
    assert body["totals"]["views"] == 1 and body["days"][-1]["views"] == 1
    assert body["top_referrers"] == [{"origin": "https://x.example", "views": 1}]
    assert client.get(f"/api/apps/{public}/analytics", headers=bob.headers).status_code == 403
    assert client.get(f"/api/apps/{private}/analytics", headers=bob.headers).status_code == 404
    assert client.get(f"/api/apps/{public}/analytics").status_code == 401
    bad = client.get(f"/api/apps/{public}/analytics?period=year", headers=alice.headers)
    assert bad.status_code == 422 and "period" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("active", "streak"),
    [
        ([0, 1, 2], 3),
        ([1, 2, 3, 4], 4),  # today is not over: a streak ending yesterday still counts
        ([0, 2, 3], 1),
        ([2, 3], 0),
        ([], 0),
        (list(range(400)), 366),
    ],
)
def test_activity_streak(active: list[int], streak: int) -> None:
    assert activity_streak({TODAY - timedelta(days=n) for n in active}, TODAY) == streak


def test_my_stats_count_apps_received_stars_views_and_the_streak(
    client: TestClient, db: Database
) -> None:
    alice, bob = make_user(db), make_user(db)
    now = _at(0, 8)
    published = make_app(db, alice.user_id, created_at=_at(3), star_count=4, view_count=10)
    make_app(db, alice.user_id, created_at=_at(2), visibility=Visibility.PRIVATE, view_count=1)
    make_app(db, alice.user_id, created_at=_at(30), deleted=True, star_count=100)
    make_app(db, bob.user_id, created_at=_at(1))
    _star(db, alice.user_id, published, _at(1))  # alice stars her own app yesterday
    with db.write() as uow:
        uow.session.add(Favorite(user_id=alice.user_id, app_id=published, created_at=_at(0)))

    with db.read() as uow:
        stats = AnalyticsService(uow.session, HASHER).my_stats(
            Principal.user(alice.user_id), now=now
        )
    assert (stats.apps, stats.public_apps) == (2, 1)
    assert (stats.stars_received, stats.views_received) == (5, 11)
    # Active 3 days ago (app), 2 days ago (app), yesterday (star), today (favorite).
    assert stats.streak_days == 4 and stats.last_active_day == TODAY
    with db.read() as uow:
        tomorrow = AnalyticsService(uow.session, HASHER).my_stats(
            Principal.user(alice.user_id), now=now + timedelta(days=1)
        )
        later = AnalyticsService(uow.session, HASHER).my_stats(
            Principal.user(alice.user_id), now=now + timedelta(days=2)
        )
    assert (tomorrow.streak_days, later.streak_days) == (4, 0)

    body = client.get("/api/me/stats", headers=alice.headers).json()
    assert body["apps"] == 2 and body["stars_received"] == 5 and body["views_received"] == 11
    assert client.get("/api/me/stats").status_code == 401
    # Anything the audit log records (here a sign-in) is activity too.
    with db.write() as uow:
        uow.session.add(
            AuditLog(
                actor_type=ActorType.USER,
                actor_id=alice.user_id,
                action="auth.login",
                created_at=now + timedelta(days=1),
            )
        )
    with db.read() as uow:
        signed_in = AnalyticsService(uow.session, HASHER).my_stats(
            Principal.user(alice.user_id), now=now + timedelta(days=1)
        )
    assert signed_in.streak_days == 5
