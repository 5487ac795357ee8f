"""Generated apps: ownership, lifecycle, visibility, deployment, forks and counters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from stich.auth.models import TOKEN_HASH_LENGTH
from stich.db.base import (
    ID_LENGTH,
    Base,
    JSONType,
    SoftDeleteMixin,
    TimestampMixin,
    UTCDateTime,
    enum_column,
    id_column,
)


class Visibility(StrEnum):
    PRIVATE = "private"
    PUBLIC = "public"


class AppStatus(StrEnum):
    DRAFT = "draft"
    GENERATING = "generating"
    READY = "ready"
    ERROR = "error"
    DEPLOYED = "deployed"


class App(TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "apps"
    __table_args__ = (
        CheckConstraint(
            "user_id IS NOT NULL OR anonymous_owner_hash IS NOT NULL", name="has_owner"
        ),
        CheckConstraint(
            "star_count >= 0 AND view_count >= 0 AND fork_count >= 0 AND favorite_count >= 0",
            name="counts_not_negative",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[str] = id_column()
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    icon: Mapped[str | None] = mapped_column(String(2048))
    original_prompt: Mapped[str | None] = mapped_column(Text)
    final_prompt: Mapped[str | None] = mapped_column(Text)
    blueprint: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    framework: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE")
    )
    # Keyed hash of an anonymous visitor's token; never the token itself.
    anonymous_owner_hash: Mapped[str | None] = mapped_column(String(TOKEN_HASH_LENGTH))
    visibility: Mapped[Visibility] = mapped_column(
        enum_column(Visibility, "visibility"), default=Visibility.PRIVATE, nullable=False
    )
    status: Mapped[AppStatus] = mapped_column(
        enum_column(AppStatus, "status"), default=AppStatus.DRAFT, nullable=False
    )
    deployment_url: Mapped[str | None] = mapped_column(String(2048))
    deployment_status: Mapped[str | None] = mapped_column(String(50))
    deployment_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    github_repo_url: Mapped[str | None] = mapped_column(String(2048))
    github_repo_visibility: Mapped[Visibility | None] = mapped_column(
        enum_column(Visibility, "github_repo_visibility")
    )
    parent_app_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("apps.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    screenshot_url: Mapped[str | None] = mapped_column(String(2048))
    screenshot_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_deployed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Counters are data, not queries: updated in the same transaction as their events.
    star_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    view_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    fork_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    favorite_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    def __repr__(self) -> str:
        return f"App(id={self.id!r}, status={self.status!r})"


# The gallery's WHERE clause. Feed queries use this exact text so both planners match
# the partial indexes below, and ORDER BY ... LIMIT is an index walk, never a sort.
FEED_PREDICATE = (
    "visibility = 'public' AND is_archived = false AND deleted_at IS NULL "
    "AND status IN ('ready', 'deployed')"
)
_feed_where = text(FEED_PREDICATE)


def _feed_index(name: str, *columns: Any) -> Index:
    return Index(name, *columns, sqlite_where=_feed_where, postgresql_where=_feed_where)


_feed_index("ix_apps_feed_recent", App.created_at, App.id)
_feed_index("ix_apps_feed_updated", App.updated_at, App.id)
_feed_index("ix_apps_feed_popular", App.star_count, App.id)
_feed_index("ix_apps_feed_viewed", App.view_count, App.id)
_feed_index("ix_apps_feed_fw_recent", App.framework, App.created_at, App.id)
_feed_index("ix_apps_feed_fw_updated", App.framework, App.updated_at, App.id)
_feed_index("ix_apps_feed_fw_popular", App.framework, App.star_count, App.id)
_feed_index("ix_apps_feed_fw_viewed", App.framework, App.view_count, App.id)
# Owner listings ("my apps") and anonymous-owner claims; forks of a parent.
Index("ix_apps_owner_created", App.user_id, App.created_at, App.id)
Index("ix_apps_anonymous_owner", App.anonymous_owner_hash)
Index("ix_apps_parent", App.parent_app_id, App.created_at)
Index("ix_apps_deleted_at", App.deleted_at)
