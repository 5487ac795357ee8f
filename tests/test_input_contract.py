"""The input contract (stich.validation, docs/architecture.md "Input contract"), end to end.

Whatever reaches the database is valid on both backends, so a request either is refused
with 422 before anything is written or leaves rows every later read can serve: lone
surrogates and NUL anywhere, at any depth of any JSON field; control characters where one
line is expected; non-finite numbers. The same answer on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stich.db import Database
from tests.factories import SignedIn, make_user

JSON = {"content-type": "application/json"}


def send(client: TestClient, user: SignedIn, method: str, url: str, raw: str) -> Any:
    """Send ``raw`` as the JSON body, as written: json.dumps cannot write a lone surrogate
    or NaN the way a hostile client can (``"\\udc00"``, ``NaN``)."""
    return client.request(method, url, content=raw.encode(), headers={**user.headers, **JSON})


def my_app_count(client: TestClient, user: SignedIn) -> int:
    response = client.get("/api/me/apps", headers=user.headers)
    assert response.status_code == 200
    return int(response.json()["total"])


def new_app(client: TestClient, user: SignedIn, **fields: Any) -> str:
    response = client.post("/api/apps", json={"title": "An app", **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_refused(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


BAD_JSON_VALUES = {
    "lone surrogate": '"\\udc00"',
    "surrogate inside text": '"ok \\ud800 ok"',
    "NUL": '"a\\u0000b"',
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "overflowing literal": "1e999",
}


def _documents(bad: str) -> list[str]:
    """The bad value as a value and as a key, at the top and deep inside lists and objects."""
    nested = f'{{"a": [1, {{"b": {{"c": [{bad}]}}}}]}}'
    documents = [f'{{"k": {bad}}}', nested]
    if bad.startswith('"'):
        documents.append(f'{{"outer": {{{bad}: 1}}}}')
    return documents


@pytest.mark.parametrize("bad", BAD_JSON_VALUES.values(), ids=BAD_JSON_VALUES.keys())
def test_a_blueprint_that_cannot_be_stored_alike_is_refused_and_nothing_written(
    client: TestClient, db: Database, bad: str
) -> None:
    user = make_user(db)
    app_id = new_app(client, user)
    for document in _documents(bad):
        create = send(
            client, user, "POST", "/api/apps", f'{{"title": "t", "blueprint": {document}}}'
        )
        assert_refused(create)
        update = send(client, user, "PATCH", f"/api/apps/{app_id}", f'{{"blueprint": {document}}}')
        assert_refused(update)
    assert my_app_count(client, user) == 1
    assert client.get(f"/api/apps/{app_id}", headers=user.headers).json()["blueprint"] is None
    assert client.get("/api/me/export", headers=user.headers).status_code == 200


@pytest.mark.parametrize("bad", BAD_JSON_VALUES.values(), ids=BAD_JSON_VALUES.keys())
def test_deployment_metadata_and_preferences_follow_the_same_rule(
    client: TestClient, db: Database, bad: str
) -> None:
    user = make_user(db)
    app_id = new_app(client, user)
    for status in ("generating", "ready"):
        assert client.post(
            f"/api/apps/{app_id}/status", json={"status": status}, headers=user.headers
        ).is_success
    for document in _documents(bad):
        deploy = (
            '{"status": "deployed", "deployment": '
            f'{{"url": "https://example.test", "metadata": {document}}}}}'
        )
        assert_refused(send(client, user, "POST", f"/api/apps/{app_id}/status", deploy))
        assert_refused(send(client, user, "PATCH", "/api/me", f'{{"preferences": {document}}}'))
    app = client.get(f"/api/apps/{app_id}", headers=user.headers).json()
    assert app["status"] == "ready" and app["deployment_metadata"] is None
    assert client.get("/api/me", headers=user.headers).json()["preferences"] == {}


def test_a_surrogate_in_a_field_name_is_refused_not_a_server_error(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    assert_refused(send(client, user, "POST", "/api/apps", '{"title": "t", "\\udc00": 1}'))
    assert_refused(send(client, user, "POST", "/api/apps", '{"title": "\\udc00"}'))
    assert my_app_count(client, user) == 0


def test_plain_json_is_kept_as_sent(client: TestClient, db: Database) -> None:
    user = make_user(db)
    blueprint = {"steps": ["a\tb\nc", 1, 2.5, True, None], "emoji": "\U0001f600", "deep": {"x": {}}}
    app_id = new_app(client, user, blueprint=blueprint)
    assert client.get(f"/api/apps/{app_id}", headers=user.headers).json()["blueprint"] == blueprint


READ_URLS_WITH_NUL = [
    "/api/apps/a%00b",
    "/api/apps/a%00b/forks",
    "/api/apps/a%00b/analytics",
    "/api/users/ab%00cd",
    "/api/me/apps?q=abc%00def",
    "/api/apps/public?q=abc%00def",
    "/api/apps/public?framework=re%00act",
    "/api/me/apps?cursor=abc%00def",
    "/api/secrets?cursor=a%00",
]


@pytest.mark.parametrize("url", READ_URLS_WITH_NUL)
def test_nul_in_a_path_or_query_is_a_422_on_both_backends(
    client: TestClient, db: Database, url: str
) -> None:
    user = make_user(db)
    assert_refused(client.get(url, headers=user.headers))
    assert_refused(client.get(url.replace("%00", "%0A"), headers=user.headers))


def test_a_path_id_that_cannot_be_an_id_is_refused(client: TestClient, db: Database) -> None:
    user = make_user(db)
    for app_id in ("caf%C3%A9", "a%20b", "a.b"):
        assert_refused(client.get(f"/api/apps/{app_id}", headers=user.headers))
    assert client.get("/api/apps/no-such-app", headers=user.headers).status_code == 404


ONE_LINE_BAD = ["a\x00b", "a\nb", "a\rb", "a\tb", "a\x1bb", "a\x85b", "a\u2028b", "a\u202eb"]


@pytest.mark.parametrize("text", ONE_LINE_BAD, ids=[repr(t) for t in ONE_LINE_BAD])
def test_one_line_fields_refuse_control_characters(
    client: TestClient, db: Database, text: str
) -> None:
    user = make_user(db)
    app_id = new_app(client, user)
    bodies = [
        ("POST", "/api/apps", {"title": text}),
        ("PATCH", f"/api/apps/{app_id}", {"title": text}),
        ("POST", f"/api/apps/{app_id}/fork", {"title": text}),
        ("PATCH", "/api/me", {"display_name": text}),
        ("POST", "/api/keys", {"name": text}),
        ("POST", "/api/secrets", {"provider": "openai", "display_name": text, "value": "sk-1"}),
    ]
    for method, url, body in bodies:
        assert_refused(client.request(method, url, json=body, headers=user.headers))
    assert my_app_count(client, user) == 1


@pytest.mark.parametrize("value", ["\x00sk-secret-value", "sk-secret-value\x00", "sk-\x07-value"])
def test_a_secret_value_with_a_control_character_is_refused_before_the_preview(
    client: TestClient, db: Database, value: str
) -> None:
    user = make_user(db)
    body = {"provider": "openai", "display_name": "Key", "value": value}
    assert_refused(client.post("/api/secrets", json=body, headers=user.headers))
    assert client.get("/api/secrets", headers=user.headers).json()["items"] == []


def test_multi_line_fields_keep_tabs_and_line_breaks_but_not_nul(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    app_id = new_app(client, user, description="line 1\r\nline 2\tend")
    app = client.get(f"/api/apps/{app_id}", headers=user.headers).json()
    assert app["description"] == "line 1\r\nline 2\tend"
    for field in ("description", "original_prompt"):
        update = {field: "a\x00b"}
        assert_refused(client.patch(f"/api/apps/{app_id}", json=update, headers=user.headers))
    assert_refused(client.patch("/api/me", json={"bio": "a\x0bb"}, headers=user.headers))
    pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    secret = {"provider": "acme", "display_name": "PEM", "value": pem}
    assert client.post("/api/secrets", json=secret, headers=user.headers).status_code == 201


def test_a_body_that_is_not_utf8_is_a_422(client: TestClient, db: Database) -> None:
    user = make_user(db)
    response = client.patch("/api/me", content=b'{"bio": "\xff"}', headers={**user.headers, **JSON})
    assert_refused(response)
    deep = "[" * 100_000 + "]" * 100_000
    assert_refused(
        send(client, user, "POST", "/api/apps", f'{{"title": "t", "blueprint": {deep}}}')
    )


def test_every_string_in_a_request_body_has_a_published_rule(client: TestClient) -> None:
    """New fields inherit the contract: a request string without a pattern (or an enum) in
    the OpenAPI document is a string the contract does not cover. Passwords are the
    documented exception (only hashed, never stored)."""
    document = client.get("/openapi.json").json()
    request_models = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for operation in item.values()
        for content in operation.get("requestBody", {}).get("content", {}).values()
        if "$ref" in content.get("schema", {})
    }
    schemas = document["components"]["schemas"]
    unruled = []
    for name in sorted(request_models):
        for field, schema in schemas[name].get("properties", {}).items():
            for option in schema.get("anyOf", [schema]):
                kind = option.get("type")
                strings = [option] if kind == "string" else []
                if kind == "array" and option.get("items", {}).get("type") == "string":
                    strings.append(option["items"])
                for string in strings:
                    ruled = {"pattern", "enum", "const", "format"} & string.keys()
                    if not ruled and "password" not in field:
                        unruled.append(f"{name}.{field}")
    assert not unruled, json.dumps(unruled)
