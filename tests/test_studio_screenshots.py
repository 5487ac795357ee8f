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

from stich.api.app import create_app
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.maintenance.jobs import run_maintenance
from stich.users.models import Role
from tests.dashboard_support import expected_series, plotted, seed_showcase
from tests.ops_support import make_account, ops_settings
from tests.test_ops_browser import browser, served, sign_in  # noqa: F401 - browser is a fixture

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
    app_id, owner_id = platform.app_ids[0], platform.user_ids[0]
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

        for name, path, marker in (
            ("studio-apps", "/admin/app/list", "Tide Tables"),
            ("studio-app", f"/admin/app/details/{app_id}", "Tide Tables"),
            ("studio-user", f"/admin/user/details/{owner_id}", "Ada Lovelace"),
        ):
            browser.get(f"{base}{path}")
            body = (By.CLASS_NAME, "page-body")
            wait.until(expected_conditions.presence_of_element_located(body))
            page = browser.page_source
            assert "Internal Server Error" not in page and marker in page, path
            browser.save_screenshot(str(shots / f"{name}.png"))

    for name in SHOTS:
        image = (shots / f"{name}.png").read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 10_000, name
    target = os.environ.get("STICH_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for name in SHOTS:
            shutil.copyfile(shots / f"{name}.png", Path(target) / f"{name}.png")
