"""`stich maintenance ...`: the periodic housekeeping jobs (docs/operations.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from stich.cli.common import state
from stich.maintenance.jobs import (
    JOB_NAMES,
    JobResult,
    MaintenanceRun,
    run_maintenance,
    select_jobs,
)

app = typer.Typer(help="Periodic housekeeping (run it from cron or a systemd timer).")


@app.command()
def run(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help=f"Run only this job (repeatable): {', '.join(JOB_NAMES)}",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100_000,
            help="Rows per transaction [default: STICH_MAINTENANCE_BATCH_SIZE]",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is due; change nothing")
    ] = False,
) -> None:
    """Purge expired sessions, OAuth states and API keys, apps deleted past retention, and
    audit entries and raw view events past retention; rebuild stale feed ranking
    snapshots. Idempotent; safe alongside traffic."""
    settings = state.settings()
    jobs = select_jobs(only)
    progress_console = Console(stderr=True)
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn())
    with state.database() as db, Progress(*columns, console=progress_console) as progress:
        tasks: dict[str, TaskID] = {}

        def started(result: JobResult) -> None:
            total = 0 if dry_run else result.due
            tasks[result.name] = progress.add_task(result.name, total=total)

        def advanced(result: JobResult) -> None:
            task = tasks[result.name]
            progress.update(task, completed=result.done, total=max(result.due, result.done))

        outcome = run_maintenance(
            db,
            settings,
            jobs=jobs,
            batch_size=batch_size,
            dry_run=dry_run,
            on_start=started,
            on_progress=advanced,
        )
        for result in outcome.results:
            progress.update(tasks[result.name], completed=result.done)
    Console().print(summary_table(outcome))


def summary_table(outcome: MaintenanceRun) -> Table:
    title = "maintenance (dry run: nothing changed)" if outcome.dry_run else "maintenance"
    table = Table(title=title)
    table.add_column("job")
    table.add_column("what")
    table.add_column("due", justify="right")
    table.add_column("done", justify="right")
    table.add_column("batches", justify="right")
    table.add_column("seconds", justify="right")
    for result in outcome.results:
        table.add_row(
            result.name,
            result.description,
            str(result.due),
            result.describe(),
            str(result.batches),
            f"{result.seconds:.2f}",
        )
    return table
