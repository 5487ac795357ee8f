"""`stich mail ...`: the outbox that takes the mail when no SMTP server is configured."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Annotated

import typer

from stich.cli.common import state
from stich.errors import NotFound

app = typer.Typer(help="Outgoing mail: the outbox of .eml files.", no_args_is_help=True)


def _messages(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml")) if directory.is_dir() else []


def _read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


@app.command("outbox")
def outbox(
    name: Annotated[
        str | None, typer.Argument(help="Show this message (a file name from the list)")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Show the newest message")] = False,
) -> None:
    """List the messages in the outbox (newest last), or show one in plain text."""
    settings = state.settings()
    directory = settings.outbox_dir()
    files = _messages(directory)
    if name is None and not last:
        if settings.smtp_url is not None:
            typer.echo("STICH_SMTP_URL is set: new mail goes to the SMTP server, not here")
        typer.echo(f"{directory}: {len(files)} message(s)")
        for path in files:
            message = _read(path)
            typer.echo(f"{path.name}  {message['To']}  {message['Subject']}")
        return
    chosen = files[-1] if last and files else directory / (name or "")
    if not chosen.is_file() or chosen.parent != directory or chosen.suffix != ".eml":
        raise NotFound(f"no message {name or '(the outbox is empty)'} in {directory}")
    message = _read(chosen)
    for header in ("Date", "From", "To", "Subject"):
        typer.echo(f"{header}: {message[header]}")
    body = message.get_body(preferencelist=("plain",))
    typer.echo("")
    typer.echo(body.get_content() if body is not None else "(no plain-text part)")
