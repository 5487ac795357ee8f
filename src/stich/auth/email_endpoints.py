"""HTTP endpoints for email verification, password reset and email change (under /api).

Mail is handed to the sender only after the unit of work has committed, and the handover
never blocks or fails the request (see :mod:`stich.mail.sender`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from stich.api.context import RequestContext
from stich.api.deps import Context, get_settings
from stich.auth.dependencies import SessionUser
from stich.auth.email_schemas import (
    AcceptedOut,
    AddressIn,
    ChangeTokenIn,
    EmailChangeIn,
    EmailStateOut,
    PasswordResetIn,
    PasswordResetOut,
    VerifyTokenIn,
)
from stich.auth.email_service import EmailFlows, Purpose, token_looks_right
from stich.auth.endpoints import errors
from stich.auth.outcomes import password_lock
from stich.auth.throttle import MailRequestThrottle, mail_request_throttle
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.db.base import utcnow
from stich.errors import Unauthorized
from stich.mail.sender import send_after_commit
from stich.users.endpoints import refuse_wrong_password
from stich.users.models import User
from stich.users.service import UserService

router = APIRouter()

SettingsDep = Annotated[Settings, Depends(get_settings)]
MailThrottle = Annotated[MailRequestThrottle, Depends(mail_request_throttle)]


def email_flows(ctx: RequestContext, settings: Settings, session: Session) -> EmailFlows:
    return EmailFlows.for_settings(session, ctx.meta, ctx.hasher, settings)


def _state(user: User) -> EmailStateOut:
    return EmailStateOut(user_id=user.id, email=user.email, email_verified=user.email_verified)


def _request(purpose: Purpose, body: AddressIn, ctx: RequestContext, settings: Settings) -> None:
    with ctx.write() as uow:
        flows = email_flows(ctx, settings, uow.session)
        flows.request_for_address(purpose, body.email, utcnow(), by_operator=False)
    send_after_commit(settings, flows.outgoing)


@router.post(
    "/auth/email/verify/request",
    status_code=202,
    response_model=AcceptedOut,
    responses=errors(422, 429),
    tags=["auth"],
)
def request_verification(
    body: AddressIn, ctx: Context, settings: SettingsDep, throttle: MailThrottle
) -> AcceptedOut:
    """Send a new verification link to the address, if an unverified account has it.

    The answer is the same for every address. One mail per address per
    ``STICH_EMAIL_COOLDOWN_SECONDS``; a new link replaces the older one.
    """
    throttle.take(ctx.client_ip)
    _request(Purpose.VERIFY_EMAIL, body, ctx, settings)
    return AcceptedOut()


@router.post(
    "/auth/email/verify/confirm",
    response_model=EmailStateOut,
    responses=errors(401, 422),
    tags=["auth"],
)
def confirm_verification(body: VerifyTokenIn, ctx: Context, settings: SettingsDep) -> EmailStateOut:
    """Mark the address verified. Each link works once (401 ``email_token_used`` after),
    until it expires (``email_token_expired``); anything else is ``email_token_invalid``."""
    with ctx.write() as uow:
        return _state(
            email_flows(ctx, settings, uow.session).confirm_verification(body.token, utcnow())
        )


@router.post(
    "/auth/password/forgot",
    status_code=202,
    response_model=AcceptedOut,
    responses=errors(422, 429),
    tags=["auth"],
)
def forgot_password(
    body: AddressIn, ctx: Context, settings: SettingsDep, throttle: MailThrottle
) -> AcceptedOut:
    """Send a password reset link to the address, if an account has it.

    Always 202 with the same body: known and unknown addresses do the same work here, and
    the mail is built and sent later, off the request.
    """
    throttle.take(ctx.client_ip)
    _request(Purpose.RESET_PASSWORD, body, ctx, settings)
    return AcceptedOut()


@router.post(
    "/auth/password/reset",
    response_model=PasswordResetOut,
    responses=errors(401, 422),
    tags=["auth"],
)
def reset_password(body: PasswordResetIn, ctx: Context, settings: SettingsDep) -> PasswordResetOut:
    """Set a new password with a reset link. Ends any lockout, marks the address verified,
    and revokes every session and API key of the account (they may be the intruder's)."""
    if not token_looks_right(Purpose.RESET_PASSWORD, body.token):
        raise Unauthorized("this link is not valid", code="email_token_invalid")
    new_hash = passwords_for(settings).hash(body.new_password)  # outside the transaction
    with ctx.write() as uow:
        done = email_flows(ctx, settings, uow.session).reset_password(
            body.token, new_hash, utcnow()
        )
    return PasswordResetOut(
        sessions_revoked=done.sessions_revoked, api_keys_revoked=done.api_keys_revoked
    )


@router.post(
    "/me/email",
    status_code=202,
    response_model=AcceptedOut,
    responses=errors(401, 403, 409, 422, 423, 429),
    tags=["me"],
)
def change_email(
    body: EmailChangeIn,
    principal: SessionUser,
    ctx: Context,
    settings: SettingsDep,
    throttle: MailThrottle,
) -> AcceptedOut:
    """Ask to change the account's address: a link goes to the new address, a notice to
    the current one, and the address changes only when the link is used. An address that
    another account has is answered the same way (it just receives no link)."""
    throttle.take(ctx.client_ip)
    with ctx.read_fresh() as uow:
        user = UserService(uow.session).me(principal)
        current_hash, locked = user.password_hash, password_lock(user, utcnow())
    if locked is not None and current_hash is not None:
        raise locked  # the password is locked: not even checked
    if current_hash is not None and not passwords_for(settings).verify(
        current_hash, body.password or ""
    ):
        refuse_wrong_password(ctx, settings, principal)
    with ctx.write() as uow:
        flows = email_flows(ctx, settings, uow.session)
        flows.request_email_change(principal, body.new_email, utcnow())
    send_after_commit(settings, flows.outgoing)
    return AcceptedOut()


@router.post(
    "/auth/email/change/confirm",
    response_model=EmailStateOut,
    responses=errors(401, 409, 422),
    tags=["auth"],
)
def confirm_email_change(body: ChangeTokenIn, ctx: Context, settings: SettingsDep) -> EmailStateOut:
    """Use the link sent to the new address: the account's address becomes it (verified),
    and the old address is told. 409 ``email_taken`` if another account took it since."""
    with ctx.write() as uow:
        flows = email_flows(ctx, settings, uow.session)
        state = _state(flows.confirm_email_change(body.token, utcnow()))
    send_after_commit(settings, flows.outgoing)
    return state
