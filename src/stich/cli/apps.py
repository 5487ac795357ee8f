"""`stich apps ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="apps commands.", no_args_is_help=True)
