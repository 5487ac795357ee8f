"""``stich serve``: the HTTP API under uvicorn, in one or several processes.

uvicorn picks uvloop and httptools (dependencies) by itself: about a third less server
CPU than asyncio and h11 on a small request (docs/benchmarks.md, HTTP).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from stich.cli.common import state
from stich.cli.startup import check_startup

# Imported by each server process: every process builds its own app and Database (pools),
# never one inherited over fork.
APP_FACTORY = "stich.api.app:create_app"


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: STICH_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: STICH_PORT]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes on the port [default: STICH_WEB_CONCURRENCY, 1]",
            show_default=False,
        ),
    ] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
    migrate_first: Annotated[
        bool,
        typer.Option(
            "--migrate", help="Upgrade the database to the latest migration before starting"
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = state.settings()  # fail fast, with one line, on bad settings
    if state.database_url:
        os.environ["STICH_DATABASE_URL"] = state.database_url  # each process reads the env
    processes = workers or settings.web_concurrency
    if reload and processes > 1:
        raise typer.BadParameter("--reload runs one process; drop --workers", param_hint="--reload")
    check_startup(settings, migrate_first=migrate_first)  # once, before any process starts
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=processes if processes > 1 else None,
        reload=reload,
        log_level=settings.log_level.lower(),
        access_log=False,  # our middleware writes a structured access log
    )
