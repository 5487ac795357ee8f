"""``stich import original`` on both backends, with a source holding every awkward case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from stich.analytics.models import AppDailyBreakdown, AppDailyStats, AppView
from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.crypto.vault import SecretBinding, Vault
from stich.db import Database
from stich.gallery.models import FeedRankingSnapshot, Star
from stich.importer.rebuild import verify
from stich.importer.report import ImportReport
from stich.importer.run import ImportOptions, run_import
from stich.secrets.models import UserSecret
from stich.users.models import User, UserIdentity
from tests.import_support import (
    ANON_TOKEN,
    ORIGINAL_KEY,
    PASSWORD,
    SECRET_VALUE,
    build_awkward_source,
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return build_awkward_source(tmp_path / "original.db")


def run(settings: Settings, source: Path, **options: Any) -> ImportReport:
    options.setdefault("secrets_key", ORIGINAL_KEY)
    return run_import(settings, ImportOptions(source=source, batch_size=100, **options))


def test_every_awkward_case_lands_as_described(
    settings: Settings, db: Database, source: Path
) -> None:
    report = run(settings, source)
    assert report.verify_clean is True
    assert verify(db, settings) == 0
    with db.read() as uow:
        s = uow.session
        users = {u.id: u for u in s.scalars(select(User))}
        # Duplicate email by case: merged into the account created first, reported.
        assert set(users) == {"u-email", "u-oauth", "u-alice"}
        assert report["users"].merged == 1
        assert report["users"].rejected == {"invalid email": 1}
        assert users["u-email"].email == "mail@example.com"
        assert users["u-email"].username == "mailer"
        assert users["u-email"].preferences == {"lang": "de"}  # double-encoded JSON
        # TEXT 'YYYY-MM-DD HH:MM:SS' (CURRENT_TIMESTAMP) read as a time.
        assert users["u-email"].created_at.year >= 2024
        # Email accounts are not trusted as verified; OAuth keeps its provider's word.
        assert users["u-email"].email_verified is False
        assert users["u-oauth"].email_verified is True
        identity = s.scalars(select(UserIdentity)).one()
        assert (identity.user_id, identity.provider, identity.provider_id) == (
            "u-oauth",
            "github",
            "gh-777",
        )
        apps = {a.id: a for a in s.scalars(select(App))}
        assert set(apps) == {"a-fork", "a-public", "a-anon", "a-archived", "a-stuck"}
        assert report["apps"].rejected == {"owner not imported": 1}
        assert apps["a-fork"].parent_app_id == "a-public"  # fork before its parent
        assert apps["a-public"].fork_count == 1
        assert apps["a-public"].user_id == "u-alice"  # the merged account's app follows
        assert apps["a-public"].blueprint == {"pages": 3}
        assert apps["a-public"].status == "deployed"
        assert apps["a-fork"].status == "ready"  # completed
        assert apps["a-stuck"].status == "error"  # an interrupted generation
        assert apps["a-stuck"].visibility == "private"  # team
        assert apps["a-stuck"].deployment_url is None  # javascript: is no URL Stich takes
        assert report["apps"].notes["deployment_url not an http(s) URL (dropped)"] == 1
        assert apps["a-archived"].is_archived is True
        hasher = KeyedHasher(settings.server_key_bytes())
        assert apps["a-anon"].user_id is None
        assert apps["a-anon"].anonymous_owner_hash == hasher.token_hash(ANON_TOKEN)
        # Stars: the orphan rejected, the merged account's duplicate folded.
        stars = set(s.execute(select(Star.user_id, Star.app_id)))
        assert stars == {("u-oauth", "a-public"), ("u-alice", "a-public"), ("u-email", "a-fork")}
        assert report["stars"].rejected == {"orphan: user not imported": 1}
        assert report["stars"].merged == 1
        assert apps["a-public"].star_count == 2
        # Views: two by one user in one window collapse; bots and orphans are rejected.
        assert report["views"].merged == 1
        assert set(report["views"].rejected) == {
            "bot (live traffic never counts bots)",
            "orphan: app not imported",
        }
        assert s.scalar(select(func.count()).select_from(AppView)) == 4
        assert apps["a-public"].view_count == 3
        assert apps["a-fork"].view_count == 1  # 200 days old: history kept in the rollups
        origins = set(s.scalars(select(AppView.referrer_origin)))
        assert origins == {"https://news.example.com", "https://search.example:8443", None}
        devices = set(s.scalars(select(AppView.device_type)))
        assert devices == {"desktop", "mobile", "tablet", "unknown"}
        assert s.scalar(select(func.sum(AppDailyStats.views))) == 4
        assert s.scalar(select(func.count()).select_from(AppDailyBreakdown)) > 0
        assert s.scalar(select(func.count()).select_from(FeedRankingSnapshot)) > 0
        # Audit: double-encoded JSON decoded, the address kept only as a keyed hash.
        entry = s.get(AuditLog, "l1")
        assert entry is not None
        assert entry.old_values == {"title": "Old"}
        assert entry.new_values == {"title": "Stuck"}
        assert entry.ip_hash == hasher.ip_hash("203.0.113.9")
        assert (entry.actor_type, entry.actor_id) == ("user", "u-email")
        # Secrets: the right key's value re-encrypted into the vault, bound to its row.
        secret = s.get(UserSecret, "k-good")
        assert secret is not None and secret.ciphertext is not None
        assert s.get(UserSecret, "k-wrong") is None
        binding = SecretBinding(secret_id="k-good", user_id="u-email", provider="openai")
        assert Vault.from_settings(settings).decrypt(secret.ciphertext, binding) == SECRET_VALUE
    assert report["secrets"].rejected == {"does not decrypt with --secrets-key": 1}
    # Sessions are never copied; the report says users sign in again.
    assert report["sessions"].imported == 0 and report["sessions"].read == 1
    assert any("sign in again" in line for line in report.lines())


def _snapshot(db: Database) -> dict[str, Any]:
    tables = ["users", "user_identities", "apps", "stars", "app_views", "audit_logs"]
    tables += ["user_secrets", "app_daily_stats", "app_daily_breakdowns", "anonymous_owners"]
    with db.read() as uow:
        s = uow.session
        counts = {t: s.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables}
        counters = sorted(
            s.execute(
                select(App.id, App.star_count, App.view_count, App.fork_count, App.updated_at)
            )
        )
    return {"counts": counts, "counters": counters}


def test_a_rerun_changes_nothing(settings: Settings, db: Database, source: Path) -> None:
    run(settings, source)
    before = _snapshot(db)
    again = run(settings, source)
    assert _snapshot(db) == before
    assert all(kind.imported == 0 for kind in again.kinds.values())
    assert again["apps"].merged == 5 and again["views"].merged == 5
    assert again.verify_clean is True


def test_dry_run_writes_nothing(settings: Settings, db: Database, source: Path) -> None:
    report = run(settings, source, dry_run=True)
    assert report["users"].imported == 3 and report["apps"].imported == 5
    assert (report["views"].imported, report["views"].merged) == (4, 1)  # as a real run
    assert report["secrets"].rejected == {"does not decrypt with --secrets-key": 1}
    assert report.verify_clean is None
    assert all(n == 0 for n in _snapshot(db)["counts"].values())


def test_skip_secrets_counts_them(settings: Settings, db: Database, source: Path) -> None:
    report = run(settings, source, secrets_key=None, skip_secrets=True)
    assert report["secrets"].rejected == {"not imported (--skip-secrets)": 2}
    assert _snapshot(db)["counts"]["user_secrets"] == 0


def test_trust_verified_keeps_the_flag(settings: Settings, db: Database, source: Path) -> None:
    run(settings, source, trust_verified=True)
    with db.read() as uow:
        user = uow.session.get(User, "u-email")
        assert user is not None and user.email_verified is True


def test_legacy_password_signs_in_and_is_rehashed(
    settings: Settings, db: Database, client: TestClient, source: Path
) -> None:
    run(settings, source)
    wrong = client.post("/api/auth/login", json={"email": "mail@example.com", "password": "nope"})
    assert wrong.status_code == 401
    ok = client.post("/api/auth/login", json={"email": "MAIL@example.com", "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    with db.read() as uow:
        user = uow.session.get(User, "u-email")
        assert user is not None and user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
    again = client.post("/api/auth/login", json={"email": "mail@example.com", "password": PASSWORD})
    assert again.status_code == 200


def test_the_old_anonymous_token_claims_its_app(
    settings: Settings, db: Database, client: TestClient, source: Path
) -> None:
    run(settings, source)
    body = {
        "email": "new@example.com",
        "password": "a long password",
        "display_name": "New",
        "anonymous_token": ANON_TOKEN,
    }
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["claimed_apps"] == 1
    user_id = response.json()["user"]["id"]
    with db.read() as uow:
        app = uow.session.get(App, "a-anon")
        assert app is not None and (app.user_id, app.anonymous_owner_hash) == (user_id, None)
    # Claimed once: the token moves nothing a second time.
    body.update(email="other@example.com")
    assert client.post("/api/auth/register", json=body).json()["claimed_apps"] == 0


def test_a_sql_dump_imports_like_the_file(
    settings: Settings, db: Database, source: Path, tmp_path: Path
) -> None:
    import sqlite3

    from stich.importer.fixtures import dump

    conn = sqlite3.connect(source)
    dump(conn, tmp_path / "export.sql")
    conn.close()
    report = run(settings, tmp_path / "export.sql")
    assert report.verify_clean is True
    assert (report["users"].imported, report["apps"].imported, report["views"].imported) == (
        3,
        5,
        4,
    )


def test_a_row_the_database_refuses_does_not_stop_the_rest(
    settings: Settings, db: Database, source: Path, backend: str
) -> None:
    import sqlite3

    from stich.importer.fixtures import insert_rows

    conn = sqlite3.connect(source)
    # PostgreSQL refuses a NUL character in text; the checks in Python let it through.
    bad = {"id": "a-nul", "title": "NUL", "description": "bad\x00byte", "user_id": "u-email"}
    insert_rows(conn, "apps", [{**bad, "original_prompt": "p", "created_at": 1, "updated_at": 1}])
    conn.commit()
    conn.close()
    report = run(settings, source)
    with db.read() as uow:
        ids = set(uow.session.scalars(select(App.id)))
    assert {"a-fork", "a-public", "a-anon", "a-archived", "a-stuck"} <= ids
    if backend == "postgresql":
        assert "a-nul" not in ids
        assert any(r.startswith("database refused the row") for r in report["apps"].rejected)
    else:
        assert "a-nul" in ids
    assert report.verify_clean is True


def test_batches_of_two_land_the_same(settings: Settings, db: Database, source: Path) -> None:
    """Forks, merged duplicates and identities across batch boundaries."""
    report = run_import(
        settings, ImportOptions(source=source, batch_size=2, secrets_key=ORIGINAL_KEY)
    )
    assert report.verify_clean is True
    assert (report["users"].imported, report["users"].merged) == (3, 1)
    assert (report["apps"].imported, report["stars"].imported) == (5, 3)
    assert (report["views"].imported, report["views"].merged) == (4, 1)
    with db.read() as uow:
        fork = uow.session.get(App, "a-fork")
        assert fork is not None and fork.parent_app_id == "a-public"
        assert uow.session.scalar(select(func.count()).select_from(UserIdentity)) == 1
    assert _snapshot(db)["counts"]["users"] == 3
