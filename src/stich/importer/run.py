"""One import, table by table, in dependency order: users (and identities), apps,
stars, views, audit log, secrets; sessions are counted, never copied. Then the rebuild
of maintained state (unless it is a dry run) and the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from stich.config import Settings
from stich.crypto.vault import Vault
from stich.db import Database, migrate
from stich.importer.accounts import import_users
from stich.importer.apps import import_apps
from stich.importer.context import ImportContext, OnRows
from stich.importer.events import import_audit, import_stars
from stich.importer.legacy_secrets import OriginalSecrets
from stich.importer.rebuild import rebuild, verify
from stich.importer.report import ImportReport
from stich.importer.secrets import import_secrets
from stich.importer.source import Source, SourceError
from stich.importer.views import import_views

# Source tables in the order they are imported (the progress bars' order).
TABLES = ("users", "apps", "stars", "app_views", "audit_logs", "user_secrets", "sessions")
BATCH_SLOW_QUERY_MS = 30_000.0
SESSIONS_NOT_IMPORTED = (
    "sessions: not imported (the original stores raw tokens, which Stich never keeps); "
    "users sign in again"
)


STEPS: list[tuple[str, Callable[[Source, ImportContext], None]]] = [
    ("users", import_users),  # and their identities
    ("apps", import_apps),
    ("stars", import_stars),
    ("views", import_views),
    ("audit_logs", import_audit),
    ("secrets", import_secrets),
]


@dataclass(frozen=True)
class ImportOptions:
    source: Path
    dry_run: bool = False
    batch_size: int = 20_000
    secrets_key: str | None = None
    skip_secrets: bool = False
    trust_verified: bool = False


def run_import(
    settings: Settings,
    options: ImportOptions,
    *,
    on_start: Callable[[dict[str, int]], None] = lambda totals: None,
    on_rows: OnRows = lambda table, n: None,
    on_step: Callable[[str], None] = lambda name: None,
) -> ImportReport:
    """Import ``options.source`` into the database of ``settings`` (migrated to head
    first, unless it is a dry run, which writes nothing anywhere)."""
    secrets = OriginalSecrets(options.secrets_key) if options.secrets_key else None
    report = ImportReport(source=str(options.source), dry_run=options.dry_run)
    started = time.perf_counter()
    with Source(options.source) as source:
        totals = {table: source.count(table) for table in TABLES}
        if totals["user_secrets"] and secrets is None and not options.skip_secrets:
            raise SourceError(
                f"the source holds {totals['user_secrets']} secrets: pass --secrets-key "
                "(the original's key) or --skip-secrets"
            )
        vault = None
        if secrets is not None and not options.dry_run:
            vault = Vault.from_settings(settings)
            vault.active_key_id  # noqa: B018 - without a key ring: fail before any write
        if not options.dry_run:
            migrate.upgrade(settings.database_url)
        # Every batch statement takes longer than a request's slow-query threshold; log
        # only those slower than a batch should ever be.
        slow_ms = max(settings.slow_query_ms, BATCH_SLOW_QUERY_MS)
        quiet = settings.model_copy(update={"slow_query_ms": slow_ms})
        db = _target(quiet) if options.dry_run else Database(quiet)
        if db is None:  # nothing to compare with: every row counts as new
            report.messages.append("dry run: the target is not migrated; not compared")
        try:
            ctx = ImportContext(
                settings=settings,
                db=db,
                report=report,
                batch_size=options.batch_size,
                trust_verified=options.trust_verified,
                dry_run=options.dry_run,
                secrets=secrets,
                skip_secrets=options.skip_secrets,
                vault=vault,
                on_rows=on_rows,
            )
            on_start(totals)
            for kind, step in STEPS:
                begun = time.perf_counter()
                step(source, ctx)
                report[kind].seconds = time.perf_counter() - begun
            _sessions(ctx, totals["sessions"])
            if db is not None and not options.dry_run:

                def rebuilt(line: str) -> None:
                    report.messages.append(f"rebuilt {line}")
                    on_step(line)

                report.rebuild_seconds = rebuild(db, rebuilt)
                report.seconds = time.perf_counter() - started
                report.verify_clean = verify(db, settings) == 0
        finally:
            if db is not None:
                db.dispose()
    if options.dry_run:
        report.seconds = time.perf_counter() - started
    return report


def _target(settings: Settings) -> Database | None:
    """A dry run's target, to read what is already there: only one that exists and is
    migrated to the latest revision (opening a SQLite file that is not there would
    create it)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return None
    db = Database(settings)
    try:
        if migrate.current_revisions(db.primary) == migrate.head_revisions():
            return db
    except SQLAlchemyError:  # not reachable, or no such database
        pass
    db.dispose()
    return None


def _sessions(ctx: ImportContext, count: int) -> None:
    sessions = ctx.report["sessions"]
    sessions.read = count
    if count:
        sessions.rejected["not imported: raw tokens; users sign in again"] = count
    ctx.report.messages.append(SESSIONS_NOT_IMPORTED)
    ctx.on_rows("sessions", count)
