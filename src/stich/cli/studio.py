"""`stich studio`: the admin UI on its own server."""

from __future__ import annotations

from typing import Annotated

import typer

from stich.cli.common import state
from stich.cli.startup import check_startup


def studio(
    host: Annotated[str | None, typer.Option(help="Bind address [default: STICH_HOST]")] = None,
    port: Annotated[int, typer.Option(help="Port")] = 8001,
    migrate_first: Annotated[
        bool,
        typer.Option(
            "--migrate", help="Upgrade the database to the latest migration before starting"
        ),
    ] = False,
) -> None:
    """Serve Stich Studio, the admin UI, at http://HOST:PORT/admin (admin accounts only)."""
    import uvicorn

    from stich.studio import create_studio_app

    settings = state.settings()  # fail fast, with one line, on bad settings
    check_startup(settings, migrate_first=migrate_first)
    app = create_studio_app(settings)
    host = host or settings.host
    typer.echo(f"Stich Studio on http://{host}:{port}/admin", err=True)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
