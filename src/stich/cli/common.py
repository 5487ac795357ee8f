"""State shared by CLI commands: settings (with the --database-url override) and the db."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stich.config import Settings, load_settings
from stich.db import Database
from stich.log import configure_logging


@dataclass
class CliState:
    database_url: str | None = None
    debug: bool = False
    _settings: Settings | None = None

    def reset(self) -> None:
        self._settings = None

    def settings(self) -> Settings:
        if self._settings is None:
            overrides = {"database_url": self.database_url} if self.database_url else {}
            self._settings = load_settings(**overrides)
            configure_logging(self._settings)
        return self._settings

    def known_database_url(self) -> str | None:
        """The database URL in use, if settings were read (for explaining a failure)."""
        if self._settings is not None:
            return self._settings.database_url
        return self.database_url

    @contextmanager
    def database(self) -> Iterator[Database]:
        db = Database(self.settings())
        try:
            yield db
        finally:
            db.dispose()


state = CliState()
