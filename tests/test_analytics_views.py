"""Views: one per viewer per window, keyed hashes instead of addresses, origins only,
device types, the rollups, and the batch path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from stich.analytics.models import (
    VIEWER_KEY_LENGTH,
    AppDailyBreakdown,
    AppDailyStats,
    AppView,
)
from stich.analytics.recount import CHECKS
from stich.analytics.service import AnalyticsService, ViewEvent
from stich.analytics.viewer import Viewer, referrer_origin, viewer_key
from stich.api.app import create_app
from stich.apps.models import App, Visibility
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.instrumentation import track_queries
from tests.conftest import TEST_SERVER_KEY, make_settings
from tests.factories import anonymous_token, make_user
from tests.gallery_support import make_app
from tests.views_support import flush_views

HASHER = KeyedHasher(TEST_SERVER_KEY.encode())
WINDOW = 1800
T0 = datetime(2026, 8, 3, 10, 0, tzinfo=UTC)  # a window boundary (10:00 UTC)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _view(
    db: Database, app_id: str, viewer: Viewer, at: datetime, referrer: str | None = None
) -> bool:
    with db.write() as uow:
        result = AnalyticsService(uow.session, HASHER, window_seconds=WINDOW).record_view(
            None, app_id, viewer, referrer=referrer, at=at
        )
    return result.recorded


def _daily(db: Database, app_id: str) -> dict[date, tuple[int, int]]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(AppDailyStats.day, AppDailyStats.views, AppDailyStats.unique_viewers).where(
                AppDailyStats.app_id == app_id
            )
        )
        return {day: (views, unique) for day, views, unique in rows}


def _view_count(db: Database, app_id: str) -> int:
    with db.read() as uow:
        return uow.session.get_one(App, app_id).view_count


def _no_drift(db: Database) -> None:
    for check in CHECKS:
        with db.write() if check.needs_write else db.read() as uow:
            assert check.find(uow.session) == [], check.name


def test_one_view_per_viewer_per_window_at_the_edges(db: Database) -> None:
    app_id = make_app(db, make_user(db).user_id)
    visitor = Viewer(client_ip="198.51.100.7", user_agent=DESKTOP)
    assert _view(db, app_id, visitor, T0) is True
    assert _view(db, app_id, visitor, T0 + timedelta(seconds=WINDOW - 1)) is False
    assert _view(db, app_id, visitor, T0 - timedelta(microseconds=1)) is True  # previous window
    assert _view(db, app_id, visitor, T0 + timedelta(seconds=WINDOW)) is True  # the next one
    assert _view(db, app_id, visitor, T0 + timedelta(seconds=WINDOW, microseconds=1)) is False
    # Another visitor (another address, or another browser) counts on its own.
    assert _view(db, app_id, Viewer(client_ip="198.51.100.8", user_agent=DESKTOP), T0) is True
    assert _view(db, app_id, Viewer(client_ip="198.51.100.7", user_agent=IPHONE), T0) is True
    assert _view_count(db, app_id) == 5
    # 5 views on one day by 3 visitors, each counted unique once however many windows.
    assert _daily(db, app_id) == {T0.date(): (5, 3)}
    _no_drift(db)


def test_days_split_at_utc_midnight_and_count_each_viewer_once_a_day(db: Database) -> None:
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id)
    late = datetime(2026, 8, 3, 23, 59, 59, 999999, tzinfo=UTC)
    midnight = datetime(2026, 8, 4, 0, 0, tzinfo=UTC)
    signed_in = Viewer(user_id=bob.user_id, user_agent=DESKTOP)
    assert _view(db, app_id, signed_in, late - timedelta(hours=3))
    assert _view(db, app_id, signed_in, late)
    assert _view(db, app_id, signed_in, midnight)
    assert _view(db, app_id, signed_in, midnight + timedelta(minutes=1)) is False
    assert _daily(db, app_id) == {date(2026, 8, 3): (2, 1), date(2026, 8, 4): (1, 1)}
    _no_drift(db)


def test_the_batch_path_ingests_many_views_in_one_transaction(db: Database) -> None:
    alice = make_user(db)
    apps = [make_app(db, alice.user_id) for _ in range(4)]
    private = make_app(db, alice.user_id, visibility=Visibility.PRIVATE)
    events = [
        ViewEvent(
            app_id=apps[n % 4] if n % 10 else private,
            viewer=Viewer(client_ip=f"192.0.2.{n % 7}", user_agent=IPHONE if n % 3 else DESKTOP),
            at=T0 + timedelta(minutes=7 * n),  # spans two days, in no particular order
            referrer="https://news.example/item?id=1" if n % 2 else None,
        )
        for n in reversed(range(300))
    ]
    events += events[:50]  # duplicates count once
    events.append(ViewEvent(apps[0], Viewer(user_agent="Googlebot/2.1"), T0))  # a bot: never
    with db.write() as uow:
        uow.session.execute(text("SELECT 1"))
        service = AnalyticsService(uow.session, HASHER, window_seconds=WINDOW)
        with track_queries() as stats:
            recorded = service.record_views(events)
    assert 0 < recorded <= 270
    assert stats.statements <= 10  # set-based: independent of the number of views
    with db.read() as uow:
        assert uow.session.execute(select(AppView).where(AppView.app_id == private)).first() is None
        total = sum(uow.session.get_one(App, app_id).view_count for app_id in apps)
    assert total == recorded
    _no_drift(db)


def test_no_address_is_stored_and_referrers_keep_their_origin_only(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    behind_proxy = make_settings(settings.database_url, tmp_path, trusted_proxies="10.0.0.1")
    app_id = make_app(db, make_user(db).user_id)
    proxy = ("10.0.0.1", 40000)
    with TestClient(create_app(behind_proxy, db), client=proxy) as client:
        response = client.post(
            f"/api/apps/{app_id}/views",
            json={"referrer": "https://News.Example.com:443/item?id=42#top"},
            headers={"User-Agent": IPHONE, "X-Forwarded-For": "203.0.113.99"},
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"queued": True}
        again = client.post(
            f"/api/apps/{app_id}/views",
            headers={"User-Agent": IPHONE, "X-Forwarded-For": "203.0.113.99"},
        )
        assert again.json() == {"queued": True}
        flush_views(client)
        assert _view_count(db, app_id) == 1  # a repeat in its window: not counted
        other = client.post(
            f"/api/apps/{app_id}/views",
            headers={
                "User-Agent": DESKTOP,
                "X-Forwarded-For": "203.0.113.100",
                "Referer": "http://localhost:5173/gallery?page=2",
            },
        )
        assert other.json()["queued"] is True
        flush_views(client)
    with db.read() as uow:
        views = uow.session.execute(
            select(AppView.referrer_origin, AppView.device_type, AppView.viewer_key).order_by(
                AppView.id
            )
        ).all()
        breakdown = uow.session.execute(
            select(AppDailyBreakdown.dimension, AppDailyBreakdown.value)
        ).all()
    assert [(origin, device) for origin, device, _ in views] == [
        ("https://news.example.com", "mobile"),
        ("http://localhost:5173", "desktop"),
    ]
    assert set(breakdown) == {
        ("referrer", "https://news.example.com"),
        ("referrer", "http://localhost:5173"),
        ("device", "mobile"),
        ("device", "desktop"),
    }
    for _, _, key in views:
        assert len(key) == VIEWER_KEY_LENGTH and "203.0.113" not in key
    # Nothing anywhere in the database holds the address.
    with db.read() as uow:
        tables = ("app_views", "app_daily_viewers", "app_daily_stats", "app_daily_breakdowns")
        for table in (*tables, "audit_logs"):
            dump = str(uow.session.execute(text(f"SELECT * FROM {table}")).all())
            assert "203.0.113.99" not in dump and "203.0.113.100" not in dump, table


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("https://Example.com/a/b?c=d", "https://example.com"),
        ("https://example.com:443/", "https://example.com"),
        ("http://example.com:8080/x", "http://example.com:8080"),
        ("ftp://example.com/file", None),
        ("javascript:alert(1)", None),
        ("not a url", None),
        ("https://", None),
        ("http://[::1]:3000/", "http://[::1]:3000"),
        ("", None),
    ],
)
def test_referrer_origin(raw: str, origin: str | None) -> None:
    assert referrer_origin(raw) == origin


def test_viewers_are_keyed_by_account_token_or_daily_fingerprint() -> None:
    day, next_day = date(2026, 8, 3), date(2026, 8, 4)
    visitor = Viewer(client_ip="198.51.100.7", user_agent=DESKTOP)
    same = viewer_key(HASHER, visitor, app_id="a", day=day)
    assert same == viewer_key(HASHER, visitor, app_id="a", day=day)
    # Not linkable across apps or days, and not derivable without the server key.
    assert same != viewer_key(HASHER, visitor, app_id="b", day=day)
    assert same != viewer_key(HASHER, visitor, app_id="a", day=next_day)
    other_key = KeyedHasher(b"another-server-key-" + b"x" * 32)
    assert same != viewer_key(other_key, visitor, app_id="a", day=day)
    account = Viewer(user_id="u1", client_ip="198.51.100.7")
    assert viewer_key(HASHER, account, app_id="a", day=day) == viewer_key(
        HASHER, Viewer(user_id="u1", client_ip="10.0.0.1"), app_id="a", day=next_day
    )
    assert "198.51.100.7" not in repr(visitor)


def test_view_endpoint_visibility_and_anonymous_tokens(client: TestClient, db: Database) -> None:
    alice, bob = make_user(db), make_user(db)
    public = make_app(db, alice.user_id)
    private = make_app(db, alice.user_id, visibility=Visibility.PRIVATE)
    assert client.post(f"/api/apps/{private}/views", headers=bob.headers).status_code == 404
    assert client.post(f"/api/apps/{private}/views").status_code == 404
    assert client.post("/api/apps/nope/views").status_code == 404
    # The owner may look at a private app; it is queued, and never counted.
    own = client.post(f"/api/apps/{private}/views", headers=alice.headers)
    assert (own.status_code, own.json()) == (202, {"queued": True})
    token, _ = anonymous_token()
    anon = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/api/apps/{public}/views", headers=anon).json() == {"queued": True}
    assert client.post(f"/api/apps/{public}/views", headers=anon).status_code == 202
    assert client.post(f"/api/apps/{public}/views", headers=bob.headers).status_code == 202
    bot = client.post(f"/api/apps/{public}/views", headers={"User-Agent": "curl/8.5.0"})
    assert (bot.status_code, bot.json()) == (202, {"queued": False})  # bots are never queued
    flush_views(client)  # the anonymous token counts once, bob once
    assert _view_count(db, public) == 2
    assert _view_count(db, private) == 0
    assert (
        client.post(f"/api/apps/{public}/views", json={"referrer": "x" * 3000}).status_code == 422
    )


def test_reading_a_public_app_page_counts_one_view(client: TestClient, db: Database) -> None:
    """GET /apps/{id} records a view of a public app, de-duplicated per viewer and window;
    the owner reading their private app records none."""
    owner = make_user(db)
    created = client.post(
        "/api/apps", json={"title": "Seen", "visibility": "public"}, headers=owner.headers
    )
    app_id = created.json()["id"]
    for status in ("generating", "ready"):
        moved = client.post(
            f"/api/apps/{app_id}/status", json={"status": status}, headers=owner.headers
        )
        assert moved.status_code == 200, moved.text
    private = client.post("/api/apps", json={"title": "Hidden"}, headers=owner.headers).json()

    visitor = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}
    for _ in range(3):
        assert client.get(f"/api/apps/{app_id}", headers=visitor).status_code == 200
    assert client.get(f"/api/apps/{private['id']}", headers=owner.headers).status_code == 200
    flush_views(client)

    with db.read() as uow:
        counts = {row[0]: row[1] for row in uow.session.execute(select(App.id, App.view_count))}
    assert counts[app_id] == 1
    assert counts[private["id"]] == 0
