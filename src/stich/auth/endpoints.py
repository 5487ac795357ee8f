"""HTTP endpoints for sign-in, sessions, API keys, anonymous owners and OAuth (under /api).

Password checks (argon2, deliberately slow) run between units of work, never inside one:
a SQLite write transaction holds the database's write lock.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from stich.api.context import RequestContext
from stich.api.deps import Context, get_settings
from stich.api.errors import error_responses
from stich.auth.anonymous import anonymous_owner_hash
from stich.auth.dependencies import AccountReader, SessionUser
from stich.auth.email_service import EmailFlows
from stich.auth.models import ApiKey
from stich.auth.oauth import OAuthService, ProviderClient, provider_config
from stich.auth.outcomes import AuthPolicy, Client, Refused
from stich.auth.schemas import (
    AnonymousOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    AuthOut,
    IdentityList,
    IdentityOut,
    LoginIn,
    OAuthLinkIn,
    OAuthResult,
    OAuthStartIn,
    OAuthStartOut,
    RefreshIn,
    RevokedOut,
    SessionList,
    TokenPair,
)
from stich.auth.service import AuthService
from stich.auth.throttle import ClientThrottle, client_throttle
from stich.auth.usage import key_usage_for
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.db.base import utcnow
from stich.errors import Invalid, Locked, Unauthorized
from stich.mail.sender import send_after_commit
from stich.users.models import AuthProvider
from stich.users.schemas import RegisterIn, UserOut
from stich.users.service import UserService

router = APIRouter(tags=["auth"])

SettingsDep = Annotated[Settings, Depends(get_settings)]
# Ids are UUIDs; anything else (a NUL byte, say) is refused before it reaches SQL.
IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(*statuses)


def _auth(ctx: RequestContext, settings: Settings, session: Session) -> AuthService:
    return AuthService(session, ctx.meta, AuthPolicy.from_settings(settings), ctx.hasher)


def _client(ctx: RequestContext) -> Client:
    return Client(ip=ctx.client_ip, user_agent=ctx.user_agent)


# -- sign-up, sign-in, refresh, sign-out ---------------------------------------------------


@router.post(
    "/auth/register", status_code=201, response_model=AuthOut, responses=errors(400, 409, 422)
)
def register(body: RegisterIn, ctx: Context, settings: SettingsDep) -> AuthOut:
    """Create an account and sign in. An ``anonymous_token`` moves its apps to the account."""
    owner_hash = anonymous_owner_hash(ctx.hasher, body.anonymous_token)
    with ctx.read_fresh() as uow:  # fail fast, before the slow hash
        UserService(uow.session).check_available(body.email, body.username)
    password_hash = passwords_for(settings).hash(body.password)
    now = utcnow()
    with ctx.write() as uow:
        user = UserService(uow.session, ctx.meta).register(
            email=body.email,
            display_name=body.display_name,
            username=body.username,
            password_hash=password_hash,
            now=now,
        )
        auth = _auth(ctx, settings, uow.session)
        issued = auth.open_session(user.id, _client(ctx), now)
        claimed = auth.claim_anonymous(owner_hash, user.id, now)
        flows = EmailFlows.for_settings(uow.session, ctx.meta, ctx.hasher, settings)
        flows.send_verification(user, now)
        out = AuthOut(user=UserOut.of(user), tokens=issued.token_pair(now), claimed_apps=claimed)
    send_after_commit(settings, flows.outgoing)  # the verification link
    return out


@router.post("/auth/login", response_model=AuthOut, responses=errors(400, 401, 403, 422, 423, 429))
def login(
    body: LoginIn,
    ctx: Context,
    settings: SettingsDep,
    throttle: Annotated[ClientThrottle, Depends(client_throttle)],
) -> AuthOut:
    """Sign in with email and password.

    An unknown email and a wrong password get the same answer. From the
    ``STICH_LOCKOUT_THRESHOLD``-th consecutive failure the account's password sign-in is
    locked (423 with ``Retry-After``), for a period that doubles with each further
    failure; its existing sessions and keys keep working. A client address with more than
    ``STICH_LOGIN_CLIENT_MAX_FAILURES`` failures in the window gets 429 with
    ``Retry-After``, before any password is checked or any account's failures counted.
    """
    throttle.check(ctx.client_ip)
    owner_hash = anonymous_owner_hash(ctx.hasher, body.anonymous_token)
    passwords = passwords_for(settings)
    with ctx.read_fresh() as uow:
        attempt = _auth(ctx, settings, uow.session).start_login(body.email)
    now = utcnow()
    locked = attempt.retry_after(now) is not None
    password_ok = not locked and passwords.verify(attempt.password_hash, body.password)
    upgraded = (
        passwords.hash(body.password)
        if password_ok and attempt.password_hash and passwords.needs_rehash(attempt.password_hash)
        else None
    )
    now = utcnow()
    with ctx.write() as uow:
        outcome = _auth(ctx, settings, uow.session).finish_login(
            attempt,
            password_ok=password_ok,
            upgraded_hash=upgraded,
            client=_client(ctx),
            anonymous_hash=owner_hash,
            now=now,
        )
        if not isinstance(outcome, Refused):
            return AuthOut(
                user=UserOut.of(outcome.user),
                tokens=outcome.issued.token_pair(now),
                claimed_apps=outcome.claimed_apps,
            )
    if isinstance(outcome.error, Unauthorized | Locked):  # a guess, not a suspended account
        throttle.failed(ctx.client_ip)
    raise outcome.error  # after the commit: the failure is counted and audited


@router.post("/auth/refresh", response_model=TokenPair, responses=errors(401, 422))
def refresh(body: RefreshIn, ctx: Context, settings: SettingsDep) -> TokenPair:
    """Exchange a refresh token for a new pair. Each refresh token works once: presenting
    it again revokes every session of that sign-in (theft detection)."""
    now = utcnow()
    with ctx.write() as uow:
        outcome = _auth(ctx, settings, uow.session).refresh(body.refresh_token, _client(ctx), now)
        if not isinstance(outcome, Refused):
            return outcome.token_pair(now)
    raise outcome.error


@router.post("/auth/logout", status_code=204, responses=errors(401, 403))
def logout(principal: SessionUser, ctx: Context, settings: SettingsDep) -> Response:
    """End the current session (its access and refresh tokens stop working)."""
    with ctx.write() as uow:
        _auth(ctx, settings, uow.session).logout(principal, utcnow())
    return Response(status_code=204)


@router.post("/auth/anonymous", status_code=201, response_model=AnonymousOut)
def issue_anonymous(ctx: Context, settings: SettingsDep) -> AnonymousOut:
    """A token that owns apps without an account. Only its keyed hash is stored."""
    with ctx.write() as uow:
        token = _auth(ctx, settings, uow.session).issue_anonymous(utcnow())
    return AnonymousOut(anonymous_token=token)


# -- sessions ---------------------------------------------------------------------------


@router.get("/auth/sessions", response_model=SessionList, responses=errors(401, 403))
def list_sessions(principal: SessionUser, ctx: Context, settings: SettingsDep) -> SessionList:
    """The account's active sessions, newest sign-in first."""
    with ctx.read_fresh() as uow:
        items = _auth(ctx, settings, uow.session).list_sessions(principal, utcnow())
    return SessionList(items=items)


@router.delete("/auth/sessions/{session_id}", status_code=204, responses=errors(401, 403, 404))
def revoke_session(
    session_id: IdPath, principal: SessionUser, ctx: Context, settings: SettingsDep
) -> Response:
    with ctx.write() as uow:
        _auth(ctx, settings, uow.session).revoke_session(principal, session_id, utcnow())
    return Response(status_code=204)


@router.post("/auth/sessions/revoke-others", response_model=RevokedOut, responses=errors(401, 403))
def revoke_other_sessions(
    principal: SessionUser, ctx: Context, settings: SettingsDep
) -> RevokedOut:
    """Sign out everywhere else; the session making this request stays."""
    with ctx.write() as uow:
        revoked = _auth(ctx, settings, uow.session).revoke_other_sessions(principal, utcnow())
    return RevokedOut(revoked=revoked)


# -- API keys ----------------------------------------------------------------------------


def _key_out(key: ApiKey, pending_uses: int = 0) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        preview=key.preview,
        scopes=list(key.scopes),
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        usage_count=key.usage_count + pending_uses,
    )


@router.post(
    "/keys", status_code=201, response_model=ApiKeyCreated, responses=errors(401, 403, 409, 422)
)
def create_key(
    body: ApiKeyCreate, principal: SessionUser, ctx: Context, settings: SettingsDep
) -> ApiKeyCreated:
    """Create an API key. The key is in this response only; store it now."""
    with ctx.write() as uow:
        key, raw = _auth(ctx, settings, uow.session).create_key(principal, body, utcnow())
        return ApiKeyCreated(**_key_out(key).model_dump(), key=raw)


@router.get("/keys", response_model=ApiKeyList, responses=errors(401, 403))
def list_keys(principal: AccountReader, ctx: Context, settings: SettingsDep) -> ApiKeyList:
    """Active keys, newest first, with a preview instead of the key."""
    with ctx.read_fresh() as uow:
        keys = _auth(ctx, settings, uow.session).list_keys(principal, utcnow())
        usage = key_usage_for(ctx.db)  # uses this process has not written yet
        return ApiKeyList(items=[_key_out(key, usage.pending(key.id)) for key in keys])


@router.delete("/keys/{key_id}", status_code=204, responses=errors(401, 403, 404))
def revoke_key(
    key_id: IdPath, principal: SessionUser, ctx: Context, settings: SettingsDep
) -> Response:
    with ctx.write() as uow:
        _auth(ctx, settings, uow.session).revoke_key(principal, key_id, utcnow())
    return Response(status_code=204)


# -- OAuth -------------------------------------------------------------------------------


class OAuthProviderName(StrEnum):
    GITHUB = "github"
    GOOGLE = "google"


def _oauth(
    ctx: RequestContext, settings: Settings, session: Session, provider: OAuthProviderName
) -> OAuthService:
    config = provider_config(settings, AuthProvider(provider.value))
    return OAuthService(session, ctx.meta, AuthPolicy.from_settings(settings), ctx.hasher, config)


def _state_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.oauth_state_ttl_seconds)


@router.post(
    "/auth/oauth/{provider}/start", response_model=OAuthStartOut, responses=errors(400, 404, 422)
)
def oauth_start(
    provider: OAuthProviderName,
    ctx: Context,
    settings: SettingsDep,
    body: OAuthStartIn | None = None,
) -> OAuthStartOut:
    """Begin signing in (or up) with a provider: send the user to ``authorization_url``."""
    body = body or OAuthStartIn()
    owner_hash = anonymous_owner_hash(ctx.hasher, body.anonymous_token)
    with ctx.write() as uow:
        return _oauth(ctx, settings, uow.session, provider).start(
            now=utcnow(),
            ttl=_state_ttl(settings),
            redirect_to=body.redirect_to,
            anonymous_owner_hash=owner_hash,
        )


@router.post(
    "/auth/oauth/{provider}/link",
    response_model=OAuthStartOut,
    responses=errors(401, 403, 404, 422),
)
def oauth_link(
    provider: OAuthProviderName,
    principal: SessionUser,
    ctx: Context,
    settings: SettingsDep,
    body: OAuthLinkIn | None = None,
) -> OAuthStartOut:
    """Begin linking a provider account to the signed-in account."""
    body = body or OAuthLinkIn()
    with ctx.write() as uow:
        return _oauth(ctx, settings, uow.session, provider).start(
            now=utcnow(),
            ttl=_state_ttl(settings),
            redirect_to=body.redirect_to,
            link_user_id=principal.user_id,
        )


@router.get(
    "/auth/oauth/{provider}/callback",
    response_model=OAuthResult,
    responses=errors(400, 401, 403, 404, 409, 422, 503),
)
def oauth_callback(
    provider: OAuthProviderName,
    ctx: Context,
    settings: SettingsDep,
    state: Annotated[str, Query(min_length=1, max_length=200)],
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> OAuthResult:
    """Where the provider sends the user back. The state works once."""
    with ctx.write() as uow:  # commits the consumption before anything else can fail
        service = _oauth(ctx, settings, uow.session, provider)
        consumed = service.consume(state, utcnow())
    if error is not None or code is None:
        raise Invalid(f"{provider.value} did not authorise the sign-in", code="oauth_denied")
    client = ProviderClient(service.config, nonce=consumed.nonce)
    profile = client.fetch_profile(client.exchange_code(code, consumed.verifier))
    now = utcnow()
    with ctx.write() as uow:
        outcome = _oauth(ctx, settings, uow.session, provider).finish(
            consumed, profile, _client(ctx), now
        )
        if not isinstance(outcome, Refused):
            return outcome
    raise outcome.error


@router.get("/auth/identities", response_model=IdentityList, responses=errors(401, 403))
def list_identities(principal: AccountReader, ctx: Context, settings: SettingsDep) -> IdentityList:
    """Provider accounts linked to this account."""
    with ctx.read_fresh() as uow:
        rows = _auth(ctx, settings, uow.session).list_identities(principal)
        return IdentityList(items=[IdentityOut.model_validate(row) for row in rows])


@router.delete(
    "/auth/identities/{identity_id}", status_code=204, responses=errors(401, 403, 404, 409)
)
def unlink_identity(
    identity_id: IdPath, principal: SessionUser, ctx: Context, settings: SettingsDep
) -> Response:
    """Unlink a provider account; refused if it is the account's last way to sign in."""
    with ctx.write() as uow:
        _auth(ctx, settings, uow.session).unlink_identity(principal, identity_id)
    return Response(status_code=204)
