"""Each request is counted once, when it ends, under its route template: also when the view crashes."""
from prometheus_client import REGISTRY

from app.metrics.definitions import UNMATCHED_ROUTE


def count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status_code": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def finished(response):
    # The test client leaves the body open; a real server closes it after the last byte.
    response.close()
    return response


def test_a_crashing_view_is_counted_once_as_500_under_its_template(client, user, monkeypatch):
    from app.conversations import service

    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "get_visible", explode)
    before = count("GET", "/conversations/<id>", "500")
    response = finished(client.get("/conversations/abc", headers=user.headers))
    assert response.status_code == 500
    assert count("GET", "/conversations/<id>", "500") - before == 1


def test_nothing_is_counted_until_the_body_is_done(client):
    before = count("GET", "/livez", "200")
    response = client.get("/livez")
    assert count("GET", "/livez", "200") == before
    finished(response)
    assert count("GET", "/livez", "200") == before + 1
    finished(response)  # closing twice still counts once
    assert count("GET", "/livez", "200") == before + 1


def test_unmatched_paths_share_one_label(client):
    before = count("GET", UNMATCHED_ROUTE, "404")
    for path in ("/a", "/b/c", "/conversations/x/y/z"):
        finished(client.get(path))
    assert count("GET", UNMATCHED_ROUTE, "404") - before == 3
