"""A small source of the original's schema with every awkward case issue 17 lists."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from stich.crypto.legacy_passwords import hash_like_original
from stich.importer.fixtures import create_source, insert_rows
from stich.importer.legacy_secrets import encrypt_like_original

ORIGINAL_KEY = base64.b64encode(b"\x07" * 32).decode()
OTHER_KEY = base64.b64encode(b"\x09" * 32).decode()
PASSWORD = "correct horse battery"
ANON_TOKEN = "c0ffee00-legacy-session-token-42"
SECRET_VALUE = "sk-original-0123456789abcdef"
NOW = int(time.time())
HOUR = 3600
DAY = 86400


def build_awkward_source(path: Path) -> Path:
    conn = create_source(path)
    t0 = NOW - 3 * DAY
    insert_rows(
        conn,
        "users",
        [
            # An email account with the original's password hash; CURRENT_TIMESTAMP text.
            {
                "id": "u-email", "email": " Mail@Example.com ", "username": "Mailer",
                "display_name": "Mail User", "provider": "email", "provider_id": "u-email",
                "email_verified": 1, "preferences": '"{\\"lang\\": \\"de\\"}"',
                "password_hash": hash_like_original(PASSWORD, b"s" * 16),
            },
            # An OAuth account: becomes an identity.
            {
                "id": "u-oauth", "email": "octo@example.com", "username": "octo",
                "display_name": "Octo", "provider": "github", "provider_id": "gh-777",
                "email_verified": 1, "created_at": t0, "updated_at": t0,
            },
            # Duplicate email by case: the later one merges into the earlier one.
            {
                "id": "u-alice", "email": "Alice@Example.com", "username": "alice",
                "display_name": "Alice", "provider": "email", "provider_id": "x",
                "created_at": t0 - DAY, "updated_at": t0,
            },
            {
                "id": "u-alice2", "email": "alice@example.com", "username": "ALICE",
                "display_name": "Alice again", "provider": "email", "provider_id": "y",
                "created_at": t0, "updated_at": t0,
            },
            {
                "id": "u-bad", "email": "not an email", "display_name": "Bad",
                "provider": "email", "provider_id": "z", "created_at": t0,
            },
        ],
    )  # fmt: skip
    app_common = {"original_prompt": "make an app", "created_at": t0, "updated_at": t0}
    insert_rows(
        conn,
        "apps",
        [
            # A fork before its parent.
            {"id": "a-fork", "title": "Fork", "user_id": "u-oauth", "parent_app_id": "a-public",
             "visibility": "public", "status": "completed", **app_common},
            {"id": "a-public", "title": "Public app", "description": "a zephyr gallery",
             "user_id": "u-alice2", "visibility": "public", "status": "deployed",
             "blueprint": json.dumps(json.dumps({"pages": 3})), "framework": "react",
             "deployment_metadata": '{"region": "eu"}', **app_common},
            # Anonymous: owned by the old session token.
            {"id": "a-anon", "title": "Anonymous", "session_token": ANON_TOKEN,
             "visibility": "private", "status": "draft", **app_common},
            {"id": "a-archived", "title": "Archived", "user_id": "u-email",
             "visibility": "public", "status": "completed", "is_archived": 1,
             "original_prompt": "x"},  # timestamps left to CURRENT_TIMESTAMP (text)
            {"id": "a-stuck", "title": "Stuck", "user_id": "u-email",
             "visibility": "team", "status": "generating",
             "deployment_url": "javascript:alert(1)", **app_common},
            {"id": "a-orphan", "title": "Orphan", "user_id": "u-missing", **app_common},
        ],
    )  # fmt: skip
    insert_rows(
        conn,
        "stars",
        [
            {"id": "s1", "user_id": "u-oauth", "app_id": "a-public", "starred_at": t0},
            {"id": "s2", "user_id": "u-alice2", "app_id": "a-public", "starred_at": t0 + 5},
            {"id": "s3", "user_id": "u-alice", "app_id": "a-public"},  # text; merges with s2
            {"id": "s4", "user_id": "u-ghost", "app_id": "a-public", "starred_at": t0},
            {"id": "s5", "user_id": "u-email", "app_id": "a-fork", "starred_at": t0},
        ],
    )
    base = t0 - t0 % 1800 + 60  # early in a de-duplication window
    insert_rows(
        conn,
        "app_views",
        [
            {"id": "v1", "app_id": "a-public", "user_id": "u-oauth", "viewed_at": base,
             "referrer": "https://news.example.com/item?id=1", "device_type": "desktop"},
            {"id": "v2", "app_id": "a-public", "user_id": "u-oauth", "viewed_at": base + 60,
             "referrer": "https://news.example.com/other", "device_type": "desktop"},
            {"id": "v3", "app_id": "a-public", "referrer": "https://Search.example:8443/q",
             "device_type": "mobile", "viewed_at": base + 120},
            {"id": "v4", "app_id": "a-public", "device_type": "tablet"},  # text timestamp
            {"id": "v5", "app_id": "a-public", "device_type": "bot", "viewed_at": base},
            {"id": "v6", "app_id": "a-gone", "viewed_at": base},
            {"id": "v7", "app_id": "a-fork", "user_id": "u-alice2", "viewed_at": base - 200 * DAY},
        ],
    )  # fmt: skip
    insert_rows(
        conn,
        "audit_logs",
        [
            {"id": "l1", "user_id": "u-email", "action": "app.update", "resource_type": "app",
             "resource_id": "a-stuck", "old_values": json.dumps(json.dumps({"title": "Old"})),
             "new_values": '{"title": "Stuck"}', "ip_address": "203.0.113.9",
             "user_agent": "Mozilla/5.0", "timestamp": t0},
            {"id": "l2", "action": "system.boot", "resource_type": "system", "resource_id": "-"},
        ],
    )  # fmt: skip
    insert_rows(
        conn,
        "sessions",
        [
            {"id": "sess1", "user_id": "u-email", "access_token": "raw-access",
             "refresh_token": "raw-refresh", "ip_address": "203.0.113.9",
             "user_agent": "Mozilla/5.0", "expires_at": NOW + DAY},
        ],
    )  # fmt: skip
    insert_rows(
        conn,
        "user_secrets",
        [
            {"id": "k-good", "user_id": "u-email", "provider": "OpenAI", "secret_type": "api_key",
             "display_name": "work key",
             "encrypted_value": encrypt_like_original(ORIGINAL_KEY, SECRET_VALUE),
             "key_preview": "sk-o...cdef", "created_at": t0},
            {"id": "k-wrong", "user_id": "u-email", "provider": "anthropic",
             "secret_type": "api_key", "display_name": "other key",
             "encrypted_value": encrypt_like_original(OTHER_KEY, "sk-never-seen-1234"),
             "created_at": t0},
        ],
    )  # fmt: skip
    conn.commit()
    conn.close()
    return path
