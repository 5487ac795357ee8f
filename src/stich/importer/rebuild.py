"""After an import: maintained state rebuilt by Stich's own code, then checked.

Counters, daily rollups (views, unique viewers, stars), referrer and device breakdowns,
feed totals and the search index come from the repairs of ``stich db verify``
(:mod:`stich.analytics.recount`), with every imported day recounted exactly (the raw
views of every day are all there right after an import); then every windowed feed
ranking snapshot is recomputed (:mod:`stich.gallery.rankings`). Last, the checks of
``stich db verify`` run as the command runs them, and the report says whether they
found anything.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from stich.analytics.recount import Check, verification_checks
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery import rankings
from stich.gallery.sorts import ranking_name

OnStep = Callable[[str], None]


def rebuild(db: Database, on_step: OnStep = lambda name: None) -> float:
    """Rebuild everything the import did not write itself; seconds taken."""
    started = time.perf_counter()
    for check in verification_checks():
        on_step(check.name)
        with db.write() as uow:
            _repair(check, uow.session)
    now = utcnow()
    for sort, period in rankings.SCORED_RANKINGS:
        name = ranking_name(sort, period)
        on_step(f"ranking {name}")
        with db.write() as uow:  # one per transaction, as the maintenance job does
            rankings.refresh(uow.session, name, now)
    return time.perf_counter() - started


def _repair(check: Check, session: Any) -> None:
    # The set-based repair (one statement per table) takes the session alone; the
    # per-drift one before it took the drifts found.
    if len(inspect.signature(check.repair).parameters) == 1:
        check.repair(session)
        return
    drifts = check.find(session)
    if drifts:
        check.repair(session, drifts)  # type: ignore[call-arg]


def verify(db: Database, settings: Settings) -> int:
    """Drifts ``stich db verify`` finds now (0: clean)."""
    try:
        from stich.analytics.history import view_history
    except ImportError:  # before the view-history module
        checks = verification_checks(settings.view_retention_days)  # type: ignore[arg-type]
    else:
        with db.read("fresh") as uow:
            history = view_history(uow.session, settings.view_retention_days)
        checks = verification_checks(history)
    found = 0
    for check in checks:
        with db.write() if check.needs_write else db.read("fresh") as uow:
            found += len(check.find(uow.session))
    return found
