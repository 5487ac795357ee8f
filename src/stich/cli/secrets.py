"""`stich secrets ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="secrets commands.", no_args_is_help=True)
