"""The usage view and the org budget chip in a real Chromium, equal to the usage API, on both databases;
a budget used up stops the org's chats with a banner that says when it resets."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By

from bench.fake_model import Script
from tests.web.browser import api_login
from tests.web.conftest import MODEL, PRICED, new_email

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]



def totals_match(shown: dict, api: dict) -> None:
    assert int(shown["total"]) == api["totalTokens"] and int(shown["prompt"]) == api["promptTokens"]
    assert int(shown["completion"]) == api["completionTokens"] and int(shown["completions"]) == api["completions"]
    if api["costUsd"] is None:
        assert "cost" not in shown
    else:
        assert Decimal(shown["cost"].lstrip("$")) == Decimal(api["costUsd"])


def org_chip(page, org_id: str):
    return page.wait(lambda: next((c for c in page.all("budget-chip") if c.get_attribute("data-org") == org_id), None),
                     "the org's budget chip")


def open_usage(page):
    page.click("nav-chat")  # leaving the view and coming back reloads it
    page.nav("usage", "usage-view")
    page.wait(lambda: page.all("usage-totals"), "the usage totals")
    assert page.driver.switch_to.active_element.get_attribute("id") == "usage-heading"


def test_usage_and_budget_chips_match_the_usage_api(page, fake, gateway):
    fake.reset(Script(tokens=["one", " two", " three"], prompt_tokens=None))
    email = new_email()
    page.sign_up(email)
    api = api_login(gateway.url, email)
    org = api.post("/orgs", json={"name": "Acme"}).json()
    assert api.put(f"/orgs/{org['id']}/budget", json={"monthlyTokens": 1_000_000}).status_code == 200
    page.send("A personal chat, unpriced", model=MODEL)
    page.wait_for_reply(1)
    open_usage(page)  # loads the org list: the new org becomes a choice for new conversations
    page.nav("chat", "message-input")
    page.visible("conversation-org").find_element(By.CSS_SELECTOR, f'option[value="{org["id"]}"]').click()
    page.click("new-conversation")
    page.wait(lambda: len(page.all("conversation-item")) == 2 and not page.all("assistant-message"), "a new conversation")
    page.send("An org chat with a priced model", model=PRICED)
    page.wait_for_reply(1)

    open_usage(page)
    mine = api.get("/auth/me/usage", params={"groupBy": "model"}).json()
    totals_match(page.fields(page.one("usage-totals")), mine["totals"])
    rows = page.one("usage-view").find_elements(By.CSS_SELECTOR, "tr[data-model]")
    assert {row.get_attribute("data-model") for row in rows} == {MODEL, PRICED} == {g["key"] for g in mine["groups"]}
    for row, group in zip(sorted(rows, key=lambda r: r.get_attribute("data-model")), sorted(mine["groups"], key=lambda g: g["key"])):
        shown = page.fields(row)
        assert int(shown["total"]) == group["totalTokens"] and int(shown["completions"]) == group["completions"]
        assert shown["cost"] == ("no price" if group["costUsd"] is None else "$" + group["costUsd"])
    # The chart has a bar for every day of the month, and today's is the API's day.
    days = {g["key"]: g["totalTokens"] for g in api.get("/auth/me/usage", params={"groupBy": "day"}).json()["groups"]}
    bars = {bar.get_attribute("data-day"): int(bar.get_attribute("data-tokens"))
            for bar in page.one("usage-chart").find_elements(By.CSS_SELECTOR, "rect")}
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert bars[today] == days[today] == mine["totals"]["totalTokens"]
    assert sum(bars.values()) == sum(days.values()) and len(bars) in (28, 29, 30, 31)

    # The org: its month, and its budget as a chip that changes at 80% and at 100%.
    section = page.one("org-usage")
    totals_match(page.fields(section.find_element(By.CSS_SELECTOR, ".totals")),
                 api.get(f"/orgs/{org['id']}/usage").json()["totals"])
    budget = api.get(f"/orgs/{org['id']}/budget").json()
    chip = org_chip(page, org["id"])
    assert chip.get_attribute("data-state") == "ok"
    assert page.fields(chip)["percent"] == f"{int(budget['tokenUtilisation'] * 100)}%"
    used = budget["tokensUsed"]
    for limit, state in ((int(used / 0.85), "warning"), (used, "exhausted")):
        assert api.put(f"/orgs/{org['id']}/budget", json={"monthlyTokens": limit}).status_code == 200
        open_usage(page)
        budget = api.get(f"/orgs/{org['id']}/budget").json()
        chip = org_chip(page, org["id"])
        assert chip.get_attribute("data-state") == state, chip.text
        assert page.fields(chip)["percent"] == f"{int(budget['tokenUtilisation'] * 100)}%"
        assert f"{used:,} of {limit:,} tokens" in chip.text
    page.assert_clean()

    # Chatting in the org now: refused before any model call, with the reset date in words.
    page.nav("chat", "message-input")
    current = page.wait(lambda: [e.text for e in page.all("conversation-item") if e.get_attribute("aria-current")],
                        "the open conversation")
    assert current == ["An org chat with a priced model"]
    calls = len(fake.requests)
    page.send("One more?")
    text = page.banner()
    resets = datetime.fromisoformat(budget["resetsAt"])
    assert "used its monthly budget" in text and str(resets.year) in text, text
    assert len(fake.requests) == calls
    page.assert_clean(allowed_statuses=(429,))
