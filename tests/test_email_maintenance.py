"""Expired email links and idle mail cooldowns go with the scheduled maintenance run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.auth.models import EmailCooldown, EmailToken, EmailTokenPurpose
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.maintenance.jobs import run_maintenance, select_jobs
from tests.auth_support import auth_settings, register


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def purposes(db: Database) -> list[str]:
    with db.read() as uow:
        return sorted(p.value for p in uow.session.scalars(select(EmailToken.purpose)))


def cooldowns(db: Database) -> int:
    with db.read() as uow:
        return len(uow.session.scalars(select(EmailCooldown.key_hash)).all())


def test_expired_links_and_idle_cooldowns_are_purged(
    client: TestClient, db: Database, settings: Settings
) -> None:
    account = register(client)
    client.post("/api/auth/password/forgot", json={"email": account.email})
    assert purposes(db) == ["reset_password", "verify_email"]
    assert cooldowns(db) == 2
    jobs = select_jobs(["email_tokens", "email_cooldowns"])

    # An hour on: the reset link (30 minutes) has expired, the verification link has not.
    run_maintenance(db, settings, jobs=jobs, now=utcnow() + timedelta(hours=1))
    assert purposes(db) == [EmailTokenPurpose.VERIFY_EMAIL.value]
    assert cooldowns(db) == 2

    run = run_maintenance(db, settings, jobs=jobs, now=utcnow() + timedelta(days=2))
    assert purposes(db) == []
    assert cooldowns(db) == 0
    assert run.removed == 3
