"""HTTP endpoints for the signed-in account: /me (mounted under /api)."""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import APIRouter, Body, Depends, Response
from sqlalchemy.orm import Session

from stich.api.context import RequestContext
from stich.api.deps import Context, get_settings
from stich.auth.dependencies import AccountReader, AccountWriter, SessionUser
from stich.auth.endpoints import errors
from stich.auth.outcomes import AuthPolicy, password_lock
from stich.auth.principal import Principal
from stich.auth.schemas import RevokedOut
from stich.auth.service import AuthService
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.db.base import utcnow
from stich.users.schemas import AccountDelete, AccountExport, PasswordChange, ProfileUpdate, UserOut
from stich.users.service import UserService

router = APIRouter(tags=["me"])

SettingsDep = Annotated[Settings, Depends(get_settings)]


def _auth(ctx: RequestContext, settings: Settings, session: Session) -> AuthService:
    return AuthService(session, ctx.meta, AuthPolicy.from_settings(settings), ctx.hasher)


def refuse_wrong_password(
    ctx: RequestContext, settings: Settings, principal: Principal
) -> NoReturn:
    """Record the failure (it counts towards lockout), then refuse."""
    with ctx.write() as uow:
        refused = _auth(ctx, settings, uow.session).reauthentication_failed(principal, utcnow())
    raise refused.error


@router.get("/me", response_model=UserOut, responses=errors(401, 403))
def get_me(principal: AccountReader, ctx: Context) -> UserOut:
    with ctx.read_fresh() as uow:
        return UserOut.of(UserService(uow.session).me(principal))


@router.patch("/me", response_model=UserOut, responses=errors(401, 403, 409, 422))
def update_me(body: ProfileUpdate, principal: AccountWriter, ctx: Context) -> UserOut:
    """Change profile fields; only the fields sent change."""
    with ctx.write() as uow:
        return UserOut.of(UserService(uow.session, ctx.meta).update_profile(principal, body))


@router.post("/me/password", response_model=RevokedOut, responses=errors(401, 403, 409, 422, 423))
def change_password(
    body: PasswordChange, principal: SessionUser, ctx: Context, settings: SettingsDep
) -> RevokedOut:
    """Change (or, for an OAuth-only account, set) the password. Every other session is
    signed out; ``revoked`` says how many."""
    passwords = passwords_for(settings)
    with ctx.read_fresh() as uow:
        user = UserService(uow.session).me(principal)
        current_hash, locked = user.password_hash, password_lock(user, utcnow())
        family = _auth(ctx, settings, uow.session).current_family(principal)
    if locked is not None and current_hash is not None:
        raise locked  # the password is locked: not even checked
    if current_hash is not None and not passwords.verify(current_hash, body.current_password or ""):
        refuse_wrong_password(ctx, settings, principal)
    new_hash = passwords.hash(body.new_password)
    with ctx.write() as uow:
        revoked = UserService(uow.session, ctx.meta).change_password(
            principal,
            verified_against=current_hash,
            new_hash=new_hash,
            keep_session_family=family,
            now=utcnow(),
        )
    return RevokedOut(revoked=revoked)


@router.delete("/me", status_code=204, responses=errors(401, 403, 422, 423))
def delete_me(
    principal: SessionUser,
    ctx: Context,
    settings: SettingsDep,
    body: Annotated[AccountDelete | None, Body()] = None,
) -> Response:
    """Delete the account: sessions and keys revoked, apps and secrets deleted, the email
    freed. Accounts with a password must confirm it (``{"password": ...}``)."""
    with ctx.read_fresh() as uow:
        user = UserService(uow.session).me(principal)
        current_hash, locked = user.password_hash, password_lock(user, utcnow())
    if locked is not None and current_hash is not None:
        raise locked  # the password is locked: not even checked
    password = body.password if body is not None else None
    if current_hash is not None and not passwords_for(settings).verify(
        current_hash, password or ""
    ):
        refuse_wrong_password(ctx, settings, principal)
    with ctx.write() as uow:
        UserService(uow.session, ctx.meta).delete_account(principal, utcnow())
    return Response(status_code=204)


@router.get("/me/export", response_model=AccountExport, responses=errors(401, 403))
def export_me(principal: AccountReader, ctx: Context) -> AccountExport:
    """Everything the account owns, as JSON. No credential hashes, no secret values."""
    with ctx.read_fresh() as uow:
        return UserService(uow.session).export(principal, utcnow())
