"""Authentication for HTTP: ``Authorization: Bearer <access token | API key | anonymous>``.

Every lookup reads fresh (authorization decisions never trust a lagging replica).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from stich.api.deps import Context
from stich.auth.models import ApiKey, UserSession
from stich.auth.principal import Principal
from stich.crypto.tokens import TokenKind, token_kind
from stich.db.base import utcnow
from stich.errors import Forbidden, Unauthorized
from stich.users.models import User

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str, code: str = "unauthorized") -> Unauthorized:
    return Unauthorized(message, code=code, headers=_CHALLENGE)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", "invalid_token")
    return token


def _usable(user: User, now: datetime) -> bool:
    locked = user.locked_until is not None and user.locked_until > now
    return user.is_active and not user.is_suspended and user.deleted_at is None and not locked


def get_principal(request: Request, ctx: Context) -> Principal | None:
    """The acting principal, None without credentials; 401 for a bad credential."""
    token = bearer_token(request)
    if token is None:
        return None
    kind = token_kind(token)
    digest = ctx.hasher.token_hash(token)
    now = utcnow()
    if kind is TokenKind.ANONYMOUS:
        return Principal.anonymous(digest)
    with ctx.read_fresh() as uow:
        if kind is TokenKind.ACCESS:
            row = uow.session.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.access_token_hash == digest)
            ).one_or_none()
            if row is None:
                raise _unauthorized("the access token is not valid", "invalid_token")
            session, user = row
            if session.revoked_at is not None or session.access_expires_at <= now:
                raise _unauthorized("the access token has expired or was revoked", "token_expired")
            if not _usable(user, now):
                raise _unauthorized("this account cannot sign in", "account_unavailable")
            return Principal.user(user.id, user.role, session_id=session.id)
        if kind is TokenKind.API_KEY:
            key_row = uow.session.execute(
                select(ApiKey, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == digest)
            ).one_or_none()
            if key_row is None:
                raise _unauthorized("the API key is not valid", "invalid_token")
            key, owner = key_row
            expired = key.expires_at is not None and key.expires_at <= now
            if key.revoked_at is not None or expired:
                raise _unauthorized("the API key has expired or was revoked", "token_expired")
            if not _usable(owner, now):
                raise _unauthorized("this account cannot sign in", "account_unavailable")
            return Principal.user(
                owner.id, owner.role, api_key_id=key.id, scopes=frozenset(key.scopes)
            )
    raise _unauthorized("the bearer token is not valid", "invalid_token")


def require_principal(principal: Annotated[Principal | None, Depends(get_principal)]) -> Principal:
    if principal is None:
        raise _unauthorized("sign in: send 'Authorization: Bearer <token>'")
    return principal


def require_user(principal: Annotated[Principal | None, Depends(get_principal)]) -> Principal:
    if principal is None or not principal.is_user:
        raise _unauthorized("this needs a signed-in account: send 'Authorization: Bearer <token>'")
    return principal


def require_admin(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an admin account", code="admin_required")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_principal)]
AnyPrincipal = Annotated[Principal, Depends(require_principal)]
CurrentUser = Annotated[Principal, Depends(require_user)]
AdminUser = Annotated[Principal, Depends(require_admin)]
