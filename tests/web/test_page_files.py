"""The page and its files as the gateway serves them: its own strict CSP (the API keeps its own), nothing
from another origin, no inline script, no way to turn text into markup, no token storage, every test hook."""
import json
import re
from pathlib import Path

import pytest

from app.docs.routes import DOCS_CSP
from app.http.security import JSON_CSP
from app.web.routes import PAGE_CSP
from tests.support.apps import close_app

WEB = Path(__file__).resolve().parents[2] / "app" / "web"
SOURCES = {path.relative_to(WEB): path.read_text() for path in WEB.rglob("*") if path.suffix in (".html", ".js", ".css", ".svg")}
SCRIPTS = {path: text for path, text in SOURCES.items() if path.suffix == ".js"}
# The issue's list: outside tests drive the page by these.
TEST_IDS = ("email password name register login logout new-conversation conversation-item model-select message-input "
            "send stop user-message assistant-message nav-chat nav-usage nav-keys message-usage conversation-usage "
            "usage-view budget-chip api-keys-view key-name create-key new-key-value error-banner").split()


def fetch(client, url):
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def test_the_page_and_every_file_it_references_come_from_the_gateway_under_the_page_policy(client):
    page = fetch(client, "/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert len(references) == 3  # icon, stylesheet, script
    for url in references:
        assert url.startswith("/static/"), url
        asset = fetch(client, url)
        assert asset.status_code == 200 and asset.get_data(), url
    for module in SCRIPTS:
        assert fetch(client, f"/static/{module.name}").mimetype == "text/javascript"
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/static/app.js">']
    assert page.headers["Content-Security-Policy"] == PAGE_CSP


def test_the_policy_allows_only_this_origin_and_no_inline_code():
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in PAGE_CSP and "http" not in PAGE_CSP and "data:" not in PAGE_CSP


def test_the_api_keeps_its_own_headers(client):
    for url in ("/livez", "/auth/me", "/openapi.json", "/conversations", "/no-such-route"):
        assert fetch(client, url).headers["Content-Security-Policy"] == JSON_CSP, url
    for url in ("/static/../routes.py", "/static/nothing.js"):
        response = fetch(client, url)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found", url
    assert fetch(client, "/docs").headers["Content-Security-Policy"] == DOCS_CSP
    assert "/" not in client.get("/openapi.json").get_json()["paths"]  # the page is not part of the API


def test_nothing_is_loaded_from_another_origin():
    for path, text in SOURCES.items():
        # The SVG namespace is a name, never fetched.
        urls = [url for url in re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", text) if "www.w3.org/2000/svg" not in url]
        assert urls == [], f"{path} names another origin: {urls}"
        assert "@import" not in text and "@font-face" not in text, path


def test_scripts_never_parse_text_as_markup_nor_store_tokens():
    for path, text in SCRIPTS.items():
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                          "localStorage", "sessionStorage", "document.cookie", "setTimeout(\"", "DOMParser"):
            assert forbidden not in text, f"{path} uses {forbidden}"
    assert "textContent" in SCRIPTS[Path("static/chat.js")]


def test_every_test_hook_of_the_issue_is_on_the_page():
    html, scripts = SOURCES[Path("templates/web/index.html")], "".join(SCRIPTS.values())
    missing = [testid for testid in TEST_IDS if f'data-testid="{testid}"' not in html and f'"{testid}"' not in scripts]
    assert missing == []


def test_every_control_has_a_label():
    html = SOURCES[Path("templates/web/index.html")]
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        element_id = re.search(r'\bid="([^"]+)"', control).group(1)
        assert f'for="{element_id}"' in html or "aria-label=" in control, control


def test_the_page_is_served_without_a_login_but_holds_no_data(client):
    html = fetch(client, "/").get_data(as_text=True)
    assert 'id="auth-view"' in html and 'data-prices="{}"' in html  # no model is priced here


@pytest.mark.parametrize("app_overrides", [{"MODELS_FILE": "", "DEFAULT_MODEL": "llama3.1"}])
def test_prices_of_the_catalogue_reach_the_page_as_exact_strings(client, app, tmp_path, app_config):
    from app import create_app

    models = tmp_path / "models.json"
    models.write_text(json.dumps({"default_model": "a", "models": {
        "a": {"provider": "ollama", "base_url": "http://127.0.0.1:9"},
        "b": {"provider": "ollama", "base_url": "http://127.0.0.1:9", "input_price": "0.000000015", "output_price": "2"}}}))
    priced = create_app({**app_config, "MODELS_FILE": str(models)})
    try:
        html = fetch(priced.test_client(), "/").get_data(as_text=True)
    finally:
        close_app(priced)
    prices = json.loads(re.search(r'data-prices="([^"]*)"', html).group(1).replace("&#34;", '"'))
    assert prices == {"b": {"input": "0.000000015", "output": "2"}}
