"""Stich Studio shows whether an account's address is verified, and resends the link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stich.audit.models import AuditLog
from stich.config import Settings
from stich.db import Database
from stich.users.models import Role
from tests.email_support import Inbox, delivered, token_in
from tests.ops_support import make_account, ops_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    return ops_settings(
        database_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", mail_retry_delay_seconds=0
    )


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def test_an_admin_resends_the_verification_link(
    client: TestClient, db: Database, settings: Settings, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    admin = make_account(db, settings, role=Role.ADMIN)
    member = make_account(db, settings)
    signed_in = client.post(
        "/admin/login", data={"username": admin.email, "password": admin.password}
    )
    assert signed_in.status_code < 400
    page = client.get(f"/admin/user/manage/{member.user_id}")
    assert 'id="user-email-verified">no<' in page.text
    assert 'id="user-resend-verification-submit"' in page.text

    sent = client.post(
        f"/admin/user/manage/{member.user_id}",
        data={"csrf": csrf_token(page.text), "resend_verification": "true"},
    )
    assert "Verification link sent." in sent.text
    delivered(settings)
    token = token_in(inbox.last_to(member.email, "verify_email"))
    confirmed = client.post("/api/auth/email/verify/confirm", json={"token": token})
    assert confirmed.status_code == 200
    page = client.get(f"/admin/user/manage/{member.user_id}")
    assert 'id="user-email-verified">yes<' in page.text
    assert 'id="user-resend-verification-submit"' not in page.text

    with db.read() as uow:
        entry = (
            uow.session.query(AuditLog)
            .filter_by(action="auth.email_verification_requested", subject_user_id=member.user_id)
            .one()
        )
        assert entry.actor_id == admin.user_id


def test_a_forged_resend_is_refused(client: TestClient, db: Database, settings: Settings) -> None:
    admin = make_account(db, settings, role=Role.ADMIN)
    member = make_account(db, settings)
    client.post("/admin/login", data={"username": admin.email, "password": admin.password})
    refused = client.post(
        f"/admin/user/manage/{member.user_id}",
        data={"csrf": "not the token", "resend_verification": "true"},
    )
    assert refused.status_code == 403
