"""Account inputs and outputs, with the rules for emails, usernames and profiles."""

from __future__ import annotations

import json
import re
import unicodedata
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from stich.crypto.passwords import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from stich.users.models import AuthProvider, Role, Theme, User
from stich.validation import (
    EMAIL_PATTERN,
    HTTP_URL,
    MULTI_LINE,
    NONBLANK_LINE,
    ONE_LINE,
    UNICODE,
    JsonObject,
    SchemaExtra,
    TextRule,
    check_json,
)

EMAIL_MAX_LENGTH = 254
USERNAME_RULE = "3 to 30 characters: lower-case letters a-z, digits, '-' and '_'"
PREFERENCES_MAX_BYTES = 8192
PREFERENCES_MAX_DEPTH = 5
BIO_MAX_LENGTH = 1000

USERNAME_PATTERN = r"^[A-Za-z0-9_-]{3,30}$"  # stored lower-cased
_USERNAME = re.compile(r"^[a-z0-9_-]{3,30}$")
# Names that would read as the system speaking, or collide with routes like /users/me.
RESERVED_USERNAMES = frozenset(
    {"admin", "administrator", "anonymous", "api", "me", "null", "root", "stich", "support",
     "system", "undefined"}
)  # fmt: skip


EMAIL = TextRule(EMAIL_PATTERN, "is not an email address")


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased (so uniqueness is case-insensitive); raises ValueError."""
    EMAIL.check(value)
    email = unicodedata.normalize("NFC", value.strip()).lower()
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValueError("is not an email address")
    return EMAIL.check(email)  # type: ignore[no-any-return]


def normalize_username(value: str) -> str:
    username = value.strip().lower()
    if not _USERNAME.match(username):
        raise ValueError(f"must be {USERNAME_RULE}")
    if username in RESERVED_USERNAMES:
        raise ValueError("is reserved")
    return username


def clean_display_name(value: str) -> str:
    """One line (stich.validation), runs of spaces collapsed; raises ValueError."""
    name = " ".join(NONBLANK_LINE.check(value).split())
    if not name:
        raise ValueError("must not be blank")
    return name


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("is not an IANA time zone name, e.g. 'Europe/Berlin' or 'UTC'")
    return value


TimeZone = Annotated[
    str,
    Field(max_length=64),
    AfterValidator(check_timezone),
    SchemaExtra({"enum": sorted(_timezones())}),
]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def check_preferences(value: Any) -> Any:
    """Bounded, and only JSON both backends store alike (stich.validation.check_json)."""
    if not isinstance(value, dict):
        return value  # the type's own validation says "must be an object"
    if _depth(value) > PREFERENCES_MAX_DEPTH:
        message = f"must nest at most {PREFERENCES_MAX_DEPTH} levels deep"
        raise PydanticCustomError("json_too_deep", message)
    check_json(value)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > PREFERENCES_MAX_BYTES:
        message = f"must be at most {PREFERENCES_MAX_BYTES} bytes as JSON"
        raise PydanticCustomError("json_too_large", message)
    return value


Email = Annotated[str, EMAIL, Field(min_length=3, max_length=320), AfterValidator(normalize_email)]
Username = Annotated[
    str,
    Field(min_length=3, max_length=30, pattern=USERNAME_PATTERN),
    AfterValidator(normalize_username),
]
DisplayName = Annotated[
    str, NONBLANK_LINE, Field(max_length=100), AfterValidator(clean_display_name)
]
NewPassword = Annotated[
    str,
    UNICODE,
    Field(
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters",
    ),
]
AnyPassword = Annotated[str, UNICODE, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
AnonymousTokenField = Annotated[
    Annotated[str, ONE_LINE] | None,
    Field(
        default=None,
        max_length=200,
        description="An anonymous token from POST /auth/anonymous: its apps move to the account",
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


class RegisterIn(_Input):
    email: Email
    password: NewPassword
    display_name: DisplayName
    username: Username | None = None
    anonymous_token: AnonymousTokenField = None


class ProfileUpdate(_Input):
    """Only the fields sent are changed; ``null`` clears the optional ones."""

    display_name: DisplayName | None = None
    username: Username | None = None
    bio: Annotated[str, MULTI_LINE, Field(max_length=BIO_MAX_LENGTH)] | None = None
    avatar_url: Annotated[str, HTTP_URL, Field(max_length=2048)] | None = None
    preferences: Annotated[JsonObject, BeforeValidator(check_preferences)] | None = None
    theme: Theme | None = None
    timezone: TimeZone | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, as column values."""
        values: dict[str, Any] = {}
        for name in self.model_fields_set:
            values[name] = getattr(self, name)
        return values


class PasswordChange(_Input):
    current_password: AnyPassword | None = Field(
        default=None, description="Required when the account has a password"
    )
    new_password: NewPassword


class AccountDelete(_Input):
    password: AnyPassword | None = Field(
        default=None, description="Required when the account has a password"
    )


class UserOut(BaseModel):
    """The signed-in user's own view of their account."""

    id: str
    email: str
    username: str | None
    display_name: str
    avatar_url: str | None
    bio: str | None
    role: Role
    provider: AuthProvider
    email_verified: bool
    has_password: bool
    theme: Theme
    timezone: str
    preferences: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            display_name=user.display_name,
            avatar_url=user.avatar_url,
            bio=user.bio,
            role=user.role,
            provider=user.provider,
            email_verified=user.email_verified,
            has_password=user.password_hash is not None,
            theme=user.theme,
            timezone=user.timezone,
            preferences=user.preferences,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class AccountExport(BaseModel):
    """Everything the account owns. Credential hashes and secret values are never included."""

    format: str = "stich-account-export/1"
    exported_at: datetime
    user: dict[str, Any]
    identities: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    api_keys: list[dict[str, Any]]
    apps: list[dict[str, Any]]
    stars: list[dict[str, Any]]
    favorites: list[dict[str, Any]]
    secrets: list[dict[str, Any]]
    audit: list[dict[str, Any]]
