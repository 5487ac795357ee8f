"""``stich seed``: deterministic datasets for benchmarks, and a small demo gallery."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select, text

from stich.apps.models import App
from stich.bench.seed import SEED_PASSWORD, Scale, SeedReport, generate, planned_rows
from stich.cli.common import state
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.crypto.tokens import KeyedHasher
from stich.db import Database, migrate
from stich.errors import Conflict
from stich.maintenance.jobs import JOB_NAMES, run_maintenance, select_jobs

console = Console(stderr=True)
RANKINGS_JOB = "feed_rankings"

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL [default: the global --database-url, else STICH_DATABASE_URL]",
        show_default=False,
    ),
]


def use_database_url(database_url: str | None) -> None:
    """A command's own ``--database-url`` wins over the global one."""
    if database_url:
        state.database_url = database_url
        state.reset()


@dataclass(frozen=True)
class Seeded:
    report: SeedReport
    seconds: float


def count_apps(db: Database) -> int:
    with db.read("fresh") as uow:
        return int(uow.session.scalar(select(func.count()).select_from(App)) or 0)


def seed_database(settings: Settings, db: Database, scale: Scale, random_seed: int) -> Seeded:
    """Write a whole dataset in one transaction, with a progress bar on stderr."""
    # The settings' argon2 cost, so signing in never has to rehash a seeded password.
    password_hash = passwords_for(settings).hash(SEED_PASSWORD)
    hasher = KeyedHasher(settings.server_key_bytes())
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"seeding {scale.value}", total=planned_rows(scale))

        def advance(table: str, rows: int) -> None:
            bar.update(task, advance=rows, description=table)

        with db.write() as uow:
            report = generate(
                uow.session, scale, hasher, password_hash, seed=random_seed, progress=advance
            )
        bar.update(task, completed=planned_rows(scale), description="analyzing")
        analyze(db)
        bar.update(task, description="ranking snapshots")
        refresh_rankings(db, settings)
        bar.update(task, description="done")
    return Seeded(report, time.perf_counter() - started)


def analyze(db: Database) -> None:
    """After a bulk load, as a DBA would: planner statistics and (PostgreSQL) the
    visibility map that index-only scans need. SQLite is left as an application leaves
    it (no ``sqlite_stat1``); the feed pins its indexes there."""
    if db.backend != "postgresql":
        return
    with db.primary.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE)"))


def refresh_rankings(db: Database, settings: Settings) -> None:
    """Rebuild stale snapshots of the windowed feed rankings, as the scheduled
    ``stich maintenance run`` does (one cheap query when they are fresh)."""
    if RANKINGS_JOB in JOB_NAMES:
        run_maintenance(db, settings, jobs=select_jobs([RANKINGS_JOB]))


def describe(scale: Scale, seeded: Seeded) -> str:
    r = seeded.report
    return (
        f"seeded {scale.value} in {seeded.seconds:.1f}s: {r.users} users, {r.apps} apps, "
        f"{r.views} views, {r.stars} stars, {r.favorites} favorites, {r.daily_rows} daily "
        f"rows, {r.breakdown_rows} breakdown rows; every account's password is "
        f"{SEED_PASSWORD!r}"
    )


def seed(
    scale: Annotated[Scale, typer.Option(help="Dataset size")] = Scale.SMALL,
    demo: Annotated[bool, typer.Option("--demo", help="A small friendly gallery")] = False,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 42,
    force: Annotated[bool, typer.Option(help="Seed even if the database has apps")] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Fill the database with realistic users, apps, views and stars (deterministic).

    Migrates the database to the latest revision first, so a fresh file or an empty
    PostgreSQL database is enough.
    """
    use_database_url(database_url)
    if demo:
        scale = Scale.DEMO
    settings = state.settings()
    migrate.upgrade(settings.database_url)
    with state.database() as db:
        existing = count_apps(db)
        if existing and not force:
            if demo:
                console.print(f"the database already has {existing} apps; not seeding the demo")
                return
            raise Conflict(
                f"the database already has {existing} apps; seed an empty database "
                "(or pass --force to add to it)"
            )
        seeded = seed_database(settings, db, scale, random_seed)
    console.print(describe(scale, seeded))
