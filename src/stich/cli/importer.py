"""``stich import original SOURCE``: bring the original system's database into Stich
(docs/import.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stich.cli.common import state
from stich.cli.errors import CliFailure

app = typer.Typer(help="Import data from another system.", no_args_is_help=True)


@app.command()
def original(
    source: Annotated[
        Path, typer.Argument(help="The original's SQLite file, or a .sql dump of one")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and check every row; write nothing")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=100, max=100_000, help="Rows per transaction")
    ] = 20_000,
    secrets_key: Annotated[
        str | None,
        typer.Option(
            "--secrets-key",
            envvar="STICH_IMPORT_SECRETS_KEY",
            help="The original's AES-256-GCM key (base64) to re-encrypt users' secrets",
            show_default=False,
        ),
    ] = None,
    skip_secrets: Annotated[
        bool, typer.Option("--skip-secrets", help="Do not import users' secrets (counted)")
    ] = False,
    trust_verified: Annotated[
        bool,
        typer.Option(
            "--trust-verified", help="Keep the original's email_verified for email accounts"
        ),
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the report as JSON to this file")
    ] = None,
) -> None:
    """Import users, apps, stars, views, audit log and secrets of the original (Drizzle
    on SQLite / D1) into the database, then rebuild counters, rollups and rankings.
    Rerunning it skips what is already there."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from stich.importer.legacy_secrets import BadSecretsKey
    from stich.importer.run import ImportOptions, run_import
    from stich.importer.source import SourceError

    if secrets_key and skip_secrets:
        raise CliFailure("--secrets-key and --skip-secrets exclude each other", 2)
    options = ImportOptions(
        source=source,
        dry_run=dry_run,
        batch_size=batch_size,
        secrets_key=secrets_key,
        skip_secrets=skip_secrets,
        trust_verified=trust_verified,
    )
    columns = (TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tasks: dict[str, TaskID] = {}

        def started(totals: dict[str, int]) -> None:
            for table, total in totals.items():
                tasks[table] = progress.add_task(table, total=total)

        def advanced(table: str, done: int) -> None:
            progress.update(tasks[table], completed=done)

        def step(name: str) -> None:
            progress.console.print(f"rebuilt {name}")

        try:
            outcome = run_import(
                state.settings(), options, on_start=started, on_rows=advanced, on_step=step
            )
        except (SourceError, BadSecretsKey) as exc:
            raise CliFailure(str(exc), 2) from exc
    for line in outcome.lines():
        if not line.startswith("rebuilt "):  # printed as the rebuild went
            typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was written")
    else:
        rate = outcome.rows_read / outcome.seconds if outcome.seconds else 0
        typer.echo(
            f"{outcome.rows_read} rows in {outcome.seconds:.1f} s ({rate:,.0f} rows/s, "
            f"rebuild {outcome.rebuild_seconds:.1f} s); "
            f"stich db verify: {'clean' if outcome.verify_clean else 'DRIFT'}"
        )
    if report is not None:
        outcome.write_json(report)
    if outcome.verify_clean is False:
        raise typer.Exit(1)


@app.command("generate-source")
def generate_source(
    out: Annotated[Path, typer.Argument(help="The SQLite file to write (must not exist)")],
    users: Annotated[int, typer.Option(min=1)] = 20_000,
    apps: Annotated[int, typer.Option(min=1)] = 100_000,
    stars: Annotated[int, typer.Option(min=0)] = 300_000,
    views: Annotated[int, typer.Option(min=0)] = 2_000_000,
    secrets_key: Annotated[
        str,
        typer.Option("--secrets-key", help="AES-256 key (base64) the generated secrets use"),
    ] = "B" * 43 + "=",
) -> None:
    """Write a database of the original's schema at a given size, with the original's
    quirks, to measure `stich import original` (docs/benchmarks.md)."""
    from stich.importer.generate import Size, generate

    if out.exists():
        raise CliFailure(f"{out} exists; give a new file", 2)
    if stars > users * apps:
        raise CliFailure("more stars than (user, app) pairs", 2)
    generate(out, Size(users=users, apps=apps, stars=stars, views=views), secrets_key=secrets_key)
    typer.echo(f"wrote {out}: {users} users, {apps} apps, {stars} stars, {views} views")
