"""Forged feed cursors: any value a client can put in one answers 422 ``invalid_cursor``
(or a page), never a 500 — extreme dates, integers past every column's range, a reference
day at the edge of the calendar — for every sort, on both backends."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stich.db import Database
from stich.db.pagination import encode_cursor
from stich.gallery.feed import FeedPeriod, FeedRequest, FeedSort
from tests.factories import make_user
from tests.gallery_support import make_app

APP_ID = "0190f000-0000-7000-8000-000000000000"
# Past 64 bits (no column holds them), and past the 32-bit columns (counters, generation).
HUGE = [10**20, -(10**20), 2**63, -(2**63) - 1]
HUGE_FOR_32_BITS = [*HUGE, 2**31, -(2**31) - 1]
# Dates whose conversion to UTC leaves the calendar, and the calendar's own edges.
EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59.999999+00:00",
]
COUNTER_KEYS: dict[FeedSort, list[Any]] = {
    FeedSort.RECENT: [{"t": t} for t in EXTREME_TIMES],
    FeedSort.UPDATED: [{"t": t} for t in EXTREME_TIMES],
    FeedSort.POPULAR: HUGE_FOR_32_BITS,
    FeedSort.VIEWED: HUGE_FOR_32_BITS,
}
SCORED = [
    (FeedSort.POPULAR, FeedPeriod.WEEK),
    (FeedSort.VIEWED, FeedPeriod.TODAY),
    (FeedSort.TRENDING, FeedPeriod.ALL),
    (FeedSort.TRENDING, FeedPeriod.MONTH),
]
GOOD_TIME = {"t": "2026-03-10T12:00:00+00:00"}


def _forge(sort: FeedSort, period: FeedPeriod, values: list[Any]) -> str:
    scope = FeedRequest(sort=sort, period=period).cursor_scope
    # encode_cursor passes JSON values through: a dict is how a datetime travels.
    return encode_cursor(scope, values)


def _scored_cursors() -> list[list[Any]]:
    """Each slot of a windowed cursor pushed to an extreme, the others plausible."""
    good = ["2026-03-10", 5, GOOD_TIME, APP_ID, 0, GOOD_TIME]
    forged: list[list[Any]] = []
    for reference in ["0001-01-01", "0001-01-02", "0002-01-01"]:
        forged.append([reference, *good[1:]])
    for score in [*HUGE, -1]:
        forged.append([good[0], score, *good[2:]])
    for time in EXTREME_TIMES:
        forged.append([*good[:2], {"t": time}, *good[3:]])
        forged.append([good[0], 0, {"t": time}, *good[3:]])  # the score-0 tail
    for generation in [*HUGE_FOR_32_BITS, -1]:
        forged.append([*good[:4], generation, good[5]])
    for time in EXTREME_TIMES:  # the walk's since
        forged.append([*good[:5], {"t": time}])
    return forged


def _page(client: TestClient, sort: FeedSort, period: FeedPeriod, cursor: str) -> Any:
    return client.get("/api/apps/public", params={"sort": sort, "period": period, "cursor": cursor})


def _assert_refused(response: Any, forged: object) -> None:
    assert response.status_code == 422, (forged, response.text)
    assert response.json()["error"]["code"] == "invalid_cursor", forged


@pytest.fixture
def listed(db: Database) -> None:
    user = make_user(db)
    make_app(db, user.user_id, star_count=3, view_count=4)


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize("sort", list(COUNTER_KEYS))
def test_counter_cursors_with_extreme_values_are_refused(
    client: TestClient, sort: FeedSort
) -> None:
    since = [GOOD_TIME] if sort in (FeedSort.POPULAR, FeedSort.VIEWED) else []
    forged = [[key, APP_ID, *since] for key in COUNTER_KEYS[sort]]
    if since:
        forged += [[3, APP_ID, {"t": time}] for time in EXTREME_TIMES]
    for values in forged:
        cursor = _forge(sort, FeedPeriod.ALL, values)
        _assert_refused(_page(client, sort, FeedPeriod.ALL, cursor), values)


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize(("sort", "period"), SCORED)
def test_windowed_cursors_with_extreme_values_are_refused(
    client: TestClient, sort: FeedSort, period: FeedPeriod
) -> None:
    for values in _scored_cursors():
        cursor = _forge(sort, period, values)
        _assert_refused(_page(client, sort, period, cursor), values)


@pytest.mark.usefixtures("listed")
def test_non_finite_and_oversized_json_numbers_are_refused(client: TestClient) -> None:
    """JSON that Python reads as infinities or NaN, in any slot, is a bad cursor."""
    scope = FeedRequest(sort=FeedSort.POPULAR).cursor_scope
    for raw in ["1e999", "-1e999", "NaN", "Infinity", "1" * 40]:
        body = f'["{scope}",[{raw},"{APP_ID}",{{"t":"{GOOD_TIME["t"]}"}}]]'.encode()
        token = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        response = _page(client, FeedSort.POPULAR, FeedPeriod.ALL, token)
        _assert_refused(response, raw)


@pytest.mark.usefixtures("listed")
@pytest.mark.parametrize("sort", [FeedSort.RECENT, FeedSort.POPULAR, FeedSort.TRENDING])
def test_plausible_forged_cursors_still_page(client: TestClient, sort: FeedSort) -> None:
    """Bounds refuse the absurd only: an ordinary value forged by hand is a page."""
    if sort is FeedSort.TRENDING:
        values: list[Any] = ["2026-03-10", 10**12, GOOD_TIME, APP_ID, 0, GOOD_TIME]
    elif sort is FeedSort.POPULAR:
        values = [2**31 - 1, APP_ID, GOOD_TIME]
    else:
        values = [{"t": "2999-01-01T00:00:00+05:00"}, APP_ID]
    response = _page(client, sort, FeedPeriod.ALL, _forge(sort, FeedPeriod.ALL, values))
    assert response.status_code == 200, response.text


def test_my_stars_and_profile_cursors_with_extreme_times_are_refused(
    client: TestClient, db: Database
) -> None:
    """The other gallery listings decode through the same bounded codec."""
    user = make_user(db)
    for time in EXTREME_TIMES:
        values = [{"t": time}, APP_ID]
        for reaction in ("stars", "favorites"):
            cursor = encode_cursor(f"me:{reaction[:-1]}", values)
            response = client.get(
                f"/api/me/{reaction}", params={"cursor": cursor}, headers=user.headers
            )
            _assert_refused(response, (reaction, time))
        cursor = encode_cursor(f"profile:{user.user_id}", values)
        response = client.get(f"/api/users/{user.username}", params={"cursor": cursor})
        _assert_refused(response, ("profile", time))
