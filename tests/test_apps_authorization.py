"""The authorization matrix: every actor x every action x public and private apps.

Apps are owned by a user or by an anonymous visitor; "owner" is whichever owns the app
(the signed-in owner or the anonymous owner). Every cell gets a fresh app, and a refused
call must leave the app exactly as it was. All mismatching cells are reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stich.apps.models import AppStatus, Visibility
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role
from tests.apps_support import Anonymous, Owner, load_app, make_anonymous, make_app, set_columns
from tests.factories import SignedIn, make_user

ACTORS = ("owner", "other_user", "admin", "other_anonymous", "nobody")

# (private app, public app) per actor: the statuses the API must answer.
READ = {
    "owner": (200, 200),
    "other_user": (404, 200),
    "admin": (200, 200),
    "other_anonymous": (404, 200),
    "nobody": (404, 200),
}


def _change(ok: int) -> dict[str, tuple[int, int]]:
    """Changing an app: owner and admin may; others may not (404 if they cannot see it)."""
    return {
        "owner": (ok, ok),
        "other_user": (404, 403),
        "admin": (ok, ok),
        "other_anonymous": (404, 403),
        "nobody": (401, 401),
    }


EXPECTED: dict[str, dict[str, tuple[int, int]]] = {
    "get": READ,
    "update": _change(200),
    "delete": _change(204),
    # A deleted app is hidden from everyone but its owner and admins, public or not.
    "restore": {**_change(200), "other_user": (404, 404), "other_anonymous": (404, 404)},
    "status": _change(200),
    "visibility": _change(200),
    # Anyone with an identity may fork what they can see.
    "fork": {**_change(201), "other_user": (404, 201), "other_anonymous": (404, 201)},
    "transfer": _change(200),
    "forks": READ,
}


@dataclass
class Cast:
    user_owner: SignedIn
    anonymous_owner: Anonymous
    other_user: SignedIn
    admin: SignedIn
    other_anonymous: Anonymous
    recipient: SignedIn

    def headers(self, actor: str, owner: Owner) -> dict[str, str]:
        if actor == "nobody":
            return {}
        principal = owner if actor == "owner" else getattr(self, actor)
        headers: dict[str, str] = principal.headers
        return headers


Call = Callable[[TestClient, str, dict[str, str], Cast], int]


def _call(method: str, suffix: str = "", body: Any = None) -> Call:
    def call(client: TestClient, app_id: str, headers: dict[str, str], cast: Cast) -> int:
        payload = body(cast) if callable(body) else body
        response = client.request(
            method, f"/api/apps/{app_id}{suffix}", json=payload, headers=headers
        )
        status: int = response.status_code
        return status

    return call


ACTIONS: dict[str, Call] = {
    "get": _call("GET"),
    "update": _call("PATCH", body={"title": "changed"}),
    "delete": _call("DELETE"),
    "restore": _call("POST", "/restore"),
    "status": _call("POST", "/status", body={"status": "generating"}),
    "visibility": _call("PUT", "/visibility", body=None),  # body set per app below
    "fork": _call("POST", "/fork"),
    "transfer": _call("POST", "/transfer", body=lambda cast: {"to_user": cast.recipient.username}),
    "forks": _call("GET", "/forks"),
}


def _snapshot(db: Database, app_id: str) -> tuple[Any, ...]:
    app = load_app(db, app_id)
    assert app is not None
    return (app.title, app.status, app.visibility, app.deleted_at, app.user_id, app.fork_count)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_authorization_matrix(client: TestClient, db: Database, action: str) -> None:
    cast = Cast(
        user_owner=make_user(db),
        anonymous_owner=make_anonymous(),
        other_user=make_user(db),
        admin=make_user(db, role=Role.ADMIN),
        other_anonymous=make_anonymous(),
        recipient=make_user(db),
    )
    mismatches: list[str] = []
    for owner in (cast.user_owner, cast.anonymous_owner):
        for visibility in (Visibility.PRIVATE, Visibility.PUBLIC):
            for actor in ACTORS:
                app_id = make_app(db, owner, visibility=visibility, status=AppStatus.READY)
                if action == "restore":
                    set_columns(db, app_id, deleted_at=utcnow())
                before = _snapshot(db, app_id)
                headers = cast.headers(actor, owner)
                if action == "visibility":
                    flipped = "public" if visibility is Visibility.PRIVATE else "private"
                    status = client.put(
                        f"/api/apps/{app_id}/visibility",
                        json={"visibility": flipped},
                        headers=headers,
                    ).status_code
                else:
                    status = ACTIONS[action](client, app_id, headers, cast)
                public = visibility is Visibility.PUBLIC
                expected = EXPECTED[action][actor][1 if public else 0]
                owner_kind = "user" if isinstance(owner, SignedIn) else "anonymous"
                cell = f"{action} {visibility.value} app of {owner_kind} owner by {actor}"
                if status != expected:
                    mismatches.append(f"{cell}: got {status}, expected {expected}")
                elif status >= 400 and _snapshot(db, app_id) != before:
                    mismatches.append(f"{cell}: refused with {status} but the app changed")
    assert not mismatches, "\n".join(mismatches)
