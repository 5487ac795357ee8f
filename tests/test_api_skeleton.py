"""The API skeleton: probes, the error shape, request ids and the bookmark header."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from stich.db import Database, migrate


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_reports_database_at_head(client: TestClient, backend: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["backend"] == backend
    assert set(body["revision"]) == migrate.head_revisions()


def test_readyz_is_503_when_migrations_are_pending(client: TestClient, db: Database) -> None:
    with db.primary.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('older')"))
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "migration_pending"
        assert "stich db upgrade" in error["message"]
        assert error["details"]["current"] == ["older"]
    finally:
        with db.primary.begin() as conn:
            conn.execute(text("DELETE FROM alembic_version"))
            for head in migrate.head_revisions():
                conn.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head}
                )


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": {}}
    }


def test_every_response_has_a_request_id(client: TestClient) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) >= 8
    echoed = client.get("/healthz", headers={"X-Request-ID": "client-chosen-id-1"})
    assert echoed.headers["X-Request-ID"] == "client-chosen-id-1"
    # A request id that could inject into logs is replaced, not echoed.
    hostile = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["X-Request-ID"] != "bad id\twith spaces"


def test_malformed_bookmark_is_a_400_with_a_clear_message(client: TestClient) -> None:
    for garbage in ["nonsense", "!!!", "MTpwZzp6eno", "x" * 500]:
        response = client.get("/readyz", headers={"X-Stich-Bookmark": garbage})
        assert response.status_code == 400, garbage
        assert response.json()["error"]["code"] == "invalid_bookmark"


def test_a_valid_bookmark_is_accepted_and_echoed(client: TestClient, db: Database) -> None:
    with db.write() as uow:
        uow.session.execute(text("SELECT 1"))
    assert uow.bookmark is not None
    response = client.get("/readyz", headers={"X-Stich-Bookmark": uow.bookmark})
    assert response.status_code == 200
    assert response.headers["X-Stich-Bookmark"] == uow.bookmark
