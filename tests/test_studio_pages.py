"""The Studio's lists and pages (issue 16): lists a person can read, with owners loaded in
the list's own few queries; an app's page with its analytics drawn from the service's
numbers, whose actions go through the services and leave an audit entry naming the admin;
non-admins refused; no credential value on any page. The user page is in
test_studio_user_page.py, the browser test in test_studio_browser_pages.py."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.analytics.service import AnalyticsPeriod, AnalyticsService
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import ActorType, AuditLog
from stich.auth.principal import Principal
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role, User
from tests import studio_support
from tests.factories import hasher, make_user
from tests.ops_support import (
    SENSITIVE_COLUMN_NAMES,
    Account,
    make_account,
    make_app,
    store_credential_rows,
)
from tests.studio_support import DESKTOP, IPHONE, audit, chart_points, post_from, statements, view

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
    assert older in page and "Showing 1 to 2 of 2 items" in page
    # Search and filters still narrow the list.
    found = client.get("/admin/app/list", params={"search": "moon"}).text
    assert "Moon Phases" in found and "Tide Tables" not in found
    assert "Showing 1 to 1 of 1 items" in found
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
    gone = make_app(db, user_id=member.user_id, title="Gone")
    with db.write() as uow:
        deleted = uow.session.get(App, gone)
        assert deleted is not None
        deleted.deleted_at = utcnow()  # not counted
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
    with db.write() as uow:  # an API key acts for its account; a purged app is not linked
        uow.session.add(
            AuditLog(
                actor_type=ActorType.API_KEY,
                actor_id=owner.user_id,
                action="test.by_key",
                resource_type="app",
                resource_id="01a00000-0000-7000-8000-000000000000",
                old_values={"key_hash": "0" * 64, "name": "ci"},
            )
        )

    page = client.get("/admin/audit-log/list").text

    [entry] = audit(db, "app.visibility")
    row = page.split(f'data-audit-id="{entry.id}"', 1)[1].split("</tr>", 1)[0]
    assert f"/admin/user/details/{admin.user_id}" in row  # the actor
    assert f'/admin/app/details/{app_id}"' in row  # the resource
    assert '<del class="text-red">private</del>' in row
    assert '<span class="text-green">public</span>' in row
    [by_key] = audit(db, "test.by_key")
    row = page.split(f'data-audit-id="{by_key.id}"', 1)[1].split("</tr>", 1)[0]
    assert f"/admin/user/details/{owner.user_id}" in row and "with an API key" in row
    assert "/admin/app/details/" not in row and "01a00000-0000-7000" in row
    assert "key_hash" not in row and "1 credential field(s) hidden" in row


# The shared fixtures (tests/studio_support.py).
settings = studio_support.settings
admin = studio_support.admin


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
    assert (
        f'/admin/app/details/{app_id}" class="studio-app-link">Forked Recipe' in parent_page
    )  # listed as a fork
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


def test_json_columns_show_as_json_in_every_table(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    made = client.post("/api/keys", json={"name": "ci"}, headers=member.headers).json()

    listing = client.get("/admin/api-key/list").text
    detail = client.get(f"/admin/api-key/details/{made['id']}").text

    scopes = made["scopes"]
    assert f"<code>[&#34;{scopes[0]}&#34;" in listing  # one line in the list
    assert 'studio-json" style="' in detail and f"&#34;{scopes[0]}&#34;" in detail
    assert f"['{scopes[0]}'" not in listing + detail  # never a Python repr


def test_only_web_addresses_are_linked_as_deployments(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    owner = make_user(db)
    safe, unsafe = make_app(db, user_id=owner.user_id), make_app(db, user_id=owner.user_id)
    with db.write() as uow:  # as an import could leave them (no schema on the way in)
        for app_id, url in ((safe, "https://tide.example/"), (unsafe, "javascript:alert(1)")):
            app = uow.session.get(App, app_id)
            assert app is not None
            app.deployment_url = url

    assert 'href="https://tide.example/"' in client.get(f"/admin/app/details/{safe}").text
    page = client.get(f"/admin/app/details/{unsafe}").text
    assert "<code>javascript:alert(1)</code>" in page and 'href="javascript:' not in page
