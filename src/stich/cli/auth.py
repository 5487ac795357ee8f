"""`stich auth ...`: housekeeping for credentials."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from stich.auth.repository import AuthRepository
from stich.cli.common import state
from stich.db.base import utcnow

app = typer.Typer(help="Sessions, API keys and sign-in housekeeping.", no_args_is_help=True)
err = Console(stderr=True)


@app.command()
def cleanup(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per commit")] = 1000,
    key_retention_days: Annotated[
        int, typer.Option(min=0, help="Keep revoked/expired API keys this many days")
    ] = 30,
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing")] = False,
) -> None:
    """Purge expired sessions and OAuth states, old revoked API keys and idle sign-in
    throttles. Runs in small batches (short transactions), safe alongside traffic and
    safe to re-run."""
    now = utcnow()
    targets = AuthRepository.purge_targets(
        now,
        key_retention=timedelta(days=key_retention_days),
        throttle_idle=timedelta(days=1),
    )
    with state.database() as db:
        with db.read("fresh") as uow:
            counts = [AuthRepository(uow.session).count(t.model, t.condition) for t in targets]
        if dry_run:
            for target, count in zip(targets, counts, strict=True):
                typer.echo(f"{target.label}: {count} would be deleted")
            return
        purged = [0] * len(targets)
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
        )
        with progress:
            for index, target in enumerate(targets):
                task = progress.add_task(target.label, total=counts[index])
                while True:
                    with db.write() as uow:
                        deleted = AuthRepository(uow.session).purge_batch(
                            target.model, target.condition, batch_size
                        )
                    purged[index] += deleted
                    progress.advance(task, deleted)
                    if deleted < batch_size:
                        break
    for target, count in zip(targets, purged, strict=True):
        typer.echo(f"{target.label}: {count} deleted")
