"""The Studio's lists and pages in headless Chromium (as test_ops_browser.py: Debian's
chromium and chromedriver, the app on loopback, every other host unreachable): an admin
opens the apps list, follows an app to its page, sees its analytics chart with the
service's numbers, archives it (accepting the confirmation), follows the owner to their
page and revokes a session; both changes land in the database with their audit entries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from stich.analytics.service import AnalyticsPeriod, AnalyticsService
from stich.analytics.viewer import Viewer
from stich.api.app import create_app
from stich.apps.models import App, AppStatus, Visibility
from stich.audit.models import AuditLog
from stich.auth.models import UserSession
from stich.auth.principal import Principal
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import Role, User
from tests.factories import hasher, make_user
from tests.ops_support import make_account, make_app, ops_settings
from tests.test_ops_browser import browser, click, served, sign_in  # noqa: F401 - a fixture

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


def audited(db: Database, action: str) -> list[tuple[str | None, str | None]]:
    with db.read() as uow:
        entries = uow.session.scalars(select(AuditLog).where(AuditLog.action == action))
        return [(e.actor_id, e.subject_user_id) for e in entries]


def test_admin_archives_an_app_and_revokes_a_session_in_the_browser(
    browser: WebDriver,  # noqa: F811 - the fixture imported above
    db: Database,
    settings: Settings,
):
    admin = make_account(db, settings, role=Role.ADMIN)
    owner = make_user(db, name="harbormaster")  # with one live session
    app_id = make_app(
        db,
        user_id=owner.user_id,
        title="Harbor Lights",
        status=AppStatus.READY,
        visibility=Visibility.PUBLIC,
    )
    for n, days_ago in enumerate((0, 0, 1, 3)):
        with db.write() as uow:
            AnalyticsService(uow.session, hasher).record_view(
                None,
                app_id,
                Viewer(client_ip=f"192.0.2.{n}", user_agent="Mozilla/5.0 (X11; Linux) Chrome/126"),
                at=utcnow() - timedelta(days=days_ago),
            )
    with db.read() as uow:
        owner_name = uow.session.get(User, owner.user_id).display_name  # type: ignore[union-attr]
        numbers = AnalyticsService(uow.session, hasher).app_analytics(
            Principal.user(admin.user_id, Role.ADMIN), app_id, AnalyticsPeriod.MONTH
        )
    wait = WebDriverWait(browser, 20)

    with served(create_app(settings, db)) as base:
        sign_in(browser, base, admin.email, admin.password)
        wait.until(expected_conditions.url_to_be(f"{base}/admin/"))

        # The apps list names the app and its owner.
        browser.get(f"{base}/admin/app/list")
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-app-id="{app_id}"]')
        assert "Harbor Lights" in row.text and owner_name in row.text
        click(browser, By.CSS_SELECTOR, f'tr[data-app-id="{app_id}"] a.studio-app-link')
        wait.until(expected_conditions.url_contains(f"/admin/app/details/{app_id}"))

        # Its page draws the month's views per day, the service's numbers.
        chart = browser.find_element(By.CSS_SELECTOR, 'figure[data-chart="app-daily"]')
        assert chart.find_element(By.TAG_NAME, "svg").is_displayed()
        points = chart.find_elements(By.CSS_SELECTOR, 'g[data-series="Views"] circle')
        drawn = {
            p.get_attribute("data-day"): int(p.get_attribute("data-value") or -1) for p in points
        }
        assert drawn == {d.day.isoformat(): d.views for d in numbers.days}
        assert sum(drawn.values()) == 4

        # Archive, confirming the question the page asks first.
        click(browser, By.ID, "app-archive-submit")
        wait.until(expected_conditions.alert_is_present())
        browser.switch_to.alert.accept()
        wait.until(
            expected_conditions.text_to_be_present_in_element((By.ID, "fact-archived"), "archived")
        )
        assert "Archived." in browser.page_source

        # The owner's page, one click away: revoke their session.
        click(browser, By.CSS_SELECTOR, "#fact-owner a.studio-user-link")
        wait.until(expected_conditions.url_contains(f"/admin/user/details/{owner.user_id}"))
        click(browser, By.ID, "revoke-session-1-submit")
        wait.until(expected_conditions.alert_is_present())
        browser.switch_to.alert.accept()
        wait.until(
            expected_conditions.text_to_be_present_in_element(
                (By.ID, "user-sessions"), "No active sessions."
            )
        )

    with db.read() as uow:
        app = uow.session.get(App, app_id)
        assert app is not None and app.is_archived
        session = uow.session.scalars(
            select(UserSession).where(UserSession.user_id == owner.user_id)
        ).one()
        assert session.revoked_at is not None
    assert audited(db, "app.archive") == [(admin.user_id, owner.user_id)]
    assert audited(db, "auth.session_revoked") == [(admin.user_id, owner.user_id)]
