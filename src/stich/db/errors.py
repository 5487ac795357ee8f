"""Translate database integrity errors into Stich errors by error code, never by message."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from stich.errors import Conflict, Invalid, NotFound, StichError

# PostgreSQL SQLSTATE class 23 (integrity constraint violation).
_PG_SQLSTATE: dict[str, type[StichError]] = {
    "23505": Conflict,  # unique_violation
    "23P01": Conflict,  # exclusion_violation
    "23503": NotFound,  # foreign_key_violation: a referenced row does not exist
    "23502": Invalid,  # not_null_violation
    "23514": Invalid,  # check_violation
}

# sqlite3.IntegrityError.sqlite_errorname (extended result codes, Python >= 3.11).
_SQLITE_ERRORNAME: dict[str, type[StichError]] = {
    "SQLITE_CONSTRAINT_UNIQUE": Conflict,
    "SQLITE_CONSTRAINT_PRIMARYKEY": Conflict,
    "SQLITE_CONSTRAINT_FOREIGNKEY": NotFound,
    "SQLITE_CONSTRAINT_NOTNULL": Invalid,
    "SQLITE_CONSTRAINT_CHECK": Invalid,
}

_MESSAGES: dict[type[StichError], tuple[str, str]] = {
    Conflict: ("conflict", "this conflicts with an existing record"),
    NotFound: ("reference_not_found", "a referenced record does not exist"),
    Invalid: ("constraint_violation", "the data breaks a database rule"),
}


def integrity_error_kind(
    exc: IntegrityError | DataError,
) -> tuple[type[StichError], dict[str, Any]]:
    orig = exc.orig
    if isinstance(exc, DataError):
        # SQLSTATE class 22: a value too long or out of range for its column.
        return Invalid, {}
    details: dict[str, Any] = {}
    if isinstance(orig, sqlite3.IntegrityError):
        kind = _SQLITE_ERRORNAME.get(getattr(orig, "sqlite_errorname", ""), Conflict)
        return kind, details
    sqlstate = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) if diag is not None else None
    if constraint:
        details["constraint"] = constraint
    return _PG_SQLSTATE.get(sqlstate or "", Conflict), details


def translate_integrity_error(exc: IntegrityError | DataError) -> StichError:
    kind, details = integrity_error_kind(exc)
    code, message = _MESSAGES.get(kind, ("conflict", "conflict"))
    return kind(message, code=code, details=details)


def is_unique_violation(exc: IntegrityError) -> bool:
    return integrity_error_kind(exc)[0] is Conflict


class ReadOnlyTransactionError(RuntimeError):
    """A write was attempted inside ``db.read(...)``: a programming error, never user input."""


def is_read_only_violation(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorname", "") == "SQLITE_READONLY"
    return getattr(orig, "sqlstate", None) == "25006"  # read_only_sql_transaction
