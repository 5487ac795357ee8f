"""`stich seed` and `stich bench` on a tiny dataset, on both backends.

These check that the commands run and that the numbers compare like with like (the
original's query shapes return the same apps as ours); they never assert a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stich.analytics.recount import verification_checks
from stich.bench.runner import Report
from stich.bench.seed import SCALES, SEED_PASSWORD, Scale, generate
from stich.bench.workloads import Bench, FeedCase, original_page_ids, ours_page_ids
from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery.feed import FeedSort
from tests.conftest import TEST_SERVER_KEY

pytestmark = pytest.mark.db


def seed_tiny(db: Database, settings: Settings) -> None:
    hasher = KeyedHasher(settings.server_key_bytes())
    with db.write() as uow:
        generate(uow.session, Scale.TINY, hasher, passwords_for(settings).hash(SEED_PASSWORD))


def drifts(db: Database) -> list[str]:
    found: list[str] = []
    for check in verification_checks():  # every count, recounted from every event
        with db.write() if check.needs_write else db.read("fresh") as uow:
            found += [drift.describe() for drift in check.find(uow.session)]
    return found


def test_a_seeded_database_verifies_clean(db: Database, settings: Settings) -> None:
    seed_tiny(db, settings)
    assert drifts(db) == []


@pytest.mark.parametrize("framework", [None, "react"])
@pytest.mark.parametrize("sort", [FeedSort.RECENT, FeedSort.POPULAR, FeedSort.VIEWED])
def test_the_original_shape_lists_the_same_apps_as_ours(
    db: Database, settings: Settings, sort: FeedSort, framework: str | None
) -> None:
    seed_tiny(db, settings)
    case = FeedCase(sort, framework=framework)
    today = utcnow().date()
    ours = ours_page_ids(db, case, limit=100)
    assert len(ours) >= 15  # a real comparison, not two empty lists
    assert ours == original_page_ids(db, case, today, limit=100)
    assert ours[10:] == original_page_ids(db, case, today, limit=len(ours) - 10, offset=10)


def test_every_workload_runs_and_keeps_the_counts_right(db: Database, settings: Settings) -> None:
    seed_tiny(db, settings)
    report = Report(backend=db.backend, scale="tiny")
    Bench(settings, db, report, quick=True).run()
    measured = {(m.name, m.group) for m in report.measurements}
    # The tiny dataset has fewer than 200 pages: the deep page is its last one.
    deep = next(
        m.name
        for m in report.measurements
        if m.name.startswith("paging/popular/all/") and m.name != "paging/popular/all/page1"
    )
    for name in ("feed/trending/week/fw+q", deep, "analytics/month"):
        assert {(name, "ours"), (name, "floor"), (name, "original")} <= measured
    others = ("me-apps", "views/single", "views/batch", "stars/toggle", "login", "auth/bearer")
    for name in (*others, "transfer", "secrets/reveal"):
        assert (name, "ours") in measured
    kinds = {(str(r["workload"]), r["kind"]) for r in report.ratios}
    assert ("feed/viewed/month/q", "ours/original") in kinds
    assert any(str(kind).endswith("/page1") for _, kind in kinds)
    # The writes went through the services: views, stars and transfers left no drift.
    assert drifts(db) == []


def test_seed_then_bench_from_the_command_line(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    env.update(STICH_SERVER_KEY=TEST_SERVER_KEY, STICH_ARGON2_MEMORY_COST="1024")

    def stich(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stich.cli", *args]
        return subprocess.run(
            command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    seeded = stich("seed", "--scale", "tiny", "--database-url", database_url)
    assert seeded.returncode == 0, seeded.stderr
    assert f"{SCALES[Scale.TINY].apps} apps" in seeded.stderr
    again = stich("seed", "--scale", "tiny", "--database-url", database_url)
    assert again.returncode == 1 and "already has" in again.stderr

    out = tmp_path / "bench.json"
    only = "feed/popular/all,paging/recent,login"
    ran = stich(
        "--database-url", database_url, "bench", "--quick", "--only", only, "--json", str(out)
    )
    assert ran.returncode == 0, ran.stderr
    assert "feed/popular/all/fw+q" in ran.stdout
    result = json.loads(out.read_text())
    assert result["scale"] == "tiny"
    assert result["context"]["argon2"] == "argon2id t=3 m=1024KiB p=4"
    names = {m["name"] for m in result["measurements"]}
    feed = {"feed/popular/all", "feed/popular/all/fw", "feed/popular/all/q"}
    assert names >= {*feed, "feed/popular/all/fw+q", "paging/recent/all/page1", "login"}
    assert len([n for n in names if n.startswith("paging/recent/all/page")]) == 2
    assert len(names) == 7
