"""Credential fields inside JSON values (audit old/new values, deployment metadata,
imported rows) are left out wherever the Studio shows a value, in any case style."""

from __future__ import annotations

import pytest

from stich.studio.audit_diff import audit_diff
from stich.studio.redaction import is_sensitive_key, scrub_credentials
from stich.studio.view_base import compact_json, pretty_json


@pytest.mark.parametrize(
    "key",
    [
        "password_hash",
        "passwordHash",
        "PasswordHash",
        "encryptedValue",
        "encrypted_value",
        "sessionToken",
        "access_token",
        "refreshToken",
        "token",
        "api-key",
        "apiKey",
        "secret",
        "clientSecret",
        "ciphertext",
        "preview",
        "viewer_key",
        "Authorization",
    ],
)
def test_credential_keys_are_recognised_in_any_style(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["title", "status", "visibility", "display_name", "tokenizer"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_sensitive_key(key)


def test_nested_credentials_are_scrubbed_everywhere_a_value_is_shown() -> None:
    value = {
        "title": "Demo",
        "deploy": {"url": "https://x.example", "apiKey": "sk-live-SECRET1"},
        "history": [{"passwordHash": "pbkdf2$SECRET2", "at": 1}],
    }
    assert scrub_credentials(value) == {
        "title": "Demo",
        "deploy": {"url": "https://x.example"},
        "history": [{"at": 1}],
    }
    for shown in (str(pretty_json(value)), str(compact_json(value))):
        assert "SECRET" not in shown and "Demo" in shown
    diff = audit_diff({"sessionToken": "SECRET3", "status": "a"}, {"status": "b"})
    assert diff.hidden == 1
    assert [(c.field, c.old, c.new) for c in diff.changes] == [("status", "a", "b")]


def test_audit_values_of_any_json_type_render_as_a_diff() -> None:
    diff = audit_diff([1, 2], "text")
    assert [(c.field, c.old, c.new) for c in diff.changes] == [("(value)", "[1, 2]", "text")]
    assert audit_diff(None, 7).changes[0].new == "7"
    # A secret in a list value is still scrubbed.
    assert "SECRET" not in str(audit_diff([{"apiKey": "SECRET"}], None).changes)
