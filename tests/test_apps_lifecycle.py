"""Soft delete, restore, purge, ownership transfer and bulk status: what changes, what
does not, and the counters afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from stich.analytics.models import AppDailyStats, AppView
from stich.apps.models import AppStatus, Visibility
from stich.apps.query import AppQuery
from stich.apps.service import AppService
from stich.audit.models import AuditLog
from stich.auth.principal import Principal
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery.models import Favorite, Star
from stich.users.models import Role, User
from tests.apps_support import (
    audit_entries,
    live_fork_count,
    load_app,
    make_anonymous,
    make_app,
    set_columns,
)
from tests.factories import make_user

# -- soft delete and restore ---------------------------------------------------------------


def test_deleted_app_appears_nowhere(client: TestClient, db: Database) -> None:
    owner, forker = make_user(db), make_user(db)
    parent_id = make_app(db, owner)
    fork_id = client.post(f"/api/apps/{parent_id}/fork", headers=forker.headers).json()["id"]
    set_columns(db, fork_id, visibility=Visibility.PUBLIC, status=AppStatus.READY)
    assert load_app(db, parent_id).fork_count == 1  # type: ignore[union-attr]

    assert client.delete(f"/api/apps/{fork_id}", headers=forker.headers).status_code == 204

    for headers in ({}, forker.headers, owner.headers, make_user(db, role=Role.ADMIN).headers):
        assert client.get(f"/api/apps/{fork_id}", headers=headers).status_code == 404
        forks = client.get(f"/api/apps/{parent_id}/forks", headers=headers).json()
        assert forks["items"] == []
    mine = client.get("/api/me/apps", headers=forker.headers).json()
    assert mine["items"] == [] and mine["total"] == 0
    assert client.delete(f"/api/apps/{fork_id}", headers=forker.headers).status_code == 404
    # Counts: the parent's fork_count counts live forks only.
    parent = load_app(db, parent_id)
    assert parent is not None and parent.fork_count == 0 == live_fork_count(db, parent_id)
    # The gallery feed (through the shared query) leaves it out as well.
    with db.read() as uow:
        feed_ids = {row.id for row in AppQuery.feed().fetch(uow.session).items}
        assert AppQuery.feed().count(uow.session) == 1
    assert feed_ids == {parent_id}
    [entry] = audit_entries(db, "app.delete", fork_id)
    assert entry.actor_id == forker.user_id


def test_restore_brings_it_back_and_the_fork_count_with_it(
    client: TestClient, db: Database
) -> None:
    owner = make_user(db)
    visitor = make_anonymous()
    parent_id = make_app(db, owner)
    fork_id = client.post(f"/api/apps/{parent_id}/fork", headers=visitor.headers).json()["id"]
    client.delete(f"/api/apps/{fork_id}", headers=visitor.headers)
    assert load_app(db, parent_id).fork_count == 0  # type: ignore[union-attr]

    response = client.post(f"/api/apps/{fork_id}/restore", headers=visitor.headers)
    assert response.status_code == 200, response.text
    assert response.json()["deleted_at"] is None
    assert client.get(f"/api/apps/{fork_id}", headers=visitor.headers).status_code == 200
    assert load_app(db, parent_id).fork_count == 1 == live_fork_count(db, parent_id)  # type: ignore[union-attr]
    assert len(audit_entries(db, "app.restore", fork_id)) == 1

    again = client.post(f"/api/apps/{fork_id}/restore", headers=visitor.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_deleted"


def test_restore_after_the_retention_period_is_refused(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner)
    set_columns(db, app_id, deleted_at=utcnow() - timedelta(days=31))
    response = client.post(f"/api/apps/{app_id}/restore", headers=owner.headers)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "retention_expired"
    assert error["details"]["retention_days"] == 30
    assert load_app(db, app_id).deleted_at is not None  # type: ignore[union-attr]


def test_deleting_and_restoring_a_fork_of_a_deleted_parent(db: Database) -> None:
    """The parent row still exists while soft-deleted, so its live-fork count stays exact."""
    owner = make_user(db)
    parent_id = make_app(db, owner)
    fork_id = make_app(db, owner, parent_app_id=parent_id)
    set_columns(db, parent_id, fork_count=1, deleted_at=utcnow())
    principal = Principal.user(owner.user_id)
    with db.write() as uow:
        AppService(uow.session).delete(principal, fork_id)
    assert load_app(db, parent_id).fork_count == 0  # type: ignore[union-attr]
    with db.write() as uow:
        AppService(uow.session).restore(principal, fork_id)
    assert load_app(db, parent_id).fork_count == 1 == live_fork_count(db, parent_id)  # type: ignore[union-attr]


# -- purge -----------------------------------------------------------------------------------


def _attach_activity(db: Database, app_id: str, fan_ids: list[str]) -> None:
    now = utcnow()
    with db.write() as uow:
        for i, fan in enumerate(fan_ids):
            uow.session.add(Star(user_id=fan, app_id=app_id))
            uow.session.add(Favorite(user_id=fan, app_id=app_id))
            uow.session.add(
                AppView(app_id=app_id, viewer_key=f"v{i}", window_start=i, viewed_at=now)
            )
        uow.session.add(AppDailyStats(app_id=app_id, day=date(2024, 1, 1), views=2, stars=2))


def _count(db: Database, model: type[object], app_id: str) -> int:
    column = model.app_id  # type: ignore[attr-defined]
    with db.read() as uow:
        return uow.session.execute(
            select(func.count()).select_from(model).where(column == app_id)
        ).scalar_one()


def test_purge_removes_expired_apps_and_everything_hanging_off_them(db: Database) -> None:
    owner, fan_a, fan_b = make_user(db), make_user(db), make_user(db)
    long_ago = utcnow() - timedelta(days=40)
    # An expired parent whose live fork must survive, detached.
    expired_parent = make_app(db, owner, fork_count=1)
    surviving_fork = make_app(db, fan_a, parent_app_id=expired_parent)
    # An expired fork of a live parent: it was taken off the count when it was deleted.
    live_parent = make_app(db, owner)
    expired_fork = make_app(db, fan_b, parent_app_id=live_parent)
    recent = make_app(db, owner)
    for app_id in (expired_parent, expired_fork):
        _attach_activity(db, app_id, [fan_a.user_id, fan_b.user_id])
    set_columns(db, expired_parent, deleted_at=long_ago)
    set_columns(db, expired_fork, deleted_at=long_ago)
    set_columns(db, recent, deleted_at=utcnow() - timedelta(days=2))
    _attach_activity(db, live_parent, [fan_a.user_id])

    cutoff = utcnow() - timedelta(days=30)
    with db.write() as uow:
        assert AppService(uow.session).count_purgeable(cutoff) == 2
        batch = AppService(uow.session).purge_batch(cutoff, batch_size=1)
    assert batch.apps == 1  # batches are bounded
    with db.write() as uow:
        rest = AppService(uow.session).purge_batch(cutoff, batch_size=10)
    assert rest.apps == 1
    with db.write() as uow:
        assert AppService(uow.session).purge_batch(cutoff, batch_size=10).apps == 0
    batch.add(rest)
    assert (batch.stars, batch.favorites, batch.views, batch.daily_stats) == (4, 4, 4, 2)
    assert batch.forks_detached == 1

    for gone in (expired_parent, expired_fork):
        assert load_app(db, gone) is None
        for model in (Star, Favorite, AppView, AppDailyStats):
            assert _count(db, model, gone) == 0
    fork = load_app(db, surviving_fork)
    assert fork is not None and fork.parent_app_id is None and fork.deleted_at is None
    assert load_app(db, recent) is not None  # still within retention
    assert _count(db, Star, live_parent) == 1  # other apps' activity untouched
    parent = load_app(db, live_parent)
    assert parent is not None and parent.fork_count == 0 == live_fork_count(db, live_parent)
    with db.read() as uow:
        purged = uow.session.scalars(
            select(AuditLog.resource_id).where(AuditLog.action == "app.purge")
        ).all()
    assert set(purged) == {expired_parent, expired_fork}


# -- transfer --------------------------------------------------------------------------------


def test_transfer_moves_the_app_and_audits_both_owners(client: TestClient, db: Database) -> None:
    owner, recipient = make_user(db), make_user(db)
    app_id = make_app(db, owner, visibility=Visibility.PRIVATE)
    response = client.post(
        f"/api/apps/{app_id}/transfer",
        json={"to_user": recipient.username.upper()},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "app_id": app_id,
        "from_user_id": owner.user_id,
        "to_user_id": recipient.user_id,
        "to_username": recipient.username,
    }
    assert client.get(f"/api/apps/{app_id}", headers=owner.headers).status_code == 404
    assert client.get(f"/api/apps/{app_id}", headers=recipient.headers).json()["view"] == "owner"
    entries = audit_entries(db, "app.transfer", app_id)
    assert {e.subject_user_id for e in entries} == {owner.user_id, recipient.user_id}
    for entry in entries:
        assert entry.actor_id == owner.user_id
        assert entry.old_values == {"user_id": owner.user_id, "anonymous": False}
        assert entry.new_values == {"user_id": recipient.user_id, "anonymous": False}


def test_anonymous_owner_can_hand_an_app_to_an_account(client: TestClient, db: Database) -> None:
    visitor, recipient = make_anonymous(), make_user(db)
    app_id = make_app(db, visitor)
    response = client.post(
        f"/api/apps/{app_id}/transfer", json={"to_user": recipient.user_id}, headers=visitor.headers
    )
    assert response.status_code == 200
    app = load_app(db, app_id)
    assert app is not None
    assert (app.user_id, app.anonymous_owner_hash) == (recipient.user_id, None)


@pytest.mark.parametrize("problem", ["unknown", "inactive", "suspended", "deleted", "self"])
def test_transfer_refusals_change_nothing(client: TestClient, db: Database, problem: str) -> None:
    owner, target = make_user(db), make_user(db)
    app_id = make_app(db, owner)
    with db.write() as uow:
        user = uow.session.get(User, target.user_id)
        assert user is not None
        if problem == "inactive":
            user.is_active = False
        elif problem == "suspended":
            user.is_suspended = True
        elif problem == "deleted":
            user.deleted_at = utcnow()
    to_user = {"unknown": "nobody-by-this-name", "self": owner.username}.get(
        problem, target.username
    )
    response = client.post(
        f"/api/apps/{app_id}/transfer", json={"to_user": to_user}, headers=owner.headers
    )
    expected = {"unknown": 404, "self": 409}.get(problem, 409)
    assert response.status_code == expected, response.text
    assert response.json()["error"]["code"] == {
        "unknown": "user_not_found",
        "self": "already_owner",
    }.get(problem, "target_inactive")
    assert load_app(db, app_id).user_id == owner.user_id  # type: ignore[union-attr]
    assert audit_entries(db, "app.transfer", app_id) == []


@pytest.fixture
def failing_transfer_audit(db: Database) -> Iterator[None]:
    """A real database trigger that refuses the transfer's audit row, after the owner
    UPDATE has already run in the same transaction."""
    if db.backend == "sqlite":
        create = [
            "CREATE TRIGGER fail_transfer_audit BEFORE INSERT ON audit_logs "
            "WHEN NEW.action = 'app.transfer' "
            "BEGIN SELECT RAISE(ABORT, 'audit store is down'); END"
        ]
        drop = ["DROP TRIGGER fail_transfer_audit"]
    else:
        create = [
            "CREATE FUNCTION fail_transfer_audit() RETURNS trigger AS $$ BEGIN "
            "IF NEW.action = 'app.transfer' THEN "
            "RAISE EXCEPTION 'audit store is down' USING ERRCODE = 'check_violation'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_transfer_audit BEFORE INSERT ON audit_logs "
            "FOR EACH ROW EXECUTE FUNCTION fail_transfer_audit()",
        ]
        drop = [
            "DROP TRIGGER fail_transfer_audit ON audit_logs",
            "DROP FUNCTION fail_transfer_audit()",
        ]
    with db.primary.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    yield None
    with db.primary.begin() as conn:
        for statement in drop:
            conn.execute(text(statement))


def test_transfer_is_atomic_when_the_audit_insert_fails(
    client: TestClient, db: Database, failing_transfer_audit: object
) -> None:
    owner, recipient = make_user(db), make_user(db)
    app_id = make_app(db, owner, visibility=Visibility.PRIVATE)
    before = load_app(db, app_id)
    response = client.post(
        f"/api/apps/{app_id}/transfer", json={"to_user": recipient.username}, headers=owner.headers
    )
    # A failing audit store is a server-side failure; what matters is that nothing moved.
    assert response.status_code >= 400, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}
    after = load_app(db, app_id)
    assert after is not None and before is not None
    assert (after.user_id, after.updated_at) == (before.user_id, before.updated_at)
    assert client.get(f"/api/apps/{app_id}", headers=owner.headers).status_code == 200
    assert client.get(f"/api/apps/{app_id}", headers=recipient.headers).status_code == 404
    with db.read() as uow:
        assert uow.session.execute(select(func.count()).select_from(AuditLog)).scalar_one() == 0


# -- bulk status -----------------------------------------------------------------------------


def test_bulk_status_changes_every_app(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    ids = [make_app(db, owner, status=s) for s in (AppStatus.DRAFT, AppStatus.ERROR)]
    response = client.post(
        "/api/apps/bulk-status", json={"ids": ids, "status": "generating"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["updated"] == 2
    assert [(r["id"], r["ok"], r["from_status"]) for r in body["results"]] == [
        (ids[0], True, "draft"),
        (ids[1], True, "error"),
    ]
    for app_id in ids:
        assert load_app(db, app_id).status is AppStatus.GENERATING  # type: ignore[union-attr]


def test_bulk_status_is_all_or_nothing(client: TestClient, db: Database) -> None:
    owner, stranger = make_user(db), make_user(db)
    movable = make_app(db, owner, status=AppStatus.DRAFT)
    stuck = make_app(db, owner, status=AppStatus.GENERATING)
    someone_elses_public = make_app(db, stranger, status=AppStatus.READY)
    someone_elses_private = make_app(
        db, stranger, status=AppStatus.DRAFT, visibility=Visibility.PRIVATE
    )
    ids = [movable, stuck, someone_elses_public, someone_elses_private, "no-such-app"]
    response = client.post(
        "/api/apps/bulk-status", json={"ids": ids, "status": "generating"}, headers=owner.headers
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "bulk_rejected"
    results = {r["id"]: r for r in error["details"]["results"]}
    assert results[movable]["ok"] is True
    assert results[stuck] == {
        "id": stuck,
        "ok": False,
        "error": "invalid_transition",
        "from_status": "generating",
        "allowed": ["ready", "error"],
    }
    assert results[someone_elses_public]["error"] == "not_owner"
    # Another user's private app is indistinguishable from one that does not exist.
    assert results[someone_elses_private]["error"] == results["no-such-app"]["error"]
    assert results["no-such-app"]["error"] == "app_not_found"
    assert load_app(db, movable).status is AppStatus.DRAFT  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [], "status": "generating"},
        {"ids": [f"id-{i}" for i in range(101)], "status": "generating"},
        {"ids": ["a", "a"], "status": "generating"},
        {"ids": ["a"], "status": "deployed"},
    ],
    ids=["empty", "too-many", "repeated", "deployed"],
)
def test_bulk_status_batches_are_bounded(client: TestClient, db: Database, body: object) -> None:
    owner = make_user(db)
    response = client.post("/api/apps/bulk-status", json=body, headers=owner.headers)
    assert response.status_code == 422


def test_bulk_status_needs_credentials(client: TestClient) -> None:
    response = client.post("/api/apps/bulk-status", json={"ids": ["a"], "status": "generating"})
    assert response.status_code == 401


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_forks_all_count(db: Database) -> None:
    """Forks from many threads at once: every one lands and the counter agrees."""
    owner = make_user(db)
    parent_id = make_app(db, owner)
    forkers = [Principal.user(make_user(db).user_id) for _ in range(8)]

    def fork(principal: Principal) -> str:
        with db.write() as uow:
            return AppService(uow.session).fork(principal, parent_id).app.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        fork_ids = list(pool.map(fork, forkers))
    assert len(set(fork_ids)) == 8
    parent = load_app(db, parent_id)
    assert parent is not None and parent.fork_count == 8 == live_fork_count(db, parent_id)
