"""`stich apps ...` commands."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stich.apps.repository import PurgedBatch
from stich.apps.service import AppService
from stich.audit.service import RequestMeta
from stich.cli.common import state
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Invalid

app = typer.Typer(help="Apps: maintenance of generated apps.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"`` or ``"45s"`` as a timedelta."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise Invalid(
            f"{text!r} is not a duration; use a number and a unit, e.g. 30d, 12h, 90m",
            code="invalid_duration",
        )
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


@app.command()
def purge(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Purge apps deleted longer ago than this (e.g. 30d, 12h) "
            "[default: STICH_APP_RETENTION_DAYS days]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Apps per transaction")] = 500,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing")
    ] = False,
) -> None:
    """Hard-delete soft-deleted apps past retention, with their stars, favorites, views and
    daily stats. Forks live on, detached from the purged parent. One transaction per batch."""
    settings = state.settings()
    age = parse_duration(older_than) if older_than else timedelta(days=settings.app_retention_days)
    cutoff = utcnow() - age
    console = Console(stderr=True)
    with state.database() as db:
        with db.read("fresh") as uow:
            total = AppService(uow.session).count_purgeable(cutoff)
        if dry_run:
            typer.echo(f"{total} apps deleted before {cutoff.isoformat()} would be purged")
            return
        purged = _purge_in_batches(db, cutoff, batch_size, total, console)
    typer.echo(
        f"purged {purged.apps} apps ({purged.stars} stars, {purged.favorites} favorites, "
        f"{purged.views} views, {purged.daily_stats} daily stats); "
        f"{purged.forks_detached} forks detached"
    )


def _purge_in_batches(
    db: Database, cutoff: datetime, batch_size: int, total: int, console: Console
) -> PurgedBatch:
    overall = PurgedBatch()
    columns = (
        TextColumn("purging apps"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("purge", total=total)
        while True:
            with db.write() as uow:
                batch = AppService(uow.session, RequestMeta.system()).purge_batch(
                    cutoff, batch_size
                )
            if batch.apps == 0:
                break
            overall.add(batch)
            progress.update(task, advance=batch.apps, total=max(total, overall.apps))
    return overall
