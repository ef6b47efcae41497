"""The chat page in a real Chromium against real gunicorn and a fake model server that streams slowly,
on SQLite and PostgreSQL: sign-up, streamed replies watched as they grow, chips equal to what the API
stored, stop, untrusted output, errors a person can act on, and a phone-sized screen."""
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from bench.fake_model import Script
from tests.support.servers import wait_until
from tests.web.browser import api_login
from tests.web.conftest import MODEL, OFFLINE, PRICED, PRICES, new_email

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "chat-page.png"
SLOW = Script(tokens=["Streams", " arrive", " one", " token", " at", " a", " time", "."], first_token_delay=0.2,
              token_delay=0.15, prompt_tokens=None)
# Records the reply's text at every change, in the page itself: what a person saw, not what a poll caught.
WATCH = """
window.partials = [];
new MutationObserver(() => {
  const replies = document.querySelectorAll('[data-testid="assistant-message"] .content');
  const last = replies[replies.length - 1];
  if (last && window.partials[window.partials.length - 1] !== last.textContent) window.partials.push(last.textContent);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""



def test_nothing_is_shown_before_a_login(page):
    assert page.visible("email") and page.visible("password") and page.visible("register")
    for testid in ("message-input", "new-conversation", "nav-usage", "nav-keys", "logout", "usage-view",
                   "api-keys-view"):
        assert not any(e.is_displayed() for e in page.all(testid)), f"{testid} is shown before a login"
    page.assert_clean()


def test_sign_up_then_a_reply_streams_in_and_its_chip_equals_the_stored_usage(page, fake, gateway):
    fake.reset(SLOW)
    email = new_email()
    page.sign_up(email)
    assert page.driver.switch_to.active_element.get_attribute("data-testid") == "message-input"
    # Tokens live in the script's memory only: nothing a later visit or another page could read.
    assert page.driver.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    page.driver.execute_script(WATCH)
    page.send("Tell me how streams work", model=PRICED)
    reply = page.wait_for_reply(1)
    final = "".join(SLOW.tokens)
    assert reply.find_element(By.CSS_SELECTOR, ".content").text == final
    partials = [text for text in page.driver.execute_script("return window.partials") if text]
    growing = [text for text in partials if text != final]
    assert len(growing) >= 3, f"saw only {growing} before the end"
    assert all(final.startswith(text) for text in partials)
    assert all(len(a) < len(b) for a, b in zip(partials, partials[1:])), partials
    assert page.one("user-message").text.endswith("Tell me how streams work")

    # The chip shows what the API stored for that message: tokens, timings and the cost of its usage row.
    api = api_login(gateway.url, email)
    conversation = api.get("/conversations").json()["items"][0]
    detail = api.get(f"/conversations/{conversation['id']}").json()
    meta = detail["messages"][-1]["meta"]
    usage, timings = meta["usage"], meta["timings"]
    chip = page.fields(page.one("message-usage", reply))
    assert int(chip["prompt"]) == usage["promptTokens"] and int(chip["completion"]) == usage["completionTokens"] == 8
    assert int(chip["ttft"]) == round(timings["timeToFirstTokenMs"])
    rate = usage["completionTokens"] * 1000 / (timings["totalMs"] - timings["timeToFirstTokenMs"])
    assert chip["rate"] == f"{rate:.1f}"
    assert Decimal(chip["cost"].lstrip("$")) == Decimal(detail["usage"]["costUsd"]) == (
        usage["promptTokens"] * Decimal(PRICES["input_price"])
        + usage["completionTokens"] * Decimal(PRICES["output_price"])) / 10**6
    assert "estimated" not in chip
    # The conversation's totals, and the list, show it too.
    totals = page.fields(page.one("conversation-usage"))
    assert int(totals["total"]) == detail["usage"]["totalTokens"] and totals["completions"] == "1"
    assert totals["cost"] == "$" + detail["usage"]["costUsd"]
    assert [e.text for e in page.all("conversation-item")] == [conversation["title"]]
    page.assert_clean()


def test_enter_sends_shift_enter_adds_a_line_and_estimated_counts_are_marked(page, fake):
    fake.reset(Script(tokens=["a", "b", "c"], report_usage=False))
    page.sign_up(new_email())
    box = page.visible("message-input")
    box.send_keys("first line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line")
    assert box.get_attribute("value") == "first line\nsecond line" and not page.all("user-message")
    box.send_keys(Keys.ENTER)
    reply = page.wait_for_reply(1)
    assert page.one("user-message").find_element(By.CSS_SELECTOR, ".content").text == "first line\nsecond line"
    chip = page.fields(page.one("message-usage", reply))
    assert chip["estimated"] == "(estimated)" and chip["completion"] == "3" and "cost" not in chip  # unpriced
    assert page.driver.switch_to.active_element.get_attribute("data-testid") == "message-input"
    log = page.driver.find_element(By.ID, "messages")
    assert log.get_attribute("aria-live") == "polite" and reply.get_attribute("aria-busy") == "false"
    page.assert_clean()


def test_stop_mid_stream_frees_the_upstream_within_a_second(page, fake, gateway):
    fake.reset(Script(tokens=[f" word{i}" for i in range(200)], token_delay=0.1))
    email = new_email()
    page.sign_up(email)
    page.send("Talk for a long time")
    page.wait(lambda: len(page.one("assistant-message").text.split("word")) > 3, "a few tokens")
    upstream = fake.last_request
    stopped = time.monotonic()
    page.click("stop")
    assert fake.wait_until(lambda: upstream.client_closed_at is not None, timeout=5), "the upstream was never closed"
    assert upstream.client_closed_at - stopped < 1.0
    assert upstream.tokens_sent < 200
    page.one("message-stopped")
    assert page.driver.switch_to.active_element.get_attribute("data-testid") == "message-input"
    assert page.visible("send").is_enabled() and not page.visible("stop").is_enabled()
    # The gateway stored what was generated as a partial reply, as for any client that leaves.
    api = api_login(gateway.url, email)
    conversation = api.get("/conversations").json()["items"][0]["id"]
    stored = wait_until(lambda: [m for m in api.get(f"/conversations/{conversation}").json()["messages"]
                                 if m["role"] == "ASSISTANT"], timeout=10, what="the partial reply")
    assert stored[0]["meta"]["partial"] is True and stored[0]["meta"]["reason"] == "client_disconnect"
    page.assert_clean()


XSS = ['<img src=x onerror="window.pwned=1;alert(1)">', "<script>window.pwned=2</script>",
       "[click me](javascript:window.pwned=3)", '<a href="javascript:window.pwned=4">link</a>',
       '<svg onload="window.pwned=5"></svg>']


def test_model_output_is_text_and_xss_replies_are_inert(page, fake):
    fake.reset(Script(tokens=[" ".join(XSS)]))
    page.sign_up(new_email())
    page.send("Say something nasty")
    reply = page.wait_for_reply(1)
    content = reply.find_element(By.CSS_SELECTOR, ".content")
    assert content.text == " ".join(XSS)
    assert content.find_elements(By.CSS_SELECTOR, "*") == []  # no element made from the reply
    assert page.driver.execute_script("return window.pwned") is None
    assert page.alert() is None
    page.assert_clean()  # and no request for `x`


def test_conversations_are_created_renamed_and_deleted(page, fake, gateway):
    fake.reset(Script(tokens=["ok"]))
    email = new_email()
    page.sign_up(email)
    page.click("new-conversation")
    page.wait(lambda: len(page.all("conversation-item")) == 1, "the new conversation")
    assert page.driver.switch_to.active_element.get_attribute("data-testid") == "message-input"
    page.type("conversation-title", "Renamed")
    page.visible("conversation-title").send_keys(Keys.ENTER)
    page.wait(lambda: [e.text for e in page.all("conversation-item")] == ["Renamed"], "the new title in the list")
    api = api_login(gateway.url, email)
    assert [c["title"] for c in api.get("/conversations").json()["items"]] == ["Renamed"]
    page.click("delete-conversation")
    assert len(page.all("conversation-item")) == 1  # the first click only asks
    page.click("delete-conversation")
    page.wait(lambda: not page.all("conversation-item"), "the conversation gone from the list")
    assert api.get("/conversations").json()["items"] == []
    page.assert_clean()


def test_no_model_server_says_what_to_run(page, fake):
    page.sign_up(new_email())
    page.send("Anyone there?", model=OFFLINE)
    text = page.banner()
    assert "No model server answered" in text and "python -m bench.fake_model --port 11434" in text
    assert page.one("error-banner").get_attribute("role") == "alert"
    page.assert_clean(allowed_statuses=(502,))


def test_a_session_ended_elsewhere_shows_logged_out_and_the_login_form(page, gateway):
    email = new_email()
    page.sign_up(email)
    api = api_login(gateway.url, email)
    response = api.post("/auth/password", json={"currentPassword": "correct horse battery",
                                                "newPassword": "another horse battery"})
    assert response.status_code == 200, response.text
    page.click("new-conversation")
    assert "You have been logged out" in page.banner()
    assert page.visible("email") and not page.visible("password").get_attribute("value")
    assert not any(e.is_displayed() for e in page.all("message-input"))
    page.log_in(email, "another horse battery")
    page.assert_clean(allowed_statuses=(401,))


def test_the_page_works_at_375_by_812(page, fake):
    fake.reset(Script(tokens=["Small", " screens", " too", "."], token_delay=0.05))
    page.open(375, 812)
    assert page.driver.execute_script("return window.innerWidth") == 375
    page.sign_up(new_email())
    page.send("Hello from a phone")
    page.wait_for_reply(1)
    for testid in ("nav-chat", "nav-usage", "nav-keys", "logout", "new-conversation", "model-select",
                   "message-input", "send", "stop", "message-usage"):
        element = page.one(testid)
        box = element.rect
        assert element.is_displayed() and box["x"] >= 0 and box["x"] + box["width"] <= 375, (testid, box)
    assert page.driver.execute_script("return document.documentElement.scrollWidth") <= 375
    page.nav("usage", "usage-view")
    assert page.driver.execute_script("return document.documentElement.scrollWidth") <= 375
    page.nav("keys", "api-keys-view")
    assert page.driver.execute_script("return document.documentElement.scrollWidth") <= 375
    page.assert_clean()


def test_screenshot_for_the_readme(page, fake):
    """The README's picture of the page; written into docs/ when UPDATE_SCREENSHOT=1."""
    fake.reset(Script(tokens=["Here", " are", " three", ":", " 2", ",", " 3", " and", " 5", "."], prompt_tokens=None,
                      first_token_delay=0.25, token_delay=0.04))
    page.sign_up(new_email(), name="Ada")
    page.send("Name three prime numbers.", model=PRICED)
    page.wait_for_reply(1)
    page.type("conversation-title", "Primes")
    page.visible("conversation-title").send_keys(Keys.ENTER)
    page.wait(lambda: [e.text for e in page.all("conversation-item")] == ["Primes"], "the title")
    path = page.screenshot("chat-page")
    assert path.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(path.read_bytes())
    page.assert_clean()
