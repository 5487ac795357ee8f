"""``stich db ...``: migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from stich.cli.common import state
from stich.db import migrate

app = typer.Typer(help="Database migrations and checks.", no_args_is_help=True)


def _url() -> str:
    return state.settings().database_url


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "heads") -> None:
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
