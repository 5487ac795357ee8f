"""``stich db ...``: migrations, and ``verify`` (recount maintained counts)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from stich.cli.common import state
from stich.db import Database, migrate

if TYPE_CHECKING:
    from stich.analytics.history import ViewHistory
    from stich.analytics.recount import Check

app = typer.Typer(help="Database migrations and checks.", no_args_is_help=True)


def _url() -> str:
    return state.settings().database_url


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database up to REVISION (default: the latest)."""
    migrate.upgrade(_url(), revision)
    typer.echo(f"database at {revision}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base")]) -> None:
    """Migrate the database down to REVISION."""
    migrate.downgrade(_url(), revision)
    typer.echo(f"database at {revision}")


@app.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does")],
    autogenerate: Annotated[
        bool, typer.Option(help="Compare the models with the database to fill it in")
    ] = False,
) -> None:
    """Create a new migration file."""
    migrate.revision(_url(), message, autogenerate=autogenerate)


@app.command()
def current() -> None:
    """Print the revision the database is at."""
    from stich.db.engine import create_engine_for

    engine = create_engine_for(_url())
    try:
        revisions = migrate.current_revisions(engine)
    finally:
        engine.dispose()
    heads = migrate.head_revisions()
    for rev in sorted(revisions) or ["(empty database)"]:
        typer.echo(f"{rev}{' (head)' if rev in heads else ''}")


@app.command()
def history() -> None:
    """List the migrations."""
    migrate.history(_url())


@app.command()
def check() -> None:
    """Exit 1 if the models and the migrations disagree (a migration is missing)."""
    drift = migrate.check(_url())
    if drift:
        typer.echo(f"drift between models and migrations: {drift}", err=True)
        typer.echo("run `stich db revision --autogenerate -m '...'` and review it", err=True)
        raise typer.Exit(1)
    typer.echo("models and migrations agree")


@app.command()
def verify(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Rewrite what drifted, one statement per table, recounted as it writes"
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every drift, not only the counts")
    ] = False,
) -> None:
    """Recount stars, favorites, views, forks, daily viewers, daily rollups, breakdowns and
    feed totals from the event rows and report the drift per check (every drift with
    --verbose); exit 1 if drift is found and not repaired."""
    from stich.analytics.history import view_history, views_before
    from stich.analytics.recount import verification_checks

    retention = state.settings().view_retention_days
    remaining = 0
    with state.database() as db:
        with db.read("fresh") as uow:
            history = view_history(uow.session, retention)
            older = views_before(uow.session, history.exact_from)
        typer.echo(_history_line(history, retention, older))
        for check in verification_checks(history):
            if repair and not verbose:
                # The repair finds what drifted itself (one pass): no separate look first.
                _repair(db, check, found=None)
                continue
            found = _tally(db, check, verbose=verbose)
            if not found.drifts:
                typer.echo(f"{check.name}: no drift")
            elif not repair:
                typer.echo(f"{check.name}: {found.summary()}; run with --repair to fix")
                remaining += found.drifts
            else:
                _repair(db, check, found=found)
    if remaining:
        raise typer.Exit(1)


def _history_line(history: ViewHistory, retention: int, older: int) -> str:
    if history.exact_from == date.min:
        return (
            "view history: no raw view was ever purged, every day's rollups are recounted "
            f"exactly [STICH_VIEW_RETENTION_DAYS={retention}]"
        )
    line = (
        f"view history: the view purge has reached {history.exact_from}: rollups from then on "
        "are recounted exactly; earlier days keep their rollups (raised to the raw views "
        f"still there, never lowered) [STICH_VIEW_RETENTION_DAYS={retention}]"
    )
    if older:
        line += (
            f"; {older:,} raw views are older than that (counted; `stich maintenance run` "
            "rolls them up, then purges them)"
        )
    return line


@dataclass
class _Tally:
    drifts: int = 0
    rows: int = 0
    fields: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        per_field = ", ".join(f"{name} {n:,}" for name, n in sorted(self.fields.items()))
        return f"{self.drifts:,} drifts in {self.rows:,} rows ({per_field})"


def _tally(db: Database, check: Check, *, verbose: bool) -> _Tally:
    tally, last_key = _Tally(), None
    with db.write() if check.needs_write else db.read("fresh") as uow:
        for drift in check.drifts(uow.session, ordered=verbose):
            tally.drifts += 1
            tally.fields[drift.field] += 1
            if drift.key != last_key:  # a row's drifted fields come one after another
                tally.rows, last_key = tally.rows + 1, drift.key
            if verbose:
                typer.echo(drift.describe())
    return tally


def _repair(db: Database, check: Check, *, found: _Tally | None) -> None:
    """Repair and say what was rewritten. Each part's repair is the recount, compared and
    written in one transaction, so nothing is left to look for again (verify again to
    see it)."""
    typer.echo(f"repairing {check.name} ...", err=True)
    started, rows = time.perf_counter(), 0
    with db.read("fresh") as uow:
        parts = check.parts(uow.session)
    for part in parts:  # one short write transaction each
        with db.write() as uow:
            rows += part.repair(uow.session)
    seconds = time.perf_counter() - started
    if found is None and not rows:
        typer.echo(f"{check.name}: no drift")
        return
    what = f"{found.summary()}; " if found is not None else ""
    typer.echo(f"{check.name}: {what}repaired {rows:,} rows in {seconds:.1f} s")
