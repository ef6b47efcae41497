"""`/`: the chat page and its static files, under a Content-Security-Policy of their own.

The page is a client of the JSON API and nothing more: every byte of data it
shows comes from the API with the user's token. The one thing it is handed
here is each model's price, which the API does not expose, so that a message's
chip can show its cost the way usage rows compute it.
"""
import json

from flask import Blueprint, Response, render_template

from ..llm import get_llm

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/static", template_folder="templates")

# Scripts, styles, images and requests from this origin only; no inline script or style, no eval, no framing,
# no form posted anywhere (the page's forms are handled by its script).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "font-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@bp.get("/")
def page() -> str:
    return render_template("web/index.html", prices=json.dumps(_prices()))


@bp.after_request
def page_policy(response: Response) -> Response:
    # Runs before the app-wide security headers, which only set a CSP where none is: the API keeps its own.
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def _prices() -> dict[str, dict[str, str | None]]:
    """USD per million tokens, as exact decimal strings, for the priced models of the catalogue."""
    return {spec.name: {"input": _text(spec.input_price), "output": _text(spec.output_price)}
            for spec in get_llm().catalogue if spec.input_price is not None or spec.output_price is not None}


def _text(price) -> str | None:
    return None if price is None else format(price, "f")
