"""The floor: the exact statements one of our operations sends, replayed through the raw
driver (``sqlite3`` / psycopg) with no ORM, no service and no unit of work.

Statements are captured at the cursor (SQLAlchemy's ``before_cursor_execute``), so the
floor is exactly what reached the database — the SQL text after compilation, the bound
parameters after type processing, and SQLite's ``BEGIN`` — whatever the code that built
them. A replay runs them on a raw connection of the same engine (same pragmas), fetches
every row, and ends the transaction, as our read unit of work does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import PoolProxiedConnection

from stich.db import Database


@dataclass(frozen=True)
class Captured:
    engine: int  # index into Database.engines
    statement: str
    parameters: Any


class Floor:
    """Captures an operation's statements and replays them on raw driver connections."""

    def __init__(self, db: Database) -> None:
        self.engines: list[Engine] = list(db.engines)
        self._connections: dict[int, PoolProxiedConnection] = {}

    def capture(self, operation: Callable[[], object]) -> list[Captured]:
        """Run ``operation`` once and return every statement it executed, in order."""
        captured: list[Captured] = []
        listeners: list[tuple[Engine, Callable[..., None]]] = []
        for index, engine in enumerate(self.engines):

            def listener(
                conn: Any,
                cursor: Any,
                statement: str,
                parameters: Any,
                context: Any,
                executemany: bool,
                index: int = index,
            ) -> None:
                captured.append(Captured(index, statement, parameters))

            event.listen(engine, "before_cursor_execute", listener)
            listeners.append((engine, listener))
        try:
            operation()
        finally:
            for engine, listener in listeners:
                event.remove(engine, "before_cursor_execute", listener)
        return captured

    def replay(self, captured: list[Captured]) -> Callable[[], int]:
        """An operation running ``captured`` through the driver; it returns rows fetched."""
        connections = {c.engine: self._driver_connection(c.engine) for c in captured}

        # Our SQLite reads begin at the driver, where the capture does not see it.
        begun = {c.engine for c in captured if c.statement.startswith("BEGIN")}
        to_begin = [
            connections[i]
            for i in connections
            if i not in begun and self.engines[i].dialect.name == "sqlite"
        ]

        def run() -> int:
            rows = 0
            for connection in to_begin:
                connection.execute("BEGIN DEFERRED")
            for item in captured:
                cursor = connections[item.engine].cursor()
                try:
                    cursor.execute(item.statement, item.parameters)
                    if cursor.description is not None:
                        rows += len(cursor.fetchall())
                finally:
                    cursor.close()
            for connection in connections.values():
                connection.rollback()  # end the read transaction, as our unit of work does
            return rows

        return run

    def _driver_connection(self, index: int) -> Any:
        if index not in self._connections:
            self._connections[index] = self.engines[index].raw_connection()
        return self._connections[index].driver_connection

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
