"""One definition of a search word on both backends: a run of letters and digits.

PostgreSQL's text-search parser used to keep host names, e-mail addresses, versions,
paths and hyphenated words whole, so their parts were found on SQLite only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stich.db import Database
from tests.factories import make_user
from tests.gallery_support import make_app

TEXTS = {
    "host": "zephyr.io",
    "email": "Write to x@example.com",
    "version": "Release v2.0",
    "path": "See docs/setup_guide.md",
    "hyphen": "state-of-the-art <b>bold</b> &amp; 1.5e3",
}
# (query, the apps it finds), identical on both backends.
FINDS = [
    ("io", {"host"}),
    ("zephyr io", {"host"}),
    ("zephyr.io", {"host"}),
    ("example", {"email"}),
    ("com", {"email"}),
    ("x example com", {"email"}),
    ("0", {"version"}),
    ("v2", {"version"}),
    ("v2.0", {"version"}),
    ("setup", {"path"}),
    ("guide md", {"path"}),
    ("docs", {"path"}),
    ("art", {"hyphen"}),
    ("state of", {"hyphen"}),
    ("bold", {"hyphen"}),
    ("amp", {"hyphen"}),
    ("5e3", {"hyphen"}),
    ("1", {"hyphen"}),
    ("zephyrio", set()),
    ("xexample", set()),
]


@pytest.fixture
def apps(db: Database) -> dict[str, str]:
    user = make_user(db)
    ids = {}
    for name, title in TEXTS.items():
        # In the title of one half and the description of the other: both are searched.
        if name in ("host", "version", "hyphen"):
            ids[name] = make_app(db, user.user_id, title=title, description=None)
        else:
            ids[name] = make_app(db, user.user_id, title="An app", description=title)
    return ids


def test_a_word_is_a_run_of_letters_and_digits(client: TestClient, apps: dict[str, str]) -> None:
    wrong = {}
    for query, expected in FINDS:
        response = client.get("/api/apps/public", params={"q": query})
        assert response.status_code == 200, response.text
        found = {name for name, app_id in apps.items() if app_id in _ids(response.json())}
        if found != expected:
            wrong[query] = found
    assert wrong == {}


def _ids(body: dict[str, list[dict[str, str]]]) -> set[str]:
    return {item["id"] for item in body["items"]}


def test_a_framework_filter_still_matches_its_framework_only(
    client: TestClient, db: Database, apps: dict[str, str]
) -> None:
    """The framework's own lexeme is untouched by the word rule ("next.js" is one
    framework, not the words "next" and "js")."""
    user = make_user(db)
    nextjs = make_app(db, user.user_id, title="zephyr.io mirror", framework="next.js")
    response = client.get("/api/apps/public", params={"q": "io", "framework": "next.js"})
    assert [item["id"] for item in response.json()["items"]] == [nextjs]
    response = client.get("/api/apps/public", params={"q": "io", "framework": "react"})
    assert [item["id"] for item in response.json()["items"]] == [apps["host"]]
