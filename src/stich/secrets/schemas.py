"""Request and response models for secrets. Values travel as SecretStr, masked in reprs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from stich.secrets.models import SecretType
from stich.validation import MULTI_LINE, MULTI_LINE_PATTERN, NONBLANK_LINE

MAX_VALUE_LENGTH = 8192
PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,49}$"
PROVIDER_INPUT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$"

# Multi-line text (stich.validation): a PEM key may span lines, but no NUL or other control
# character, which the preview (first and last characters, stored as text) could not hold.
SecretValue = Annotated[
    SecretStr,
    MULTI_LINE,
    Field(
        min_length=1,
        max_length=MAX_VALUE_LENGTH,
        description="The secret itself; stored encrypted, shown again only by reveal.",
    ),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_VALUE_LENGTH,
            "pattern": MULTI_LINE_PATTERN,
            "writeOnly": True,
        }
    ),
]
# Stored lower-cased; the published pattern is the one the input must match.
Provider = Annotated[
    str,
    Field(
        pattern=PROVIDER_INPUT_PATTERN,
        description="Provider slug, e.g. 'openai' or 'anthropic' (stored lower-cased).",
        examples=["openai"],
    ),
    AfterValidator(str.lower),
]
DisplayName = Annotated[
    str, NONBLANK_LINE, StringConstraints(strip_whitespace=True, max_length=100)
]


class SecretCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Provider
    secret_type: SecretType = SecretType.API_KEY
    display_name: DisplayName
    value: SecretValue
    expires_at: AwareDatetime | None = None


class SecretUpdate(BaseModel):
    """Change any of these; ``expires_at: null`` removes the expiry."""

    # Published as the validator below enforces it: at least one field, nulls only for
    # expires_at.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    display_name: DisplayName | SkipJsonSchema[None] = None
    value: SecretValue | SkipJsonSchema[None] = None
    is_active: bool | SkipJsonSchema[None] = None
    expires_at: AwareDatetime | None = None

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
