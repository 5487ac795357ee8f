"""Stich Studio over HTTP (the browser test is test_ops_browser.py): sign-in for admins
only, every table browsable without credential material, edits through the services with
an audit entry naming the admin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqladmin.helpers import slugify_class_name
from sqlalchemy import func, select

from stich.api.app import create_app
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import AuditLog
from stich.auth.models import UserSession
from stich.config import Settings
from stich.db import Database
from stich.db.base import Base
from stich.studio import create_studio_app
from stich.studio.redaction import is_sensitive
from stich.users.models import Role, User
from tests.conftest import make_settings
from tests.factories import make_user
from tests.ops_support import (
    SENSITIVE_COLUMN_NAMES,
    Account,
    make_account,
    make_app,
    ops_settings,
    store_credential_rows,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


def sign_in(client: TestClient, account: Account, password: str | None = None) -> Response:
    return client.post(
        "/admin/login",
        data={"username": account.email, "password": password or account.password},
    )


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def manage(client: TestClient, app_id: str, edit: str, value: str = "") -> Response:
    page = client.get(f"/admin/app/manage/{app_id}")
    assert page.status_code == 200
    return client.post(
        f"/admin/app/manage/{app_id}",
        data={"csrf": csrf_token(page.text), "edit": edit, "value": value},
    )


@dataclass(frozen=True)
class Entry:
    actor_id: str | None
    subject_user_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None


def audit_entries(db: Database, action: str) -> list[Entry]:
    with db.read() as uow:
        return [
            Entry(e.actor_id, e.subject_user_id, e.old_values, e.new_values)
            for e in uow.session.scalars(select(AuditLog).where(AuditLog.action == action))
        ]


def studio_identities() -> list[str]:
    return sorted(slugify_class_name(mapper.class_.__name__) for mapper in Base.registry.mappers)


# -- sign-in ------------------------------------------------------------------------------


def test_admin_signs_in_with_stich_account(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    assert client.get("/admin/app/list").url.path == "/admin/login"

    response = sign_in(client, admin)

    assert response.status_code == 200 and response.url.path == "/admin/"
    assert client.get("/admin/app/list").status_code == 200
    # An ordinary Stich session was opened (revocable from the API) and audited.
    with db.read() as uow:
        sessions = uow.session.scalars(
            select(UserSession).where(UserSession.user_id == admin.user_id)
        ).all()
        assert len(sessions) == 1 and sessions[0].revoked_at is None
    assert [e.actor_id for e in audit_entries(db, "auth.login")] == [admin.user_id]


def test_non_admin_is_refused_and_gets_no_session(
    client: TestClient, db: Database, settings: Settings
):
    user = make_account(db, settings, role=Role.USER)

    response = sign_in(client, user)

    assert response.status_code == 400
    assert "admin accounts only" in response.text
    assert client.get("/admin/app/list").url.path == "/admin/login"
    assert client.get("/admin/user/list").url.path == "/admin/login"
    with db.read() as uow:
        opened = uow.session.scalar(select(func.count()).select_from(UserSession))
    assert opened == 0
    refused = audit_entries(db, "studio.login_refused")
    assert [e.subject_user_id for e in refused] == [user.user_id]


def test_wrong_password_is_refused_and_counts_towards_lockout(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)

    response = sign_in(client, admin, password="not the password")

    assert response.status_code == 400
    assert "incorrect" in response.text
    assert client.get("/admin/").url.path == "/admin/login"
    with db.read() as uow:
        user = uow.session.get(User, admin.user_id)
        assert user is not None and user.failed_login_attempts == 1
    assert len(audit_entries(db, "auth.login_failed")) == 1


def test_suspended_admin_is_refused(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    with db.write() as uow:
        user = uow.session.get(User, admin.user_id)
        assert user is not None
        user.is_suspended = True

    response = sign_in(client, admin)

    assert response.status_code == 400 and "suspended" in response.text
    assert client.get("/admin/").url.path == "/admin/login"


def test_access_ends_when_admin_is_demoted(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    sign_in(client, admin)
    assert client.get("/admin/user/list").status_code == 200

    with db.write() as uow:
        user = uow.session.get(User, admin.user_id)
        assert user is not None
        user.role = Role.USER

    assert client.get("/admin/user/list").url.path == "/admin/login"


def test_sign_out_revokes_the_session(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    sign_in(client, admin)

    response = client.get("/admin/logout")

    assert response.url.path == "/admin/login"
    assert client.get("/admin/app/list").url.path == "/admin/login"
    with db.read() as uow:
        session = uow.session.scalars(
            select(UserSession).where(UserSession.user_id == admin.user_id)
        ).one()
        assert session.revoked_at is not None
    assert [e.actor_id for e in audit_entries(db, "auth.logout")] == [admin.user_id]


def test_studio_is_off_unless_enabled(database_url: str, tmp_path: Path, db: Database):
    plain = make_settings(database_url, tmp_path)  # STICH_STUDIO_ENABLED defaults to false
    with TestClient(create_app(plain, db)) as client:
        assert client.get("/admin/").status_code == 404


# -- browsing -----------------------------------------------------------------------------


def test_every_table_is_browsable_without_credential_material(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    credentials = store_credential_rows(db, admin.user_id)
    sign_in(client, admin)

    pages = []
    for identity in studio_identities():
        listing = client.get(f"/admin/{identity}/list")
        assert listing.status_code == 200, identity
        pages.append(listing.text)
        for detail in sorted(
            set(re.findall(rf'href="([^"]*/admin/{identity}/details/[^"]+)"', listing.text))
        ):
            shown = client.get(detail)
            assert shown.status_code == 200, detail
            pages.append(shown.text)

    assert len(pages) > len(studio_identities())  # detail pages were visited too
    everything = "\n".join(pages)
    for secret in credentials.values:
        assert secret not in everything
    for name in SENSITIVE_COLUMN_NAMES:
        assert name not in everything, name


def test_redaction_rule_covers_every_credential_column():
    hidden = {
        (column.table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if is_sensitive(table.name, column.name)
    }
    assert {
        ("users", "password_hash"),
        ("sessions", "access_token_hash"),
        ("sessions", "refresh_token_hash"),
        ("sessions", "ip_hash"),
        ("api_keys", "key_hash"),
        ("oauth_states", "state_hash"),
        ("oauth_states", "pkce_verifier_hash"),
        ("oauth_states", "nonce_hash"),
        ("oauth_states", "extra"),
        ("user_secrets", "ciphertext"),
        ("apps", "anonymous_owner_hash"),
        ("audit_logs", "ip_hash"),
        ("anonymous_owners", "owner_hash"),
        ("login_throttles", "email_hash"),
        ("app_views", "viewer_key"),
    } <= hidden
    assert ("apps", "title") not in hidden and ("user_secrets", "secret_type") not in hidden


def test_search_filter_and_sort(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    make_app(db, user_id=admin.user_id, title="Budget Buddy", visibility=Visibility.PUBLIC)
    make_app(db, user_id=admin.user_id, title="Recipe Box")
    sign_in(client, admin)

    found = client.get("/admin/app/list", params={"search": "budget"}).text
    assert "Budget Buddy" in found and "Recipe Box" not in found
    public = client.get("/admin/app/list", params={"visibility": "public"}).text
    assert "Budget Buddy" in public and "Recipe Box" not in public
    ordered = client.get("/admin/app/list", params={"sortBy": "title", "sort": "desc"}).text
    assert ordered.index("Recipe Box") < ordered.index("Budget Buddy")


def test_generic_create_edit_and_delete_are_not_offered(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    app_id = make_app(db, user_id=admin.user_id)
    sign_in(client, admin)

    assert client.get("/admin/app/create").status_code == 403
    assert client.get(f"/admin/app/edit/{app_id}").status_code == 403
    assert client.post(f"/admin/app/edit/{app_id}", data={"title": "Hijacked"}).status_code == 403
    assert client.delete("/admin/app/delete", params={"pks": app_id}).status_code == 403
    assert client.get(f"/admin/user/edit/{admin.user_id}").status_code == 403
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.title == "Pocket Ledger" and app.deleted_at is None


# -- edits through the services ----------------------------------------------------------


def test_visibility_change_goes_through_the_apps_service(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    owner = make_user(db)
    app_id = make_app(db, user_id=owner.user_id)
    sign_in(client, admin)

    response = manage(client, app_id, "visibility", "public")

    assert response.status_code == 200
    assert 'id="app-visibility">public<' in response.text
    seen = client.get(f"/api/apps/{app_id}", headers=owner.headers)
    assert seen.status_code == 200 and seen.json()["visibility"] == "public"
    trail = client.get("/api/me/audit", headers=owner.headers).json()["items"]
    entry = next(item for item in trail if item["action"] == "app.visibility")
    assert entry["actor_id"] == admin.user_id
    assert entry["resource_id"] == app_id
    assert entry["old_values"] == {"visibility": "private"}
    assert entry["new_values"] == {"visibility": "public"}


def test_status_moves_follow_the_state_machine_and_are_audited(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    owner = make_user(db)
    app_id = make_app(db, user_id=owner.user_id)
    sign_in(client, admin)

    refused = manage(client, app_id, "status", "ready")  # draft cannot jump to ready
    assert "cannot move from draft to ready" in refused.text
    assert 'id="app-status">draft<' in refused.text
    assert audit_entries(db, "app.status") == []

    moved = manage(client, app_id, "status", "generating")

    assert 'id="app-status">generating<' in moved.text
    [entry] = audit_entries(db, "app.status")
    assert entry.actor_id == admin.user_id and entry.subject_user_id == owner.user_id
    assert entry.old_values == {"status": "draft"}
    assert entry.new_values == {"status": "generating"}


def test_archive_feature_delete_and_restore(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    owner = make_user(db)
    app_id = make_app(
        db, user_id=owner.user_id, status=AppStatus.READY, visibility=Visibility.PUBLIC
    )
    sign_in(client, admin)

    for edit in ("feature", "archive"):
        manage(client, app_id, edit)
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.is_featured and app.is_archived
    assert client.get(f"/api/apps/{app_id}").status_code == 404  # archived: out of public view

    manage(client, app_id, "delete")
    assert client.get(f"/api/apps/{app_id}", headers=owner.headers).status_code == 404
    restored = manage(client, app_id, "restore")
    assert 'id="app-deleted">no<' in restored.text
    assert client.get(f"/api/apps/{app_id}", headers=owner.headers).status_code == 200

    for action in ("app.feature", "app.archive", "app.delete", "app.restore"):
        assert [e.actor_id for e in audit_entries(db, action)] == [admin.user_id], action


def test_suspension_goes_through_the_users_service(
    client: TestClient, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    member = make_user(db)
    sign_in(client, admin)
    page = client.get(f"/admin/user/manage/{member.user_id}")

    response = client.post(
        f"/admin/user/manage/{member.user_id}",
        data={"csrf": csrf_token(page.text), "suspended": "true"},
    )

    assert 'id="user-suspended">yes<' in response.text
    assert client.get("/api/me", headers=member.headers).status_code == 401
    [entry] = audit_entries(db, "user.suspended")
    assert entry.actor_id == admin.user_id and entry.subject_user_id == member.user_id


def test_admin_cannot_suspend_themselves(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    sign_in(client, admin)
    page = client.get(f"/admin/user/manage/{admin.user_id}")

    response = client.post(
        f"/admin/user/manage/{admin.user_id}",
        data={"csrf": csrf_token(page.text), "suspended": "true"},
    )

    assert "cannot suspend your own account" in response.text
    assert 'id="user-suspended">no<' in response.text


def test_edits_need_the_csrf_token(client: TestClient, db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    app_id = make_app(db, user_id=admin.user_id)
    sign_in(client, admin)

    forged = client.post(
        f"/admin/app/manage/{app_id}",
        data={"csrf": "forged", "edit": "visibility", "value": "public"},
    )

    assert forged.status_code == 403
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.visibility is Visibility.PRIVATE
    assert audit_entries(db, "app.visibility") == []


def test_the_studio_runs_on_its_own(db: Database, settings: Settings):
    admin = make_account(db, settings, role=Role.ADMIN)
    app_id = make_app(db, user_id=admin.user_id, title="Standalone")
    with TestClient(create_studio_app(settings, db)) as studio:
        assert studio.get("/").url.path == "/admin/login"
        assert sign_in(studio, admin).url.path == "/admin/"
        assert "Standalone" in studio.get("/admin/app/list").text
        changed = manage(studio, app_id, "visibility", "public")
        assert 'id="app-visibility">public<' in changed.text
        assert studio.get("/api/me").status_code == 404  # the Studio alone serves no API
    assert [e.actor_id for e in audit_entries(db, "app.visibility")] == [admin.user_id]
