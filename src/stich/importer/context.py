"""What every step of an import shares: settings, hashers, options, the report, and the
ids already in the target (so later tables can tell an orphan from a row to keep).

The id sets grow with the number of users and apps (tens of bytes each), never with the
number of views, stars or audit rows, which are streamed in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.crypto.vault import Vault
from stich.db import Database
from stich.importer.legacy_secrets import OriginalSecrets
from stich.importer.report import ImportReport
from stich.importer.writer import BulkWriter, Encode

# (table name, rows read so far in that table): drives a progress bar per table.
OnRows = Callable[[str, int], None]


@dataclass
class ImportContext:
    settings: Settings
    # The target. In a dry run it is only read (to tell what is already there), and None
    # when the target is not migrated to the latest revision yet.
    db: Database | None
    report: ImportReport
    batch_size: int
    trust_verified: bool = False
    dry_run: bool = False
    secrets: OriginalSecrets | None = None
    skip_secrets: bool = False
    vault: Vault | None = None
    on_rows: OnRows = lambda table, n: None
    hasher: KeyedHasher = field(init=False)
    encode: Encode = field(init=False)
    # Original user id -> the id it was merged into (a duplicate email by case).
    aliases: dict[str, str] = field(default_factory=dict)
    user_ids: set[str] = field(default_factory=set)
    app_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.hasher = KeyedHasher(self.settings.server_key_bytes())
        backend = "sqlite" if self.settings.database_url.startswith("sqlite") else "postgresql"
        self.encode = Encode(backend)

    def user(self, original_id: Any) -> str | None:
        """The Stich id of an original user, or None if that user was not imported."""
        if original_id is None:
            return None
        user_id = self.aliases.get(original_id, original_id)
        return user_id if user_id in self.user_ids else None

    @contextmanager
    def writer(self) -> Iterator[BulkWriter]:
        """One transaction per batch, so an interrupted import keeps what it committed."""
        assert self.db is not None and not self.dry_run
        with self.db.write() as uow:
            writer = BulkWriter(uow.session)
            if writer.dialect == "postgresql":
                # A batch lost in a crash is imported again by the rerun (every insert is
                # insert-if-absent), so its commit need not wait for the WAL flush.
                writer.connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield writer

    def present(self, table: str, ids: Sequence[Any], column: str = "id") -> set[Any]:
        """Which of ``ids`` are in ``table``'s ``column`` now."""
        return {row[0] for row in self.lookup(table, column, column, ids)}

    def lookup(
        self, table: str, columns: str, column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table WHERE column IN values`` (names are ours)."""
        found: list[tuple[Any, ...]] = []
        if self.db is None or not values:
            return found
        with self.db.read("fresh") as uow:
            connection = uow.session.connection()
            if self.encode.dialect != "sqlite":
                sql = f"SELECT {columns} FROM {table} WHERE {column} = ANY(%s)"  # noqa: S608
                found.extend(connection.exec_driver_sql(sql, (list(values),)))
                return found
            for start in range(0, len(values), 5000):  # under SQLite's bound-variable limit
                chunk = tuple(values[start : start + 5000])
                marks = ", ".join(["?"] * len(chunk))
                sql = f"SELECT {columns} FROM {table} WHERE {column} IN ({marks})"  # noqa: S608
                found.extend(connection.exec_driver_sql(sql, chunk))
        return found
