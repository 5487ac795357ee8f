"""Apps of the original: every field, statuses mapped onto Stich's lifecycle, anonymous
owners, and forks (whatever the row order).

Apps are written with no parent first and linked to their parents once every app is in,
so a fork that comes before its parent in the source keeps it. Counters start at zero;
the rebuild after the import recounts them from the imported stars, views and forks.
"""

from __future__ import annotations

from typing import Any

from stich.apps.models import AppStatus, Visibility
from stich.db.base import utcnow
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

# The original's statuses onto Stich's state machine (docs/import.md says why).
STATUS_MAP: dict[str, AppStatus] = {
    "draft": AppStatus.DRAFT,
    "generating": AppStatus.ERROR,  # interrupted: no generator will finish it after the move
    "completed": AppStatus.READY,
    "ready": AppStatus.READY,
    "deployed": AppStatus.DEPLOYED,
    "error": AppStatus.ERROR,
    "failed": AppStatus.ERROR,
}
APP_COLUMNS: list[Column] = [
    ("id", "varchar"), ("title", "varchar"), ("description", "text"), ("icon", "varchar"),
    ("original_prompt", "text"), ("final_prompt", "text"), ("blueprint", "jsonb"),
    ("framework", "varchar"), ("user_id", "varchar"), ("anonymous_owner_hash", "varchar"),
    ("visibility", "varchar"), ("status", "varchar"), ("deployment_url", "varchar"),
    ("deployment_status", "varchar"), ("deployment_metadata", "jsonb"),
    ("github_repo_url", "varchar"), ("github_repo_visibility", "varchar"),
    ("version", "integer"), ("is_archived", "boolean"), ("is_featured", "boolean"),
    ("screenshot_url", "varchar"), ("screenshot_updated_at", "timestamptz"),
    ("last_deployed_at", "timestamptz"), ("star_count", "integer"), ("view_count", "integer"),
    ("fork_count", "integer"), ("favorite_count", "integer"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
]  # fmt: skip
OWNER_COLUMNS: list[Column] = [("owner_hash", "varchar"), ("created_at", "timestamptz")]


def import_apps(source: Source, ctx: ImportContext) -> None:
    apps = ctx.report["apps"]
    forks: list[tuple[str, str]] = []  # (app id, original parent id)
    for batch in source.rows("apps", ctx.batch_size):
        rows: list[tuple[Any, ...]] = []
        owners: dict[str, Any] = {}
        for raw in batch:
            apps.read += 1
            try:
                row, owner = _app(raw, ctx)
            except (BadValue, ValueError) as exc:
                apps.reject(str(exc), raw.get("id"))
                continue
            rows.append(row)
            if owner is not None:
                owners.setdefault(owner, row[-2])
            if raw["parent_app_id"]:
                forks.append((row[0], str(raw["parent_app_id"])))
        _write_apps(ctx, rows, sorted(owners.items()))
        ctx.on_rows("apps", apps.read)
    _link_forks(ctx, forks)


def _app(raw: Row, ctx: ImportContext) -> tuple[tuple[Any, ...], str | None]:
    """The apps row and its anonymous owner hash, if it has no account."""
    app_id = row_id(raw["id"])
    notes = ctx.report["apps"].notes
    user_id = ctx.user(raw["user_id"])
    owner_hash = None
    if user_id is None:
        if not raw["session_token"]:
            reason = "owner not imported" if raw["user_id"] else "no owner (no user, no token)"
            raise BadValue(reason)
        # The keyed hash Stich stores for an anonymous token: the old token still claims it.
        owner_hash = ctx.hasher.token_hash(str(raw["session_token"]))
        if raw["user_id"]:
            notes["owner not imported, kept by its anonymous token"] += 1
    enc = ctx.encode
    status = STATUS_MAP.get(str(raw["status"] or "").lower())
    if status is None:
        notes[f"status {str(raw['status'])[:20]!r} unknown (draft)"] += 1
        status = AppStatus.DRAFT
    visibility = Visibility.PUBLIC if raw["visibility"] == "public" else Visibility.PRIVATE
    if raw["visibility"] not in ("public", "private"):
        notes["visibility other than public/private (private)"] += 1
    github = raw["github_repository_visibility"]
    created = timestamp(raw["created_at"]) or timestamp(raw["updated_at"]) or utcnow()
    updated = max(timestamp(raw["updated_at"]) or created, created)
    title = " ".join(str(raw["title"] or "").split()) or "Untitled"
    if len(title) > 200:
        notes["title longer than 200 characters (cut)"] += 1
    return (
        app_id,
        fit(title, 200),
        raw["description"],
        url(raw["icon_url"], notes, "icon"),
        raw["original_prompt"],
        raw["final_prompt"],
        enc.js(_json(raw["blueprint"], "blueprint", ctx)),
        fit(raw["framework"], 40),
        user_id,
        owner_hash,
        visibility.value,
        status.value,
        url(raw["deployment_url"], notes, "deployment_url"),
        fit(raw["deployment_status"], 50),
        enc.js(_json(raw["deployment_metadata"], "deployment_metadata", ctx)),
        url(raw["github_repository_url"], notes, "github_repo_url"),
        github if github in ("public", "private") else None,
        max(1, integer(raw["version"], 1)),
        enc.b(flag(raw["is_archived"])),
        enc.b(flag(raw["is_featured"])),
        url(raw["screenshot_url"], notes, "screenshot_url"),
        enc.dt(timestamp(raw["screenshot_captured_at"])),
        enc.dt(timestamp(raw["last_deployed_at"])),
        0,
        0,
        0,
        0,
        enc.dt(created),
        enc.dt(updated),
    ), owner_hash


def _json(value: Any, column: str, ctx: ImportContext) -> dict[str, Any] | None:
    try:
        return json_object(value)
    except BadValue:
        ctx.report["apps"].notes[f"{column} not JSON (dropped)"] += 1
        return None


def _write_apps(
    ctx: ImportContext, rows: list[tuple[Any, ...]], owners: list[tuple[str, Any]]
) -> None:
    apps = ctx.report["apps"]
    if ctx.dry_run:
        present = ctx.present("apps", [r[0] for r in rows])
        apps.merged += len(present)
        apps.imported += len(rows) - len(present)
        ctx.app_ids.update(r[0] for r in rows)
        return
    rejected: dict[int, str] = {}
    with ctx.writer() as w:
        # Known anonymous owners, unclaimed: the claim at sign-up/sign-in marks them.
        w.insert("anonymous_owners", OWNER_COLUMNS, owners, lambda i, r: None)
        inserted = w.insert("apps", APP_COLUMNS, rows, rejected.__setitem__)
    for index, reason in rejected.items():
        apps.reject(reason, rows[index][0])
    apps.imported += inserted
    # Apps have no unique key but the id: a row not inserted was there from an earlier run.
    apps.merged += len(rows) - len(rejected) - inserted
    ctx.app_ids.update(r[0] for i, r in enumerate(rows) if i not in rejected)


def _link_forks(ctx: ImportContext, forks: list[tuple[str, str]]) -> None:
    notes = ctx.report["apps"].notes
    links = []
    for app_id, parent_id in forks:
        if app_id not in ctx.app_ids:
            continue
        if parent_id == app_id or parent_id not in ctx.app_ids:
            notes["parent not imported (kept as an original)"] += 1
            continue
        links.append((app_id, parent_id))
    notes["forks linked to their parent"] += len(links)
    if ctx.dry_run:
        return
    for start in range(0, len(links), ctx.batch_size):
        with ctx.writer() as w:
            w.update(
                "apps",
                ("id", "varchar"),
                ("parent_app_id", "varchar"),
                links[start : start + ctx.batch_size],
            )
