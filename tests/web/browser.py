"""Headless Chromium (the system's, from Debian) driven by Selenium, and the chat page as tests use it."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support.client import PASSWORD, GatewayClient

IN_CI = os.environ.get("CI", "").lower() == "true"
WAIT = 15.0  # seconds for anything the page does; a condition, polled, never a sleep


def chromium_paths() -> tuple[str, str] | str:
    """(browser, driver), or why they are missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    return "chromium and chromium-driver are not installed (Debian/Ubuntu: apt-get install chromium chromium-driver)"


def start_chromium(browser: str, driver: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-default-apps", "--disable-sync", "--metrics-recording-only"):
        options.add_argument(argument)
    # Console messages and every network request the page makes, read back by the tests.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


class Page:
    """The chat page in one browser; every finder waits for its condition."""

    def __init__(self, driver: webdriver.Chrome, base_url: str):
        self.driver, self.base_url = driver, base_url
        self.requested: list[str] = []   # every URL the browser asked for since the last check
        self.console: list[dict] = []

    # Navigation and finding.
    def open(self, width: int = 1280, height: int = 900) -> Page:
        self.driver.set_window_size(width, height)
        self.driver.get(self.base_url + "/")  # a reload: the tokens, kept in memory only, are gone
        self.wait(lambda: self.driver.execute_script("return document.body.dataset.ready") == "true", "the page script")
        return self

    def wait(self, condition, what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = condition()
            except StaleElementReferenceException:  # the page re-rendered what was found: look again
                result = None
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def all(self, testid: str, within=None):
        return (within or self.driver).find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def one(self, testid: str, within=None):
        return self.wait(lambda: next(iter(self.all(testid, within)), None), f'[data-testid="{testid}"]')

    def visible(self, testid: str):
        return self.wait(lambda: next((e for e in self.all(testid) if e.is_displayed()), None), f"{testid} visible")

    def fields(self, element) -> dict[str, str]:
        """The numbers a chip shows, by their data-field name, as displayed (commas dropped)."""
        return {node.get_attribute("data-field"): node.text.replace(",", "")
                for node in element.find_elements(By.CSS_SELECTOR, "[data-field]")}

    def type(self, testid: str, text: str) -> None:
        element = self.visible(testid)
        element.clear()
        element.send_keys(text)

    def click(self, testid: str) -> None:
        self.wait(lambda: (e := self.visible(testid)).is_enabled() and e, f"{testid} enabled").click()

    # What a person does.
    def sign_up(self, email: str, password: str = PASSWORD, name: str = "Ada") -> None:
        self.type("email", email)
        self.type("password", password)
        self.type("name", name)
        self.click("register")
        self.visible("message-input")

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        self.type("email", email)
        self.type("password", password)
        self.click("login")
        self.visible("message-input")

    def send(self, text: str, model: str | None = None) -> None:
        if model:
            self.visible("model-select").find_element(By.CSS_SELECTOR, f'option[value="{model}"]').click()
        self.type("message-input", text)
        self.click("send")

    def wait_for_reply(self, count: int):
        """The `count`-th assistant message, once its usage chip is shown (the stream ended)."""
        def done():
            replies = self.all("assistant-message")
            return len(replies) >= count and self.all("message-usage", replies[count - 1]) and replies[count - 1]
        return self.wait(done, f"reply {count} with its usage chip")

    def banner(self) -> str:
        return self.wait(lambda: (b := self.one("error-banner")).is_displayed() and b.text, "the error banner")

    def nav(self, view: str, testid: str) -> None:
        self.click(f"nav-{view}")
        self.visible(testid)

    # What the browser did.
    def drain_logs(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        self.console.extend(self.driver.get_log("browser"))

    def assert_clean(self, allowed_statuses: tuple[int, ...] = ()) -> None:
        """No console error (but the failed responses a test caused on purpose), no request off the origin."""
        self.drain_logs()
        foreign = [url for url in self.requested if not url.startswith(self.base_url + "/")]
        allowed = tuple(f"status of {status} " for status in allowed_statuses)
        errors = [e["message"] for e in self.console
                  if e["level"] == "SEVERE" and not (allowed and any(a in e["message"] for a in allowed))]
        self.requested, self.console = [], []
        assert foreign == [], f"requests left the gateway's origin: {foreign}"
        assert errors == [], f"console errors: {errors}"
        assert self.alert() is None

    def alert(self) -> str | None:
        try:
            return self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    def screenshot(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix="chat-page-")) / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def api_login(base_url: str, email: str, password: str = PASSWORD) -> GatewayClient:
    """The same user as the page, through the API: what the page shows is checked against this."""
    client = GatewayClient(base_url, timeout=10)
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['accessToken']}"
    return client
