"""Authentication for HTTP: ``Authorization: Bearer <access token | API key | anonymous>``.

Every lookup reads fresh (authorization decisions never trust a lagging replica). Use is
recorded without a write per request: a session's ``last_used_at`` is touched at most
once a minute (a conditional UPDATE, so concurrent requests do not all write), and API
key uses are counted in memory and written within a minute (:mod:`stich.auth.usage`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from stich.api.context import RequestContext
from stich.api.deps import Context
from stich.auth.anonymous import anonymous_token_is_genuine
from stich.auth.outcomes import email_not_verified, user_is_usable
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository, Credential
from stich.auth.schemas import ApiScope
from stich.auth.usage import key_usage_for
from stich.crypto.tokens import TokenKind, token_kind
from stich.db.base import utcnow
from stich.errors import Forbidden, Unauthorized
from stich.users.models import User

log = structlog.get_logger("stich.auth")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
TOUCH_EVERY = timedelta(minutes=1)


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


def get_principal(request: Request, ctx: Context) -> Principal | None:
    """The acting principal, None without credentials; 401 for a bad credential."""
    token = bearer_token(request)
    if token is None:
        return None
    kind = token_kind(token)
    # The app's settings (an app may run with its own over a shared Database); a request
    # built outside an app (the bench) has the database's.
    app = request.scope.get("app")
    settings = app.state.settings if app is not None else ctx.db.settings
    requirement = settings.require_verified_email
    if kind is TokenKind.ANONYMOUS:
        anonymous = _anonymous_principal(ctx, token)
        # No address at all: it cannot publish while addresses must be verified to.
        return replace(anonymous, may_publish=requirement == "never")
    if kind is TokenKind.ACCESS:
        return _session_principal(ctx, token, requirement)
    if kind is TokenKind.API_KEY:
        return _api_key_principal(ctx, token, requirement)
    raise _unauthorized("the bearer token is not valid", "invalid_token")


def _verification(user: User, requirement: str) -> dict[str, bool]:
    """What STICH_REQUIRE_VERIFIED_EMAIL allows an account whose address is unverified.

    With ``always`` its credentials are refused outright (a session from sign-up, an API
    key made before the setting changed), with the same answer as the sign-in refusal.
    """
    if user.email_verified or requirement == "never":
        return {"may_publish": True}
    if requirement == "always":
        raise email_not_verified()
    return {"may_publish": False}


def _anonymous_principal(ctx: RequestContext, token: str) -> Principal:
    if not anonymous_token_is_genuine(ctx.hasher, token):
        raise _unauthorized("the anonymous token is not valid", "invalid_token")
    owner_hash = ctx.hasher.token_hash(token)
    with ctx.read_fresh() as uow:
        claimed = AuthRepository(uow.session).anonymous_claimed(owner_hash)
    if claimed:
        raise _unauthorized(
            "this anonymous token now belongs to an account; sign in instead",
            "anonymous_token_claimed",
        )
    return Principal.anonymous(owner_hash)


def _check(credential: Credential | None, what: str) -> Credential:
    now = utcnow()
    if credential is None:
        raise _unauthorized(f"the {what} is not valid", "invalid_token")
    expired = credential.expires_at is not None and credential.expires_at <= now
    if credential.revoked or expired:
        raise _unauthorized(f"the {what} has expired or was revoked", "token_expired")
    if not user_is_usable(credential.user, now):
        raise _unauthorized("this account cannot sign in", "account_unavailable")
    return credential


def _session_principal(ctx: RequestContext, token: str, requirement: str) -> Principal:
    digest = ctx.hasher.token_hash(token)
    with ctx.read_fresh() as uow:
        credential = _check(
            AuthRepository(uow.session).credential_for_access_token(digest), "access token"
        )
        # Read inside the unit of work: its objects expire when it ends.
        principal = Principal.user(
            credential.user.id,
            credential.user.role,
            session_id=credential.id,
            **_verification(credential.user, requirement),
        )
    now = utcnow()
    if credential.last_used_at is None or credential.last_used_at < now - TOUCH_EVERY:
        user_id = principal.user_id or ""
        _bookkeeping(ctx, lambda repo: repo.touch_session(credential.id, user_id, now, TOUCH_EVERY))
    return principal


def _api_key_principal(ctx: RequestContext, token: str, requirement: str) -> Principal:
    digest = ctx.hasher.token_hash(token)
    with ctx.read_fresh() as uow:
        credential = _check(AuthRepository(uow.session).credential_for_api_key(digest), "API key")
        principal = Principal.user(
            credential.user.id,
            credential.user.role,
            api_key_id=credential.id,
            scopes=frozenset(credential.scopes),
            **_verification(credential.user, requirement),
        )
    key_usage_for(ctx.db).record(credential.id)
    return principal


def _bookkeeping(ctx: RequestContext, write: Callable[[AuthRepository], object]) -> bool:
    """A small write that must never fail the request it rides on."""
    try:
        with ctx.db.write() as uow:
            write(AuthRepository(uow.session))
    except SQLAlchemyError as exc:
        log.warning("usage bookkeeping skipped", error_type=type(exc).__name__)
        return False
    return True


async def principal_dependency(request: Request, ctx: Context) -> Principal | None:
    """``get_principal`` as a dependency: the thread pool only when there is a credential
    to look up, so an anonymous request costs no thread hand-off (docs/benchmarks.md)."""
    if request.headers.get("authorization") is None:
        return None
    return await run_in_threadpool(get_principal, request, ctx)


MaybePrincipal = Annotated[Principal | None, Depends(principal_dependency)]


async def require_principal(principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise _unauthorized("sign in: send 'Authorization: Bearer <token>'")
    return principal


async def require_user(principal: MaybePrincipal) -> Principal:
    if principal is None or not principal.is_user:
        raise _unauthorized("this needs a signed-in account: send 'Authorization: Bearer <token>'")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an admin account", code="admin_required")
    return principal


async def require_session(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    """Account management (sessions, keys, password, deletion) needs a signed-in session:
    an API key cannot mint more keys or lock its owner out."""
    if principal.session_id is None:
        raise Forbidden(
            "this needs a session token from sign-in, not an API key", code="session_required"
        )
    return principal


def require_scope(scope: ApiScope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: sessions pass; API keys need ``scope`` among their scopes."""

    async def dependency(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
        if principal.api_key_id is not None and scope.value not in principal.scopes:
            raise Forbidden(
                f"this API key lacks the '{scope.value}' scope", code="insufficient_scope"
            )
        return principal

    return dependency


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def api_key_scopes(
    read: ApiScope, write: ApiScope, *, read_suffixes: tuple[str, ...] = ()
) -> Callable[..., Awaitable[None]]:
    """A router-wide dependency: an API key needs ``read`` for reads and ``write`` for the
    rest. Sessions, anonymous visitors and unauthenticated calls are unaffected (their
    endpoints apply their own rules). ``read_suffixes`` marks POST paths that only read,
    such as ``/reveal``."""

    async def dependency(request: Request, principal: MaybePrincipal) -> None:
        if principal is None or principal.api_key_id is None:
            return
        reads = request.method in _READ_METHODS or request.url.path.endswith(read_suffixes)
        needed = read if reads else write
        if needed.value not in principal.scopes:
            raise Forbidden(
                f"this API key lacks the '{needed.value}' scope", code="insufficient_scope"
            )

    return dependency


OptionalPrincipal = MaybePrincipal
AnyPrincipal = Annotated[Principal, Depends(require_principal)]
CurrentUser = Annotated[Principal, Depends(require_user)]
AdminUser = Annotated[Principal, Depends(require_admin)]
SessionUser = Annotated[Principal, Depends(require_session)]
AccountReader = Annotated[Principal, Depends(require_scope(ApiScope.ACCOUNT_READ))]
AccountWriter = Annotated[Principal, Depends(require_scope(ApiScope.ACCOUNT_WRITE))]
