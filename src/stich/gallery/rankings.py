"""Snapshots of the windowed feed rankings (popular/viewed over a period, trending).

A windowed ranking sums ``app_daily_stats`` over days; per request that costs tens to
hundreds of milliseconds at a hundred thousand apps. ``refresh`` computes each ranking
once into ``feed_rankings`` under a new generation, and the feed walks that snapshot
with an index (see ``FeedQuery``). The order is the live one: score, then the app's
``created_at``, then id, all descending, so a snapshot page equals the live page at the
moment of the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, cast, delete, func, insert, literal, select, text
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyStats
from stich.analytics.sql import insert_for
from stich.apps.models import FEED_PREDICATE, App
from stich.gallery.models import FeedRanking, FeedRankingSnapshot
from stich.gallery.sorts import (
    PERIOD_DAYS,
    FeedPeriod,
    FeedSort,
    period_start,
    ranking_name,
    score_contribution,
)

# Every ranking the feed computes from the rollups (FeedRequest.scored).
SCORED_RANKINGS: tuple[tuple[FeedSort, FeedPeriod], ...] = (
    *((sort, period) for sort in (FeedSort.POPULAR, FeedSort.VIEWED) for period in PERIOD_DAYS),
    *((FeedSort.TRENDING, period) for period in FeedPeriod),
)


@dataclass(frozen=True)
class Refreshed:
    ranking: str
    generation: int
    apps: int


def stale_rankings(session: Session, now: datetime, refresh_after: timedelta) -> list[str]:
    """Rankings with no snapshot for today, or one older than ``refresh_after``."""
    today = now.date()
    fresh = set(
        session.scalars(
            select(FeedRankingSnapshot.ranking).where(
                FeedRankingSnapshot.reference_day == today,
                FeedRankingSnapshot.computed_at >= now - refresh_after,
            )
        )
    )
    names = [ranking_name(sort, period) for sort, period in SCORED_RANKINGS]
    return [name for name in names if name not in fresh]


def refresh(session: Session, ranking: str, now: datetime) -> Refreshed:
    """Rebuild one ranking as of ``now``'s UTC day into a new generation.

    The snapshot row is locked first, so concurrent refreshes of one ranking queue up
    instead of colliding; the generation before the new one is kept (walks in progress
    finish on it) and older ones are deleted.
    """
    sort_name, _, period_name = ranking.partition(":")
    sort, period = FeedSort(sort_name), FeedPeriod(period_name)
    today = now.date()
    session.execute(
        insert_for(session, FeedRankingSnapshot)
        .values(ranking=ranking, generation=0, reference_day=today, computed_at=now)
        .on_conflict_do_nothing(index_elements=["ranking"])
    )
    snapshot = session.execute(
        select(FeedRankingSnapshot).where(FeedRankingSnapshot.ranking == ranking).with_for_update()
    ).scalar_one()
    generation = snapshot.generation + 1
    contribution = score_contribution(sort, today)
    score = cast(func.sum(contribution), BigInteger)
    scores = (
        select(literal(ranking), literal(generation), App.id, score, App.created_at, App.framework)
        .select_from(AppDailyStats)
        .join(App, App.id == AppDailyStats.app_id)
        .where(
            AppDailyStats.day >= period_start(sort, period, today),
            AppDailyStats.day <= today,
            text(FEED_PREDICATE),
        )
        .group_by(App.id, App.created_at, App.framework)
        .having(func.sum(contribution) > 0)
    )
    columns = ["ranking", "generation", "app_id", "score", "created_at", "framework"]
    session.execute(insert(FeedRanking).from_select(columns, scores))
    session.execute(
        delete(FeedRanking).where(
            FeedRanking.ranking == ranking, FeedRanking.generation < snapshot.generation
        )
    )
    apps = session.scalar(
        select(func.count())
        .select_from(FeedRanking)
        .where(FeedRanking.ranking == ranking, FeedRanking.generation == generation)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Planner statistics for the new generation: without them PostgreSQL takes it for
        # a handful of rows and, e.g., looks scores up by scanning the whole ranking.
        session.execute(text("ANALYZE feed_rankings"))
    snapshot.previous_generation = snapshot.generation or None
    snapshot.generation = generation
    snapshot.reference_day = today
    snapshot.computed_at = now
    snapshot.app_count = apps or 0
    return Refreshed(ranking, generation, snapshot.app_count)
