"""Database core: models base, engines, units of work, bookmarks, pagination, errors."""

from stich.db.session import Consistency, Database, UnitOfWork

__all__ = ["Consistency", "Database", "UnitOfWork"]
