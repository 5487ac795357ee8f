"""`stich worker`: background work in the foreground (docs/operations.md)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from stich.cli.common import state
from stich.cli.startup import check_startup
from stich.crypto.tokens import KeyedHasher
from stich.worker import Worker


def worker(
    maintenance: Annotated[
        bool, typer.Option(help="Run the maintenance schedule (off where another worker runs it)")
    ] = True,
    migrate_first: Annotated[
        bool,
        typer.Option(
            "--migrate", help="Upgrade the database to the latest migration before starting"
        ),
    ] = False,
) -> None:
    """Count queued views (with STICH_VIEW_QUEUE_URL=redis://...) and run maintenance on
    its schedule, until SIGTERM or Ctrl-C: the batch in hand is committed and acknowledged,
    then it exits 0."""
    settings = state.settings()
    consume = settings.view_queue_url is not None
    if not consume and not maintenance:
        raise typer.BadParameter("nothing to do: no STICH_VIEW_QUEUE_URL and --no-maintenance")
    check_startup(settings, migrate_first=migrate_first)
    with state.database() as db:
        background = Worker(
            db,
            KeyedHasher(settings.server_key_bytes()),
            consume_views=consume,
            schedule_maintenance=maintenance,
        )

        def stop(signum: int, _frame: FrameType | None) -> None:
            typer.echo(f"stich worker: {signal.Signals(signum).name}, finishing", err=True)
            background.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        queue = settings.view_queue_stream if consume else "none (views count in each server)"
        typer.echo(
            f"stich worker: views from {queue}; maintenance {'on' if maintenance else 'off'}",
            err=True,
        )
        background.start()
        background.wait()
        background.stop()
    typer.echo("stich worker: stopped", err=True)
