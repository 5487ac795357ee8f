"""The HTTP layer's hot path: thread-pool hand-offs per request, and pre-serialized bodies
that still match the OpenAPI contract (docs/benchmarks.md, HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from stich.api.middleware import new_request_id
from stich.api.reads import read_executor
from stich.api.responses import model_response
from stich.bench.profile import summarise
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery.rows import GalleryRow
from stich.gallery.schemas import FeedOut, GalleryApp, feed_json
from stich.gallery.sorts import FeedPage
from tests.auth_support import bearer, register
from tests.gallery_support import make_app

pytestmark = pytest.mark.db

# Dependencies and steps that must run on the event loop (pure, cheap): each thread-pool
# hand-off cost about as much as the feed's SQL. "validate" is FastAPI re-validating a
# returned model against response_model, which a model_response skips.
OFF_THE_POOL = {
    "get_context",
    "get_settings",
    "principal_dependency",
    "dependency",
    "require_user",
    "validate",
}


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch, db: Database) -> Iterator[list[str]]:
    """Names of the functions the request handed to a thread: FastAPI and Starlette go
    through ``anyio.to_thread.run_sync`` for every sync dependency and endpoint, the hot
    reads through the read threads (``stich.api.reads``)."""
    calls: list[str] = []
    original = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        inner = getattr(func, "func", func)  # functools.partial
        calls.append(getattr(inner, "__name__", repr(inner)))
        return await original(func, *args, **kwargs)

    executor = read_executor(db.settings)
    submit = executor.submit

    def counting_submit(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        read = func.args[0] if isinstance(func, partial) else func  # partial(context.run, read)
        calls.append(getattr(read, "__name__", repr(read)))
        return submit(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    monkeypatch.setattr(executor, "submit", counting_submit)
    yield calls


def test_an_anonymous_feed_request_takes_no_thread_hop_on_sqlite_and_one_on_postgres(
    client: TestClient, db: Database, thread_hops: list[str]
) -> None:
    make_app(db, register(client).user_id, title="Public")
    client.get("/api/apps/public")  # warm-up: the first request may prepare caches
    thread_hops.clear()

    response = client.get("/api/apps/public?sort=popular")

    assert response.status_code == 200
    assert response.json()["items"]
    # A page down an index is a bounded read: on the event loop where reads never wait
    # (SQLite), else one hand-off for the database work. The context, the (absent)
    # principal, the scope check and the body cost none.
    expected = [] if db.backend == "sqlite" else ["_feed_page"]
    assert thread_hops == expected


def test_a_feed_search_goes_to_the_pool_on_either_backend(
    client: TestClient, db: Database, thread_hops: list[str]
) -> None:
    make_app(db, register(client).user_id, title="Public garden planner")
    thread_hops.clear()

    response = client.get("/api/apps/public?q=garden")

    assert response.status_code == 200
    assert [item["title"] for item in response.json()["items"]] == ["Public garden planner"]
    assert thread_hops == ["_feed_page"]  # a search's cost grows with the data


def test_a_live_ranking_goes_to_the_pool_after_its_bounded_try(
    client: TestClient, db: Database, thread_hops: list[str]
) -> None:
    # No ranking snapshot was computed: a windowed sort is ranked live, an unbounded plan.
    make_app(db, register(client).user_id, title="Public")
    thread_hops.clear()

    response = client.get("/api/apps/public?sort=trending&period=week")

    assert response.status_code == 200
    assert [item["title"] for item in response.json()["items"]] == ["Public"]
    assert thread_hops == ["_feed_page"]


def test_an_anonymous_app_read_takes_no_thread_hop_on_sqlite_and_one_on_postgres(
    client: TestClient, db: Database, thread_hops: list[str]
) -> None:
    app_id = make_app(db, register(client).user_id, title="Public")
    thread_hops.clear()

    response = client.get(f"/api/apps/{app_id}")

    assert response.status_code == 200
    assert response.json()["title"] == "Public"
    assert thread_hops == ([] if db.backend == "sqlite" else ["_read_app"])


def test_a_signed_in_feed_request_looks_the_principal_up_off_the_loop(
    client: TestClient, db: Database, thread_hops: list[str]
) -> None:
    owner = register(client)
    make_app(db, owner.user_id, title="Public")
    thread_hops.clear()

    response = client.get("/api/apps/public", headers=bearer(owner.access_token))

    assert response.status_code == 200
    assert thread_hops.count("get_principal") == 1, thread_hops
    assert thread_hops.count("_feed_page") == (0 if db.backend == "sqlite" else 1), thread_hops
    assert not set(thread_hops) & OFF_THE_POOL, thread_hops


def test_the_feed_body_is_the_documented_model(client: TestClient, db: Database) -> None:
    make_app(db, register(client).user_id, title="Public", description=None)
    response = client.get("/api/apps/public")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    FeedOut.model_validate(body)
    assert set(body) == set(FeedOut.model_fields)
    assert set(body["items"][0]) == set(GalleryApp.model_fields)
    documented = client.get("/openapi.json").json()["paths"]["/api/apps/public"]["get"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/FeedOut"}


def test_the_feed_body_is_written_as_the_model_would_write_it() -> None:
    rows = [
        GalleryRow(
            "a1",
            "An app",
            None,
            "🙂",
            "react",
            None,
            "https://x.test/a",
            utcnow(),
            utcnow(),
            3,
            40,
            0,
            1,
            "ann",
            "Ann",
            None,
            True,
            False,
            17,
        ),
        GalleryRow(
            "a2",
            "Anonymous",
            "made by a visitor",
            None,
            None,
            "https://x.test/s.png",
            None,
            datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            utcnow(),
            0,
            0,
            0,
            0,
            None,
            None,
            None,
        ),
    ]
    page = FeedPage(items=rows, next_cursor="c", has_more=True, total=2, total_exact=False)

    written = feed_json(page)

    assert written == model_response(FeedOut.from_page(page)).body
    assert FeedOut.model_validate_json(written) == FeedOut.from_page(page)


def test_a_model_response_is_what_fastapi_would_have_written() -> None:
    page = FeedOut(items=[], next_cursor=None, has_more=False, total=0, total_exact=True)
    response = model_response(page, status_code=201)

    assert response.status_code == 201
    assert response.media_type == "application/json"
    assert bytes(response.body) == page.model_dump_json(by_alias=True).encode()


def test_generated_request_ids_are_distinct_and_well_formed(client: TestClient) -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-1234"})
    assert echoed.headers["X-Request-ID"] == "trace-1234"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_a_profile_sample_goes_to_its_innermost_meaningful_part() -> None:
    lines = [
        "run (uvicorn/server.py:1);RequestMiddleware.__call__ (stich/api/middleware.py:50);"
        "_fetch (stich/gallery/feed.py:9);do_execute (sqlalchemy/engine/default.py:1) 3\n",
        "run (uvicorn/server.py:1);send (uvicorn/protocols/http/httptools_impl.py:5);"
        "write (asyncio/selector_events.py:1) 2\n",
        "run (uvicorn/server.py:1);run_sync (anyio/to_thread.py:5) 1\n",
    ]
    assert summarise(lines) == {
        "database (SQLAlchemy, driver, unit of work)": 3,
        "event loop and socket I/O": 2,
        "thread-pool hand-offs (both sides)": 1,
    }
