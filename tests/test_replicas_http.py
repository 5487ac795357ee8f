"""Read-your-writes over HTTP with lagging streaming replicas (real cluster, no mocks)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stich.api.app import create_app
from stich.db import Database
from stich.db.local_cluster import LocalCluster
from stich.db.routing import Bookmark, sqlite_bookmark
from tests.factories import make_user
from tests.replica_cluster import replica_settings, restore

pytestmark = pytest.mark.db
ROUNDS = 200


@dataclass
class LaggingApi:
    client: TestClient
    db: Database


@pytest.fixture
def lagging_api(replica_cluster: LocalCluster, tmp_path: Path) -> Iterator[LaggingApi]:
    """Replicas apply each commit 15 ms late; a bookmarked read waits up to 50 ms."""
    for name in replica_cluster.replica_names:
        replica_cluster.set_replica_setting(name, "recovery_min_apply_delay", "15ms")
    settings = replica_settings(replica_cluster, tmp_path, replica_bookmark_wait_ms=50)
    db = Database(settings)
    try:
        with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
            yield LaggingApi(client, db)
    finally:
        db.dispose()
        restore(replica_cluster)


def test_every_created_app_is_in_my_list_when_the_bookmark_comes_back(
    lagging_api: LaggingApi,
) -> None:
    client = lagging_api.client
    user = make_user(lagging_api.db)
    served_by: Counter[str] = Counter()
    missing = []
    for round_number in range(ROUNDS):
        created = client.post(
            "/api/apps", json={"title": f"app {round_number}"}, headers=user.headers
        )
        assert created.status_code == 201, created.text
        bookmark = created.headers["X-Stich-Bookmark"]
        listed = client.get(
            "/api/me/apps",
            params={"limit": 5},
            headers={**user.headers, "X-Stich-Bookmark": bookmark},
        )
        assert listed.status_code == 200, listed.text
        if created.json()["id"] not in {item["id"] for item in listed.json()["items"]}:
            missing.append(round_number)
        served_by[listed.headers["X-Stich-Served-By"]] += 1
        # The response's bookmark never goes back behind the one sent.
        returned = Bookmark.parse(listed.headers["X-Stich-Bookmark"])
        assert returned >= Bookmark.parse(bookmark)
    assert missing == []
    assert set(served_by) <= {"primary", "replica-1", "replica-2"}
    print(f"bookmarked lists served by: {dict(served_by)}")


def test_malformed_or_foreign_bookmarks_are_a_400(lagging_api: LaggingApi) -> None:
    user = make_user(lagging_api.db)
    for garbage in ["nonsense", "MTpwZzp6eno", "x" * 200, sqlite_bookmark().encode()]:
        response = lagging_api.client.get(
            "/api/me/apps", headers={**user.headers, "X-Stich-Bookmark": garbage}
        )
        assert response.status_code == 400, garbage
        assert response.json()["error"]["code"] == "invalid_bookmark"
