"""What a source must hold to be the original's database: its seven tables with the
columns the importer reads (as drizzle-kit emits them; extra tables and columns are
ignored)."""

from __future__ import annotations

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "id", "email", "username", "display_name", "avatar_url", "bio", "provider",
        "provider_id", "email_verified", "password_hash", "failed_login_attempts",
        "locked_until", "password_changed_at", "preferences", "theme", "timezone",
        "is_active", "is_suspended", "created_at", "updated_at", "last_active_at",
        "deleted_at",
    ),
    "apps": (
        "id", "title", "description", "icon_url", "original_prompt", "final_prompt",
        "blueprint", "framework", "user_id", "session_token", "visibility", "status",
        "deployment_url", "deployment_status", "deployment_metadata", "github_repository_url",
        "github_repository_visibility", "parent_app_id", "version", "is_archived",
        "is_featured", "screenshot_url", "screenshot_captured_at", "created_at", "updated_at",
        "last_deployed_at",
    ),
    "stars": ("id", "user_id", "app_id", "starred_at"),
    "app_views": ("id", "app_id", "user_id", "referrer", "device_type", "viewed_at"),
    "audit_logs": (
        "id", "user_id", "action", "resource_type", "resource_id", "old_values", "new_values",
        "ip_address", "user_agent", "timestamp",
    ),
    "sessions": ("id", "user_id"),
    "user_secrets": (
        "id", "user_id", "provider", "secret_type", "display_name", "encrypted_value",
        "key_preview", "is_active", "last_used", "usage_count", "created_at", "updated_at",
        "expires_at",
    ),
}  # fmt: skip


def check_schema(tables: dict[str, set[str]]) -> str:
    """What is missing, as one line (empty when the source is the original's schema)."""
    missing: list[str] = []
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in tables:
            missing.append(f"table {table}")
            continue
        missing.extend(f"column {table}.{c}" for c in columns if c not in tables[table])
    return ", ".join(missing)
