import pytest
from flask import request

from app import create_app
from app.version import __version__
from tests.support.servers import free_port


def test_health_reports_database_and_settings(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body.pop("providers")[0]["models"] == ["llama3.1"]
    upstream = body.pop("upstreams")[0]  # nothing listens at the default URL: the probe may have ejected it already
    assert (upstream["model"], upstream["name"], upstream["outstanding"]) == ("llama3.1", "localhost:11434", 0)
    assert upstream["state"] in ("healthy", "ejected")  # reachability: tests/test_operator_gunicorn.py
    assert body == {"status": "ok", "env": "test", "db": "up", "defaultModel": "llama3.1", "version": __version__}


def test_health_is_503_when_the_database_is_unreachable(app_config):
    app = create_app({**app_config, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"})
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["db"] == "down" and response.get_json()["status"] == "degraded"
    assert app.test_client().get("/livez").status_code == 200  # liveness never touches the database


def test_openapi_document_is_generated_from_the_schemas(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/auth/register", "/orgs/{id}/members", "/conversations/{id}"} <= set(spec["paths"])
    register = spec["paths"]["/auth/register"]["post"]
    schema_ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    props = spec["components"]["schemas"][schema_ref]["properties"]
    assert props["password"]["minLength"] == 8 and "email" in spec["components"]["schemas"][schema_ref]["required"]
    assert spec["paths"]["/conversations"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in register
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    create_props = spec["components"]["schemas"]["ConversationCreate"]["properties"]
    assert {"systemPrompt", "topP", "orgId"} <= set(create_props)
    assert create_props["temperature"]["maximum"] == 2


@pytest.mark.parametrize("hsts", ["0", "31536000"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_liveness_probe_answered_before_flask_says_what_flask_would(app_config, method, hsts):
    """GET/HEAD /livez is answered by app/health/edge.py; with an Origin it goes through Flask: same bytes either way."""
    client = create_app({**app_config, "HSTS_SECONDS": hsts}).test_client()
    for sent_id in ("probe-1", "not a valid id!"):
        edge = client.open("/livez", method=method, headers={"X-Request-ID": sent_id})
        flask = client.open("/livez", method=method, headers={"X-Request-ID": sent_id, "Origin": "https://a.example"})
        assert (edge.status_code, edge.get_data()) == (flask.status_code, flask.get_data()) == (
            200, b"" if method == "HEAD" else b'{"status":"ok"}\n')
        edge_id, flask_id = edge.headers.pop("X-Request-ID"), flask.headers.pop("X-Request-ID")
        assert sorted(edge.headers.items()) == sorted(flask.headers.items())
        assert ("Strict-Transport-Security" in edge.headers) == (hsts != "0")
        if sent_id == "probe-1":
            assert edge_id == flask_id == sent_id
        else:  # not safe to echo: a fresh one each time
            assert len(edge_id) == 32 and edge_id != flask_id


def test_only_the_plain_probe_skips_flask(app):
    seen = []
    app.before_request(lambda: seen.append(request.method))  # runs for every request Flask itself serves
    client = app.test_client()
    assert client.get("/livez").status_code == client.head("/livez").status_code == 200
    assert seen == []
    assert client.post("/livez").status_code == 405
    assert client.get("/livez/").status_code == 404
    assert client.get("/livez?verbose=1").get_json() == {"status": "ok"}
    assert client.get("/livez", headers={"Origin": "https://a.example"}).status_code == 200
    assert seen == ["POST", "GET", "GET"]  # the 405, /livez/ and the CORS request; a query string changes nothing
