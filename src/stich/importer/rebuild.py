"""After an import: maintained state rebuilt by Stich's own code, then checked.

Counters, daily rollups (views, unique viewers, stars), referrer and device breakdowns,
feed totals and the search index come from
:func:`stich.analytics.rebuild.rebuild_maintained_state` (set-based, one statement per
table; views older than the retention are rolled up too, so imported history is in the
rollups before the maintenance purge takes the raw rows). Then every windowed feed
ranking snapshot is recomputed (:mod:`stich.gallery.rankings`). Last, the checks of
``stich db verify`` run as the command runs them, and the report says if they found
anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stich.analytics.history import view_history
from stich.analytics.rebuild import RebuiltPart, rebuild_maintained_state
from stich.analytics.recount import verification_checks
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery import rankings
from stich.gallery.sorts import ranking_name

OnStep = Callable[[str], None]


def rebuild(db: Database, on_step: OnStep = lambda name: None) -> float:
    """Rebuild everything the import did not write itself; seconds taken."""
    started = time.perf_counter()

    def rebuilt(part: RebuiltPart) -> None:
        on_step(f"{part.name}: {part.rows} rows in {part.seconds:.1f} s")

    rebuild_maintained_state(db, progress=rebuilt)
    now = utcnow()
    for sort, period in rankings.SCORED_RANKINGS:
        name = ranking_name(sort, period)
        with db.write() as uow:  # one per transaction, as the maintenance job does
            rankings.refresh(uow.session, name, now)
    on_step(f"feed ranking snapshots: {len(rankings.SCORED_RANKINGS)}")
    return time.perf_counter() - started


def verify(db: Database, settings: Settings) -> int:
    """Drifts ``stich db verify`` finds now (0: clean)."""
    with db.read("fresh") as uow:
        history = view_history(uow.session, settings.view_retention_days)
    found = 0
    for check in verification_checks(history):
        with db.write() if check.needs_write else db.read("fresh") as uow:
            found += len(check.find(uow.session))
    return found
