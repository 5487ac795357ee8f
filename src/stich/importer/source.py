"""The source: a SQLite file of the original's schema, or a ``.sql`` dump of one
(``wrangler d1 export``) loaded statement by statement into a temporary SQLite file.

Rows are read in batches (``fetchmany``), so memory does not grow with the size of a
table. The source is opened read-only; a dump's temporary file is removed when
the source is closed.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stich.importer.schema import REQUIRED_COLUMNS, check_schema

Row = dict[str, Any]
# Read in the order of the target's key where the source has an index for it, so each
# batch lands on neighbouring B-tree pages of the target instead of pages all over its
# index (in rowid order, every batch of views rewrote pages across the whole unique
# key). Views by time: windows ascend, as in live traffic.
READ_ORDER = {
    "users": "id",
    "apps": "id",
    "stars": "user_id, app_id",
    "app_views": "viewed_at",
    "audit_logs": "id",
    "user_secrets": "rowid",
}


class SourceError(Exception):
    """The source cannot be read or is not the original's schema (one line, for the CLI)."""


class Source:
    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if _is_sqlite(path):
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="stich-import-")
            db_path = Path(self._tmpdir.name) / "source.db"
            _load_dump(path, db_path)
            self.conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        missing = check_schema(self.tables())
        if missing:
            self.close()
            raise SourceError(f"{path} is not a database of the original: missing {missing}")

    def tables(self) -> dict[str, set[str]]:
        names = [
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            name: {r[1] for r in self.conn.execute(f'PRAGMA table_info("{name}")')}
            for name in names
        }

    def count(self, table: str) -> int:
        _known(table)
        return int(self.conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # noqa: S608

    def rows(self, table: str, batch_size: int) -> Iterator[list[Row]]:
        """The table's rows (the columns Stich reads), ``batch_size`` at a time."""
        columns = ", ".join(_value(c) for c in REQUIRED_COLUMNS[_known(table)])
        order = READ_ORDER.get(table, "rowid")
        cursor = self.conn.execute(f'SELECT {columns} FROM "{table}" ORDER BY {order}')  # noqa: S608
        names = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(batch_size):
            yield [dict(zip(names, row, strict=True)) for row in batch]

    def tuples(
        self, table: str, columns: tuple[str, ...], batch_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Plain tuples of ``columns`` (the fast path for the largest table)."""
        assert set(columns) <= set(REQUIRED_COLUMNS[_known(table)])
        names = ", ".join(_value(c) for c in columns)
        order = READ_ORDER.get(table, "rowid")
        cursor = self.conn.execute(f'SELECT {names} FROM "{table}" ORDER BY {order}')  # noqa: S608
        while batch := cursor.fetchmany(batch_size):
            yield batch

    def query(self, sql: str, *params: Any) -> Iterator[tuple[Any, ...]]:
        yield from (tuple(r) for r in self.conn.execute(sql, params))

    def close(self) -> None:
        self.conn.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _value(column: str) -> str:
    """A column as read: SQLite (and D1) keep whatever was bound, and a BLOB in a column
    of text or numbers is no value Stich can use, so it reads as NULL (the row is then
    rejected or imported without it, by the column's rules)."""
    quoted = f'"{column}"'
    return f"CASE WHEN typeof({quoted}) = 'blob' THEN NULL ELSE {quoted} END AS {quoted}"


def _known(table: str) -> str:
    if table not in REQUIRED_COLUMNS:  # names are only ever ours, never user input
        raise ValueError(f"not a table of the original: {table}")
    return table


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _load_dump(dump: Path, target: Path) -> None:
    """Execute the dump one complete statement at a time (never the whole file in memory)."""
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.set_authorizer(_authorize)
    parts: list[str] = []
    try:
        with dump.open(encoding="utf-8-sig", errors="strict") as f:  # a BOM is no SQL
            for line in f:
                parts.append(line)
                # Only a line with a ';' can end a statement: a value spread over many
                # lines (a long prompt) is joined and scanned once, not after every line.
                if ";" not in line:
                    continue
                sql = "".join(parts)
                if not sqlite3.complete_statement(sql):
                    continue
                parts.clear()
                if not _skipped(sql):
                    try:
                        conn.execute(sql)  # the sqlite3 module opens the transaction
                    except sqlite3.ProgrammingError:  # several statements on one line
                        conn.executescript(sql)
        conn.commit()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        conn.close()
        raise SourceError(f"{dump}: not a SQLite database or a readable .sql dump ({exc})") from exc
    conn.close()


_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|END|ROLLBACK|PRAGMA)\b[^;']*;\s*", re.IGNORECASE)


def _skipped(sql: str) -> bool:
    """A chunk that is one transaction-control statement or pragma (the load runs in its
    own transaction); never a chunk that holds other statements after one."""
    return _CONTROL.fullmatch(sql) is not None


def _authorize(action: int, arg1: str | None, *_: str | None) -> int:
    """A dump is data: it may create and fill tables in the temporary database, never
    touch another file (ATTACH, and VACUUM INTO, which attaches) or change settings."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_IGNORE
    return sqlite3.SQLITE_OK
