"""``stich db ...``: migrations, and ``verify`` (recount maintained counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from stich.cli.common import state
from stich.db import Database, migrate

if TYPE_CHECKING:
    from rich.console import Console

    from stich.analytics.recount import Check, Drift

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
        bool, typer.Option("--repair", help="Fix every drift found (recounted again when fixed)")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Keys repaired per transaction")
    ] = 500,
) -> None:
    """Recount stars, favorites, views, forks, daily rollups and feed totals from the event
    rows and report every drift; exit 1 if any remain."""
    from rich.console import Console

    from stich.analytics.recount import verification_checks

    console = Console(stderr=True)
    remaining = 0
    checks = verification_checks(state.settings().view_retention_days)
    with state.database() as db:
        for check in checks:
            drifts = _find_drift(db, check)
            for drift in drifts:
                typer.echo(drift.describe())
            if not drifts:
                typer.echo(f"{check.name}: no drift")
                continue
            if not repair:
                typer.echo(f"{check.name}: {len(drifts)} drifts (run with --repair to fix)")
                remaining += len(drifts)
                continue
            _repair(db, check, drifts, batch_size, console)
            left = _find_drift(db, check)
            typer.echo(f"{check.name}: repaired {len(drifts)} drifts, {len(left)} left")
            remaining += len(left)
    if remaining:
        raise typer.Exit(1)


def _find_drift(db: Database, check: Check) -> list[Drift]:
    with db.write() if check.needs_write else db.read("fresh") as uow:
        return check.find(uow.session)


def _repair(
    db: Database, check: Check, drifts: list[Drift], batch_size: int, console: Console
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from stich.analytics.recount import repair_batches

    columns = (TextColumn(f"repairing {check.name}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(check.name, total=len(drifts))
        for batch in repair_batches(drifts, batch_size):
            with db.write() as uow:
                check.repair(uow.session, batch)
            progress.advance(task, len(batch))
