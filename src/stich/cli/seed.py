"""``stich seed``: deterministic datasets for benchmarks, and a small demo gallery."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from argon2 import PasswordHasher
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from stich.apps.models import App
from stich.bench.seed import SEED_PASSWORD, Scale, generate, planned_rows
from stich.cli.common import state
from stich.crypto.tokens import KeyedHasher
from stich.errors import Conflict

console = Console(stderr=True)


def seed(
    scale: Annotated[Scale, typer.Option(help="Dataset size")] = Scale.SMALL,
    demo: Annotated[bool, typer.Option("--demo", help="A small friendly gallery")] = False,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 42,
    force: Annotated[bool, typer.Option(help="Seed even if the database has apps")] = False,
) -> None:
    """Fill the database with realistic users, apps, views and stars (deterministic)."""
    if demo:
        scale = Scale.DEMO
    settings = state.settings()
    with state.database() as db:
        with db.read("fresh") as uow:
            existing = uow.session.scalar(select(func.count()).select_from(App)) or 0
        if existing and not force:
            if demo:
                console.print(f"the database already has {existing} apps; not seeding the demo")
                return
            raise Conflict(
                f"the database already has {existing} apps; seed an empty database "
                "(or pass --force to add to it)"
            )
        password_hash = PasswordHasher().hash(SEED_PASSWORD)
        hasher = KeyedHasher(settings.server_key_bytes())
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]{task.description:<16}"),
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
            bar.update(task, completed=planned_rows(scale), description="done")
    elapsed = time.perf_counter() - started
    console.print(
        f"seeded {scale.value} in {elapsed:.1f}s: {report.users} users, {report.apps} apps, "
        f"{report.views} views, {report.stars} stars, {report.favorites} favorites, "
        f"{report.daily_rows} daily rows; every account's password is {SEED_PASSWORD!r}"
    )
