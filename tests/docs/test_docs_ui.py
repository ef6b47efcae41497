"""Swagger UI at /docs: every asset it references is served by the gateway itself, under a CSP of its own."""
import re

from app.http.security import JSON_CSP


def fetch(client, url):
    response = client.get(url)
    response.get_data()
    response.close()  # files are streamed: close them, as a server would
    return response


def test_docs_page_and_all_its_assets_come_from_the_gateway(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(references) >= 4
    for url in references:
        assert url.startswith("/"), f"{url} is not served by the gateway"
        assert fetch(client, url).status_code == 200, url
        assert len(fetch(client, url).get_data()) > 0
    bundle, _preset, init = re.findall(r'<script src="([^"]+)"', html)
    assert "SwaggerUIBundle" in fetch(client, bundle).get_data(as_text=True)  # the real library, not a stub
    assert "SwaggerUIBundle(" in fetch(client, init).get_data(as_text=True)
    assert "<script>" not in html  # no inline script: the CSP below forbids them
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "http" not in csp
    assert 'data-openapi-url="/openapi.json"' in html and client.get("/openapi.json").status_code == 200


def test_only_the_listed_assets_are_served_and_the_api_keeps_its_strict_policy(client):
    missing = fetch(client, "/docs/assets/swagger-ui.js.map")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get("/docs/assets/..%2Fapp.py").status_code == 404
    assert client.get("/livez").headers["Content-Security-Policy"] == JSON_CSP


def test_openapi_documents_the_health_fields(client):
    spec = client.get("/openapi.json").get_json()
    health = spec["paths"]["/health"]["get"]["responses"]
    assert {"200", "503"} <= set(health)
    schema = spec["components"]["schemas"][health["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert {"status", "db", "defaultModel", "providers"} <= set(schema["properties"])
    provider = spec["components"]["schemas"]["ProviderHealth"]["properties"]
    assert provider["status"]["enum"] == ["up", "down", "unknown"] and "checkedAt" in provider
