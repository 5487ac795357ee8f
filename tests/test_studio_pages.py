"""The Studio's lists and pages (issue 16): lists a person can read, with owners loaded in
the list's own few queries; an app's page with its analytics drawn from the service's
numbers; a user's page whose actions (revoke, sign out everywhere, unlock, suspend) go
through one unit of work each and leave an audit entry naming the admin; no credential
value on any page. The browser test is test_studio_browser_pages.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from stich.analytics.service import AnalyticsPeriod, AnalyticsService
from stich.analytics.viewer import Viewer
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import AuditLog
from stich.auth.models import ApiKey, UserSession
from stich.auth.principal import Principal
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role, User
from tests.factories import hasher, make_user
from tests.ops_support import (
    SENSITIVE_COLUMN_NAMES,
    Account,
    make_account,
    make_app,
    ops_settings,
    store_credential_rows,
)

DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


@pytest.fixture
def admin(client: TestClient, db: Database, settings: Settings) -> Account:
    account = make_account(db, settings, role=Role.ADMIN, name=f"boss{uuid.uuid4().hex[:6]}")
    signed_in = client.post(
        "/admin/login", data={"username": account.email, "password": account.password}
    )
    assert signed_in.url.path == "/admin/"
    return account


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def post_from(client: TestClient, page_url: str, action_url: str, **fields: str) -> str:
    """Submit one of a page's forms as the browser would (its CSRF token, back to the page)."""
    page = client.get(page_url)
    assert page.status_code == 200
    data = {"csrf": csrf_of(page.text), "return_to": "details", **fields}
    response = client.post(action_url, data=data)
    assert response.status_code == 200 and response.url.path == page_url, response.url
    return response.text


def audit(db: Database, action: str) -> list[AuditLog]:
    with db.read() as uow:
        return list(uow.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def view(db: Database, app_id: str, ip: str, days_ago: int, ua: str = DESKTOP) -> None:
    at = utcnow() - timedelta(days=days_ago)
    with db.write() as uow:
        AnalyticsService(uow.session, hasher).record_view(
            None, app_id, Viewer(client_ip=ip, user_agent=ua), referrer="https://a.example/", at=at
        )


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run, on any engine, while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def chart_points(page: str, chart: str, series: str) -> dict[str, int]:
    figure = page.split(f'data-chart="{chart}"', 1)[1].split("</figure>", 1)[0]
    group = figure.split(f'data-series="{series}"', 1)[1].split("</g>", 1)[0]
    return {
        day: int(value)
        for day, value in re.findall(r'data-day="([^"]+)" data-value="(\d+)"', group)
    }


# -- lists --------------------------------------------------------------------------------


def test_apps_list_shows_titles_owners_and_badges_newest_first(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_account(db, settings, name=f"ada{uuid.uuid4().hex[:6]}")
    older = make_app(db, user_id=owner.user_id, title="Tide Tables")
    newer = make_app(
        db,
        user_id=owner.user_id,
        title="Moon Phases",
        status=AppStatus.READY,
        visibility=Visibility.PUBLIC,
    )

    page = client.get("/admin/app/list").text

    assert page.index("Moon Phases") < page.index("Tide Tables")  # newest first
    row = page.split(f'data-app-id="{newer}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="http://testserver/admin/app/details/{newer}"' in row
    assert f'href="http://testserver/admin/user/details/{owner.user_id}"' in row
    with db.read() as uow:
        user = uow.session.get(User, owner.user_id)
        assert user is not None and f">{user.display_name}</a>" in row
    assert ">ready</span>" in row and ">public</span>" in row
    assert row.index("Moon Phases") < row.index(f'small">{newer}</td>')  # the id comes last
    assert older in page
    # Search and filters still narrow the list.
    found = client.get("/admin/app/list", params={"search": "moon"}).text
    assert "Moon Phases" in found and "Tide Tables" not in found
    public = client.get("/admin/app/list", params={"visibility": "public"}).text
    assert "Moon Phases" in public and "Tide Tables" not in public


@pytest.mark.parametrize("listing", ["app", "user", "audit-log"])
def test_lists_load_their_extra_columns_without_a_query_per_row(
    client: TestClient, db: Database, settings: Settings, admin: Account, listing: str
):
    def make_rows(n: int) -> None:
        for _ in range(n):
            owner = make_user(db)
            make_app(db, user_id=owner.user_id)
            with db.write() as uow:
                uow.session.add(
                    AuditLog(
                        actor_type="user",
                        actor_id=owner.user_id,
                        action="test.row",
                        resource_type="user",
                        resource_id=owner.user_id,
                    )
                )

    make_rows(2)
    with statements() as few:
        assert client.get(f"/admin/{listing}/list").status_code == 200
    make_rows(20)
    with statements() as many:
        page = client.get(f"/admin/{listing}/list")
    assert page.status_code == 200
    assert len(many) == len(few), many


def test_users_list_shows_names_app_counts_and_states(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_account(db, settings, name=f"lin{uuid.uuid4().hex[:6]}")
    for title in ("One", "Two", "Three"):
        make_app(db, user_id=member.user_id, title=title)
    with db.write() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None
        user.is_suspended = True
        user.locked_until = utcnow() + timedelta(minutes=10)
        name = user.display_name

    page = client.get("/admin/user/list").text

    row = page.split(f'data-user-id="{member.user_id}"', 1)[1].split("</tr>", 1)[0]
    assert f">{name}</a>" in row and member.email in row
    assert '<td class="text-end user-app-count">3</td>' in row
    assert ">suspended</span>" in row and ">locked</span>" in row
    assert page.index(member.email) < page.index(admin.email)  # newest first


def test_audit_list_links_actor_and_resource_and_shows_the_change(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_user(db)
    app_id = make_app(db, user_id=owner.user_id)
    post_from(
        client,
        f"/admin/app/details/{app_id}",
        f"/admin/app/manage/{app_id}",
        edit="visibility",
        value="public",
    )

    page = client.get("/admin/audit-log/list").text

    [entry] = audit(db, "app.visibility")
    row = page.split(f'data-audit-id="{entry.id}"', 1)[1].split("</tr>", 1)[0]
    assert f"/admin/user/details/{admin.user_id}" in row  # the actor
    assert f'/admin/app/details/{app_id}"' in row  # the resource
    assert '<del class="text-red">private</del>' in row
    assert '<span class="text-green">public</span>' in row


# -- an app's page -------------------------------------------------------------------------


def test_app_page_charts_the_service_numbers(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_user(db)
    app_id = make_app(
        db, user_id=owner.user_id, status=AppStatus.READY, visibility=Visibility.PUBLIC
    )
    for ip, days_ago, ua in [
        ("192.0.2.1", 0, DESKTOP),
        ("192.0.2.2", 0, IPHONE),
        ("192.0.2.1", 2, DESKTOP),
        ("192.0.2.3", 20, IPHONE),
    ]:
        view(db, app_id, ip, days_ago, ua)

    for period in AnalyticsPeriod:
        page = client.get(f"/admin/app/details/{app_id}", params={"period": period.value})
        assert page.status_code == 200
        with db.read() as uow:
            numbers = AnalyticsService(uow.session, hasher).app_analytics(
                Principal.user(admin.user_id, Role.ADMIN), app_id, period
            )
        drawn = chart_points(page.text, "app-daily", "Views")
        assert drawn == {d.day.isoformat(): d.views for d in numbers.days}
        unique = chart_points(page.text, "app-daily", "Unique viewers")
        assert unique == {d.day.isoformat(): d.unique_viewers for d in numbers.days}
        devices = dict(re.findall(r'data-label="(\w+)" data-value="(\d+)"', page.text))
        assert devices == {device.value: str(n) for device, n in numbers.devices}
    assert sum(drawn.values()) == 4  # the quarter holds all four views


def test_app_page_facts_lineage_and_json_fields(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_account(db, settings)
    parent_id = make_app(db, user_id=owner.user_id, title="Original Recipe")
    app_id = make_app(db, user_id=owner.user_id, title="Forked Recipe")
    with db.write() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None
        app.parent_app_id = parent_id
        app.blueprint = {"pages": 2, "theme": {"accent": "teal"}}

    page = client.get(f"/admin/app/details/{app_id}").text
    parent_page = client.get(f"/admin/app/details/{parent_id}").text

    facts = page.split('id="app-facts"', 1)[1].split('id="app-analytics"', 1)[0]
    assert "Forked Recipe" in facts and f"/admin/user/details/{owner.user_id}" in facts
    assert page.index('id="app-actions"') < page.index('id="app-analytics"')
    assert f'/admin/app/details/{parent_id}" class="studio-app-link">Original Recipe' in page
    assert f'/admin/app/details/{app_id}" class="studio-app-link">Forked Recipe' in parent_page  # listed as a fork
    assert "&#34;pages&#34;: 2" in page and "{'pages': 2}" not in page  # JSON, not a repr
    assert client.get(f"/admin/app/details/{app_id}?period=decade").status_code == 400


def test_archive_transfer_delete_and_restore_from_the_app_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_user(db)
    receiver = make_user(db)
    app_id = make_app(db, user_id=owner.user_id, status=AppStatus.READY)
    url, manage = f"/admin/app/details/{app_id}", f"/admin/app/manage/{app_id}"

    archived = post_from(client, url, manage, edit="archive")
    assert "Archived." in archived and 'id="app-unarchive-form"' in archived
    assert 'onsubmit="return confirm(' in client.get(url).text.split('id="app-delete-form"')[1][:80]
    moved = post_from(client, url, manage, edit="transfer", value=receiver.username)
    assert f"Transferred to {receiver.username}." in moved
    post_from(client, url, manage, edit="delete")
    restored = post_from(client, url, manage, edit="restore")
    assert "Restored." in restored

    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.is_archived and app.user_id == receiver.user_id
        assert app.deleted_at is None
    [entry] = audit(db, "app.archive")
    assert (entry.actor_id, entry.subject_user_id) == (admin.user_id, owner.user_id)
    assert entry.new_values == {"is_archived": True}
    transfers = audit(db, "app.transfer")
    assert {e.subject_user_id for e in transfers} == {owner.user_id, receiver.user_id}
    assert {e.actor_id for e in transfers} == {admin.user_id}
    for action in ("app.delete", "app.restore"):
        assert [e.actor_id for e in audit(db, action)] == [admin.user_id]


# -- a user's page ------------------------------------------------------------------------


def test_revoke_a_session_and_a_key_from_the_user_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    made = client.post("/api/keys", json={"name": "deploy bot"}, headers=member.headers)
    assert made.status_code == 201, made.text
    url, manage = f"/admin/user/details/{member.user_id}", f"/admin/user/manage/{member.user_id}"
    with db.read() as uow:
        family = uow.session.scalars(
            select(UserSession.family_id).where(UserSession.user_id == member.user_id)
        ).one()
        key_id = uow.session.scalars(
            select(ApiKey.id).where(ApiKey.user_id == member.user_id)
        ).one()
    page = client.get(url).text
    assert f'data-session="{family}"' in page and "deploy bot" in page

    revoked = post_from(client, url, manage, op="revoke_session", target=family)

    assert "Session revoked" in revoked and f'data-session="{family}"' not in revoked
    assert client.get("/api/me", headers=member.headers).status_code == 401
    [entry] = audit(db, "auth.session_revoked")
    assert (entry.actor_id, entry.subject_user_id, entry.resource_id) == (
        admin.user_id,
        member.user_id,
        family,
    )
    post_from(client, url, manage, op="revoke_key", target=key_id)
    with db.read() as uow:
        key = uow.session.get(ApiKey, key_id)
        assert key is not None and key.revoked_at is not None
    [entry] = audit(db, "auth.key_revoked")
    assert entry.actor_id == admin.user_id and entry.old_values == {"name": "deploy bot"}
    # A session of another account is not this account's to revoke.
    other = make_user(db)
    post_from(client, url, manage, op="revoke_session", target=family)
    with db.read() as uow:
        live = uow.session.scalars(
            select(UserSession).where(UserSession.user_id == other.user_id)
        ).one()
        assert live.revoked_at is None


def test_sign_out_everywhere_unlock_and_suspend_from_the_user_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    with db.write() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None
        user.failed_login_attempts = 7
        user.locked_until = utcnow() + timedelta(minutes=30)
    url, manage = f"/admin/user/details/{member.user_id}", f"/admin/user/manage/{member.user_id}"
    assert ">locked</span>" in client.get(url).text

    unlocked = post_from(client, url, manage, op="unlock")
    signed_out = post_from(client, url, manage, op="sign_out_everywhere")
    suspended = post_from(client, url, manage, suspended="true")

    assert "Unlocked" in unlocked and ">locked</span>" not in unlocked
    assert "Signed out everywhere (1 session(s) revoked)." in signed_out
    assert "No active sessions." in signed_out
    assert ">suspended</span>" in suspended
    with db.read() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None and user.failed_login_attempts == 0 and user.locked_until is None
    for action in ("user.unlocked", "auth.sessions_revoked", "user.suspended"):
        [entry] = audit(db, action)
        assert (entry.actor_id, entry.subject_user_id) == (admin.user_id, member.user_id)
    [unlock] = audit(db, "user.unlocked")
    assert unlock.old_values is not None and unlock.old_values["failed_login_attempts"] == 7
    # Nothing left to do is said, not done twice.
    again = post_from(client, url, manage, op="unlock")
    assert "no failed sign-ins to clear" in again and len(audit(db, "user.unlocked")) == 1


def test_user_actions_need_the_csrf_token_and_a_known_action(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    manage = f"/admin/user/manage/{member.user_id}"
    forged = client.post(manage, data={"csrf": "forged", "op": "sign_out_everywhere"})
    assert forged.status_code == 403
    token = csrf_of(client.get(f"/admin/user/details/{member.user_id}").text)
    assert client.post(manage, data={"csrf": token, "op": "drop_tables"}).status_code == 400
    assert audit(db, "auth.sessions_revoked") == []


def test_pages_refuse_non_admins(client: TestClient, db: Database, settings: Settings):
    member = make_account(db, settings)
    app_id = make_app(db, user_id=member.user_id)
    client.post("/admin/login", data={"username": member.email, "password": member.password})

    for path in (
        f"/admin/app/details/{app_id}",
        f"/admin/user/details/{member.user_id}",
        "/admin/audit-log/list",
    ):
        assert client.get(path).url.path == "/admin/login", path
    refused = client.post(f"/admin/app/manage/{app_id}", data={"edit": "archive"})
    assert refused.url.path == "/admin/login"
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and not app.is_archived


def test_no_credential_value_on_any_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    credentials = store_credential_rows(db, admin.user_id)
    member = make_user(db)
    made = client.post("/api/keys", json={"name": "ci"}, headers=member.headers).json()
    client.delete(f"/api/keys/{made['id']}", headers=member.headers)  # audits the preview
    app_id = make_app(db, user_id=member.user_id)
    with db.read() as uow:
        anonymous_app = uow.session.scalars(
            select(App.id).where(App.title == "Anonymous Sketch")
        ).one()

    pages = [
        client.get(path).text
        for path in (
            "/admin/app/list",
            "/admin/user/list",
            "/admin/audit-log/list",
            f"/admin/app/details/{app_id}",
            f"/admin/app/details/{anonymous_app}",
            f"/admin/user/details/{admin.user_id}",
            f"/admin/user/details/{member.user_id}",
        )
    ]

    shown = "\n".join(pages)
    assert "anonymous visitor" in shown
    for secret in (*credentials.values, made["key"], made["preview"]):
        assert secret not in shown
    for name in SENSITIVE_COLUMN_NAMES:
        assert name not in shown, name
