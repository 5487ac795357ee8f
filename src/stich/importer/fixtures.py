"""Databases in the original's schema (``original_schema.sql``, as drizzle-kit emits it),
for the tests and the benchmark's source generator."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any


def original_schema() -> str:
    return resources.files("stich.importer").joinpath("original_schema.sql").read_text()


def create_source(path: Path) -> sqlite3.Connection:
    """An empty SQLite database of the original's schema at ``path``."""
    conn = sqlite3.connect(path)
    conn.executescript(original_schema())
    return conn


def insert_rows(conn: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert dict rows; columns not given take the original's defaults (so
    ``DEFAULT (CURRENT_TIMESTAMP)`` leaves its TEXT in integer columns, as in the original)."""
    for row in rows:
        names = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values()))  # noqa: S608


def dump(conn: sqlite3.Connection, path: Path) -> None:
    """A ``.sql`` dump of the database, as ``sqlite3 .dump`` / ``wrangler d1 export`` write."""
    with path.open("w", encoding="utf-8") as f:
        for line in conn.iterdump():
            f.write(line + "\n")
