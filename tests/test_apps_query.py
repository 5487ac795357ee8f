"""AppQuery and GET /me/apps: filters, keyset pagination with ties, bounded statements."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from structlog.testing import capture_logs

from stich.apps.models import AppStatus, Visibility
from stich.apps.query import AppQuery, AppSort, SortDirection, UnscopedQueryError
from stich.auth.principal import Principal
from stich.db import Database
from stich.db.base import utcnow
from stich.db.instrumentation import track_queries
from stich.users.models import Role
from tests.apps_support import make_anonymous, make_app, set_columns
from tests.factories import SignedIn, make_user


def _make_tied_apps(db: Database, owner: SignedIn, count: int) -> list[str]:
    """Apps whose created_at, updated_at and counters repeat in groups (ties everywhere)."""
    base = utcnow() - timedelta(days=1)
    ids = []
    for i in range(count):
        moment = base + timedelta(minutes=i // 4)
        ids.append(
            make_app(
                db,
                owner,
                title=f"app {i}",
                created_at=moment,
                updated_at=moment,
                star_count=i % 3,
                view_count=i // 5,
                fork_count=0,
            )
        )
    return ids


def _walk(
    client: TestClient, headers: dict[str, str], params: dict[str, Any]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/me/apps", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_keyset_walk_returns_every_app_once_in_order_with_ties(
    client: TestClient, db: Database
) -> None:
    owner = make_user(db)
    ids = _make_tied_apps(db, owner, 23)
    make_app(db, make_user(db))  # someone else's app never shows up
    for sort in AppSort:
        for order in SortDirection:
            items = _walk(
                client, owner.headers, {"sort": sort.value, "order": order.value, "limit": 4}
            )
            walked = [item["id"] for item in items]
            assert len(walked) == len(set(walked)) == 23, (sort, order)
            assert set(walked) == set(ids)
            keys = [(item[sort.value], item["id"]) for item in items]
            assert keys == sorted(keys, reverse=order is SortDirection.DESC), (sort, order)


def test_my_apps_filters_and_total(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    wanted = make_app(db, owner, title="100% Todo_list", framework="react", status=AppStatus.READY)
    make_app(db, owner, title="100 Todolist", framework="react", status=AppStatus.READY)
    make_app(db, owner, title="Chat", framework="vue", status=AppStatus.DRAFT)
    make_app(db, owner, title="Private", visibility=Visibility.PRIVATE, status=AppStatus.READY)

    def ids(**params: Any) -> tuple[set[str], int]:
        response = client.get("/api/me/apps", params=params, headers=owner.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return {item["id"] for item in body["items"]}, body["total"]

    assert ids()[1] == 4
    assert ids(status="draft")[1] == 1
    assert ids(visibility="private")[1] == 1
    assert ids(framework="REACT")[1] == 2
    # LIKE wildcards in the search text match themselves only.
    assert ids(q="0% todo_")[0] == {wanted}
    assert ids(q="todo", framework="react", status="ready", limit=1) == (
        {ids(q="todo", limit=1)[0].pop()},
        2,
    )


def test_my_apps_of_an_anonymous_visitor(client: TestClient, db: Database) -> None:
    visitor = make_anonymous()
    mine = make_app(db, visitor, visibility=Visibility.PRIVATE)
    make_app(db, make_anonymous())
    make_app(db, make_user(db))
    body = client.get("/api/me/apps", headers=visitor.headers).json()
    assert [item["id"] for item in body["items"]] == [mine]
    assert body["items"][0]["author"] is None
    assert client.get("/api/me/apps").status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"sort": "title"},
        {"order": "sideways"},
        {"limit": 0},
        {"limit": 101},
        {"status": "unknown"},
    ],
    ids=["cursor", "sort", "order", "limit-0", "limit-101", "status"],
)
def test_my_apps_refuses_bad_parameters(
    client: TestClient, db: Database, params: dict[str, Any]
) -> None:
    owner = make_user(db)
    response = client.get("/api/me/apps", params=params, headers=owner.headers)
    assert response.status_code == 422


def test_a_cursor_only_works_for_the_sort_it_came_from(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    _make_tied_apps(db, owner, 5)
    page = client.get("/api/me/apps", params={"limit": 2}, headers=owner.headers).json()
    response = client.get(
        "/api/me/apps",
        params={"limit": 2, "sort": "star_count", "cursor": page["next_cursor"]},
        headers=owner.headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_page_is_one_statement_however_many_authors(db: Database) -> None:
    authors = [make_user(db) for _ in range(6)]
    for i in range(30):
        make_app(db, authors[i % 6])
    with db.read() as uow:
        uow.session.execute(text("SELECT 1"))  # the transaction's BEGIN is not the page's
        with track_queries() as stats:
            page = AppQuery.visible_to(None).page(limit=50).fetch(uow.session)
    assert len(page.items) == 30
    assert {row.author_username for row in page.items} == {a.username for a in authors}
    assert stats.statements == 1


def _statements(client: TestClient, path: str, headers: dict[str, str]) -> int:
    with capture_logs() as logs:
        assert client.get(path, headers=headers).status_code == 200
    [entry] = [e for e in logs if e.get("event") == "request" and e.get("path") == path]
    count: int = entry["db_statements"]
    return count


def test_list_endpoints_do_a_bounded_number_of_statements(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    parent = make_app(db, owner)
    make_app(db, owner, parent_app_id=parent)
    client.get("/api/me/apps", headers=owner.headers)  # session bookkeeping writes once
    few_me = _statements(client, "/api/me/apps", owner.headers)
    few_forks = _statements(client, f"/api/apps/{parent}/forks", owner.headers)
    for i in range(40):
        make_app(db, make_user(db) if i % 2 else owner, parent_app_id=parent)
    assert _statements(client, "/api/me/apps", owner.headers) == few_me
    assert _statements(client, f"/api/apps/{parent}/forks", owner.headers) == few_forks
    # Authentication, the page and the total for /me/apps (plus BEGINs): nothing per row.
    assert few_me <= 6


def test_a_query_without_a_scope_is_refused() -> None:
    with pytest.raises(UnscopedQueryError):
        AppQuery().statement()


def test_owned_by_scope_hides_deleted_and_others(db: Database) -> None:
    owner = make_user(db)
    live = make_app(db, owner, visibility=Visibility.PRIVATE)
    deleted = make_app(db, owner)
    set_columns(db, deleted, deleted_at=utcnow())
    make_app(db, make_user(db))
    with db.read() as uow:
        rows = AppQuery.owned_by(Principal.user(owner.user_id)).fetch(uow.session).items
    assert [row.id for row in rows] == [live]


def test_the_feed_scope_walks_a_partial_index(db: Database) -> None:
    owner = make_user(db)
    for _ in range(3):
        make_app(db, owner)
    statement = AppQuery.feed().order_by(AppSort.STAR_COUNT).statement()
    with db.read() as uow:
        sql = str(statement.compile(uow.session.get_bind(), compile_kwargs={"literal_binds": True}))
        if db.backend == "sqlite":
            # INDEXED BY fails with "no query solution" unless the index can serve the query.
            forced = sql.replace("FROM apps", "FROM apps INDEXED BY ix_apps_feed_popular", 1)
            plan = uow.session.execute(text(f"EXPLAIN QUERY PLAN {forced}")).all()
            detail = " ".join(str(row[-1]) for row in plan)
        else:
            uow.session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = uow.session.execute(text(f"EXPLAIN {sql}")).all()
            detail = " ".join(str(row[0]) for row in plan)
    assert "ix_apps_feed_popular" in detail, detail
    assert "TEMP B-TREE" not in detail  # ORDER BY ... LIMIT walks the index, never sorts


def test_feed_excludes_private_archived_deleted_and_unfinished(db: Database) -> None:
    owner = make_user(db)
    listed = make_app(db, owner)
    make_app(db, owner, visibility=Visibility.PRIVATE)
    make_app(db, owner, is_archived=True)
    make_app(db, owner, status=AppStatus.GENERATING)
    make_app(db, owner, deleted_at=utcnow())
    with db.read() as uow:
        rows = AppQuery.feed().fetch(uow.session).items
        admin_view = AppQuery.visible_to(Principal.user("x", role=Role.ADMIN)).count(uow.session)
    assert [row.id for row in rows] == [listed]
    assert admin_view == 4  # admins see every live app, but the feed is the feed
