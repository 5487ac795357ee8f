"""The hot reads' fast paths give the answers of the general ones (docs/benchmarks.md, HTTP):
the anonymous app read from one compiled statement, and LIMITs written into the SQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, select

from stich.apps.models import App, AppStatus, Visibility
from stich.db import Database
from stich.db.compiled import CompiledSelect
from tests.auth_support import bearer, register
from tests.gallery_support import make_app

pytestmark = pytest.mark.db


def _set(db: Database, app_id: str, **columns: object) -> None:
    with db.write() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None
        for name, value in columns.items():
            setattr(app, name, value)


@pytest.mark.parametrize("repository", [Visibility.PUBLIC, Visibility.PRIVATE, None])
def test_an_anonymous_read_is_the_public_view_a_signed_in_stranger_gets(
    client: TestClient, db: Database, repository: Visibility | None
) -> None:
    owner = register(client)
    app_id = make_app(db, owner.user_id, title="Shown", description=None, star_count=3)
    _set(
        db,
        app_id,
        blueprint={"pages": ["home"]},
        original_prompt="make it",
        github_repo_url="https://github.com/o/r" if repository else None,
        github_repo_visibility=repository,
    )
    stranger = register(client)

    anonymous = client.get(f"/api/apps/{app_id}")  # the compiled statement
    signed_in = client.get(f"/api/apps/{app_id}", headers=bearer(stranger.access_token))

    assert anonymous.status_code == signed_in.status_code == 200
    assert anonymous.json() == signed_in.json()  # ... and AppService.get with an entity
    body = anonymous.json()
    assert body["view"] == "public"
    assert body["author"]["id"] == owner.user_id
    assert body["blueprint"] == {"pages": ["home"]}
    shown = "https://github.com/o/r" if repository is Visibility.PUBLIC else None
    assert body["github_repo_url"] == shown


def test_an_anonymous_visitors_app_has_no_author(client: TestClient, db: Database) -> None:
    app_id = make_app(db, None, anonymous_owner_hash="a" * 64)

    response = client.get(f"/api/apps/{app_id}")

    assert response.status_code == 200
    assert response.json()["author"] is None


@pytest.mark.parametrize(
    "columns",
    [
        {"visibility": Visibility.PRIVATE},
        {"status": AppStatus.DRAFT},
        {"is_archived": True},
        {"deleted": True},
    ],
    ids=["private", "draft", "archived", "deleted"],
)
def test_an_app_not_in_the_gallery_is_404_to_anonymous_callers(
    client: TestClient, db: Database, columns: dict[str, object]
) -> None:
    owner = register(client)
    changes = dict(columns)  # the parameter is shared by both backends' runs
    deleted = bool(changes.pop("deleted", False))
    app_id = make_app(db, owner.user_id, deleted=deleted)
    if changes:
        _set(db, app_id, **changes)

    response = client.get(f"/api/apps/{app_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "app_not_found"
    if not deleted:  # the owner still reads it (the general path)
        mine = client.get(f"/api/apps/{app_id}", headers=bearer(owner.access_token))
        assert mine.status_code == 200
        assert mine.json()["view"] == "owner"


def test_a_literal_limit_is_written_into_the_sql_once_per_value(db: Database) -> None:
    ids = sorted(make_app(db, None, anonymous_owner_hash="b" * 64) for _ in range(3))
    statement = CompiledSelect(
        select(App.id).order_by(App.id).limit(bindparam("limit", literal_execute=True))
    )

    with db.read() as uow:
        two = statement.rows(uow.session, {"limit": 2})
        three = statement.rows(uow.session, {"limit": 3})
        sql, _ = statement.sql(uow.session.get_bind().dialect, {"limit": 2})

    assert [row[0] for row in two] == ids[:2]
    assert [row[0] for row in three] == ids
    assert "LIMIT 2" in sql  # (SQLite adds an OFFSET)


@pytest.mark.parametrize("value", ["2; DROP TABLE apps", 2.0, True])
def test_a_literal_parameter_must_be_an_int(db: Database, value: object) -> None:
    statement = CompiledSelect(select(App.id).limit(bindparam("limit", literal_execute=True)))

    with db.read() as uow, pytest.raises(TypeError):
        statement.rows(uow.session, {"limit": value})
