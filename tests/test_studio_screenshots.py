"""The Studio console in headless Chromium (as test_ops_browser.py: Debian's chromium and
chromedriver, the app on loopback, every other host unreachable): an admin signs in, the
dashboard draws its charts with the services' numbers, and the dashboard, the apps list,
an app's page and a user's page are photographed at 1400x900.

The screenshots go to a folder under the test's temporary directory and, when
``STICH_SCREENSHOTS_DIR`` is set, are copied there too: ``make screenshots`` refreshes
the ones docs/operations.md shows (docs/images/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from stich.api.app import create_app
from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.maintenance.jobs import run_maintenance
from stich.users.models import Role, User
from tests.dashboard_support import expected_series, plotted, seed_showcase
from tests.ops_support import make_account, ops_settings
from tests.test_ops_browser import (  # noqa: F401 - browser is a fixture
    browser,
    click,
    served,
    sign_in,
)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1400, 900
SHOTS = ("studio-dashboard", "studio-dashboard-full", "studio-apps", "studio-app", "studio-user")


def viewport(driver: WebDriver, height: int = HEIGHT) -> None:
    """Make the page area exactly WIDTH x height (a window size would include the frame)."""
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def full_page(driver: WebDriver, path: Path) -> None:
    """The whole page, however tall, then back to the usual viewport."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    viewport(driver, height)
    driver.save_screenshot(str(path))
    viewport(driver)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


def test_console_in_the_browser_with_screenshots(
    browser: WebDriver,  # noqa: F811 - the fixture imported above
    db: Database,
    settings: Settings,
    tmp_path: Path,
):
    now = utcnow()
    admin = make_account(db, settings, role=Role.ADMIN, name="opsadmin")
    platform = seed_showcase(db, now)
    run_maintenance(db, settings)  # as the worker would have: the health card shows it
    app_id, owner_id = platform.app_ids[0], platform.user_ids[0]  # the oldest app, its owner
    with db.read() as uow:
        title = uow.session.scalars(select(App.title).where(App.id == app_id)).one()
        owner_name = uow.session.scalars(select(User.display_name).where(User.id == owner_id)).one()
    viewport(browser)
    wait = WebDriverWait(browser, 20)
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with served(create_app(settings, db)) as base:
        sign_in(browser, base, admin.email, admin.password)
        wait.until(expected_conditions.url_to_be(f"{base}/admin/"))
        wait.until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, 'figure.stich-chart[data-chart="views"] svg circle')
            )
        )
        # The charts are drawn (visible, with size), and with the services' numbers.
        charts = browser.find_elements(By.CSS_SELECTOR, "figure.stich-chart svg")
        assert len(charts) == 4 and all(c.size["width"] > 300 for c in charts)
        if now.date() == utcnow().date():  # the day did not turn during the test
            assert plotted(browser.page_source) == expected_series(db, platform, 30)
        # Everything the page loaded came from the Studio itself.
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(url.startswith(base) for url in loaded), loaded
        browser.save_screenshot(str(shots / "studio-dashboard.png"))
        full_page(browser, shots / "studio-dashboard-full.png")
        # The period switch: a quarter of days, the longer history included.
        click(browser, By.CSS_SELECTOR, '#dashboard-period a[href="?period=90"]')
        wait.until(expected_conditions.url_contains("period=90"))
        quarter = plotted(browser.page_source)
        assert all(len(days) == 90 for days in quarter.values())
        assert sum(quarter["Sign-ups"].values()) == len(platform.user_ids) + 1  # and the admin

        browser.get(f"{base}/admin/app/list")
        assert title in browser.page_source and owner_name in browser.page_source
        browser.save_screenshot(str(shots / "studio-apps.png"))

        # An action on the app's page (feature it), audited with the admin as actor.
        browser.get(f"{base}/admin/app/details/{app_id}")
        wait.until(expected_conditions.presence_of_element_located((By.ID, "app-facts")))
        assert title in browser.find_element(By.ID, "app-facts").text
        click(browser, By.ID, "app-feature-submit")
        wait.until(
            expected_conditions.text_to_be_present_in_element((By.ID, "app-facts"), "featured")
        )
        with db.read() as uow:
            entry = uow.session.scalars(
                select(AuditLog).where(AuditLog.action == "app.feature")
            ).one()
        assert entry.actor_id == admin.user_id and entry.resource_id == app_id
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shots / "studio-app.png"))

        browser.get(f"{base}/admin/user/details/{owner_id}")
        wait.until(expected_conditions.presence_of_element_located((By.ID, "user-profile")))
        page = browser.page_source
        assert owner_name in page and "app.feature" in page  # the owner's audit trail
        browser.save_screenshot(str(shots / "studio-user.png"))
        assert "Internal Server Error" not in page

    for name in SHOTS:
        image = (shots / f"{name}.png").read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 10_000, name
    target = os.environ.get("STICH_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for name in SHOTS:
            shutil.copyfile(shots / f"{name}.png", Path(target) / f"{name}.png")
