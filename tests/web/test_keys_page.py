"""API keys made in the page work with the `openai` SDK and stop working once revoked; a rate-limited
chat tells when to retry."""
import re

import openai
import pytest
from selenium.webdriver.common.keys import Keys

from bench.fake_model import Script
from tests.web.conftest import CHAT_LIMIT, MODEL, new_email

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]



def test_a_key_created_in_the_page_works_with_the_openai_sdk_until_revoked(page, fake, gateway):
    fake.reset(Script(tokens=["Hi", " from", " the", " SDK"]))
    page.sign_up(new_email())
    page.nav("keys", "api-keys-view")
    assert page.driver.switch_to.active_element.get_attribute("id") == "keys-heading"
    page.type("key-name", "laptop")
    page.visible("key-name").send_keys(Keys.ENTER)
    key = page.wait(lambda: page.visible("new-key-value").get_attribute("value"), "the new key")
    assert re.fullmatch(r"sk-gw-[A-Za-z0-9_-]{43}", key)
    assert page.driver.switch_to.active_element.get_attribute("data-testid") == "new-key-value"
    page.click("copy-key")
    page.wait(lambda: "Cop" in page.driver.find_element("id", "copy-status").text or "Selected" in
              page.driver.find_element("id", "copy-status").text, "the copy status")
    rows = page.wait(lambda: page.all("api-key-item"), "the key in the list")
    assert len(rows) == 1 and "laptop" in rows[0].text and key[:12] in rows[0].text and key not in rows[0].text

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content == "Hi from the SDK"

    # Shown once: leaving the view forgets it; revoking it in the page ends it.
    page.nav("chat", "message-input")
    page.nav("keys", "api-keys-view")
    assert not page.one("new-key-value").is_displayed() and page.one("new-key-value").get_attribute("value") == ""
    page.click("revoke-key")
    page.wait(lambda: not page.all("api-key-item"), "the key gone from the list")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello again"}])
    page.assert_clean()


def test_a_rate_limited_chat_says_when_to_retry(page, fake):
    fake.reset(Script(tokens=["ok"]))
    page.sign_up(new_email())
    for number in range(1, CHAT_LIMIT + 1):
        page.send(f"chat {number}")
        page.wait_for_reply(number)
    calls = len(fake.requests)
    page.send("one too many")
    text = page.banner()
    seconds = re.search(r"Try again in (\d+) s", text)
    assert "faster than this gateway allows" in text and seconds and 0 < int(seconds.group(1)) <= 3600, text
    assert len(fake.requests) == calls and len(page.all("assistant-message")) == CHAT_LIMIT
    page.assert_clean(allowed_statuses=(429,))
