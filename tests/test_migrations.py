"""Migrations on both backends: empty -> head -> base -> head, and no model drift."""

from __future__ import annotations

from sqlalchemy import inspect

from stich.db import migrate
from stich.db.engine import create_engine_for
from stich.models import metadata


def _tables(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    model_tables = set(metadata.tables)
    migrate.upgrade(url)
    assert model_tables <= _tables(url)
    assert migrate.check(url) is None
    migrate.downgrade(url, "base")
    assert _tables(url) & model_tables == set()
    migrate.upgrade(url)
    assert model_tables <= _tables(url)
    assert migrate.check(url) is None


def test_check_reports_drift(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url)
    extra = metadata.tables["users"].c.keys()
    assert "email" in extra
    # Drop a column behind Alembic's back: the check must notice the models disagree.
    engine = create_engine_for(url, foreign_keys=False)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_audit_logs_created_at")
    finally:
        engine.dispose()
    drift = migrate.check(url)
    assert drift is not None
    assert "ix_audit_logs_created_at" in drift


def test_every_constraint_is_named() -> None:
    for table in metadata.tables.values():
        for constraint in table.constraints:
            assert constraint.name, f"unnamed constraint on {table.name}: {constraint}"
        for index in table.indexes:
            assert index.name, f"unnamed index on {table.name}"


def test_history_is_linear() -> None:
    # Parallel branches must be merged or re-chained before they land.
    assert len(migrate.head_revisions()) == 1
