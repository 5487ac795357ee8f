"""Stars and the audit log of the original (views: :mod:`stich.importer.views`).

Both are streamed in batches: each row is mapped (a :class:`BadValue` rejects it with
its reason) and the batch is inserted if absent; rows not inserted were already there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from stich.audit.models import ActorType
from stich.db.base import utcnow
from stich.importer.context import ImportContext
from stich.importer.source import Row, Source
from stich.importer.values import BadValue, fit, json_object, timestamp
from stich.importer.writer import Column

STAR_COLUMNS: list[Column] = [
    ("user_id", "varchar"), ("app_id", "varchar"), ("created_at", "timestamptz"),
]  # fmt: skip
AUDIT_COLUMNS: list[Column] = [
    ("id", "varchar"), ("actor_type", "varchar"), ("actor_id", "varchar"),
    ("subject_user_id", "varchar"), ("action", "varchar"), ("resource_type", "varchar"),
    ("resource_id", "varchar"), ("old_values", "jsonb"), ("new_values", "jsonb"),
    ("ip_hash", "varchar"), ("user_agent", "varchar"), ("created_at", "timestamptz"),
]  # fmt: skip


def stream_table(
    source: Source,
    ctx: ImportContext,
    kind: str,
    table: str,
    target: str,
    columns: list[Column],
    to_row: Callable[[Row], tuple[Any, ...]],
    foresee: Callable[[list[tuple[Any, ...]]], int],
) -> None:
    """Read the source's ``table`` in batches, map each row (a BadValue rejects it) and
    insert the batch into ``target`` if absent; rows not inserted were already there
    (merged). A dry run asks ``foresee`` how many of a batch's rows would be merged."""
    report = ctx.report[kind]
    for batch in source.rows(table, ctx.batch_size):
        rows: list[tuple[Any, ...]] = []
        for raw in batch:
            report.read += 1
            try:
                rows.append(to_row(raw))
            except (BadValue, ValueError) as exc:
                report.reject(str(exc), raw.get("id"))
        if ctx.dry_run:  # what the insert would skip, from the target and the run so far
            merged = foresee(rows)
            report.merged += merged
            report.imported += len(rows) - merged
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

    seen: set[tuple[str, str]] = set()  # a dry run's stand-in for the primary key

    def foresee(rows: list[tuple[Any, ...]]) -> int:
        known = set(ctx.lookup("stars", "user_id, app_id", "app_id", [r[1] for r in rows]))
        merged = 0
        for row in rows:
            pair = (row[0], row[1])
            merged += pair in seen or pair in known
            seen.add(pair)
        return merged

    stream_table(source, ctx, "stars", "stars", "stars", STAR_COLUMNS, star, foresee)


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

    stream_table(
        source, ctx, "audit_logs", "audit_logs", "audit_logs", AUDIT_COLUMNS, entry,
        lambda rows: len(ctx.present("audit_logs", [r[0] for r in rows])),
    )  # fmt: skip
