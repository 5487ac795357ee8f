"""Stich Studio and the API docs in a real browser: headless Chromium (Debian's chromium
and chromium-driver, installed by `make browser`) driven by Selenium against the API
served by uvicorn on loopback, with every other host unreachable. An admin signs in,
opens the apps table, changes an app's visibility, and the change and its audit entry
are then visible through the API; a non-admin is refused; no credential column or value
reaches the pages. /docs renders offline, and a token given to "Authorize" is used by
"Try it out"."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from stich.api.app import create_app
from stich.config import Settings
from stich.db import Database
from stich.users.models import Role
from tests.conftest import IN_CI
from tests.factories import make_user
from tests.ops_support import (
    SENSITIVE_COLUMN_NAMES,
    make_account,
    make_app,
    ops_settings,
    store_credential_rows,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return ops_settings(database_url, tmp_path)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (run `make browser`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        # The network is cut: every host name but loopback fails to resolve, so a page
        # that needs a CDN (or any outside host) cannot load it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def served(app: object) -> Iterator[str]:
    """The app on a loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def click(driver: WebDriver, by: str, value: str) -> None:
    """Scroll the element into the middle of the window, then click it like a person."""
    element = driver.find_element(by, value)
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element
    )
    element.click()


def sign_in(driver: WebDriver, base: str, email: str, password: str) -> None:
    driver.get(f"{base}/admin/login")
    driver.find_element(By.ID, "studio-email").send_keys(email)
    driver.find_element(By.ID, "studio-password").send_keys(password)
    click(driver, By.ID, "studio-login-submit")


def test_admin_changes_visibility_in_the_browser(
    browser: WebDriver, db: Database, settings: Settings
):
    admin = make_account(db, settings, role=Role.ADMIN)
    member = make_account(db, settings, role=Role.USER)
    owner = make_user(db)
    app_id = make_app(db, user_id=owner.user_id, title="Tide Tables")
    credentials = store_credential_rows(db, admin.user_id)
    wait = WebDriverWait(browser, 20)

    with served(create_app(settings, db)) as base:
        # A non-admin is refused at the door and stays outside.
        sign_in(browser, base, member.email, member.password)
        error = wait.until(
            expected_conditions.presence_of_element_located((By.ID, "studio-login-error"))
        )
        assert "admin accounts only" in error.text
        browser.get(f"{base}/admin/app/list")
        assert browser.current_url.endswith("/admin/login")

        # The admin signs in and opens the apps table, then the app.
        sign_in(browser, base, admin.email, admin.password)
        wait.until(expected_conditions.url_to_be(f"{base}/admin/"))
        browser.get(f"{base}/admin/app/list")
        assert "Tide Tables" in browser.page_source
        click(browser, By.CSS_SELECTOR, f'a[href$="/admin/app/details/{app_id}"]')
        wait.until(expected_conditions.url_contains(f"/admin/app/details/{app_id}"))
        click(browser, By.PARTIAL_LINK_TEXT, "visibility")
        wait.until(expected_conditions.url_contains(f"/admin/app/manage/{app_id}"))

        # ... and makes it public.
        Select(browser.find_element(By.ID, "app-visibility-select")).select_by_value("public")
        click(browser, By.ID, "app-visibility-submit")
        wait.until(
            expected_conditions.text_to_be_present_in_element((By.ID, "app-visibility"), "public")
        )

        # The owner sees the change and its audit entry through the API.
        with httpx.Client(base_url=base, headers=owner.headers) as api:
            app = api.get(f"/api/apps/{app_id}")
            assert app.status_code == 200 and app.json()["visibility"] == "public"
            trail = api.get("/api/me/audit").json()["items"]
        [entry] = [item for item in trail if item["action"] == "app.visibility"]
        assert entry["actor_id"] == admin.user_id and entry["resource_id"] == app_id
        assert entry["new_values"] == {"visibility": "public"}

        # No credential column or value on the pages that hold them.
        pages = []
        for path in (
            "/admin/user-session/list",
            "/admin/api-key/list",
            "/admin/o-auth-state/list",
            "/admin/user-secret/list",
            "/admin/anonymous-owner/list",
            "/admin/audit-log/list",
            f"/admin/user/details/{admin.user_id}",
            "/admin/app/list",
        ):
            browser.get(f"{base}{path}")
            assert "Internal Server Error" not in browser.page_source
            pages.append(browser.page_source)
        shown = "\n".join(pages)
        for secret in credentials.values:
            assert secret not in shown
        for name in SENSITIVE_COLUMN_NAMES:
            assert name not in shown, name


def test_api_docs_work_offline_and_authorize(browser: WebDriver, db: Database, settings: Settings):
    user = make_user(db)
    token = user.headers["Authorization"].removeprefix("Bearer ")
    wait = WebDriverWait(browser, 30)

    with served(create_app(settings, db)) as base:
        browser.get(f"{base}/docs")
        click_when_ready = expected_conditions.element_to_be_clickable
        wait.until(click_when_ready((By.CSS_SELECTOR, ".auth-wrapper .btn.authorize")))
        # Everything the page loaded came from the app itself.
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(url.startswith(base) for url in loaded), loaded
        assert "Stich" in browser.find_element(By.CSS_SELECTOR, ".info .title").text

        # Authorize with a session token ...
        click(browser, By.CSS_SELECTOR, ".auth-wrapper .btn.authorize")
        field = wait.until(
            expected_conditions.visibility_of_element_located(
                (By.CSS_SELECTOR, ".modal-ux input[type=text]")
            )
        )
        field.send_keys(token)
        click(browser, By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize")
        click(browser, By.CSS_SELECTOR, ".modal-ux .btn-done")

        # ... and "Try it out" on GET /api/me sends it.
        operation = "#operations-me-get_me_api_me_get"
        click(browser, By.CSS_SELECTOR, f"{operation} .opblock-summary-control")
        wait.until(click_when_ready((By.CSS_SELECTOR, f"{operation} .try-out__btn")))
        click(browser, By.CSS_SELECTOR, f"{operation} .try-out__btn")
        wait.until(click_when_ready((By.CSS_SELECTOR, f"{operation} .execute")))
        click(browser, By.CSS_SELECTOR, f"{operation} .execute")
        status = (
            By.CSS_SELECTOR,
            f"{operation} .live-responses-table .response .response-col_status",
        )
        wait.until(expected_conditions.visibility_of_element_located(status))
        assert browser.find_element(*status).text.strip() == "200"

        browser.get(f"{base}/redoc")
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "h1")))
        assert "Stich" in browser.find_element(By.CSS_SELECTOR, "h1").text
