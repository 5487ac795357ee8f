"""A windowed ranking computed live from the daily rollups, when no fresh snapshot is
there to walk (see ``stich.gallery.rankings``): the same order and cursors as a snapshot
walk. Built per call, unlike the compiled shapes of ``stich.gallery.statements``: it is
rare, and its SQL already costs tens of milliseconds."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Select, cast, exists, func, select, text

from stich.analytics.models import AppDailyStats
from stich.apps.models import FEED_PREDICATE, App
from stich.gallery import search
from stich.gallery.rows import Column, Criterion, descending_after, gallery_select
from stich.gallery.sorts import FeedRequest, has_activity, score_contribution
from stich.gallery.statements import Shape, not_demoted_since, pinned_walk


def feed_filters(request: FeedRequest, dialect: str) -> list[Criterion]:
    """The feed predicate and the request's filters, their values bound."""
    filters: list[Criterion] = [text(FEED_PREDICATE)]
    if request.framework is not None:
        filters.append(App.framework == request.framework)
    if request.search_terms:
        terms = list(request.search_terms)
        filters.append(search.matches(terms, dialect, request.framework))
    return filters


def active_select(
    request: FeedRequest,
    dialect: str,
    viewer_id: str | None,
    window: tuple[date, date],
    after: tuple[int, datetime, str] | None,
    limit: int,
    since: datetime | None,
) -> Select[Any]:
    """Apps with a score in ``window`` (first and last day), by score, ``created_at``, id;
    the score is the row's last column. With ``since`` (a later page), none demoted since
    then."""
    start, reference = window
    contribution = score_contribution(request.sort, reference)
    scores = (
        select(
            AppDailyStats.app_id.label("scored_app_id"),
            cast(func.sum(contribution), BigInteger).label("score"),
        )
        .where(AppDailyStats.day >= start, AppDailyStats.day <= reference)
        .group_by(AppDailyStats.app_id)
        .having(func.sum(contribution) > 0)
        .subquery("scores")
    )
    stmt = (
        gallery_select(viewer_id, scores.c.score)
        .join(scores, scores.c.scored_app_id == App.id)
        .where(*feed_filters(request, dialect))
    )
    order: list[Column] = [scores.c.score, App.created_at, App.id]
    if after is not None:
        stmt = stmt.where(descending_after(order, list(after)))
    if since is not None:
        stmt = stmt.where(not_demoted_since(since))
    return stmt.order_by(*(column.desc() for column in order)).limit(limit)


def inactive_select(
    request: FeedRequest,
    shape: Shape,
    viewer_id: str | None,
    window: tuple[date, date],
    after: tuple[datetime, str] | None,
    limit: int,
    since: datetime | None,
    listed: Collection[str] = (),
) -> Select[Any]:
    """The apps without activity in ``window`` (score 0), newest first; with ``since``, none
    demoted since then (an app whose score fell to 0 may have been listed already); none
    of ``listed`` (this page's apps with a score: each statement reads afresh, and one
    whose score fell to 0 in between would be in both)."""
    start, reference = window
    active = exists().where(
        AppDailyStats.app_id == App.id,
        AppDailyStats.day >= start,
        AppDailyStats.day <= reference,
        has_activity(request.sort),
    )
    stmt = pinned_walk(gallery_select(viewer_id), shape, "recent")
    stmt = stmt.where(*feed_filters(request, shape.dialect), ~active)
    if after is not None:
        stmt = stmt.where(descending_after([App.created_at, App.id], list(after)))
    if since is not None:
        stmt = stmt.where(not_demoted_since(since))
    if listed:
        stmt = stmt.where(App.id.not_in(listed))
    return stmt.order_by(App.created_at.desc(), App.id.desc()).limit(limit)
