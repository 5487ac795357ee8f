"""Request and response models for secrets. Values travel as SecretStr, masked in reprs."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from stich.secrets.models import SecretType

MAX_VALUE_LENGTH = 8192
PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,49}$"

SecretValue = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=MAX_VALUE_LENGTH,
        description="The secret itself; stored encrypted, shown again only by reveal.",
    ),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH, "writeOnly": True}
    ),
]
Provider = Annotated[
    str,
    Field(
        pattern=PROVIDER_PATTERN,
        description="Lower-case provider slug, e.g. 'openai' or 'anthropic'.",
        examples=["openai"],
    ),
]
DisplayName = Annotated[str, Field(min_length=1, max_length=100)]


def _check_value(value: SecretStr) -> SecretStr:
    # Lone surrogates cannot be encrypted as UTF-8: refuse them as bad input (422).
    try:
        value.get_secret_value().encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _check_display_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("must not contain control characters")
    return value


class SecretCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Provider
    secret_type: SecretType = SecretType.API_KEY
    display_name: DisplayName
    value: SecretValue
    expires_at: AwareDatetime | None = None

    @field_validator("provider", mode="before")
    @classmethod
    def _lower_provider(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("value")
    @classmethod
    def _valid_value(cls, value: SecretStr) -> SecretStr:
        return _check_value(value)

    @field_validator("display_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_display_name(value)


class SecretUpdate(BaseModel):
    """Change any of these; ``expires_at: null`` removes the expiry."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    value: SecretValue | None = None
    is_active: bool | None = None
    expires_at: AwareDatetime | None = None

    @field_validator("value")
    @classmethod
    def _valid_value(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_value(value) if value is not None else None

    @field_validator("display_name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return _check_display_name(value) if value is not None else None

    @model_validator(mode="after")
    def _something_to_change(self) -> SecretUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send display_name, value, is_active or expires_at")
        for name in ("display_name", "value", "is_active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    @property
    def sets_expiry(self) -> bool:
        return "expires_at" in self.model_fields_set


class SecretOut(BaseModel):
    """A secret's metadata and preview; never its value or ciphertext."""

    id: str
    provider: str
    secret_type: SecretType
    display_name: str
    preview: str | None = Field(
        description="At most the first 4 and last 4 characters, and never more than a "
        "quarter of the value."
    )
    is_active: bool
    is_expired: bool
    usage_count: int
    last_used_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any, now: datetime) -> SecretOut:
        """From a UserSecret or a row of its metadata columns; expiry judged at ``now``."""
        expired = row.expires_at is not None and row.expires_at <= now
        return cls.model_validate(
            {name: getattr(row, name) for name in METADATA_FIELDS} | {"is_expired": expired}
        )


METADATA_FIELDS = (
    "id",
    "provider",
    "secret_type",
    "display_name",
    "preview",
    "is_active",
    "usage_count",
    "last_used_at",
    "expires_at",
    "created_at",
    "updated_at",
)


class SecretPage(BaseModel):
    items: list[SecretOut]
    next_cursor: str | None
    has_more: bool


class SecretRevealed(BaseModel):
    """The decrypted value: only ever the body of ``POST /secrets/{id}/reveal``."""

    id: str
    provider: str
    value: Annotated[
        SecretStr, WithJsonSchema({"type": "string", "description": "The decrypted value."})
    ]
    usage_count: int
    last_used_at: datetime

    @field_serializer("value", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()
