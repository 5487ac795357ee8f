"""Alembic environment: runs against the URL (or connection) given by stich.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from stich.db.engine import create_engine_for
from stich.gallery.search import is_unmanaged
from stich.models import metadata

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave out what migrations create by hand and the models cannot describe (the
    full-text search table, index and column of 0003 and 0005), so ``stich db check``
    stays drift-free."""
    return not (type_ in ("table", "index", "column") and is_unmanaged(name))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    # Foreign keys off on SQLite while migrating: batch mode drops and recreates tables.
    engine = create_engine_for(url, foreign_keys=False)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
