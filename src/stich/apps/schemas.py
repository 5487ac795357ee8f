"""Request and response models for apps.

Two response models per app: :class:`AppPublic` for anyone who may read the app, and
:class:`AppOwner` (everything) for its owner and admins. The public one has no field for
the final prompt, the anonymous owner hash or the deployment metadata, and blanks a
GitHub repository URL unless the repository is public, so a leak needs a new field, not a
forgotten filter. The ``view`` field says which one a response is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from stich.apps.models import App, AppStatus, Visibility
from stich.apps.query import AppRow
from stich.db.base import ID_LENGTH
from stich.validation import (
    HTTP_URL,
    ID_PATTERN,
    MULTI_LINE,
    NONBLANK_LINE,
    ONE_LINE,
    JsonObject,
    JsonValue,
    check_json,
)

MAX_BLUEPRINT_BYTES = 64 * 1024
MAX_BLUEPRINT_DEPTH = 16
MAX_DEPLOYMENT_METADATA_BYTES = 16 * 1024
MAX_BULK_IDS = 100


def _json_depth(value: Any, depth: int = 0) -> int:
    if depth > MAX_BLUEPRINT_DEPTH:
        return depth  # deep enough to refuse; stop walking
    if isinstance(value, dict):
        return max((_json_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((_json_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def _check_json_object(value: Any, *, what: str, max_bytes: int) -> Any:
    """Refuse JSON that is not an object, is too large or is nested too deeply, or holds
    a string or number the JSON columns cannot store alike (see stich.validation)."""
    if not isinstance(value, dict):
        return value  # the model's own validation says "must be an object"
    # Depth and size have their own error types: rules a JSON Schema cannot state
    # compactly, so a client (and the fuzz test) can tell them from a malformed value.
    if _json_depth(value) > MAX_BLUEPRINT_DEPTH:
        message = f"{what} is nested more than {MAX_BLUEPRINT_DEPTH} levels deep"
        raise PydanticCustomError("json_too_deep", message)
    try:
        check_json(value)
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None
    try:
        size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be plain JSON") from None
    if size > max_bytes:
        raise PydanticCustomError(
            "json_too_large", f"{what} is {size} bytes; the limit is {max_bytes}"
        )
    return value


# Text rules (stich.validation): one line for titles, icons and URLs, multi-line for
# descriptions and prompts. A rule checks what was sent, before stripping.
Title = Annotated[str, NONBLANK_LINE, StringConstraints(strip_whitespace=True, max_length=200)]
Description = Annotated[str, MULTI_LINE, StringConstraints(max_length=5000)]
Prompt = Annotated[str, MULTI_LINE, StringConstraints(max_length=50_000)]
Icon = Annotated[str, ONE_LINE, StringConstraints(strip_whitespace=True, max_length=2048)]
Url = Annotated[str, HTTP_URL, StringConstraints(max_length=2048)]


# Either case is accepted and stored lower-cased, so "React" is stored as "react".
Framework = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,39}$"),
    AfterValidator(str.lower),
]
AppId = Annotated[str, StringConstraints(pattern=ID_PATTERN, min_length=1, max_length=ID_LENGTH)]


class Blueprint(BaseModel):
    """The generator's plan for an app: known fields typed, the rest kept as JSON.

    Bounded: at most 64 KiB serialized and 16 levels deep.
    """

    model_config = ConfigDict(extra="allow")

    title: Title | None = None
    description: Annotated[str, MULTI_LINE, StringConstraints(max_length=10_000)] | None = None
    frameworks: list[Framework] = Field(default_factory=list, max_length=20)
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return _check_json_object(value, what="blueprint", max_bytes=MAX_BLUEPRINT_BYTES)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    icon: Icon | None = None
    original_prompt: Prompt | None = None
    framework: Framework | None = None
    blueprint: Blueprint | None = None
    visibility: Visibility = Visibility.PRIVATE


class AppUpdate(BaseModel):
    """Editable fields; only the ones sent change (``null`` clears an optional field)."""

    # The document says what the validator below enforces: something to change, and a
    # title that is changed, never cleared.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    title: Title | SkipJsonSchema[None] = None
    description: Description | None = None
    icon: Icon | None = None
    original_prompt: Prompt | None = None
    final_prompt: Prompt | None = None
    framework: Framework | None = None
    blueprint: Blueprint | None = None
    screenshot_url: Url | None = None
    github_repo_url: Url | None = None
    github_repo_visibility: Visibility | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> AppUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            values[name] = value.as_json() if isinstance(value, Blueprint) else value
        return values


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    status: Annotated[str, ONE_LINE, StringConstraints(strip_whitespace=True, max_length=50)] = (
        "live"
    )
    metadata: JsonObject | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounded_metadata(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("metadata"), dict):
            _check_json_object(
                value["metadata"],
                what="deployment metadata",
                max_bytes=MAX_DEPLOYMENT_METADATA_BYTES,
            )
        return value


class StatusChange(BaseModel):
    """Move an app to ``status``; moving to ``deployed`` needs the deployment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"status": {"const": AppStatus.DEPLOYED.value}}},
            "then": {"required": ["deployment"], "properties": {"deployment": {"type": "object"}}},
            "else": {"properties": {"deployment": {"type": "null"}}},
        },
    )

    status: AppStatus
    deployment: Deployment | None = None

    @model_validator(mode="after")
    def _deployment_only_when_deploying(self) -> StatusChange:
        deploying = self.status is AppStatus.DEPLOYED
        if deploying and self.deployment is None:
            raise ValueError("moving to deployed needs a deployment (url, status, metadata)")
        if not deploying and self.deployment is not None:
            raise ValueError("a deployment is only given when moving to deployed")
        return self


class VisibilityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visibility: Visibility


class ArchivedChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archived: bool


class FeaturedChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    featured: bool


class ForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title | None = None


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_user: Annotated[
        str, NONBLANK_LINE, StringConstraints(strip_whitespace=True, max_length=ID_LENGTH)
    ] = Field(description="The receiving account's username or user id.")


class BulkStatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[AppId] = Field(
        min_length=1, max_length=MAX_BULK_IDS, json_schema_extra={"uniqueItems": True}
    )
    status: AppStatus = Field(
        json_schema_extra={"enum": [s.value for s in AppStatus if s is not AppStatus.DEPLOYED]}
    )

    @model_validator(mode="after")
    def _valid_batch(self) -> BulkStatusRequest:
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("ids must not repeat")
        if self.status is AppStatus.DEPLOYED:
            raise ValueError("deploy apps one at a time: each deployment has its own URL")
        return self


class BulkStatusResult(BaseModel):
    id: str
    ok: bool
    from_status: AppStatus | None = None
    to_status: AppStatus | None = None
    error: str | None = None
    allowed: list[AppStatus] | None = None


class BulkStatusResponse(BaseModel):
    updated: int
    results: list[BulkStatusResult]


# -- responses -------------------------------------------------------------------------


class Author(BaseModel):
    id: str
    username: str | None
    display_name: str
    avatar_url: str | None


@dataclass(frozen=True)
class AppDetail:
    """An app with its author (None for anonymous apps), as one read produced it."""

    app: App
    author: Author | None


class _AppFields(BaseModel):
    id: str
    title: str
    description: str | None
    icon: str | None
    original_prompt: str | None
    blueprint: dict[str, Any] | None
    framework: str | None
    status: AppStatus
    visibility: Visibility
    deployment_url: str | None
    deployment_status: str | None
    github_repo_url: str | None
    github_repo_visibility: Visibility | None
    parent_app_id: str | None
    version: int
    is_archived: bool
    is_featured: bool
    screenshot_url: str | None
    screenshot_updated_at: datetime | None
    last_deployed_at: datetime | None
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    created_at: datetime
    updated_at: datetime
    author: Author | None


class AppPublic(_AppFields):
    """What anyone who may read the app sees."""

    view: Literal["public"] = "public"


class AppOwner(_AppFields):
    """What the owner and admins see: every field."""

    view: Literal["owner"] = "owner"
    final_prompt: str | None
    deployment_metadata: dict[str, Any] | None
    anonymous_owner_hash: str | None
    user_id: str | None
    deleted_at: datetime | None


AppOut = Annotated[AppPublic | AppOwner, Field(discriminator="view")]

# The app's columns the public view is made of (stich.apps.query reads just these).
PUBLIC_FIELDS = frozenset(_AppFields.model_fields) - {"author"}
_OWNER_FIELDS = frozenset(AppOwner.model_fields) - {"author", "view"}


def app_public(detail: AppDetail) -> AppPublic:
    values = {name: getattr(detail.app, name) for name in PUBLIC_FIELDS}
    return public_view(values, detail.author)


def public_view(values: dict[str, Any], author: Author | None) -> AppPublic:
    """The public view from the app's ``PUBLIC_FIELDS`` values."""
    if values["github_repo_visibility"] != Visibility.PUBLIC:
        values["github_repo_url"] = None  # a private (or unknown) repository stays unnamed
    return AppPublic(**values, author=author)


def app_owner(detail: AppDetail) -> AppOwner:
    values = {name: getattr(detail.app, name) for name in _OWNER_FIELDS}
    return AppOwner(**values, author=detail.author)


class AppListItem(BaseModel):
    id: str
    title: str
    description: str | None
    icon: str | None
    framework: str | None
    status: AppStatus
    visibility: Visibility
    version: int
    parent_app_id: str | None
    deployment_url: str | None
    screenshot_url: str | None
    is_archived: bool
    is_featured: bool
    star_count: int
    view_count: int
    fork_count: int
    favorite_count: int
    created_at: datetime
    updated_at: datetime
    last_deployed_at: datetime | None
    author: Author | None

    @classmethod
    def from_row(cls, row: AppRow) -> AppListItem:
        author = None
        if row.author_id is not None:
            author = Author(
                id=row.author_id,
                username=row.author_username,
                display_name=row.author_display_name or "",
                avatar_url=row.author_avatar_url,
            )
        values = {name: getattr(row, name) for name in cls.model_fields if name != "author"}
        return cls(**values, author=author)


class AppListPage(BaseModel):
    items: list[AppListItem]
    next_cursor: str | None = Field(description="Pass back as ?cursor= for the next page.")
    has_more: bool
    total: int | None = Field(
        default=None, description="How many apps match the filters (all pages)."
    )
