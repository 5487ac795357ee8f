"""`stich users ...`: administrators, suspension, verification, resets and hard deletion."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stich.audit.service import RequestMeta
from stich.auth.email_service import EmailFlows, Purpose
from stich.cli.common import state
from stich.crypto.passwords import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, passwords_for
from stich.crypto.tokens import KeyedHasher
from stich.db.base import utcnow
from stich.errors import Conflict, Invalid
from stich.mail.sender import mailer_for
from stich.users.models import Role
from stich.users.schemas import clean_display_name, normalize_email
from stich.users.service import UserService

app = typer.Typer(
    help="Accounts: administrators, suspension, email verification, password resets and hard "
    "deletion.",
    no_args_is_help=True,
)


def _email(raw: str) -> str:
    try:
        return normalize_email(raw)
    except ValueError:
        raise Invalid(f"{raw!r} is not an email address") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise Invalid(
            f"the password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters"
        )
    return password


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Argument(help="The administrator's email address")],
    display_name: Annotated[
        str, typer.Option("--display-name", help="Name shown in the app")
    ] = "Administrator",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make an existing account an administrator")
    ] = False,
) -> None:
    """Create an administrator account (the password is prompted for, never an argument)."""
    address = _email(email)
    with state.database() as db:
        if promote:
            with db.write() as uow:
                user = UserService(uow.session).promote_to_admin(address, actor=None)
            typer.echo(f"{user.email} is now an administrator")
            return
        with db.read("fresh") as uow:
            if UserService(uow.session).users.email_taken(address):
                raise Conflict(
                    f"{address} already has an account; pass --promote to make it an admin"
                )
        try:
            name = clean_display_name(display_name)[:100]
        except ValueError as exc:
            raise Invalid(f"--display-name {exc}") from None
        password_hash = passwords_for(state.settings()).hash(_password(password_stdin))
        with db.write() as uow:
            user = UserService(uow.session).register(
                email=address,
                display_name=name,
                password_hash=password_hash,
                now=utcnow(),
                role=Role.ADMIN,
            )
    typer.echo(f"created administrator {user.email} ({user.id})")


@app.command()
def suspend(email: Annotated[str, typer.Argument(help="The account's email address")]) -> None:
    """Suspend an account: every request with its sessions or API keys is refused until
    it is unsuspended."""
    with state.database() as db, db.write() as uow:
        user = UserService(uow.session).set_suspended(_email(email), True, actor=None)
    typer.echo(f"suspended {user.email}")


@app.command()
def unsuspend(email: Annotated[str, typer.Argument(help="The account's email address")]) -> None:
    """Lift a suspension; the account's unexpired sessions and keys work again."""
    with state.database() as db, db.write() as uow:
        user = UserService(uow.session).set_suspended(_email(email), False, actor=None)
    typer.echo(f"unsuspended {user.email}")


@app.command()
def purge(
    email: Annotated[
        str,
        typer.Argument(help="The account's email (deleted accounts: deleted+<id>@deleted.invalid)"),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Hard-delete an account and everything it owns (apps, sessions, keys, secrets), and
    take back the stars and favorites it gave. Counters stay true; the audit trail stays."""
    address = _email(email)
    if not yes:
        typer.confirm(f"Permanently delete {address} and everything it owns?", abort=True)
    with state.database() as db, db.write() as uow:
        summary = UserService(uow.session).purge_account(address, actor=None, now=utcnow())
    typer.echo(
        f"purged {address}: {summary['apps_purged']} apps, "
        f"{summary['stars_withdrawn']} stars and {summary['favorites_withdrawn']} favorites "
        "taken back"
    )


@app.command("verify-email")
def verify_email(email: Annotated[str, typer.Argument(help="The account's email address")]) -> None:
    """Mark an account's address verified (the operator vouches for it; audited)."""
    with state.database() as db, db.write() as uow:
        flows = EmailFlows.for_settings(
            uow.session, RequestMeta.system(), _hasher(), state.settings()
        )
        user = flows.mark_verified(_email(email), actor=None)
    typer.echo(f"{user.email} is verified")


@app.command("send-reset")
def send_reset(email: Annotated[str, typer.Argument(help="The account's email address")]) -> None:
    """Send a password reset link to the account's address (no cooldown), and wait until
    it is delivered (or written to the outbox)."""
    address = _email(email)
    settings = state.settings()
    with state.database() as db:
        with db.read("fresh") as uow:
            UserService(uow.session).by_email(address)  # 404 for a mistyped address
        with db.write() as uow:
            flows = EmailFlows.for_settings(uow.session, RequestMeta.system(), _hasher(), settings)
            sent = flows.request_for_address(
                Purpose.RESET_PASSWORD, address, utcnow(), by_operator=True
            )
    if not sent:
        raise Invalid(f"{address} cannot sign in (suspended or deactivated); no link was sent")
    sender = mailer_for(settings)
    sender.submit(flows.outgoing)
    given_up = sender.given_up
    if not sender.flush(timeout=settings.smtp_timeout_seconds * settings.mail_send_attempts + 60):
        raise Invalid("the reset link is still waiting to be delivered; see the log")
    if sender.given_up > given_up:
        raise Invalid("the reset link could not be delivered; see the log")
    typer.echo(f"sent a password reset link to {address} via {sender.transport.describe()}")


def _hasher() -> KeyedHasher:
    return KeyedHasher(state.settings().server_key_bytes())
