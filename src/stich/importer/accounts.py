"""Users of the original, and their OAuth sign-ins as identities.

- Ids are kept as the ids themselves (see docs/import.md): the original's apps, stars,
  views, secrets and audit rows then point at them unchanged, old links to a user keep
  working, and a rerun finds the rows it already wrote by primary key.
- Emails are normalised as Stich normalises them (``normalize_email``). Accounts whose
  emails differ only by case are merged into the one created first: the later one's
  apps, stars, views and secrets follow it, its OAuth sign-in becomes an identity of it.
- A password hash in the original's format becomes a legacy hash
  (``stich.crypto.legacy_passwords``), replaced by argon2id at the first sign-in.
- ``email_verified`` is not trusted for email accounts (the original marked every
  registration verified) unless ``--trust-verified``; an OAuth account keeps its
  provider's word.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stich.crypto import legacy_passwords
from stich.db.base import new_id, utcnow
from stich.importer.context import ImportContext
from stich.importer.source import Row, Source
from stich.importer.values import (
    BadValue,
    fit,
    flag,
    integer,
    json_object,
    row_id,
    timestamp,
    url,
)
from stich.importer.writer import Column
from stich.users.models import AuthProvider, Role, Theme
from stich.users.schemas import (
    check_timezone,
    clean_display_name,
    normalize_email,
    normalize_username,
)

USER_COLUMNS: list[Column] = [
    ("id", "varchar"), ("email", "varchar"), ("username", "varchar"),
    ("display_name", "varchar"), ("avatar_url", "varchar"), ("bio", "text"),
    ("provider", "varchar"), ("provider_id", "varchar"), ("email_verified", "boolean"),
    ("password_hash", "varchar"), ("failed_login_attempts", "integer"),
    ("locked_until", "timestamptz"), ("password_changed_at", "timestamptz"),
    ("preferences", "jsonb"), ("theme", "varchar"), ("timezone", "varchar"),
    ("role", "varchar"), ("is_active", "boolean"), ("is_suspended", "boolean"),
    ("last_active_at", "timestamptz"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"), ("deleted_at", "timestamptz"),
]  # fmt: skip
IDENTITY_COLUMNS: list[Column] = [
    ("id", "varchar"), ("user_id", "varchar"), ("provider", "varchar"),
    ("provider_id", "varchar"), ("email", "varchar"), ("created_at", "timestamptz"),
]  # fmt: skip
OAUTH_PROVIDERS = {p.value: p for p in AuthProvider if p is not AuthProvider.EMAIL}


def find_duplicates(source: Source, ctx: ImportContext) -> None:
    """Map each account whose email differs from another's only by case onto the one
    created first (ties: the smaller id). Reads id, email and created_at only."""
    first: dict[str, tuple[datetime, str]] = {}
    members: dict[str, list[str]] = {}
    far_future = datetime.max.replace(tzinfo=utcnow().tzinfo)
    rows = source.tuples("users", ("id", "email", "created_at"), 50_000)
    for user_id, email, created in (row for batch in rows for row in batch):
        try:
            row_id(user_id)
            key = normalize_email(email or "")
            at = timestamp(created) or far_future
        except (ValueError, BadValue):
            continue  # rejected with its reason in the main pass
        members.setdefault(key, []).append(user_id)
        if key not in first or (at, user_id) < first[key]:
            first[key] = (at, user_id)
    for key, ids in members.items():
        keep = first[key][1]
        ctx.aliases.update({user_id: keep for user_id in ids if user_id != keep})


def import_users(source: Source, ctx: ImportContext) -> None:
    find_duplicates(source, ctx)
    usernames: set[str] = set()
    users = ctx.report["users"]
    # OAuth sign-ins, written once every account is in (a merged duplicate's identity
    # belongs to an account that may come in a later batch). One per OAuth user.
    links: list[tuple[Any, ...]] = []
    for batch in source.rows("users", ctx.batch_size):
        rows: list[tuple[Any, ...]] = []
        for raw in batch:
            users.read += 1
            try:
                row, link = _user(raw, ctx, usernames)
            except (BadValue, ValueError) as exc:
                users.reject(str(exc), raw.get("id"))
                continue
            if link is not None:
                links.append(link)
            if row is not None:
                rows.append(row)
        _write_users(ctx, rows)
        ctx.on_rows("users", users.read)
    for start in range(0, len(links), ctx.batch_size):
        _write_identities(ctx, links[start : start + ctx.batch_size])


def _write_identities(ctx: ImportContext, links: list[tuple[Any, ...]]) -> None:
    identities = ctx.report["identities"]
    identities.read += len(links)
    kept = []
    for link in links:
        if link[1] in ctx.user_ids:
            kept.append(link)
        else:
            identities.reject("account not imported", link[3])
    links = kept
    if ctx.dry_run:
        known = set(ctx.lookup("user_identities", "provider, provider_id", "provider_id",
                               [link[3] for link in links]))  # fmt: skip
        merged = sum(1 for link in links if (link[2], link[3]) in known)
        identities.merged += merged
        identities.imported += len(links) - merged
        return
    before = identities.rejected_total
    with ctx.writer() as w:
        n = w.insert("user_identities", IDENTITY_COLUMNS, links, _rejector(ctx, links))
    identities.imported += n
    identities.merged += len(links) - n - (identities.rejected_total - before)


def _rejector(ctx: ImportContext, rows: list[tuple[Any, ...]]) -> Any:
    return lambda index, reason: ctx.report["identities"].reject(reason, rows[index][3])


def _user(
    raw: Row, ctx: ImportContext, usernames: set[str]
) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """The users row (None for an account merged into another) and its identity, if any."""
    user_id = row_id(raw["id"])
    try:
        email = normalize_email(raw["email"] or "")
    except ValueError as exc:
        raise BadValue("invalid email") from exc
    enc = ctx.encode
    created = timestamp(raw["created_at"]) or timestamp(raw["updated_at"]) or utcnow()
    provider = OAUTH_PROVIDERS.get(str(raw["provider"] or "").lower())
    owner = ctx.aliases.get(user_id, user_id)
    link = None
    if provider is not None and raw["provider_id"]:
        link = (
            new_id(),
            owner,
            provider.value,
            fit(raw["provider_id"], 255),
            email,
            enc.dt(created),
        )
    elif str(raw["provider"] or "email").lower() != "email":
        ctx.report["users"].notes["unknown provider (imported as an email account)"] += 1
    if owner != user_id:
        ctx.report["users"].merged += 1
        ctx.report["users"].notes["duplicate email by case, merged into the earlier account"] += 1
        return None, link
    password_hash = None
    if raw["password_hash"]:
        password_hash = legacy_passwords.from_original(raw["password_hash"])
        if password_hash is None:
            ctx.report["users"].notes["password hash not in the original's format (dropped)"] += 1
    verified = flag(raw["email_verified"])
    if provider is None and not ctx.trust_verified:
        verified = False
    updated = timestamp(raw["updated_at"]) or created
    row = (
        user_id,
        email,
        _username(raw["username"], ctx, usernames),
        _display_name(raw["display_name"], email),
        url(raw["avatar_url"], ctx.report["users"].notes, "avatar_url"),
        raw["bio"],
        (provider or AuthProvider.EMAIL).value,
        fit(raw["provider_id"], 255) if provider is not None else None,
        enc.b(verified),
        password_hash,
        max(0, integer(raw["failed_login_attempts"])),
        enc.dt(timestamp(raw["locked_until"])),
        enc.dt(timestamp(raw["password_changed_at"])),
        enc.js(_preferences(raw["preferences"], ctx)),
        _theme(raw["theme"]),
        _timezone(raw["timezone"], ctx),
        Role.USER.value,
        enc.b(flag(raw["is_active"], True)),
        enc.b(flag(raw["is_suspended"])),
        enc.dt(timestamp(raw["last_active_at"])),
        enc.dt(created),
        enc.dt(max(updated, created)),
        enc.dt(timestamp(raw["deleted_at"])),
    )
    return row, link


def _write_users(ctx: ImportContext, rows: list[tuple[Any, ...]]) -> None:
    users = ctx.report["users"]
    if ctx.dry_run:
        _foresee_users(ctx, rows)
        return
    rejected: dict[int, str] = {}
    with ctx.writer() as w:
        inserted = w.insert("users", USER_COLUMNS, rows, rejected.__setitem__)
    present = ctx.present("users", [r[0] for r in rows])
    for index, reason in rejected.items():
        users.reject(reason, rows[index][0])
    # Absent without an error: another unique key (email, username) is already in Stich.
    for i, row in enumerate(rows):
        if row[0] in present or i in rejected:
            continue
        if row[2] is not None:
            retry = (*row[:2], None, *row[3:])
            with ctx.writer() as w:
                if w.insert("users", USER_COLUMNS, [retry], lambda i, r: None):
                    inserted += 1
                    users.notes["username taken in Stich (cleared)"] += 1
                    present.add(row[0])
                    continue
        users.reject("email already belongs to another Stich account", row[0])
    users.imported += inserted
    # Present but not inserted now: written by an earlier run of the import.
    users.merged += sum(1 for r in rows if r[0] in present) - inserted
    ctx.user_ids.update(present)


def _foresee_users(ctx: ImportContext, rows: list[tuple[Any, ...]]) -> None:
    """A dry run: what the writes would do, from what the target holds now."""
    users = ctx.report["users"]
    present = ctx.present("users", [r[0] for r in rows])
    fresh = [r for r in rows if r[0] not in present]
    emails = ctx.present("users", [r[1] for r in fresh], column="email")
    names = ctx.present("users", [r[2] for r in fresh if r[2] is not None], column="username")
    for row in fresh:
        if row[1] in emails:
            users.reject("email already belongs to another Stich account", row[0])
            continue
        if row[2] in names:
            users.notes["username taken in Stich (cleared)"] += 1
        users.imported += 1
        ctx.user_ids.add(row[0])
    users.merged += len(present)
    ctx.user_ids.update(present)


def _username(value: Any, ctx: ImportContext, seen: set[str]) -> str | None:
    if not value:
        return None
    try:
        username = normalize_username(str(value))
    except ValueError:
        ctx.report["users"].notes["username not valid in Stich (cleared)"] += 1
        return None
    if username in seen:
        ctx.report["users"].notes["username duplicate by case (cleared)"] += 1
        return None
    seen.add(username)
    return username


def _display_name(value: Any, email: str) -> str:
    try:
        return fit(clean_display_name(str(value or "")), 100) or email.split("@", maxsplit=1)[0]
    except ValueError:
        return fit(email.split("@", maxsplit=1)[0], 100) or "user"


def _preferences(value: Any, ctx: ImportContext) -> dict[str, Any]:
    try:
        return json_object(value) or {}
    except BadValue:
        ctx.report["users"].notes["preferences not JSON (reset)"] += 1
        return {}


def _theme(value: Any) -> str:
    return value if value in {t.value for t in Theme} else Theme.SYSTEM.value


def _timezone(value: Any, ctx: ImportContext) -> str:
    try:
        return check_timezone(str(value or "UTC"))
    except ValueError:
        ctx.report["users"].notes["unknown time zone (UTC)"] += 1
        return "UTC"
