"""Stars, views and the audit log of the original.

Views are de-duplicated by the rules of live traffic (``stich.analytics.viewer``): a
viewer's key is the keyed hash Stich computes for a signed-in user, the window is the
``STICH_VIEW_DEDUP_WINDOW_SECONDS`` window holding the view, and the insert skips a
(viewer, app, window) already there, so a viewer counts once per window. The original
kept no client address or user agent, so nothing ties two anonymous view rows to one
visitor: each counts as its own visitor (keyed by its original row id) rather than all
anonymous views of an app collapsing into one. Bots never count, as in live traffic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

from stich.analytics.models import AppView
from stich.analytics.sql import table_of
from stich.analytics.viewer import Viewer, referrer_origin, viewer_key
from stich.audit.models import ActorType
from stich.auth.models import DeviceType
from stich.db.base import utcnow
from stich.importer.context import ImportContext
from stich.importer.source import Row, Source
from stich.importer.values import BadValue, epoch, fit, json_object, timestamp
from stich.importer.writer import Column

STAR_COLUMNS: list[Column] = [("user_id", "varchar"), ("app_id", "varchar")]
STAR_COLUMNS.append(("created_at", "timestamptz"))
_VIEWS = table_of(AppView)
# app_views keeps the viewer's user id only in its older shape (before migration 0009).
_VIEW_USER = "user_id" in _VIEWS.c
VIEW_COLUMNS: list[Column] = [
    ("app_id", "varchar"), ("viewer_key", "varchar"), ("window_start", "bigint"),
    *([("user_id", "varchar")] if _VIEW_USER else []),
    ("referrer_origin", "varchar"), ("device_type", "varchar"), ("viewed_at", "timestamptz"),
]  # fmt: skip
VIEWER_KEY_CHARS: int = getattr(_VIEWS.c.viewer_key.type, "length", None) or 64
AUDIT_COLUMNS: list[Column] = [
    ("id", "varchar"), ("actor_type", "varchar"), ("actor_id", "varchar"),
    ("subject_user_id", "varchar"), ("action", "varchar"), ("resource_type", "varchar"),
    ("resource_id", "varchar"), ("old_values", "jsonb"), ("new_values", "jsonb"),
    ("ip_hash", "varchar"), ("user_agent", "varchar"), ("created_at", "timestamptz"),
]  # fmt: skip
DEVICES = {d.value: d.value for d in DeviceType}


def _stream(
    source: Source,
    ctx: ImportContext,
    kind: str,
    table: str,
    target: str,
    columns: list[Column],
    to_row: Callable[[Row], tuple[Any, ...]],
    order: Callable[[tuple[Any, ...]], Any] | None = None,
) -> None:
    """Read ``table`` in batches, map each row (a BadValue rejects it), insert-if-absent;
    rows not inserted were already there (merged)."""
    report = ctx.report[kind]
    for batch in source.rows(table, ctx.batch_size):
        rows: list[tuple[Any, ...]] = []
        for raw in batch:
            report.read += 1
            try:
                rows.append(to_row(raw))
            except (BadValue, ValueError) as exc:
                report.reject(str(exc), raw.get("id"))
        if order is not None:
            rows.sort(key=order)  # in index order: neighbouring rows share B-tree pages
        if ctx.dry_run:
            report.imported += len(rows)
        elif rows:
            before = report.rejected_total
            with ctx.writer() as w:
                n = w.insert(target, columns, rows, lambda i, reason: report.reject(reason))
            report.imported += n
            report.merged += len(rows) - n - (report.rejected_total - before)
        ctx.on_rows(table, report.read)


def import_stars(source: Source, ctx: ImportContext) -> None:
    enc = ctx.encode

    def star(raw: Row) -> tuple[Any, ...]:
        user_id = ctx.user(raw["user_id"])
        if user_id is None:
            raise BadValue("orphan: user not imported")
        if raw["app_id"] not in ctx.app_ids:
            raise BadValue("orphan: app not imported")
        at = timestamp(raw["starred_at"]) or utcnow()
        return (user_id, raw["app_id"], enc.dt(at))

    _stream(source, ctx, "stars", "stars", "stars", STAR_COLUMNS, star)


def import_views(source: Source, ctx: ImportContext) -> None:
    hasher, enc = ctx.hasher, ctx.encode
    window = ctx.settings.view_dedup_window_seconds
    sqlite = enc.dialect == "sqlite"

    @lru_cache(maxsize=65536)
    def user_key(user_id: str) -> str:
        return viewer_key(hasher, Viewer(user_id=user_id), app_id="", day=utcnow().date())

    origin = lru_cache(maxsize=4096)(referrer_origin)
    # One anonymous visitor per original view row: a keyed BLAKE2b of the row id (keyed
    # with the server key like every viewer hash; a third of HMAC's cost per row).
    secret = hashlib.sha256(b"viewer:imported-visitor\x00" + ctx.settings.server_key_bytes())
    visitor_key = partial(hashlib.blake2b, key=secret.digest(), digest_size=32)

    def view(raw: Row) -> tuple[Any, ...]:
        app_id = raw["app_id"]
        if app_id not in ctx.app_ids:
            raise BadValue("orphan: app not imported")
        device = DEVICES.get(str(raw["device_type"] or "unknown").lower(), "unknown")
        if device == DeviceType.BOT.value:
            raise BadValue("bot (live traffic never counts bots)")
        seconds = epoch(raw["viewed_at"])
        if seconds is None:
            raise BadValue("no viewed_at")
        user_id = ctx.user(raw["user_id"])
        if user_id is not None:
            key = user_key(user_id)
        else:
            key = visitor_key(str(raw["id"]).encode()).hexdigest()[:VIEWER_KEY_CHARS]
        at = datetime.fromtimestamp(seconds, UTC)
        viewed_at = at.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else at
        referrer = origin(raw["referrer"])
        start = seconds - seconds % window
        if _VIEW_USER:
            return (app_id, key, start, user_id, referrer, device, viewed_at)
        return (app_id, key, start, referrer, device, viewed_at)

    # The de-duplication key's order (window, app, viewer), as the live ingest feeds rows.
    _stream(source, ctx, "views", "app_views", "app_views", VIEW_COLUMNS, view, _window_order)


def _window_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (row[2], row[0], row[1])


def import_audit(source: Source, ctx: ImportContext) -> None:
    enc = ctx.encode
    notes = ctx.report["audit_logs"].notes
    ip_hash = lru_cache(maxsize=4096)(ctx.hasher.ip_hash)

    def values(value: Any) -> Any:
        try:
            return enc.js(json_object(value))
        except BadValue:
            notes["values not JSON (kept as text)"] += 1
            return enc.js({"value": str(value)})

    def entry(raw: Row) -> tuple[Any, ...]:
        if not raw["id"] or len(str(raw["id"])) > 36:
            raise BadValue("id is empty or longer than 36 characters")
        # Audit rows outlive accounts: the actor's id is kept even if it was not imported.
        actor = raw["user_id"] and ctx.aliases.get(raw["user_id"], raw["user_id"])
        resource_id = raw["resource_id"]
        if resource_id is not None and len(str(resource_id)) > 36:
            notes["resource id longer than 36 characters (cut)"] += 1
        ip = raw["ip_address"]
        return (
            raw["id"],
            (ActorType.USER if actor else ActorType.SYSTEM).value,
            fit(actor, 36),
            fit(actor, 36),
            fit(raw["action"] or "unknown", 64),
            fit(raw["resource_type"], 32),
            fit(resource_id, 36),
            values(raw["old_values"]),
            values(raw["new_values"]),
            ip_hash(str(ip)) if ip else None,  # never the address itself
            fit(raw["user_agent"], 512),
            enc.dt(timestamp(raw["timestamp"]) or utcnow()),
        )

    _stream(source, ctx, "audit_logs", "audit_logs", "audit_logs", AUDIT_COLUMNS, entry)
