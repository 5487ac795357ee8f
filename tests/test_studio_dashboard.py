"""The Studio dashboard (/admin/) over HTTP: what it plots is what the services say, the top
apps are the gallery's, sign-in trouble and deployment health are shown, and only admins
get in. The browser test is test_studio_screenshots.py."""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stich.analytics.queue import InProcessViewQueue
from stich.analytics.redis_queue import RedisViewQueue
from stich.analytics.service import ViewEvent, prepare_view
from stich.analytics.viewer import Viewer
from stich.api.app import create_app
from stich.audit.service import AuditService
from stich.config import Settings
from stich.db import Database, migrate
from stich.db.base import utcnow
from stich.gallery import rankings
from stich.gallery.feed import FeedRequest
from stich.gallery.service import GalleryService
from stich.gallery.sorts import FeedPeriod, FeedSort
from stich.maintenance.jobs import JOB_NAMES, run_maintenance
from stich.studio import create_studio_app
from stich.studio.activity import LOCKED_SHOWN, SERIES_LABELS, ActivityService, DashboardPeriod
from stich.studio.dashboard import load_dashboard
from stich.studio.past_days import PastDays
from stich.users.models import Role, User
from tests.conftest import redis_client_or_skip
from tests.dashboard_support import BROWSER, expected_series, plotted, seed_platform
from tests.factories import hasher
from tests.ops_support import make_account, ops_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


def sign_in(client: TestClient, email: str, password: str) -> None:
    response = client.post("/admin/login", data={"username": email, "password": password})
    assert response.status_code == 200 and response.url.path == "/admin/"


def admin_client(client: TestClient, db: Database, settings: Settings) -> TestClient:
    admin = make_account(db, settings, role=Role.ADMIN)
    sign_in(client, admin.email, admin.password)
    return client


def top_ids(page: str, table_id: str) -> list[str]:
    table = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'href="[^"]*/admin/app/details/([^"]+)"', table)


@pytest.mark.parametrize("days", [30, 90])
def test_plotted_values_equal_the_services_numbers(
    client: TestClient,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    days: int,
):
    now = utcnow()
    monkeypatch.setattr("stich.studio.dashboard.utcnow", lambda: now)
    platform = seed_platform(db, now)  # before the sign-in's first look at the dashboard
    admin_client(client, db, settings)

    response = client.get(f"/admin/?period={days}")

    assert response.status_code == 200
    assert response.headers["Server-Timing"].startswith("dashboard;dur=")
    drawn = plotted(response.text)
    expected = expected_series(db, platform, days)
    assert drawn == expected
    # Not vacuous: the seed shows up in every series, and the period bounds what is shown.
    assert all(sum(values.values()) > 0 for values in drawn.values())
    assert len(drawn["Views"]) == days
    assert (sum(drawn["Sign-ups"].values()) == 8) is (days == 90)  # one signed up 200 days ago
    # The totals cards add up the same series.
    for label, values in drawn.items():
        assert f"{sum(values.values()):,}" in response.text, label


def test_top_apps_are_the_gallerys_trending_and_weekly_views(
    client: TestClient, db: Database, settings: Settings
):
    platform = seed_platform(db, utcnow())
    admin_client(client, db, settings)

    page = client.get("/admin/").text

    with db.read() as uow:
        gallery = GalleryService(uow.session)
        trending = gallery.feed(FeedRequest(sort=FeedSort.TRENDING, limit=10), None).items
        week = FeedRequest(sort=FeedSort.VIEWED, period=FeedPeriod.WEEK, limit=10)
        viewed = gallery.feed(week, None).items
    assert top_ids(page, "top-trending") == [row.id for row in trending]
    assert top_ids(page, "top-viewed-week") == [row.id for row in viewed]
    assert set(top_ids(page, "top-trending")) == set(platform.app_ids)  # never the private one
    assert "Tide Tables" in page and "Secret Draft" not in page


def test_failed_sign_ins_and_locked_accounts_of_today(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    for _ in range(2):
        client.post("/admin/login", data={"username": admin.email, "password": "wrong guess"})
    locked = make_account(db, settings, name="lockedperson")
    with db.write() as uow:
        user = uow.session.get(User, locked.user_id)
        assert user is not None
        user.locked_until = utcnow() + timedelta(minutes=10)
    sign_in(client, admin.email, admin.password)

    page = client.get("/admin/").text

    failed = re.search(r'id="failed-signins">([\d,]+)<', page)
    assert failed is not None and failed.group(1) == "2"
    card = page.split('id="locked-accounts"', 1)[1].split("</div>\n</div>", 1)[0]
    assert 'data-value="1"' in card
    assert f"/admin/user/details/{locked.user_id}" in card and "Lockedperson" in card


def job_row(page: str, job: str) -> str:
    return page.split(f'<tr data-job="{job}">', 1)[1].split("</tr>", 1)[0]


def test_deployment_health(client: TestClient, db: Database, settings: Settings):
    admin_client(client, db, settings)
    # No maintenance has run yet: the ranking snapshots are missing, the job is late.
    assert ">late</span>" in job_row(client.get("/admin/").text, "feed_rankings")
    run_maintenance(db, settings)  # builds every ranking snapshot: one maintenance.run entry

    page = client.get("/admin/").text

    backend = re.search(r'id="health-backend">(\w+)', page)
    assert backend is not None and backend.group(1) == db.backend
    revision = page.split('id="health-revision">', 1)[1].split("</dd>", 1)[0]
    assert all(head in revision for head in migrate.head_revisions()) and "at head" in revision
    assert "none configured" in page.split('id="health-replicas"', 1)[1].split("</dd>", 1)[0]
    jobs = re.findall(r'<tr data-job="([a-z_]+)">', page)
    assert jobs == list(JOB_NAMES)
    rankings_row = job_row(page, "feed_rankings")
    count = len(rankings.SCORED_RANKINGS)
    assert f"{count} of {count} snapshots" in rankings_row and f"{count} rebuilt" in rankings_row
    assert ">late</span>" not in rankings_row
    assert "none recorded" in job_row(page, "sessions")  # it had nothing to remove


def test_view_queue_backlog_is_shown(db: Database, settings: Settings):
    queue = InProcessViewQueue(db, hasher, settings)  # not started: nothing drains it
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        admin_client(client, db, settings)
        for i in range(3):
            viewer = Viewer(client_ip=f"10.9.9.{i}", user_agent=BROWSER)
            event = ViewEvent("some-app", viewer, utcnow())
            view = prepare_view(event, hasher, 1800)
            assert view is not None and queue.put(view)
        client.app.state.view_queue = queue  # type: ignore[attr-defined]

        page = client.get("/admin/").text

    queue_line = page.split('id="health-view-queue">', 1)[1].split("</dd>", 1)[0]
    assert "in-process" in queue_line and 'data-value="3"' in queue_line


def test_studio_served_alone_shows_the_dashboard(db: Database, settings: Settings):
    with TestClient(create_studio_app(settings, db)) as client:
        admin_client(client, db, settings)
        page = client.get("/admin/")
    assert page.status_code == 200
    assert plotted(page.text)["Views"]  # drawn, with zeros
    assert "not in this process" in page.text


def test_a_bad_period_is_a_400(client: TestClient, db: Database, settings: Settings):
    admin_client(client, db, settings)
    response = client.get("/admin/?period=7")
    assert response.status_code == 400


def test_non_admins_are_refused(client: TestClient, db: Database, settings: Settings):
    assert client.get("/admin/").url.path == "/admin/login"
    member = make_account(db, settings, role=Role.USER)
    refused = client.post(
        "/admin/login", data={"username": member.email, "password": member.password}
    )
    assert refused.status_code == 400
    response = client.get("/admin/")
    assert response.url.path == "/admin/login" and 'data-chart="views"' not in response.text


def test_days_before_today_are_kept_for_a_while_and_today_is_live(db: Database):
    now = utcnow()
    platform = seed_platform(db, now)
    ticks = [0.0]
    past = PastDays(db, 60, clock=lambda: ticks[0])
    first = load_dashboard(db, DashboardPeriod.QUARTER, now=now, past=past)
    assert first.activity.series == {
        key: list(expected_series(db, platform, 90)[label].values())
        for key, label in SERIES_LABELS.items()
    }
    # One more sign-up today and one yesterday.
    with db.write() as uow:
        for i, days_ago in enumerate((0, 1)):
            at = now - timedelta(days=days_ago)
            uow.session.add(User(email=f"late{i}@example.test", display_name="Late", created_at=at))

    ticks[0] = 59.0
    kept = load_dashboard(db, DashboardPeriod.MONTH, now=now, past=past).activity
    ticks[0] = 61.0
    # Expired: this look still shows the kept days and reads them again in the background ...
    stale = load_dashboard(db, DashboardPeriod.MONTH, now=now, past=past).activity
    past.join(30)
    # ... for the next look.
    renewed = load_dashboard(db, DashboardPeriod.MONTH, now=now, past=past).activity

    before = first.activity.last(30).series["signups"]
    assert kept.series["signups"] == [*before[:-1], before[-1] + 1]  # today is live
    assert stale.series == kept.series
    assert renewed.series["signups"] == [*before[:-2], before[-2] + 1, before[-1] + 1]
    assert len(renewed.days) == 30 and renewed.end == now.date()


def test_replicas_are_listed_with_their_state(
    backend: str, database_url: str, tmp_path: Path, db: Database
):
    if backend != "postgresql":
        pytest.skip("read replicas are PostgreSQL's")
    # The primary named as its own replica: reachable, but not in recovery, so never used.
    with_replica = ops_settings(database_url, tmp_path, read_replica_urls=[database_url])
    replicated = Database(with_replica)
    try:
        with TestClient(create_studio_app(with_replica, replicated)) as client:
            admin_client(client, replicated, with_replica)
            page = client.get("/admin/").text
    finally:
        replicated.dispose()
    replicas = page.split('id="health-replicas">', 1)[1].split("</dd>", 1)[0]
    assert "replica-1" in replicas and "skipped" in replicas and "not in recovery" in replicas


def test_locked_accounts_are_counted_beyond_those_shown(db: Database):
    now = utcnow()
    with db.write() as uow:
        for i in range(LOCKED_SHOWN + 2):
            uow.session.add(
                User(
                    email=f"locked{i}@example.test",
                    display_name=f"Locked {i}",
                    locked_until=now + timedelta(minutes=i + 1),
                )
            )
        uow.session.add(  # a lock that has run out, and a deleted account: neither counts
            User(email="free@example.test", display_name="Free", locked_until=now)
        )
        uow.session.add(
            User(
                email="gone@example.test",
                display_name="Gone",
                locked_until=now + timedelta(hours=1),
                deleted_at=now,
            )
        )
    with db.read() as uow:
        trouble = ActivityService(uow.session).sign_in_trouble(now)
    assert trouble.locked_accounts == LOCKED_SHOWN + 2
    shown = [account.display_name for account in trouble.locked_shown]
    assert shown == [f"Locked {i}" for i in range(LOCKED_SHOWN + 1, 1, -1)]  # longest first


def test_studio_alone_reads_the_redis_backlog(database_url: str, tmp_path: Path, db: Database):
    url = os.environ.get("STICH_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    client = redis_client_or_skip(url)
    stream = f"stich-test:{uuid.uuid4().hex}"
    settings = ops_settings(database_url, tmp_path, view_queue_url=url, view_queue_stream=stream)
    try:
        producer = RedisViewQueue(settings)
        for i in range(4):
            viewer = Viewer(client_ip=f"10.8.8.{i}", user_agent=BROWSER)
            view = prepare_view(ViewEvent("some-app", viewer, utcnow()), hasher, 1800)
            assert view is not None and producer.put(view)
        producer.close()
        with TestClient(create_studio_app(settings, db)) as studio:
            admin_client(studio, db, settings)
            page = studio.get("/admin/").text
    finally:
        client.delete(stream)
        client.close()
    queue_line = page.split('id="health-view-queue">', 1)[1].split("</dd>", 1)[0]
    assert "redis" in queue_line and 'data-value="4"' in queue_line


def test_maintenance_entries_of_another_shape_are_passed_over(
    client: TestClient, db: Database, settings: Settings
):
    with db.write() as uow:
        for values in ({"removed": {"sessions": 3}}, {"removed": "all"}, ["x"], None):
            AuditService(uow.session).record(
                "maintenance.run", actor=None, resource_type="maintenance", new=values
            )
    admin_client(client, db, settings)

    response = client.get("/admin/")

    assert response.status_code == 200
    assert "3 removed" in job_row(response.text, "sessions")
