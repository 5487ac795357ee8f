"""Review of the Studio (issue 16) from the outside: bad query parameters are 4xx, never
500; destructive forms ask first on every page that offers them; no stored markup runs;
lists cost the same number of statements whatever the page holds."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.analytics.models import AppDailyBreakdown
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import ActorType, AuditLog
from stich.auth.models import ApiKey, UserSession
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role, User
from tests import studio_support
from tests.factories import make_user
from tests.ops_support import Account, make_account, make_app
from tests.studio_support import statements

settings = studio_support.settings
admin = studio_support.admin

MARKUP = '<img src=x onerror="alert(1)">'


@pytest.mark.parametrize(
    "url",
    [
        "/admin/app/list?page=abc",
        "/admin/app/list?pageSize=-5",
        "/admin/app/list?sortBy=anonymous_owner_hash",
        "/admin/user/list?sortBy=password_hash",
        "/admin/app/details/not-an-id",
        "/admin/user/manage/not-an-id",
        "/admin/?period=abc",
    ],
)
def test_bad_query_parameters_and_unknown_ids_are_4xx(
    client: TestClient, db: Database, settings: Settings, admin: Account, url: str
):
    response = client.get(url)
    assert 400 <= response.status_code < 500, response.status_code


def _onsubmit_of(page: str, form_id: str) -> str:
    match = re.search(rf'<form[^>]*id="{form_id}"[^>]*>', page, re.S)
    assert match is not None, f"no form {form_id}"
    return match.group(0)


def test_manage_pages_ask_before_delete_and_suspend(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    """The app page links to the manage page; its Delete (and the user manage page's
    Suspend) must ask for confirmation as the detail pages do."""
    member = make_user(db)
    app_id = make_app(db, user_id=member.user_id)
    app_manage = client.get(f"/admin/app/manage/{app_id}").text
    assert "confirm(" in _onsubmit_of(app_manage, "app-delete-form")
    user_manage = client.get(f"/admin/user/manage/{member.user_id}").text
    assert "confirm(" in _onsubmit_of(user_manage, "user-suspension-form")


def test_stored_markup_is_escaped_on_every_studio_page(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    with db.write() as uow:
        user = uow.session.get(User, member.user_id)
        assert user is not None
        user.display_name, user.bio, user.avatar_url = MARKUP, MARKUP, "javascript:alert(1)"
        user.preferences = {MARKUP: MARKUP}
        app = App(
            title=MARKUP,
            description=MARKUP,
            icon=MARKUP,
            user_id=member.user_id,
            blueprint={MARKUP: [MARKUP]},
            deployment_url="javascript:alert(1)",
            github_repo_url="javascript:alert(2)",
            screenshot_url="javascript:alert(3)",
            visibility=Visibility.PUBLIC,
            status=AppStatus.READY,
        )
        uow.session.add(app)
        uow.session.flush()
        app_id = app.id
        uow.session.add(
            AuditLog(
                actor_type=ActorType.USER,
                actor_id=member.user_id,
                action=MARKUP,
                resource_type="app",
                resource_id=app_id,
                old_values={MARKUP: MARKUP},
                new_values={"title": MARKUP},
                user_agent=MARKUP,
            )
        )
        uow.session.add(
            ApiKey(
                user_id=member.user_id,
                name=MARKUP,
                key_hash=uuid.uuid4().hex,
                preview="sk",
                scopes=[],
            )
        )
        uow.session.add(
            AppDailyBreakdown(
                app_id=app_id, day=utcnow().date(), dimension="referrer", value=MARKUP, views=3
            )
        )
        session = uow.session.query(UserSession).filter_by(user_id=member.user_id).one()
        session.device_name = session.browser = session.os = session.user_agent = MARKUP
    pages = [
        "/admin/",
        f"/admin/app/details/{app_id}",
        f"/admin/app/manage/{app_id}",
        f"/admin/user/details/{member.user_id}",
        f"/admin/user/manage/{member.user_id}",
        "/admin/app/list",
        "/admin/user/list",
        "/admin/audit-log/list",
        "/admin/api-key/list",
        "/admin/user-session/list",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        for raw in (MARKUP, "<img src=x", 'href="javascript', 'src="javascript'):
            assert raw not in response.text, (url, raw)


def test_lists_cost_the_same_statements_for_2_and_12_rows(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    lists = ["/admin/app/list", "/admin/user/list", "/admin/audit-log/list"]
    counts: dict[str, list[int]] = {url: [] for url in lists}
    for rows in (2, 12):
        for n in range(rows - (2 if rows == 12 else 0)):
            member = make_user(db)
            make_app(db, user_id=member.user_id, title=f"app {rows}-{n}")
            with db.write() as uow:
                uow.session.add(
                    AuditLog(
                        actor_type=ActorType.USER,
                        actor_id=member.user_id,
                        subject_user_id=member.user_id,
                        action="app.update",
                        resource_type="app",
                        resource_id=str(n),
                    )
                )
        for url in lists:
            with statements() as seen:
                assert client.get(url).status_code == 200
            counts[url].append(len(seen))
    for url, (few, many) in counts.items():
        assert few == many, (url, few, many)


def test_credential_fields_inside_audit_values_are_never_shown(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    """Audit values may carry credential fields (imported ones from the original too,
    whose JavaScript wrote camelCase keys): hidden on the list, the entry's own page and
    the user's page alike."""
    member = make_user(db)
    secrets = {
        "password_hash": "PBKDF2-" + uuid.uuid4().hex,
        "passwordHash": "PBKDF2-" + uuid.uuid4().hex,
        "encryptedValue": "CIPHER-" + uuid.uuid4().hex,
        "sessionToken": "TOKEN-" + uuid.uuid4().hex,
        "access_token": "TOKEN-" + uuid.uuid4().hex,
    }
    with db.write() as uow:
        entry = AuditLog(
            actor_type=ActorType.USER,
            actor_id=member.user_id,
            subject_user_id=member.user_id,
            action="user.update",
            resource_type="user",
            resource_id=member.user_id,
            old_values={"display_name": "Before", **secrets},
            new_values={"display_name": "After", "nested": dict(secrets)},
        )
        uow.session.add(entry)
        uow.session.flush()
        entry_id = entry.id
    pages = [
        "/admin/audit-log/list",
        f"/admin/audit-log/details/{entry_id}",
        f"/admin/user/details/{member.user_id}",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        for name, value in secrets.items():
            assert value not in response.text, (url, name)


def _signed_in_client(client: TestClient, account: Account) -> TestClient:
    other = TestClient(client.app, raise_server_exceptions=False)
    signed = other.post(
        "/admin/login", data={"username": account.email, "password": account.password}
    )
    assert signed.url.path == "/admin/", signed.status_code
    return other


def test_actions_refuse_another_sessions_token_a_suspended_admin_and_a_get(
    client: TestClient, db: Database, settings: Settings, admin: Account
):

    member = make_user(db)
    app_id = make_app(db, user_id=member.user_id)
    other_admin = make_account(db, settings, role=Role.ADMIN)
    second = _signed_in_client(client, other_admin)
    theirs = studio_support.csrf_of(second.get(f"/admin/app/details/{app_id}").text)
    mine = studio_support.csrf_of(client.get(f"/admin/app/details/{app_id}").text)
    assert theirs != mine
    manage = f"/admin/app/manage/{app_id}"
    assert client.post(manage, data={"csrf": theirs, "edit": "archive"}).status_code == 403
    assert client.get(manage + "?edit=archive&csrf=" + mine).status_code == 200
    # A suspended admin's open Studio session stops working at once.
    with db.write() as uow:
        user = uow.session.get(User, other_admin.user_id)
        assert user is not None
        user.is_suspended = True
    refused = second.post(manage, data={"csrf": theirs, "edit": "archive"}, follow_redirects=False)
    assert refused.status_code in (302, 303, 401, 403)
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.is_archived is False
    assert studio_support.audit(db, "app.archive") == []
    # Another account's key is not this account's to revoke.
    made = client.post("/api/keys", json={"name": "theirs"}, headers=member.headers)
    assert made.status_code == 201
    with db.read() as uow:
        key_id = uow.session.scalars(
            select(ApiKey.id).where(ApiKey.user_id == member.user_id)
        ).one()
    bystander = make_user(db)
    studio_support.post_from(
        client,
        f"/admin/user/details/{bystander.user_id}",
        f"/admin/user/manage/{bystander.user_id}",
        op="revoke_key",
        target=key_id,
    )
    with db.read() as uow:
        key = uow.session.get(ApiKey, key_id)
        assert key is not None and key.revoked_at is None


def _audit_rows(db: Database) -> list[AuditLog]:
    with db.read() as uow:
        return list(uow.session.scalars(select(AuditLog)))


def test_every_studio_action_leaves_an_audit_entry_naming_the_admin(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    receiver = make_user(db)
    app_id = make_app(db, user_id=member.user_id, status=AppStatus.READY)
    app_page, app_manage = f"/admin/app/details/{app_id}", f"/admin/app/manage/{app_id}"
    user_page, user_manage = (
        f"/admin/user/details/{member.user_id}",
        f"/admin/user/manage/{member.user_id}",
    )
    actions: list[tuple[str, str, dict[str, str]]] = [
        (app_page, app_manage, {"edit": "feature"}),
        (app_page, app_manage, {"edit": "unfeature"}),
        (app_page, app_manage, {"edit": "visibility", "value": "public"}),
        (app_page, app_manage, {"edit": "archive"}),
        (app_page, app_manage, {"edit": "unarchive"}),
        (app_page, app_manage, {"edit": "status", "value": "deployed",
                                "deployment_url": "https://ledger.example.com"}),
        (app_page, app_manage, {"edit": "transfer", "value": receiver.username}),
        (app_page, app_manage, {"edit": "delete"}),
        (app_page, app_manage, {"edit": "restore"}),
        (user_page, user_manage, {"suspended": "true"}),
        (user_page, user_manage, {"suspended": "false"}),
        (user_page, user_manage, {"op": "sign_out_everywhere"}),
        (user_page, user_manage, {"resend_verification": "true"}),
    ]  # fmt: skip
    for page, manage, fields in actions:
        before = {entry.id for entry in _audit_rows(db)}
        text = studio_support.post_from(client, page, manage, **fields)
        assert "Not changed" not in text, (fields, text[text.find("Not changed") :][:300])
        new = [entry for entry in _audit_rows(db) if entry.id not in before]
        assert new, f"no audit entry for {fields}"
        assert any(entry.actor_id == admin.user_id for entry in new), fields


def test_audit_values_that_are_not_objects_still_render(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    """The column is JSON: imported entries (and old ones) may hold a list, a number or a
    string where Stich writes objects."""
    member = make_user(db)
    with db.write() as uow:
        for old, new in (([1, 2], 3), ("text", None), (None, [{"a": 1}])):
            uow.session.add(
                AuditLog(
                    actor_type=ActorType.USER,
                    actor_id=member.user_id,
                    subject_user_id=member.user_id,
                    action="user.update",
                    resource_type="user",
                    resource_id=member.user_id,
                    old_values=old,
                    new_values=new,
                )
            )
    for url in ("/admin/audit-log/list", f"/admin/user/details/{member.user_id}"):
        assert client.get(url).status_code == 200, url


def test_a_demoted_admin_and_a_non_admin_get_no_studio(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    member = make_user(db)
    app_id = make_app(db, user_id=member.user_id)
    plain = make_account(db, settings)
    refused = client.__class__(client.app, raise_server_exceptions=False)
    signed = refused.post(
        "/admin/login", data={"username": plain.email, "password": plain.password}
    )
    assert signed.status_code == 400 and "admin accounts only" in signed.text
    assert refused.get("/admin/app/list", follow_redirects=False).status_code in (302, 303)
    other = make_account(db, settings, role=Role.ADMIN)
    second = _signed_in_client(client, other)
    token = studio_support.csrf_of(second.get(f"/admin/app/details/{app_id}").text)
    with db.write() as uow:
        user = uow.session.get(User, other.user_id)
        assert user is not None
        user.role = Role.USER
    demoted = second.post(
        f"/admin/app/manage/{app_id}",
        data={"csrf": token, "edit": "delete"},
        follow_redirects=False,
    )
    assert demoted.status_code in (302, 303, 401, 403)
    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.deleted_at is None


def test_a_failed_maintenance_runs_error_is_shown_escaped(
    client: TestClient, db: Database, settings: Settings, admin: Account
):
    from stich.maintenance.models import MaintenanceJobRun, RunOutcome

    now = utcnow()
    with db.write() as uow:
        uow.session.add(
            MaintenanceJobRun(
                job="app_views",
                started_at=now,
                finished_at=now,
                outcome=RunOutcome.FAILED,
                done=0,
                error=f"OperationalError: {MARKUP}",
            )
        )
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "OperationalError" in page.text  # shown ...
    assert MARKUP not in page.text and "<img src=x" not in page.text  # ... escaped


@pytest.mark.parametrize(
    "url",
    [
        "/admin/app/list?status=nope",
        "/admin/app/list?visibility=nope",
        "/admin/user/list?role=nope",
        "/admin/audit-log/list?actor_type=nope",
    ],
)
def test_list_filter_with_an_unknown_value_is_a_4xx_not_a_500(
    client: TestClient, db: Database, settings: Settings, admin: Account, url: str
):
    make_app(db, user_id=admin.user_id)
    response = client.get(url)
    assert 400 <= response.status_code < 500, response.status_code
