"""OAuth sign-in and account linking with GitHub and Google (authorization code + PKCE).

The flow, and where each rule lives:

1. ``start`` stores a state row: the state, PKCE verifier and nonce only as keyed hashes.
   The verifier and nonce are *derived* from the state with the server key, so the
   server can recompute them at the callback without ever storing them.
2. ``consume`` marks the state used with one ``UPDATE ... WHERE consumed_at IS NULL
   RETURNING``: two callbacks with the same state, however concurrent, get one winner.
   It commits on its own, before the provider is called, so a failed exchange cannot
   be retried with the same state.
3. The code is exchanged and the profile fetched over HTTP, outside any transaction.
   Google's id_token is verified (signature against its published keys, issuer,
   audience, expiry, nonce: :mod:`stich.auth.oidc`) and is what says who signed in.
4. ``finish`` resolves by (provider, provider_id) first. An identity is attached to an
   existing account only when that account's signed-in user started the flow (link);
   a matching email alone never does (the original's account-takeover path).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy.orm import Session

from stich.audit.service import AuditService, RequestMeta
from stich.auth.models import OAuthState
from stich.auth.oidc import id_token_refused, key_set_for, verify_id_token
from stich.auth.outcomes import AuthPolicy, Client, Refused, user_is_usable
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository
from stich.auth.schemas import IdentityOut, OAuthResult, OAuthStartOut
from stich.auth.service import AuthService
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher, TokenKind, new_token
from stich.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, Unavailable
from stich.users.models import AuthProvider, UserIdentity
from stich.users.repository import UserRepository
from stich.users.schemas import UserOut, clean_display_name, normalize_email
from stich.users.service import UserService

OAUTH_PROVIDERS = (AuthProvider.GITHUB, AuthProvider.GOOGLE)


@dataclass(frozen=True)
class ProviderConfig:
    provider: AuthProvider
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    scope: str
    # GitHub: REST API root; Google: the OpenID Connect userinfo endpoint.
    profile_url: str
    redirect_uri: str
    timeout: float
    # Google: where its id_token signing keys are published.
    jwks_url: str | None = None


@dataclass(frozen=True)
class ProviderProfile:
    provider_id: str
    email: str | None
    email_verified: bool
    display_name: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class ConsumedState:
    """What a consumed state carries into the rest of the callback."""

    provider: AuthProvider
    verifier: str
    nonce: str
    link_user_id: str | None
    anonymous_owner_hash: str | None
    redirect_to: str | None


def provider_config(settings: Settings, provider: AuthProvider) -> ProviderConfig:
    """The provider's settings; 404 when it is not one we speak or is not configured."""
    redirect_uri = f"{settings.oauth_redirect_base_url}/api/auth/oauth/{provider.value}/callback"
    timeout = settings.oauth_http_timeout_seconds
    if provider is AuthProvider.GITHUB and settings.oauth_github_client_id:
        secret = settings.oauth_github_client_secret
        return ProviderConfig(
            provider=provider,
            client_id=settings.oauth_github_client_id,
            client_secret=secret.get_secret_value() if secret else "",
            authorize_url=settings.oauth_github_authorize_url,
            token_url=settings.oauth_github_token_url,
            scope="read:user user:email",
            profile_url=settings.oauth_github_api_url,
            redirect_uri=redirect_uri,
            timeout=timeout,
        )
    if provider is AuthProvider.GOOGLE and settings.oauth_google_client_id:
        secret = settings.oauth_google_client_secret
        return ProviderConfig(
            provider=provider,
            client_id=settings.oauth_google_client_id,
            client_secret=secret.get_secret_value() if secret else "",
            authorize_url=settings.oauth_google_authorize_url,
            token_url=settings.oauth_google_token_url,
            scope="openid email profile",
            profile_url=settings.oauth_google_userinfo_url,
            redirect_uri=redirect_uri,
            timeout=timeout,
            jwks_url=settings.oauth_google_jwks_url,
        )
    raise NotFound(
        f"sign-in with {provider.value} is not configured on this server",
        code="oauth_provider_not_configured",
    )


# -- derived secrets -------------------------------------------------------------------


def pkce_verifier(hasher: KeyedHasher, state: str) -> str:
    # 64 hex characters: within RFC 7636's 43..128 unreserved characters, 256 bits.
    return hasher.hash(state, purpose="oauth-pkce-verifier")


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def oidc_nonce(hasher: KeyedHasher, state: str) -> str:
    return hasher.hash(state, purpose="oauth-nonce")


# -- talking to the provider (outside any transaction) -----------------------------------


class ProviderClient:
    def __init__(self, config: ProviderConfig, nonce: str | None = None) -> None:
        self.config = config
        self.nonce = nonce  # the OIDC nonce this sign-in sent (Google)
        self._id_claims: dict[str, Any] | None = None

    def exchange_code(self, code: str, verifier: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "code_verifier": verifier,
        }
        body = self._call("POST", self.config.token_url, data=form)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Invalid(
                f"{self.config.provider.value} did not accept the authorization code",
                code="oauth_code_rejected",
            )
        if self.config.provider is AuthProvider.GOOGLE:
            self._id_claims = self._verified_id_token(body.get("id_token"))
        return token

    def _verified_id_token(self, id_token: object) -> dict[str, Any]:
        if not isinstance(id_token, str) or not id_token or self.config.jwks_url is None:
            raise id_token_refused()
        keys = key_set_for(self.config.jwks_url, self.config.timeout)
        return verify_id_token(
            id_token, keys=keys, client_id=self.config.client_id, nonce=self.nonce
        )

    def fetch_profile(self, access_token: str) -> ProviderProfile:
        headers = {"Authorization": f"Bearer {access_token}"}
        if self.config.provider is AuthProvider.GITHUB:
            return self._github_profile(headers)
        return self._google_profile(headers)

    def _github_profile(self, headers: dict[str, str]) -> ProviderProfile:
        user = self._call("GET", f"{self.config.profile_url}/user", headers=headers)
        emails = self._call("GET", f"{self.config.profile_url}/user/emails", headers=headers)
        primary = next(
            (
                entry
                for entry in (emails if isinstance(emails, list) else [])
                if isinstance(entry, dict) and entry.get("primary") and entry.get("verified")
            ),
            None,
        )
        if not isinstance(user, dict) or user.get("id") is None:
            raise _provider_error(self.config.provider)
        return ProviderProfile(
            provider_id=str(user["id"]),
            email=str(primary["email"]) if primary else None,
            email_verified=primary is not None,
            display_name=_str_or_none(user.get("name")) or _str_or_none(user.get("login")),
            avatar_url=_str_or_none(user.get("avatar_url")),
        )

    def _google_profile(self, headers: dict[str, str]) -> ProviderProfile:
        """Who signed in is what the verified id_token says (the exchange checked it);
        the userinfo endpoint only adds the name and picture, and must agree on ``sub``."""
        claims = self._id_claims
        if claims is None:
            raise id_token_refused()
        info = self._call("GET", self.config.profile_url, headers=headers)
        if not isinstance(info, dict) or str(info.get("sub")) != str(claims["sub"]):
            raise _provider_error(self.config.provider)
        return ProviderProfile(
            provider_id=str(claims["sub"]),
            email=_str_or_none(claims.get("email")),
            email_verified=claims.get("email_verified") is True,
            display_name=_str_or_none(claims.get("name")) or _str_or_none(info.get("name")),
            avatar_url=_str_or_none(info.get("picture")),
        )

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        try:
            response = httpx.request(
                method, url, headers=headers, timeout=self.config.timeout, **kwargs
            )
        except httpx.HTTPError:
            raise _provider_error(self.config.provider) from None
        if response.status_code in (400, 401):
            raise Invalid(
                f"{self.config.provider.value} refused the sign-in", code="oauth_code_rejected"
            )
        if response.status_code >= 300:
            raise _provider_error(self.config.provider)
        try:
            return response.json()
        except ValueError:
            raise _provider_error(self.config.provider) from None


def _provider_error(provider: AuthProvider) -> Unavailable:
    return Unavailable(
        f"{provider.value} did not answer as expected; try again", code="oauth_provider_error"
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# -- the flow's data layer -----------------------------------------------------------------


class OAuthService:
    def __init__(
        self,
        session: Session,
        meta: RequestMeta,
        policy: AuthPolicy,
        hasher: KeyedHasher,
        config: ProviderConfig,
    ) -> None:
        self.session = session
        self.meta = meta
        self.hasher = hasher
        self.config = config
        self.repo = AuthRepository(session)
        self.users = UserRepository(session)
        self.auth = AuthService(session, meta, policy, hasher)
        self.audit = AuditService(session, meta)

    def start(
        self,
        *,
        now: datetime,
        ttl: timedelta,
        redirect_to: str | None = None,
        anonymous_owner_hash: str | None = None,
        link_user_id: str | None = None,
    ) -> OAuthStartOut:
        state = new_token(TokenKind.OAUTH_STATE)
        verifier = pkce_verifier(self.hasher, state)
        nonce = oidc_nonce(self.hasher, state)
        expires_at = now + ttl
        extra = {"anonymous_owner_hash": anonymous_owner_hash} if anonymous_owner_hash else {}
        self.repo.add_oauth_state(
            OAuthState(
                provider=self.config.provider,
                state_hash=self.hasher.token_hash(state),
                pkce_verifier_hash=self.hasher.hash(verifier, purpose="oauth-pkce"),
                nonce_hash=self.hasher.hash(nonce, purpose="oauth-nonce"),
                redirect_to=redirect_to,
                link_user_id=link_user_id,
                extra=extra,
                expires_at=expires_at,
                created_at=now,
            )
        )
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": self.config.scope,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self.config.provider is AuthProvider.GOOGLE:
            params["nonce"] = nonce
        url = f"{self.config.authorize_url}?{urlencode(params)}"
        return OAuthStartOut(authorization_url=url, state=state, expires_at=expires_at)

    def consume(self, state: str, now: datetime) -> ConsumedState:
        row = self.repo.consume_oauth_state(
            self.hasher.token_hash(state), self.config.provider, now
        )
        if row is None:
            raise Invalid(
                "this sign-in link is unknown, expired or already used; start again",
                code="oauth_state_invalid",
            )
        verifier = pkce_verifier(self.hasher, state)
        if row.pkce_verifier_hash != self.hasher.hash(verifier, purpose="oauth-pkce"):
            # Only possible if the server key changed since the flow started.
            raise Invalid(
                "this sign-in link is no longer valid; start again", code="oauth_state_invalid"
            )
        owner_hash = row.extra.get("anonymous_owner_hash") if row.extra else None
        return ConsumedState(
            provider=row.provider,
            verifier=verifier,
            nonce=oidc_nonce(self.hasher, state),
            link_user_id=row.link_user_id,
            anonymous_owner_hash=owner_hash if isinstance(owner_hash, str) else None,
            redirect_to=row.redirect_to,
        )

    def finish(
        self, consumed: ConsumedState, profile: ProviderProfile, client: Client, now: datetime
    ) -> OAuthResult | Refused:
        identity = self.repo.identity(self.config.provider, profile.provider_id)
        if consumed.link_user_id is not None:
            return self._link(consumed, identity, profile, now)
        if identity is not None:
            return self._sign_in(consumed, identity, client, now)
        return self._sign_up(consumed, profile, client, now)

    def _link(
        self,
        consumed: ConsumedState,
        identity: UserIdentity | None,
        profile: ProviderProfile,
        now: datetime,
    ) -> OAuthResult:
        user_id = consumed.link_user_id
        assert user_id is not None
        user = self.users.by_id(user_id)
        if user is None or not user_is_usable(user, now):
            raise Unauthorized(
                "the account that started linking cannot sign in", code="account_unavailable"
            )
        if identity is not None and identity.user_id != user.id:
            raise Conflict(
                f"this {self.config.provider.value} account is linked to another Stich account",
                code="identity_in_use",
            )
        if identity is None:
            identity = self.repo.add_identity(
                UserIdentity(
                    user_id=user.id,
                    provider=self.config.provider,
                    provider_id=profile.provider_id,
                    email=_clean_email(profile.email),
                    created_at=now,
                )
            )
            self.audit.record(
                "auth.identity_linked",
                actor=Principal.user(user.id, user.role),
                resource_type="identity",
                resource_id=identity.id,
                new={"provider": self.config.provider.value},
            )
        return OAuthResult(
            outcome="linked",
            user=UserOut.of(user),
            identity=IdentityOut.model_validate(identity),
            redirect_to=consumed.redirect_to,
        )

    def _sign_in(
        self, consumed: ConsumedState, identity: UserIdentity, client: Client, now: datetime
    ) -> OAuthResult | Refused:
        user = self.users.by_id(identity.user_id)
        if user is not None and user.is_suspended:
            return Refused(Forbidden("this account is suspended", code="account_suspended"))
        if user is None or not user_is_usable(user, now):
            return Refused(Unauthorized("this account cannot sign in", code="account_unavailable"))
        issued = self.auth.open_session(user.id, client, now)
        claimed = self.auth.claim_anonymous(consumed.anonymous_owner_hash, user.id, now)
        self.audit.record(
            "auth.login",
            actor=Principal.user(user.id, user.role, session_id=issued.session.id),
            resource_type="session",
            resource_id=issued.session.family_id,
            new={"method": self.config.provider.value},
        )
        return OAuthResult(
            outcome="signed_in",
            user=UserOut.of(user),
            identity=IdentityOut.model_validate(identity),
            tokens=issued.token_pair(now),
            claimed_apps=claimed,
            redirect_to=consumed.redirect_to,
        )

    def _sign_up(
        self, consumed: ConsumedState, profile: ProviderProfile, client: Client, now: datetime
    ) -> OAuthResult | Refused:
        email = _clean_email(profile.email) if profile.email_verified else None
        if email is None:
            return Refused(
                Invalid(
                    f"{self.config.provider.value} did not share a verified email address",
                    code="oauth_email_unverified",
                )
            )
        existing = self.users.by_email(email)
        if existing is not None:
            # Never sign into (or attach to) an account because an email matches: the
            # owner must sign in and link this provider themselves. Recorded for them.
            self.audit.record(
                "auth.oauth_link_required",
                actor=None,
                subject_user_id=existing.id,
                resource_type="user",
                resource_id=existing.id,
                new={"provider": self.config.provider.value},
            )
            return Refused(
                Conflict(
                    "an account with this email already exists; sign in to it and link "
                    f"{self.config.provider.value} from your account",
                    code="account_exists_link_required",
                )
            )
        user = UserService(self.session, self.meta).register(
            email=email,
            display_name=_display_name(profile, email),
            password_hash=None,
            now=now,
            provider=self.config.provider,
            provider_id=profile.provider_id,
            email_verified=True,
            avatar_url=_avatar(profile.avatar_url),
        )
        identity = self.repo.add_identity(
            UserIdentity(
                user_id=user.id,
                provider=self.config.provider,
                provider_id=profile.provider_id,
                email=email,
                created_at=now,
            )
        )
        issued = self.auth.open_session(user.id, client, now)
        claimed = self.auth.claim_anonymous(consumed.anonymous_owner_hash, user.id, now)
        return OAuthResult(
            outcome="signed_up",
            user=UserOut.of(user),
            identity=IdentityOut.model_validate(identity),
            tokens=issued.token_pair(now),
            claimed_apps=claimed,
            redirect_to=consumed.redirect_to,
        )


def _clean_email(email: str | None) -> str | None:
    if email is None:
        return None
    try:
        return normalize_email(email)
    except ValueError:
        return None


def _display_name(profile: ProviderProfile, email: str) -> str:
    for candidate in (profile.display_name, email.split("@", 1)[0]):
        if candidate:
            try:
                return clean_display_name(candidate)[:100]
            except ValueError:
                continue
    return "New user"


def _avatar(url: str | None) -> str | None:
    if url and url.startswith(("https://", "http://")) and len(url) <= 2048:
        return url
    return None
