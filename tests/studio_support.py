"""Helpers for the Studio page tests: a signed-in admin, a page's forms submitted as a
browser would, audit entries by action, statements counted, chart points read back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from stich.analytics.service import AnalyticsService
from stich.analytics.viewer import Viewer
from stich.audit.models import AuditLog
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role
from tests.factories import hasher
from tests.ops_support import Account, make_account, ops_settings

DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


@pytest.fixture
def admin(client: TestClient, db: Database, settings: Settings) -> Account:
    account = make_account(db, settings, role=Role.ADMIN, name=f"boss{uuid.uuid4().hex[:6]}")
    signed_in = client.post(
        "/admin/login", data={"username": account.email, "password": account.password}
    )
    assert signed_in.url.path == "/admin/"
    return account


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def post_from(client: TestClient, page_url: str, action_url: str, **fields: str) -> str:
    """Submit one of a page's forms as the browser would (its CSRF token, back to the page)."""
    page = client.get(page_url)
    assert page.status_code == 200
    data = {"csrf": csrf_of(page.text), "return_to": "details", **fields}
    response = client.post(action_url, data=data)
    assert response.status_code == 200 and response.url.path == page_url, response.url
    return response.text


def audit(db: Database, action: str) -> list[AuditLog]:
    with db.read() as uow:
        return list(uow.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def view(db: Database, app_id: str, ip: str, days_ago: int, ua: str = DESKTOP) -> None:
    at = utcnow() - timedelta(days=days_ago)
    with db.write() as uow:
        AnalyticsService(uow.session, hasher).record_view(
            None, app_id, Viewer(client_ip=ip, user_agent=ua), referrer="https://a.example/", at=at
        )


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run, on any engine, while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def chart_points(page: str, chart: str, series: str) -> dict[str, int]:
    figure = page.split(f'data-chart="{chart}"', 1)[1].split("</figure>", 1)[0]
    group = figure.split(f'data-series="{series}"', 1)[1].split("</g>", 1)[0]
    return {
        day: int(value)
        for day, value in re.findall(r'data-day="([^"]+)" data-value="(\d+)"', group)
    }
