"""`/docs`: the Swagger UI page and its assets, from the swagger-ui-bundle package (no CDN)."""
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs", __name__, url_prefix="/docs")

HERE = Path(__file__).resolve().parent / "static"
# The files the page loads; anything else in the package (source maps, other builds) is not served.
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")
# The page's own scripts and styles only; Swagger UI sets inline styles and shows data: images.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AI Chat Gateway API</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body data-openapi-url="{spec}">
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{preset}"></script>
<script src="{init}"></script>
</body>
</html>
"""


@bp.get("")
def page() -> Response:
    html = PAGE.format(css=_asset("swagger-ui.css"), icon=_asset("favicon-32x32.png"),
                       bundle=_asset("swagger-ui-bundle.js"), preset=_asset("swagger-ui-standalone-preset.js"),
                       init=url_for("docs.init_script"), spec="/openapi.json")
    return Response(html, mimetype="text/html", headers={"Content-Security-Policy": DOCS_CSP,
                                                         "Cache-Control": "no-cache"})


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return send_from_directory(Path(str(swagger_ui_path)), name, max_age=3600)


@bp.get("/swagger-init.js")
def init_script() -> Response:
    return send_from_directory(HERE, "swagger-init.js", max_age=3600)


def _asset(name: str) -> str:
    return url_for("docs.asset", name=name)
