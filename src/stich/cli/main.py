"""The ``stich`` command line."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, NoReturn

import typer

from stich import __version__
from stich.cli import apps as apps_commands
from stich.cli import auth as auth_commands
from stich.cli import bench as bench_command
from stich.cli import db as db_commands
from stich.cli import dev as dev_commands
from stich.cli import importer as import_commands
from stich.cli import mail as mail_commands
from stich.cli import maintenance as maintenance_commands
from stich.cli import secrets as secrets_commands
from stich.cli import seed as seed_command
from stich.cli import serve as serve_command
from stich.cli import studio as studio_command
from stich.cli import users as users_commands
from stich.cli import worker as worker_command
from stich.cli.common import state
from stich.cli.errors import EXPLAINED, CliFailure, explain
from stich.config import SettingsError
from stich.errors import StichError

app = typer.Typer(
    name="stich",
    help="Stich: the data layer of an AI app-generation platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(users_commands.app, name="users")
app.add_typer(auth_commands.app, name="auth")
app.add_typer(apps_commands.app, name="apps")
app.add_typer(secrets_commands.app, name="secrets")
app.add_typer(dev_commands.app, name="dev")
app.add_typer(maintenance_commands.app, name="maintenance")
app.add_typer(mail_commands.app, name="mail")
app.add_typer(import_commands.app, name="import")
app.command("studio")(studio_command.studio)
app.command("seed")(seed_command.seed)
app.command("bench")(bench_command.bench)
app.command("worker")(worker_command.worker)
app.command("serve")(serve_command.serve)


@app.callback()
def main(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL (overrides STICH_DATABASE_URL), e.g. sqlite:///./stich.db",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="STICH_DEBUG", help="Show the traceback of a failure (STICH_DEBUG=1)"
        ),
    ] = False,
) -> None:
    state.database_url = database_url
    state.debug = debug
    state.reset()  # settings are read per invocation (tests run several in one process)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def run() -> None:
    """Console entry point: settings, user, database and file-system errors become one line
    (what is wrong, what to do), never a traceback unless --debug asks for it."""
    try:
        app()
    except SettingsError as exc:
        _fail(exc, str(exc), 2)
    except StichError as exc:
        _fail(exc, exc.message, 1)
    except CliFailure as exc:
        _fail(exc, str(exc), exc.exit_code)
    except EXPLAINED as exc:
        _fail(exc, explain(exc, state.known_database_url()), 1)


def _fail(exc: BaseException, line: str, exit_code: int) -> NoReturn:
    if state.debug:
        traceback.print_exception(exc)
    typer.echo(f"stich: {line}", err=True)
    sys.exit(exit_code)
