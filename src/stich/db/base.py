"""Declarative base, naming convention, column types and mixins shared by every model."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Enum, MetaData, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Every constraint gets a deterministic name, so SQLite batch migrations can drop it.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 36


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL stores ``timestamptz``; SQLite stores ISO-8601 text in UTC, which sorts and
    compares correctly. Naive datetimes are refused on the way in: they are always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        # On SQLite, parse the stored text straight to an aware datetime: one C call per
        # value instead of the generic parser plus process_result_value (feed pages read
        # two per row).
        if dialect.name == "sqlite":
            return _sqlite_utc_datetime
        return super().result_processor(dialect, coltype)


def _sqlite_utc_datetime(value: str | None) -> datetime | None:
    # The stored text is UTC without an offset; appending one makes the parser return an
    # aware datetime directly (a fifth of the cost of parse-then-replace).
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text that carries its own offset (not written by this type)
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# JSON everywhere, JSONB on PostgreSQL (indexable, compact, de-duplicated keys).
JSONType = JSON().with_variant(JSONB(), "postgresql")


def enum_column(enum_cls: type[StrEnum], name: str) -> Enum:
    """A StrEnum stored as text with a named CHECK constraint (no native PG enum types)."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in enum_cls),
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class _UUIDv7:
    """RFC 9562 UUIDv7: 48-bit millisecond time, then randomness; monotonic per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                # Same millisecond (or clock went back): keep order with a 12-bit counter.
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
                now_ms = self._last_ms
            else:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2)) & 0x3FF
            counter = self._counter
        rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
        value = (now_ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
        return str(uuid.UUID(int=value))


new_id = _UUIDv7()


def id_column(**kwargs: Any) -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True, default=new_id, **kwargs)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )


class SoftDeleteMixin:
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
