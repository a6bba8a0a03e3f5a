"""The web console in headless Chromium, through the real gateway on real Docker.

A tenant logs in, deploys `functions/hello/main.py` from the console (file upload), invokes
it, watches its activations (and their logs) appear, and reads its bill; the admin sees the
node pool as packed bins and the economics. Each view's screenshot is saved under
`.nimbus/screenshots/` for a person to look at. Needs Debian's `chromium` and
`chromium-driver` and the `selenium` package (the test extra).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, Running

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver import Chrome as WebDriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".nimbus" / "screenshots"
SAMPLE = ROOT / "functions" / "hello" / "main.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """Headless Chromium driven by Debian's chromedriver (nothing is downloaded)."""
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver, what: str, check: Callable[[WebDriver], Any], timeout: float = 30
) -> Any:
    """Wait until `check` returns something truthy; fail naming `what`, with a screenshot."""
    try:
        # A view redrawn between finding an element and reading it: look again.
        wait = WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.2,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        return wait.until(check)
    except TimeoutException:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "failure.png"))
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"timed out waiting for {what}; the page shows:\n{body}") from None


def text_of(driver: WebDriver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def visible(driver: WebDriver, css: str) -> WebElement | None:
    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return found[0] if found else None


def shot(driver: WebDriver, name: str) -> None:
    """The whole page (the window grown to its height for the picture), top to bottom."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], height + 120))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(size["width"], size["height"])


def go(driver: WebDriver, view: str) -> None:
    """Follow a navigation link, as a user would click it."""
    driver.find_element(By.CSS_SELECTOR, f'#nav a[data-view="{view}"]').click()
    wait_for(
        driver, f"the {view} view", lambda d: d.find_elements(By.CSS_SELECTOR, f".view-{view}")
    )


def log_in(driver: WebDriver, url: str, key: str) -> None:
    driver.get(f"{url}/console")
    field = wait_for(driver, "the login form", lambda d: visible(d, "#api-key"))
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait_for(driver, "the navigation", lambda d: visible(d, "#nav"))


def console_errors(driver: WebDriver) -> list[str]:
    """Script errors and CSP violations the browser logged (failed API reads are expected)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        entry["message"]
        for entry in entries
        if "Content Security Policy" in entry["message"] or "Uncaught" in entry["message"]
    ]


def api_status(url: str, key: str, path: str) -> int:
    """The status the API answers a GET with."""
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def invoke_over_http(url: str, key: str, name: str, event: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/v1/functions/{name}/invoke",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200


def tenant_session(url: str, key: str) -> None:
    """Log in, deploy from a file, invoke, follow activations and logs, read the bill."""
    with chromium() as driver:
        driver.get(f"{url}/console")
        wait_for(driver, "the login form", lambda d: visible(d, "#api-key"))
        shot(driver, "01-login")
        log_in(driver, url, key)
        assert "tenant console-user" in text_of(driver, "#who")
        assert visible(driver, '#nav a[data-view="nodes"]') is None, "a tenant sees admin views"
        wait_for(driver, "the empty function list", lambda d: "No functions yet" in d.page_source)

        # Deploy: the code is a file the user picks.
        go(driver, "deploy")
        driver.find_element(By.ID, "fn-name").send_keys("greet")
        driver.find_element(By.ID, "fn-code").send_keys(str(SAMPLE))
        assert driver.find_element(By.ID, "fn-handler").get_attribute("value") == "main.handler"
        Select(driver.find_element(By.ID, "fn-runtime")).select_by_value("python:3.11")
        memory = driver.find_element(By.ID, "fn-memory")
        memory.clear()
        memory.send_keys("256")
        shot(driver, "02-deploy")
        driver.find_element(By.CSS_SELECTOR, "#deploy-form button[type=submit]").click()
        wait_for(driver, "the function page", lambda d: text_of(d, "#view h1") == "greet")
        assert "256 MB" in text_of(driver, ".facts")
        # Versions and aliases: a panel where the gateway answers them, none where it does not.
        if api_status(url, key, "/v1/functions/greet/versions") == 200:
            panel = wait_for(driver, "the versions panel", lambda d: visible(d, "#versions"))
            assert "1 (latest)" in panel.text
        else:
            assert visible(driver, "#versions") is None

        # Invoke: result, logs, duration, cold start.
        event = driver.find_element(By.ID, "invoke-event")
        event.clear()
        event.send_keys('{"name": "Console"}')
        driver.find_element(By.CSS_SELECTOR, "#invoke-form button[type=submit]").click()
        wait_for(
            driver,
            "the invoke result",
            lambda d: "Hello, Console!" in text_of(d, '[data-testid="invoke-result"]'),
            timeout=90,
        )
        assert "greeting Console" in text_of(driver, '[data-testid="invoke-logs"]')
        outcome = text_of(driver, ".invoke-output .facts")
        assert "cold" in outcome and "success" in outcome and " ms" in outcome
        shot(driver, "03-function-invoke")

        # Activations: the call is listed; selecting it shows its logs; a new call appears
        # by itself (the view polls every 2 s).
        go(driver, "activations")
        row = wait_for(
            driver, "the activation row", lambda d: visible(d, "#activation-list button.link")
        )
        assert "greet" in text_of(driver, "#activation-list tbody")
        row.click()
        wait_for(
            driver,
            "the activation's logs",
            lambda d: "greeting Console" in text_of(d, '[data-testid="activation-logs"]'),
        )
        invoke_over_http(url, key, "greet", {"name": "Live"})
        wait_for(
            driver,
            "the second activation without a reload",
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#activation-list tbody tr")) == 2,
        )
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("application_error")
        wait_for(driver, "the status filter", lambda d: "No activations match" in d.page_source)
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("")
        wait_for(
            driver,
            "the unfiltered list",
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#activation-list tbody tr")) == 2,
        )
        shot(driver, "04-activations")

        # The bill: per function and per day, charts and tables.
        go(driver, "billing")
        wait_for(driver, "the bill", lambda d: visible(d, "#bill-body svg.chart"))
        per_function = text_of(driver, "#bill-body section:first-of-type table")
        assert "greet" in per_function and "TOTAL" in per_function
        greet_row = next(r for r in per_function.splitlines() if r.startswith("greet"))
        assert greet_row.split()[1] == "2", greet_row  # two invocations
        shot(driver, "05-bill")

        # The key lives in sessionStorage only: never in the URL, localStorage or a cookie.
        assert key not in driver.current_url
        stored = driver.execute_script("return sessionStorage.getItem('nimbus.console.key')")
        assert stored == key
        assert driver.execute_script("return localStorage.length") == 0
        assert driver.get_cookies() == []
        assert console_errors(driver) == []

        driver.find_element(By.ID, "logout").click()
        wait_for(driver, "the login form again", lambda d: visible(d, "#api-key"))
        assert driver.execute_script("return sessionStorage.length") == 0


def admin_session(url: str) -> None:
    """The admin's node picture and economics."""
    with chromium() as driver:
        log_in(driver, url, ADMIN_KEY)
        assert "admin" in text_of(driver, "#who")
        go(driver, "nodes")
        wait_for(
            driver,
            "a container in a node's bar",
            lambda d: d.find_elements(By.CSS_SELECTOR, "li.node svg.bin g.container"),
        )
        assert "local provider" in text_of(driver, "#nodes-summary")
        shot(driver, "06-nodes")
        go(driver, "economics")
        wait_for(driver, "the economics chart", lambda d: visible(d, "#econ-body svg.chart"))
        assert "VM cost" in text_of(driver, "#econ-body")
        shot(driver, "07-economics")
        assert console_errors(driver) == []


def view_table(view: str) -> Callable[[WebDriver], list[WebElement]]:
    """A wait condition: the view is drawn and holds a table."""
    return lambda d: d.find_elements(By.CSS_SELECTOR, f".view-{view} table")


def phone_session(url: str, key: str) -> None:
    """A phone-wide window: every view fits the width (tables scroll in their own box)."""
    with chromium(390, 844) as driver:
        log_in(driver, url, key)
        for view in ("functions", "activations", "billing"):
            driver.get(f"{url}/console#/{view}")
            wait_for(driver, f"the {view} view", view_table(view))
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{view} is wider than a phone"
        shot(driver, "08-phone-bill")


async def test_console_in_chromium(platform: Running) -> None:
    url = platform.api.url
    status, payload, _ = await platform.api.call("POST", "/v1/tenants", {"name": "console-user"})
    assert status == 201, payload
    key = payload["api_key"]
    # Selenium blocks: the browser runs in a thread while this loop serves the gateway.
    await asyncio.to_thread(tenant_session, url, key)
    await asyncio.to_thread(admin_session, url)
    await asyncio.to_thread(phone_session, url, key)
