"""``stich bench --http`` on a tiny dataset: every phase runs against ``stich serve
--workers 2`` and gets only successful answers, from wrk and from the Python fallback.
Speed is never asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from stich.apps.models import App
from stich.apps.visibility import publicly_visible
from stich.bench import http, wrk
from stich.config import Settings
from stich.db import Database
from tests.conftest import TEST_KEY_RING, TEST_SERVER_KEY
from tests.test_bench_smoke import seed_tiny

pytestmark = pytest.mark.db


@pytest.mark.parametrize("driver", ["wrk", "httpx"])
def test_every_phase_answers_without_errors(
    db: Database,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    driver: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if driver == "wrk" and wrk.wrk_binary() is None:
        pytest.skip(f"wrk is not installed ({wrk.INSTALL_HINT})")
    # The server must hash tokens with the key that minted them.
    monkeypatch.setenv("STICH_SERVER_KEY", TEST_SERVER_KEY)
    monkeypatch.setenv("STICH_SECRETS_KEYS", TEST_KEY_RING)
    monkeypatch.setattr(http, "WRITERS_SECONDS", 1.0)
    seed_tiny(db, settings)
    with db.read("fresh") as uow:
        app_ids = list(uow.session.scalars(select(App.id).where(publicly_visible()).limit(20)))
    editors = http.editors(db, settings, 4)
    phases = http.phases(
        app_ids, [e.token for e in editors], editors, sqlite=settings.backend == "sqlite"
    )
    plan = http.LoadPlan(processes=2, connections=4, seconds=1.0, max_requests=40)
    plan.driver = driver

    results = http.run_http_phases(database_url, phases, tmp_path / "server.log", plan)

    assert [r.phase for r in results] == [p.name for p in phases]
    assert len(results) == (5 if settings.backend == "sqlite" else 4)
    for result in results:
        assert result.requests > 0, result
        assert result.errors == 0, (result, (tmp_path / "server.log").read_text()[-2000:])
        assert (result.driver, result.processes) == (driver, 2)
