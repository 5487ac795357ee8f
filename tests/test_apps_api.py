"""Apps over HTTP: create, read, edit, the owner and public views, the status machine,
visibility, archive and feature, forks."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from stich.apps.models import AppStatus, Visibility
from stich.apps.state_machine import TRANSITIONS
from stich.db import Database
from stich.users.models import Role
from tests.apps_support import (
    audit_entries,
    live_fork_count,
    load_app,
    make_anonymous,
    make_app,
    set_columns,
)
from tests.factories import make_user

OWNER_ONLY = {
    "final_prompt",
    "deployment_metadata",
    "anonymous_owner_hash",
    "user_id",
    "deleted_at",
}


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api/apps", json={"title": "Todo", **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


# -- create ------------------------------------------------------------------------------


def test_create_as_user_is_private_draft_with_author(client: TestClient, db: Database) -> None:
    user = make_user(db)
    body = create(
        client,
        user.headers,
        description="Tracks things",
        original_prompt="make a todo app",
        framework="React",
        blueprint={"title": "Todo", "frameworks": ["react"], "pages": [{"name": "home"}]},
    )
    assert body["view"] == "owner"
    assert body["visibility"] == "private"
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["framework"] == "react"
    assert body["user_id"] == user.user_id
    assert body["anonymous_owner_hash"] is None
    assert body["author"]["username"] == user.username
    assert body["author"]["display_name"] == user.username.title()
    assert body["blueprint"]["pages"] == [{"name": "home"}]  # unknown keys are kept
    assert body["star_count"] == body["fork_count"] == 0


def test_create_as_anonymous_owner(client: TestClient, db: Database) -> None:
    visitor = make_anonymous()
    body = create(client, visitor.headers, visibility="public")
    assert body["user_id"] is None
    assert body["anonymous_owner_hash"] == visitor.owner_hash
    assert body["author"] is None
    assert body["visibility"] == "public"


def test_create_needs_credentials(client: TestClient) -> None:
    assert client.post("/api/apps", json={"title": "x"}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "x", "user_id": "someone-else"},
        {"title": "x", "status": "deployed"},
        {"title": "x", "framework": "no spaces allowed"},
        {"title": "x", "blueprint": ["not", "an", "object"]},
        {"title": "x", "blueprint": {"blob": "x" * (64 * 1024)}},
        {"title": "x", "blueprint": {"frameworks": "react"}},
    ],
    ids=[
        "empty-title",
        "long-title",
        "owner-field",
        "status-field",
        "bad-framework",
        "blueprint-list",
        "blueprint-too-big",
        "blueprint-bad-type",
    ],
)
def test_create_refuses_bad_bodies(client: TestClient, db: Database, body: dict[str, Any]) -> None:
    user = make_user(db)
    response = client.post("/api/apps", json=body, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_blueprint_nesting_is_bounded(client: TestClient, db: Database) -> None:
    user = make_user(db)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["child"] = {}
        node = node["child"]
    response = client.post(
        "/api/apps", json={"title": "x", "blueprint": deep}, headers=user.headers
    )
    assert response.status_code == 422
    assert "nested" in response.text


# -- owner and public views ----------------------------------------------------------------


def test_public_view_hides_owner_only_fields(client: TestClient, db: Database) -> None:
    owner, stranger = make_user(db), make_user(db)
    admin = make_user(db, role=Role.ADMIN)
    app_id = make_app(
        db,
        owner,
        final_prompt="secret sauce",
        deployment_metadata={"worker": "w-1"},
        github_repo_url="https://github.com/o/private",
        github_repo_visibility=Visibility.PRIVATE,
    )
    for headers in ({}, stranger.headers, make_anonymous().headers):
        body = client.get(f"/api/apps/{app_id}", headers=headers).json()
        assert body["view"] == "public"
        assert OWNER_ONLY.isdisjoint(body)
        assert "secret sauce" not in str(body)
        assert body["github_repo_url"] is None
        assert body["author"]["id"] == owner.user_id
    for headers in (owner.headers, admin.headers):
        body = client.get(f"/api/apps/{app_id}", headers=headers).json()
        assert body["view"] == "owner"
        assert set(body) >= OWNER_ONLY
        assert body["final_prompt"] == "secret sauce"
        assert body["deployment_metadata"] == {"worker": "w-1"}
        assert body["github_repo_url"] == "https://github.com/o/private"


def test_public_repository_url_is_shown_to_everyone(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    app_id = make_app(
        db,
        owner,
        github_repo_url="https://github.com/o/open",
        github_repo_visibility=Visibility.PUBLIC,
    )
    assert (
        client.get(f"/api/apps/{app_id}").json()["github_repo_url"] == "https://github.com/o/open"
    )


def test_anonymous_owner_sees_the_owner_view(client: TestClient, db: Database) -> None:
    visitor = make_anonymous()
    app_id = make_app(db, visitor, visibility=Visibility.PRIVATE, final_prompt="mine")
    body = client.get(f"/api/apps/{app_id}", headers=visitor.headers).json()
    assert body["view"] == "owner"
    assert body["final_prompt"] == "mine"
    assert client.get(f"/api/apps/{app_id}", headers=make_anonymous().headers).status_code == 404


def test_unknown_app_is_404(client: TestClient) -> None:
    response = client.get("/api/apps/00000000-0000-7000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "app_not_found"


# -- edit ----------------------------------------------------------------------------------


def test_update_changes_only_sent_fields_and_bumps_updated_at(
    client: TestClient, db: Database
) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner, description="before", icon="*")
    before = load_app(db, app_id)
    assert before is not None
    response = client.patch(
        f"/api/apps/{app_id}",
        json={
            "title": "  Renamed  ",
            "description": None,
            "final_prompt": "final",
            "screenshot_url": "https://img.example/s.png",
        },
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "Renamed"
    assert body["description"] is None
    assert body["icon"] == "*"
    assert body["final_prompt"] == "final"
    assert body["screenshot_updated_at"] is not None
    after = load_app(db, app_id)
    assert after is not None
    assert after.updated_at > before.updated_at
    # Sending the same values again still counts as an update.
    again = client.patch(f"/api/apps/{app_id}", json={"title": "Renamed"}, headers=owner.headers)
    assert again.status_code == 200
    latest = load_app(db, app_id)
    assert latest is not None and latest.updated_at > after.updated_at


@pytest.mark.parametrize(
    "body",
    [{}, {"title": None}, {"status": "ready"}, {"screenshot_url": "javascript:alert(1)"}],
    ids=["empty", "null-title", "status", "bad-url"],
)
def test_update_refuses_bad_bodies(client: TestClient, db: Database, body: dict[str, Any]) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner)
    response = client.patch(f"/api/apps/{app_id}", json=body, headers=owner.headers)
    assert response.status_code == 422


# -- status machine ------------------------------------------------------------------------


def _status_body(target: AppStatus) -> dict[str, Any]:
    body: dict[str, Any] = {"status": target.value}
    if target is AppStatus.DEPLOYED:
        body["deployment"] = {
            "url": "https://todo.example.app",
            "status": "live",
            "metadata": {"region": "eu"},
        }
    return body


def test_every_transition_is_allowed_or_refused_with_the_allowed_list(
    client: TestClient, db: Database
) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner, visibility=Visibility.PRIVATE)
    outcomes: dict[tuple[str, str], int] = {}
    for source in AppStatus:
        for target in AppStatus:
            set_columns(db, app_id, status=source)
            response = client.post(
                f"/api/apps/{app_id}/status", json=_status_body(target), headers=owner.headers
            )
            outcomes[(source.value, target.value)] = response.status_code
            stored = load_app(db, app_id)
            assert stored is not None
            if target in TRANSITIONS[source]:
                assert response.status_code == 200, (source, target, response.text)
                assert response.json()["status"] == target.value
                assert stored.status is target
            else:
                assert response.status_code == 409, (source, target, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_transition"
                assert error["details"]["allowed"] == [s.value for s in TRANSITIONS[source]]
                assert error["details"]["from"] == source.value
                assert stored.status is source
    allowed = {pair for pair, status in outcomes.items() if status == 200}
    assert allowed == {
        ("draft", "generating"),
        ("generating", "ready"),
        ("generating", "error"),
        ("error", "generating"),
        ("ready", "deployed"),
        ("ready", "generating"),
        ("deployed", "generating"),
    }


def test_deploying_records_the_deployment(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner)
    response = client.post(
        f"/api/apps/{app_id}/status", json=_status_body(AppStatus.DEPLOYED), headers=owner.headers
    )
    body = response.json()
    assert body["status"] == "deployed"
    assert body["deployment_url"] == "https://todo.example.app"
    assert body["deployment_status"] == "live"
    assert body["deployment_metadata"] == {"region": "eu"}
    assert body["last_deployed_at"] is not None
    public = client.get(f"/api/apps/{app_id}").json()
    assert public["deployment_url"] == "https://todo.example.app"
    assert "deployment_metadata" not in public


@pytest.mark.parametrize(
    "body",
    [
        {"status": "deployed"},
        {"status": "generating", "deployment": {"url": "https://x.example"}},
        {"status": "shipped"},
        {"status": "deployed", "deployment": {"url": "ftp://x.example"}},
    ],
    ids=["deploy-without-deployment", "deployment-without-deploy", "unknown", "bad-url"],
)
def test_status_body_is_validated(client: TestClient, db: Database, body: dict[str, Any]) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner)
    response = client.post(f"/api/apps/{app_id}/status", json=body, headers=owner.headers)
    assert response.status_code == 422


# -- visibility, archive, feature ---------------------------------------------------------


def test_visibility_change_is_audited_with_old_and_new(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    app_id = make_app(db, owner, visibility=Visibility.PRIVATE)
    assert client.get(f"/api/apps/{app_id}").status_code == 404
    response = client.put(
        f"/api/apps/{app_id}/visibility", json={"visibility": "public"}, headers=owner.headers
    )
    assert response.status_code == 200
    assert client.get(f"/api/apps/{app_id}").status_code == 200
    # Setting the same value again changes nothing and records nothing.
    client.put(
        f"/api/apps/{app_id}/visibility", json={"visibility": "public"}, headers=owner.headers
    )
    entries = audit_entries(db, "app.visibility", app_id)
    assert len(entries) == 1
    assert entries[0].old_values == {"visibility": "private"}
    assert entries[0].new_values == {"visibility": "public"}
    assert entries[0].actor_id == owner.user_id
    assert entries[0].subject_user_id == owner.user_id


def test_archive_and_feature_are_admin_only_and_audited(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    admin = make_user(db, role=Role.ADMIN)
    app_id = make_app(db, owner)
    for path, field in (("archived", "archived"), ("featured", "featured")):
        url = f"/api/apps/{app_id}/{path}"
        assert client.put(url, json={field: True}).status_code == 401
        refused = client.put(url, json={field: True}, headers=owner.headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "admin_required"
        assert client.put(url, json={field: True}, headers=admin.headers).status_code == 200
    stored = load_app(db, app_id)
    assert stored is not None and stored.is_archived and stored.is_featured
    [archived] = audit_entries(db, "app.archive", app_id)
    assert (archived.old_values, archived.new_values) == (
        {"is_archived": False},
        {"is_archived": True},
    )
    assert archived.actor_id == admin.user_id
    assert archived.subject_user_id == owner.user_id  # it shows in the owner's trail
    [featured] = audit_entries(db, "app.feature", app_id)
    assert featured.new_values == {"is_featured": True}
    # An archived app leaves public view; its owner still sees it.
    assert client.get(f"/api/apps/{app_id}").status_code == 404
    assert client.get(f"/api/apps/{app_id}", headers=owner.headers).status_code == 200


# -- forks ---------------------------------------------------------------------------------


def test_fork_is_a_private_copy_one_version_on(client: TestClient, db: Database) -> None:
    owner, forker = make_user(db), make_user(db)
    parent_id = make_app(
        db,
        owner,
        title="Original",
        version=3,
        original_prompt="a todo app",
        final_prompt="owner's secret prompt",
        blueprint={"title": "Original", "frameworks": ["react"]},
        framework="react",
        deployment_url="https://orig.example",
    )
    response = client.post(f"/api/apps/{parent_id}/fork", headers=forker.headers)
    assert response.status_code == 201, response.text
    fork = response.json()
    assert fork["parent_app_id"] == parent_id
    assert fork["version"] == 4
    assert fork["visibility"] == "private"
    assert fork["status"] == "draft"
    assert fork["user_id"] == forker.user_id
    assert fork["title"] == "Original"
    assert fork["original_prompt"] == "a todo app"
    assert fork["blueprint"] == {"title": "Original", "frameworks": ["react"]}
    assert fork["final_prompt"] is None  # owner-only: not handed to someone else's fork
    assert fork["deployment_url"] is None
    parent = load_app(db, parent_id)
    assert parent is not None and parent.fork_count == 1
    # The owner's own fork keeps the final prompt, and may be renamed.
    own = client.post(
        f"/api/apps/{parent_id}/fork", json={"title": "Mine v2"}, headers=owner.headers
    ).json()
    assert own["final_prompt"] == "owner's secret prompt"
    assert own["title"] == "Mine v2"
    parent = load_app(db, parent_id)
    assert parent is not None and parent.fork_count == 2 == live_fork_count(db, parent_id)


def test_fork_count_update_leaves_parent_updated_at(client: TestClient, db: Database) -> None:
    owner = make_user(db)
    parent_id = make_app(db, owner)
    before = load_app(db, parent_id)
    client.post(f"/api/apps/{parent_id}/fork", headers=make_anonymous().headers)
    after = load_app(db, parent_id)
    assert before is not None and after is not None
    assert after.fork_count == 1
    assert after.updated_at == before.updated_at


def test_forks_list_shows_only_visible_forks(client: TestClient, db: Database) -> None:
    owner, alice, bob = make_user(db), make_user(db), make_user(db)
    parent_id = make_app(db, owner)
    private_fork = client.post(f"/api/apps/{parent_id}/fork", headers=alice.headers).json()["id"]
    public_fork = client.post(f"/api/apps/{parent_id}/fork", headers=bob.headers).json()["id"]
    set_columns(db, public_fork, visibility=Visibility.PUBLIC, status=AppStatus.READY)

    def fork_ids(headers: dict[str, str]) -> set[str]:
        response = client.get(f"/api/apps/{parent_id}/forks", headers=headers)
        assert response.status_code == 200
        return {item["id"] for item in response.json()["items"]}

    assert fork_ids({}) == {public_fork}
    assert fork_ids(alice.headers) == {public_fork, private_fork}
    assert fork_ids(bob.headers) == {public_fork}
    assert fork_ids(make_user(db, role=Role.ADMIN).headers) == {public_fork, private_fork}
    listed = client.get(f"/api/apps/{parent_id}/forks").json()["items"][0]
    assert listed["author"]["id"] == bob.user_id
    assert OWNER_ONLY.isdisjoint(listed)


def test_deleting_a_parent_keeps_its_forks(client: TestClient, db: Database) -> None:
    owner, forker = make_user(db), make_user(db)
    parent_id = make_app(db, owner)
    fork_id = client.post(f"/api/apps/{parent_id}/fork", headers=forker.headers).json()["id"]
    assert client.delete(f"/api/apps/{parent_id}", headers=owner.headers).status_code == 204
    fork = client.get(f"/api/apps/{fork_id}", headers=forker.headers)
    assert fork.status_code == 200
    assert fork.json()["parent_app_id"] == parent_id
    assert client.get(f"/api/apps/{parent_id}/forks", headers=forker.headers).status_code == 404
