"""The observability guide's walkthrough as a test: five chats sent through the page in Chromium while a
real Prometheus (the project's configuration) scrapes the gateway; the dashboard's token and completion
panels then count exactly the tokens the page displayed.

A panel plots a rate; what it integrates to is the counter inside its `rate(...[$__rate_interval])`. Each
panel's own expression is evaluated with that rate replaced by the counter (and a per-hour scale dropped),
so the panel's selectors, `$job`/`$instance`/`$model` filters and grouping are the ones under test. The
gateway is the one every browser test uses: what the panels gain during the five chats is compared.
"""
import re
import time
from collections import Counter

import pytest

from bench.fake_model import Script
from tests.monitoring.prometheus_server import Prometheus
from tests.monitoring.test_end_to_end import dashboard_queries, grafana_to_promql
from tests.support.servers import wait_until
from tests.web.conftest import MODEL, PRICED, new_email

# Metrics do not depend on the database: one run (on the browser tests' SQLite gateway) keeps the suite quick.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150),
              pytest.mark.parametrize("web_database_url", ["sqlite"], indirect=True)]

JOB = "ai-chat-gateway"
PANELS = {"Tokens per second by model": ("model", "type"), "Tokens per hour by model": ("model",),
          "Chat outcomes": ("outcome",)}
CHATS = [MODEL, PRICED, MODEL, PRICED, MODEL]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, gateway, prometheus_bin):
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), target=f"127.0.0.1:{gateway.metrics_port}",
                        prometheus_bin=prometheus_bin)
    with server:
        server.wait_for_target("up")
        yield server


def as_total(expr: str) -> str:
    """The panel's expression over its counters' values instead of their rates."""
    total = re.sub(r"rate\((\w+\{[^}]*\})\[1m\]\)", r"\1", expr)
    return re.sub(r"\s*\*\s*3600\s*$", "", total)


def panel(title: str) -> str:
    (expr,) = [expr for name, _ref, expr in dashboard_queries() if name == title]
    return as_total(grafana_to_promql(expr, JOB))


def scraped_after(prometheus, moment: float) -> None:
    wait_until(lambda: all(float(s["value"][1]) > moment for s in prometheus.query(f'timestamp(up{{job="{JOB}"}})')),
               timeout=30, interval=0.5, what="a scrape")


def series(prometheus, title) -> Counter:
    labels = PANELS[title]
    return Counter({tuple(s["metric"][label] for label in labels): float(s["value"][1])
                    for s in prometheus.query(panel(title))})


def test_five_chats_in_the_page_are_what_the_dashboard_panels_count(page, fake, prometheus):
    fake.reset(Script(tokens=["Watch", " the", " panels", " react", "."], token_delay=0.02, prompt_tokens=None))
    page.sign_up(new_email())
    scraped_after(prometheus, time.time())
    before = {title: series(prometheus, title) for title in PANELS}
    shown = Counter()
    for number, model in enumerate(CHATS, start=1):
        page.send(f"Chat number {number}, with {'a few more words ' * number}", model=model)
        chip = page.fields(page.one("message-usage", page.wait_for_reply(number)))
        shown[(model, "prompt")] += int(chip["prompt"])
        shown[(model, "completion")] += int(chip["completion"])
    assert len({count for (_, kind), count in shown.items() if kind == "prompt"}) > 1  # the prompts differ
    page.assert_clean()

    per_model = Counter()
    for (model, _kind), value in shown.items():
        per_model[(model,)] += value
    expected = {"Tokens per second by model": shown, "Tokens per hour by model": per_model,
                "Chat outcomes": Counter({("success",): len(CHATS)})}

    def gained(title) -> dict:
        after = series(prometheus, title)
        return {key: after[key] - before[title][key] for key in after if after[key] != before[title][key]}

    # A chat's counters move as its reply ends, the page shows the chip as it arrives: a scrape may fall between.
    scraped_after(prometheus, time.time())
    try:
        wait_until(lambda: all(gained(title) == dict(want) for title, want in expected.items()), timeout=20,
                   interval=0.5, what="the panels to count the page's tokens")
    except TimeoutError:
        pass  # the assertions below say which panel differs, and how
    for title, want in expected.items():
        assert gained(title) == dict(want), title
