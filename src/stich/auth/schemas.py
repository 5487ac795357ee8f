"""Sign-in, sessions, API keys and OAuth: request and response bodies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from stich.auth.models import DeviceType
from stich.users.models import AuthProvider
from stich.users.schemas import AnonymousTokenField, AnyPassword, UserOut, clean_display_name
from stich.validation import NONBLANK_LINE, ONE_LINE, TextRule


class ApiScope(StrEnum):
    """What an API key may do. Session tokens may do everything their user may."""

    APPS_READ = "apps:read"
    APPS_WRITE = "apps:write"
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    ACCOUNT_READ = "account:read"
    ACCOUNT_WRITE = "account:write"


DEFAULT_KEY_SCOPES = (ApiScope.APPS_READ, ApiScope.APPS_WRITE)
TokenString = Annotated[str, ONE_LINE, Field(min_length=1, max_length=200)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Input):
    # Not validated as an address: a malformed email is simply an unknown one, answered
    # exactly like a wrong password. Control characters are refused (422) for the shape
    # alone, as everywhere (stich.validation), which reveals nothing about accounts.
    email: Annotated[str, ONE_LINE, Field(min_length=1, max_length=320)]
    password: AnyPassword
    anonymous_token: AnonymousTokenField = None


class RefreshIn(_Input):
    refresh_token: TokenString


class TokenPair(BaseModel):
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="Seconds until the access token expires")
    access_expires_at: datetime
    refresh_expires_at: datetime
    session_id: str = Field(description="Stable across refreshes; see GET /auth/sessions")


class AuthOut(BaseModel):
    user: UserOut
    tokens: TokenPair
    claimed_apps: int = Field(
        default=0, description="Apps moved from the presented anonymous token to the account"
    )


class AnonymousOut(BaseModel):
    anonymous_token: str = Field(
        description="Send as 'Authorization: Bearer <token>' to own apps without an account; "
        "send it as 'anonymous_token' when registering or signing in to keep them"
    )


class SessionOut(BaseModel):
    id: str
    current: bool
    device_type: DeviceType
    device_name: str | None
    os: str | None
    browser: str | None
    ip_masked: str | None = Field(description="The client's network (/24 or /48), not its IP")
    signed_in_at: datetime
    last_used_at: datetime | None
    expires_at: datetime


class SessionList(BaseModel):
    items: list[SessionOut]


class RevokedOut(BaseModel):
    revoked: int


def _unique_scopes(scopes: list[ApiScope]) -> list[ApiScope]:
    return sorted(set(scopes))


class ApiKeyCreate(_Input):
    name: Annotated[str, NONBLANK_LINE, Field(max_length=100), AfterValidator(clean_display_name)]
    scopes: Annotated[
        list[ApiScope], Field(min_length=1, max_length=20), AfterValidator(_unique_scopes)
    ] = Field(default_factory=lambda: list(DEFAULT_KEY_SCOPES))
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    preview: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    usage_count: int


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once; only a keyed hash of it is stored")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


# A path on our own site only ("/" then anything but a second "/"), so the value can never
# become an open redirect.
_LOCAL_PATH = TextRule(
    r"^/([A-Za-z0-9._~!$&'()*+,;=:@%?#-][A-Za-z0-9._~!$&'()*+,;=:@/%?#-]*)?$",
    "must be a path on this site, starting with a single '/'",
)


class OAuthStartIn(_Input):
    redirect_to: Annotated[str, _LOCAL_PATH, Field(max_length=2048)] | None = None
    anonymous_token: AnonymousTokenField = None


class OAuthLinkIn(_Input):
    """Linking keeps the signed-in account: no anonymous token to claim apps from."""

    redirect_to: Annotated[str, _LOCAL_PATH, Field(max_length=2048)] | None = None


class OAuthStartOut(BaseModel):
    authorization_url: str
    state: str
    expires_at: datetime


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    provider: AuthProvider
    email: str | None
    created_at: datetime


class IdentityList(BaseModel):
    items: list[IdentityOut]


class OAuthResult(BaseModel):
    outcome: Literal["signed_in", "signed_up", "linked"]
    user: UserOut
    identity: IdentityOut
    tokens: TokenPair | None = None
    claimed_apps: int = 0
    redirect_to: str | None = None
